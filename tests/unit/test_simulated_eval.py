"""The simulated-user evaluation end to end on planted discs and crosses (CSV ground truth)."""
import itertools
import re
import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import TINY as CONFTEST_TINY, write_planted
from simsearch import ConfigError, Curation, Project
from simsearch.cli.main import main
from simsearch.evaluate.report import EvalPlan, evaluate, split
from simsearch.io.images import Dataset
from simsearch.evaluate.metrics import matching_radius
from simsearch.evaluate.simulate import SimulatedUser, Trial, judged_on_object
from simsearch.io.truth import Annotation
from simsearch.training.loop import StageSettings, crop_pixels

# the suite's tiny training (4 classifier copies) with the epochs these tests were written for
TINY = replace(CONFTEST_TINY, supcon=StageSettings(1, 16, 1e-3, 1, 0.5),
               classifier=StageSettings(10, 32, 1e-2, 10, 0.1), max_noisy=64)


# the planted class has few confirmed positives besides the prototypes' own objects, which are never held out:
# half of them held out, so that the held-out check has some to rank
FEW_POSITIVES = replace(TINY, holdout=0.5)


@pytest.fixture
def annotated(tmp_path):
    folder = tmp_path / "images"
    rows = ["image,class,x,y"]
    for name, (discs, crosses) in write_planted(folder, 8).items():
        rows += [f"{name},disc,{x},{y}" for y, x in discs] + [f"{name},cross,{x},{y}" for y, x in crosses]
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    return folder, tmp_path / "truth.csv"


@pytest.mark.slow
def test_simulated_user_strategies_and_resume(annotated, tmp_path):
    folder, truth = annotated
    # a cross annotated on top of every disc (a platelet on a red cell): with full
    # supervision that cross's patch holds a disc, so it is no background to the disc class
    truth_of = _planted_truth(folder)
    overlapping = [f"{name},cross,{x + 4},{y + 6}" for name, (discs, _) in truth_of.items() for y, x in discs]
    truth.write_text(truth.read_text() + "\n".join(overlapping) + "\n")
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"], patch_sizes={"disc": 32},
                    prototypes=[2], negatives=[0, 1], strategies=["similarity", "pos+neg+selflearn", "supervised"],
                    repeats=1, displayed=2, test_fraction=0.25, backbone="efficientnet-lite0", training=FEW_POSITIVES,
                    device="cpu")
    assert [t.strategy for t in plan.trials()] == ["supervised", "similarity", "pos+neg+selflearn", "pos+neg+selflearn"]
    lines = []
    results = evaluate(plan, say=lines.append)
    trials = results["trials"]
    assert len(trials) == 4
    progress = [line for line in lines if line.startswith("[")]
    assert progress[0].startswith("[1/4] disc|P0|N0|supervised|r0: PR-AUC")
    assert progress[-1].startswith("[4/4] ") and progress[-1].endswith("; 0 s left)")
    similarity = trials["disc|P2|N0|similarity|r0"]
    assert similarity["true_objects"] == 6 and similarity["pr_auc"] > 0.6  # 2 test images x 3 discs
    assert trials["disc|P2|N1|pos+neg+selflearn|r0"]["negatives_found"] <= 1
    assert trials["disc|P2|N0|similarity|r0"]["prototypes_used"] == 2
    # noisy patches come from the undisplayed training images only, never from the test images
    train_ids, test_ids = split(Dataset.open(folder), plan)
    with Project.open(tmp_path / "eval" / "work" / "disc_P2_N1_pos+neg+selflearn_r0") as trial_project:
        noisy = {p.image_id for p in trial_project.store.noisy("disc") + trial_project.store.noisy(None)}
        assert noisy and noisy <= set(train_ids) - set(trial_project.displayed)
        assert not noisy & set(test_ids)
        # background: the user flags candidates on a disc, not those on a cross (not this
        # project's class, so background to it: the look-alike the classifier must learn)
        names = {r.id: r.path.name for r in trial_project.dataset}
        radius = matching_radius(32)
        on_cross = 0
        for candidate in Curation(trial_project).background_candidates():
            discs, crosses = (np.array(c) for c in truth_of[names[candidate.image_id]])
            near_disc = np.hypot(*(discs - (candidate.y, candidate.x)).T).min() <= radius
            near_cross = np.hypot(*(crosses - (candidate.y, candidate.x)).T).min() <= radius
            assert candidate.is_background == (not near_disc)
            on_cross += near_cross and not near_disc
        assert on_cross > 0
    # the supervised baseline's background: empty places and objects of the other classes
    with Project.open(tmp_path / "eval" / "work" / "disc_P0_N0_supervised_r0") as supervised:
        names = {r.id: r.path.name for r in supervised.dataset}
        kinds = []
        for patch in supervised.store.clean_background():
            discs, crosses = (np.array(c) for c in truth_of[names[patch.image_id]])
            assert np.hypot(*(discs - (patch.y, patch.x)).T).min() > radius
            kinds.append(np.hypot(*(crosses - (patch.y, patch.x)).T).min() < 1)
        assert any(kinds) and not all(kinds)
    assert all(0 <= row["pr_auc"] <= 1 for row in trials.values())
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| disc | similarity | 2 | 0 |" in report and "| disc | supervised | all | 0 |" in report
    check = trials["disc|P2|N1|pos+neg+selflearn|r0"]["check"]  # what the user is told after training
    assert check["name"] == "disc" and 0 <= check["model"] <= 1 and "similarity" not in trials["disc|P2|N0|similarity|r0"].get("check", {})
    assert "| disc | pos+neg+selflearn | 2 | 1 | " in report.split("Check on held-out curated examples")[1]
    assert (tmp_path / "eval" / "pr_disc.png").is_file()
    again = evaluate(plan, say=lines.append)  # resumes: nothing recomputed
    assert json.dumps(again["trials"], sort_keys=True) == json.dumps(trials, sort_keys=True)


def test_eval_input_errors(annotated, tmp_path, capsys):
    folder, truth = annotated
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "e", classes=["blob"], patch_sizes={"blob": 32},
                    prototypes=[2], negatives=[0], strategies=["similarity"], backbone="efficientnet-lite0")
    with pytest.raises(ConfigError, match=r"classes \['blob'\] have no annotation"):
        evaluate(plan)
    assert main(["-q", "eval", "--images", str(folder), "--truth", str(truth), "--classes", "disc",
                 "--patch-size", "RBC=32", "--out", str(tmp_path / "e2")]) == 2
    assert "no size for ['disc']" in capsys.readouterr().err


def test_the_user_judges_an_item_by_its_box_and_the_objects_size():
    """Patch 40: with one level, the paper's 12 px whatever the object; over a pyramid a
    160 px box 40 px off a 160 px particle's centre is on it, a 10 px box there is not, and a
    160 px box 20 px beside a 20 px particle is not either."""
    big, small = Annotation("a", "p", 0, 0, 160, 160), Annotation("a", "p", 300, 0, 320, 20)  # centres (80, 80), (10, 310)
    assert judged_on_object(80, 92, 1.0, [big], 40) and not judged_on_object(80, 93, 1.0, [big], 40)
    assert judged_on_object(80, 120, 4.0, [big], 40) and not judged_on_object(80, 129, 4.0, [big], 40)
    assert not judged_on_object(80, 120, 0.25, [big], 40) and judged_on_object(80, 83, 0.25, [big], 40)
    assert judged_on_object(10, 322, 4.0, [small], 40) and not judged_on_object(10, 330, 4.0, [small], 40)
    assert not judged_on_object(10, 310, 1.0, [], 40)


def test_trials_run_the_supervised_baseline_once_per_class_and_repeat(tmp_path):
    plan = EvalPlan(images="x", truth="y", out=tmp_path, classes=["a", "b"], patch_sizes={"a": 32, "b": 32},
                    prototypes=[5, 10], negatives=[0, 5], strategies=["similarity", "pos", "supervised"], repeats=3)
    keys = [t.key for t in plan.trials()]
    assert [k for k in keys if "supervised" in k] == [f"{c}|P0|N0|supervised|r{r}" for c in "ab" for r in range(3)]
    assert len(keys) == 2 * 3 * (1 + 2 * 1 + 2 * 2)  # per class and repeat: supervised, similarity per P, pos per P and N
    assert len(set(keys)) == len(keys)


def test_an_unknown_matching_rule_stops_the_evaluation_before_any_work(tmp_path):
    plan = EvalPlan(images="x", truth="y", out=tmp_path / "eval", classes=["a"], patch_sizes={"a": 32},
                    prototypes=[5], negatives=[5], strategies=["similarity"], matching="box")
    with pytest.raises(ConfigError, match="matching: unknown rule 'box'; choose from patch, object"):
        evaluate(plan, say=lambda line: None)
    assert not (tmp_path / "eval").exists()


def test_prototypes_are_whole_objects_where_there_are_enough():
    import numpy as np

    from simsearch.evaluate.simulate import pick_prototypes

    objects = {"a": [(50.0, 50.0), (5.0, 50.0), (95.0, 95.0)], "b": [(50.0, 20.0), (40.0, 60.0)]}
    sizes = {"a": (100, 100), "b": (100, 80)}
    for seed in range(5):
        picks = pick_prototypes(objects, sizes, 3, (32, 32), np.random.default_rng(seed))
        assert sorted(picks) == [("a", (50.0, 50.0)), ("b", (40.0, 60.0)), ("b", (50.0, 20.0))]
    five = pick_prototypes(objects, sizes, 5, (32, 32), np.random.default_rng(0))
    assert len(five) == 5 and set(five[3:]) == {("a", (5.0, 50.0)), ("a", (95.0, 95.0))}  # the border ones last


def test_more_images_are_shown_until_they_hold_p_whole_objects():
    import numpy as np

    from simsearch.evaluate.simulate import choose_displayed, fits_inside

    cut, whole = np.array([[5.0, 50.0]]), np.array([[50.0, 50.0]])  # patch 32 in 100 x 100 px
    names = [f"i{k}" for k in range(12)]
    objects = {name: {"cell": cut if k < 8 else whole} for k, name in enumerate(names)}
    sizes = dict.fromkeys(names, (100, 100))
    shown_more = 0
    for seed in range(30):
        order = [names[k] for k in np.random.default_rng(seed).permutation(len(names))]
        chosen = choose_displayed(objects, sizes, 2, 3, (32, 32), np.random.default_rng(seed))
        assert chosen == order[:len(chosen)] and len(chosen) >= 2
        wholes = [sum(fits_inside(tuple(c), (100, 100), (32, 32)) for c in objects[n]["cell"]) for n in chosen]
        if sum(wholes) >= 3:  # stops at the image that brings the third whole cell
            assert wholes[-1] == 1 and sum(wholes[:-1]) == 2 or len(chosen) == 2
            shown_more += len(chosen) > 3
        else:  # too few whole cells among the first half: stops there, 3 cells of any kind shown
            assert len(chosen) == 6
    assert shown_more > 0
    # each class needs its P whole objects (y's whole one is on b alone); images without the classes are never shown
    none = cut[:0]
    objects = {"a": {"x": whole, "y": cut}, "b": {"x": whole, "y": whole}, "c": {"x": none, "y": none},
               "d": {"x": whole, "y": cut}, "e": {"x": whole, "y": none}, "f": {"x": cut, "y": cut}}
    sizes = dict.fromkeys(objects, (100, 100))
    with_classes, lengths = ["a", "b", "d", "e", "f"], set()
    for seed in range(20):
        order = [with_classes[k] for k in np.random.default_rng(seed).permutation(5)]
        chosen = choose_displayed(objects, sizes, 1, 1, (32, 32), np.random.default_rng(seed))
        assert chosen == order[:len(chosen)]
        assert chosen[-1] == "b" if "b" in chosen else len(chosen) == 3
        lengths.add(len(chosen))
    assert {1, 2, 3} <= lengths


def test_an_evaluation_of_the_earlier_simulated_user_is_not_resumed(annotated, tmp_path):
    folder, truth = annotated
    (tmp_path / "eval").mkdir()
    earlier = {"trials": {"disc|P2|N0|similarity|r0": {"pr_auc": 0.5}}, "matching": "patch"}  # no "simulated_user": 1
    (tmp_path / "eval" / "results.json").write_text(json.dumps(earlier))
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"], patch_sizes={"disc": 32},
                    prototypes=[2], negatives=[0], strategies=["similarity"], backbone="efficientnet-lite0")
    with pytest.raises(ConfigError, match="curated by version 1 of the simulated user, this is version 2"):
        evaluate(plan, say=lambda line: None)
    assert json.loads((tmp_path / "eval" / "results.json").read_text()) == earlier
    assert not (tmp_path / "eval" / "base").exists()


def test_supervised_baseline_takes_fewer_patches_when_crops_are_large(annotated, tmp_path):
    folder, _ = annotated
    with Project.create(tmp_path / "base", folder, patch_size=32, backbone="efficientnet-lite0") as base:
        area = crop_pixels(base.geometry, TINY.context_cells)
        def cap(**limits):
            return SimulatedUser(base, [], [], [], label="disc", displayed=2, workdir=tmp_path, settings=TINY, **limits).supervised_cap
        assert cap(supervised_cap=200, supervised_pixels=10**12) == 200
        assert cap(supervised_cap=200, supervised_pixels=7 * area + 1) == 7
        assert cap(supervised_cap=200, supervised_pixels=1) == 1


@pytest.mark.parametrize("options", [{"min_cells": 4, "passes": 1, "border": True, "pooling": 0.25, "fill": "neutral"},
                                     {"min_cells": 6, "passes": 2, "border": False, "pooling": 0.15, "fill": "background"}])
def test_trial_projects_embed_as_their_base_does(annotated, tmp_path, options):
    # a trial's prototype vectors must come from the grid of the base's cached maps: a trial
    # project at the default 6 cells beside a base at 4 matched prototypes of one grid against
    # maps of another (planted particles: similarity PR-AUC 0.83 against 0.98); the fill beyond
    # the edge is the base's too
    folder, _ = annotated
    with Project.create(tmp_path / "base", folder, patch_size=32, backbone="efficientnet-lite0", **options) as base:
        user = SimulatedUser(base, [], [r.id for r in base.dataset], [], label="disc", displayed=2, workdir=tmp_path / "work",
                             settings=TINY)
        with user._new_project(Trial("disc", 2, 0, "similarity", 0)) as trial:
            assert trial.geometry == base.geometry
            assert trial.embedding_options == base.embedding_options == options
            assert trial.geometry.fill == options["fill"]
            assert trial.differing_settings(**{name: value for name, value in options.items() if name != "fill"}) == {}


@pytest.mark.slow
def test_unseen_style_dataset_16_bit_boxes_rare_class_and_unsafe_names(tmp_path):
    """16-bit single-channel images in a subfolder, boxes in the CSV, a class name with a
    slash and a space, and a rare class with fewer training objects than prototypes."""
    import numpy as np
    import tifffile

    from conftest import planted_image

    folder = tmp_path / "images"
    (folder / "plate 1").mkdir(parents=True)
    rows = ["image,class,x0,y0,x1,y1"]
    for i in range(8):
        image, discs, crosses = planted_image(i)
        tifffile.imwrite(folder / "plate 1" / f"f{i}.tif", image.astype(np.uint16) * 200)
        rows += [f"plate 1/f{i}.tif,disc/round cell,{x - 9},{y - 9},{x + 9},{y + 9}" for y, x in discs]
        rows += [f"plate 1/f{i}.tif,cross,{x - 10},{y - 10},{x + 10},{y + 10}" for y, x in crosses[: 1 if i in (0, 1, 7) else 0]]
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "train.txt").write_text("\n".join(f"plate 1/f{i}.tif" for i in range(6)) + "\n")
    (tmp_path / "test.txt").write_text("plate 1/f6.tif\nplate 1/f7.tif\n")
    plan = EvalPlan(images=str(folder), truth=str(tmp_path / "truth.csv"), out=tmp_path / "eval",
                    classes=["disc/round cell", "cross"], patch_sizes={"disc/round cell": 32, "cross": 32},
                    prototypes=[3], negatives=[1], strategies=["similarity", "pos"], repeats=1, displayed=2,
                    train_list=str(tmp_path / "train.txt"), test_list=str(tmp_path / "test.txt"),
                    backbone="efficientnet-lite0", training=TINY, device="cpu")
    lines = []
    trials = evaluate(plan, say=lines.append)["trials"]
    assert any("class 'cross' has 2 object(s) in the training images" in line for line in lines)
    assert trials["cross|P3|N0|similarity|r0"]["prototypes_used"] == 2
    assert trials["disc/round cell|P3|N1|pos|r0"]["true_objects"] == 6
    assert trials["disc/round cell|P3|N0|similarity|r0"]["pr_auc"] > 0.6
    names = sorted(p.name for p in (tmp_path / "eval").glob("pr_*.png"))
    assert len(names) == 2 and all("/" not in n for n in names)
    assert len(list((tmp_path / "eval" / "work").iterdir())) == 4

    (tmp_path / "test.txt").write_text("plate 1/f6.tif\n")  # no cross in the test images
    (tmp_path / "train.txt").write_text("\n".join(f"plate 1/f{i}.tif" for i in (0, 1, 2, 3, 4, 5, 7)) + "\n")
    with pytest.raises(ConfigError, match="class 'cross' has no object in the test images"):
        evaluate(replace(plan, out=tmp_path / "eval2"), say=lines.append)


def test_time_left_is_guessed_from_the_finished_trials_of_the_same_kind():
    from simsearch.evaluate.report import remaining_seconds
    from simsearch.evaluate.simulate import Trial

    done = {"trials": {"a": {"class": "WBC", "strategy": "pos", "seconds": 40.0},
                       "b": {"class": "WBC", "strategy": "pos", "seconds": 60.0},
                       "c": {"class": "RBC", "strategy": "pos", "seconds": 20.0},
                       "d": {"class": "RBC", "strategy": "similarity", "seconds": 2.0}}}
    left = [Trial("WBC", 5, 5, "pos", 1), Trial("Platelets", 5, 5, "pos", 0), Trial("WBC", 5, 0, "similarity", 0),
            Trial("WBC", 0, 0, "supervised", 0)]
    # WBC pos: 50 (its class and strategy); Platelets pos: 40 (the strategy); WBC similarity: 2; supervised: 30.5 (all)
    assert remaining_seconds(done, left) == pytest.approx(50 + 40 + 2 + 30.5)
    assert remaining_seconds({"trials": {}}, left) != remaining_seconds({"trials": {}}, left)  # nan: nothing to go by


def test_auto_patch_size_is_the_median_box_side(annotated, tmp_path):
    from simsearch.cli.model import _patch_sizes
    from simsearch.evaluate.report import auto_patch_sizes
    from simsearch.io.truth import Annotation

    boxes = [Annotation("a.tif", "cell", 0, 0, w, h) for w, h in ((30, 20), (41, 43), (50, 10))]
    centres = [Annotation("a.tif", "dot", 5, 5, 5, 5)]
    assert auto_patch_sizes(boxes + centres, ["cell"]) == {"cell": 40}  # sides 30, 43, 50: median 43 -> 40
    assert auto_patch_sizes([Annotation("a.tif", "tiny", 0, 0, 3, 3)], ["tiny"]) == {"tiny": 16}
    with pytest.raises(ConfigError, match="class 'dot' has no boxes"):
        auto_patch_sizes(boxes + centres, ["dot"])
    assert _patch_sizes("auto", ["a", "b"]) == {"a": "auto", "b": "auto"}
    assert _patch_sizes("a=auto,b=32", ["a", "b"]) == {"a": "auto", "b": 32}
    from simsearch.cli.main import build_parser
    argv = ["eval", "--images", "i", "--truth", "t", "--classes", "a", "--out", "o"]
    args = build_parser(argv).parse_args(argv)
    assert args.patch_size == "auto"  # the default: a new user's first evaluation needs no size
    folder, truth = annotated  # centres only: 'auto' is refused before any work, naming the class
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "e", classes=["disc"], patch_sizes={"disc": "auto"},
                    prototypes=[2], negatives=[0], strategies=["similarity"], backbone="efficientnet-lite0")
    with pytest.raises(ConfigError, match="class 'disc' has no boxes"):
        evaluate(plan)
    assert not (tmp_path / "e" / "base").exists()


@pytest.mark.slow
def test_review_rounds_and_retraining_are_measured(annotated, tmp_path):
    """--review-rounds: the simulated user answers the model's detections from the truth and
    the model is trained again; --retrain: several training seeds on the same curated data."""
    folder, truth = annotated
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"], patch_sizes={"disc": 32},
                    prototypes=[2], negatives=[1], strategies=["similarity", "pos+neg"], repeats=1, displayed=2,
                    test_fraction=0.25, backbone="efficientnet-lite0", training=FEW_POSITIVES, device="cpu",
                    review_rounds=2, review_size=3, retrain=2)
    lines = []
    trials = evaluate(plan, say=lines.append)["trials"]
    base = "disc|P2|N1|pos+neg|r0"
    assert set(trials) == {"disc|P2|N0|similarity|r0", base, base + "|seed1", base + "|review1", base + "|review1|seed1",
                           base + "|review2", base + "|review2|seed1"}
    assert [trials[k]["reviewed"] for k in (base, base + "|review1", base + "|review2")] == [0, 3, 6]
    with Project.open(tmp_path / "eval" / "work" / "disc_P2_N1_pos+neg_r0") as project:
        answered = [i for i in project.store.review_items("disc", current_only=False) if i.answer]
        assert len(answered) == 6 and {i.image_id for i in answered} <= set(project.undisplayed)
        # answered from the truth: accepted items lie on a disc, rejected ones do not
        names = {r.id: r.path.name for r in project.dataset}
        discs = {name: np.array(d) for name, (d, _) in _planted_truth(folder).items()}
        for item in answered:
            near = np.hypot(*(discs[names[item.image_id]] - (item.y, item.x)).T).min() <= matching_radius(32)
            assert near == (item.answer == "accepted")
        assert trials[base + "|review2"]["accepted"] == sum(i.answer == "accepted" for i in answered)
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| disc | pos+neg | 2 | 1 | 2 | 6 (" in report  # round 2: 6 items answered
    assert "Retraining on the same curated data" in report and "| disc | pos+neg | 2 | 1 | 0 | 2 |" in report
    assert any(line.startswith("[2/2] disc|P2|N1|pos+neg|r0: PR-AUC") and line.count(",") >= 6 for line in lines)
    again = evaluate(plan, say=lines.append)  # resumes: nothing recomputed
    assert again["trials"] == trials
    # trials of other seeds from before every seed held out the same examples are not resumed
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["hold_out"] == "by place"
    del saved["hold_out"]
    (tmp_path / "eval" / "results.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="held out a fifth chosen by the training seed"):
        evaluate(plan, say=lines.append)
    assert json.loads((tmp_path / "eval" / "results.json").read_text()) == saved


def _planted_truth(folder):
    from conftest import planted_image

    return {f"img{i}.tif": planted_image(i)[1:] for i in range(8)}


@pytest.mark.slow
def test_joint_trials_hold_every_class_in_one_project(annotated, tmp_path):
    folder, truth = annotated
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc", "cross"],
                    patch_sizes={"disc": 32, "cross": 32}, prototypes=[2], negatives=[1], strategies=["similarity", "pos"],
                    repeats=1, displayed=2, test_fraction=0.25, backbone="efficientnet-lite0", training=TINY, device="cpu",
                    joint=True)
    trials = evaluate(plan, say=lambda line: None)["trials"]
    for label in ("disc", "cross"):
        for strategy in ("similarity", "pos"):
            negatives = 0 if strategy == "similarity" else 1
            alone, joint = f"{label}|P2|N{negatives}|{strategy}|r0", f"{label}|P2|N{negatives}|{strategy}|r0|joint"
            assert alone in trials and joint in trials and trials[joint]["strategy"] == f"{strategy} (joint)"
    with Project.open(tmp_path / "eval" / "work" / "disc+cross_P2_N1_pos_r0", read_only=True) as project:
        assert [c.name for c in project.store.classes()] == ["disc", "cross"]
        assert all(len(project.store.prototypes(name)) == 2 for name in ("disc", "cross"))
        assert project.store.patches("disc", "negative") and project.store.patches("cross", "negative")
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| cross | pos (joint) | 2 | 1 |" in report
    with pytest.raises(ConfigError, match="--joint: a project has one patch size"):
        evaluate(replace(plan, patch_sizes={"disc": 32, "cross": 48}, out=tmp_path / "e2"))


def test_label_images_named_after_their_images_give_the_class_asked_for(tmp_path, capsys):
    """Instance-label images as ground truth, as fluorescence sets ship them: 16-bit TIFF
    images, PNG labels named with a mask suffix (`f3_masks.png` for `f3.tif`). Their objects
    are of the class given by --classes, and every image finds its labels."""
    import tifffile
    from PIL import Image

    from conftest import planted_image

    folder, labels = tmp_path / "images", tmp_path / "labels"
    folder.mkdir()
    labels.mkdir()
    for i in range(8):
        image, discs, _ = planted_image(i)
        tifffile.imwrite(folder / f"f{i}.tif", image.astype(np.uint16) * 200)
        yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
        label = np.zeros(image.shape, np.uint8)
        for number, (y, x) in enumerate(discs, start=1):
            label[(yy - y) ** 2 + (xx - x) ** 2 <= 81] = number
        Image.fromarray(label).save(labels / f"f{i}_masks.png")
    assert main(["-q", "eval", "--images", str(folder), "--truth", str(labels), "--classes", "nucleus", "--patch-size", "32",
                 "--prototypes", "3", "--negatives", "0", "--strategies", "similarity", "--repeats", "1", "--displayed", "2",
                 "--backbone", "efficientnet-lite0", "--device", "cpu", "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "not in the dataset" not in out
    trial = json.loads((tmp_path / "eval" / "results.json").read_text())["trials"]["nucleus|P3|N0|similarity|r0"]
    assert trial["true_objects"] == 6 and trial["pr_auc"] > 0.6  # 2 test images of 3 discs each


@pytest.mark.slow
def test_the_probe_on_every_annotation_is_a_baseline_on_the_supervised_data(annotated, tmp_path):
    """`supervised-probe`: the linear classifier alone on the frozen features, trained once per
    class on exactly the supervised baseline's positives and background (the probe at equal
    data, which the supervised training must beat); reported as 'all' prototypes. `supervised`
    trains as the strategies do, the probe beside it at the plan's share: that probe is the
    `supervised-probe` model to the bit. Results whose supervised trials were trained alone
    (written before the baseline followed the setting) are not resumed with a probe."""
    import torch

    from simsearch.training.saved import saved_model_config

    folder, truth = annotated
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"], patch_sizes={"disc": 32},
                    prototypes=[2], negatives=[1], strategies=["similarity", "supervised", "supervised-probe"],
                    repeats=2, displayed=2, test_fraction=0.25, backbone="efficientnet-lite0",
                    training=replace(TINY, probe_share=0.5), device="cpu")
    assert [(t.strategy, t.repeat) for t in plan.trials()] == [
        ("supervised", 0), ("supervised-probe", 0), ("similarity", 0), ("supervised", 1), ("supervised-probe", 1), ("similarity", 1)]
    trials = evaluate(replace(plan, strategies=["supervised", "supervised-probe"]), say=lambda line: None)["trials"]
    assert trials["disc|P0|N0|supervised-probe|r0"]["pr_auc"] > 0.6
    places, weights = {}, {}
    for strategy, repeat in itertools.product(("supervised", "supervised-probe"), (0, 1)):
        with Project.open(tmp_path / "eval" / "work" / f"disc_P0_N0_{strategy}_r{repeat}", read_only=True) as project:
            places[strategy, repeat] = (sorted((p.image_id, p.y, p.x) for p in project.store.patches("disc", "positive")),
                                        sorted((p.image_id, p.y, p.x) for p in project.store.clean_background()))
            config = saved_model_config(project)
            assert config["strategy"] == {"supervised": "pos", "supervised-probe": "probe"}[strategy]
            assert config["settings"]["seed"] == TINY.seed + repeat  # each repeat its own training seed
            assert config["probe_share"] == {"supervised": 0.5, "supervised-probe": 0.0}[strategy]
            weights[strategy, repeat] = torch.load(project.layout.model_weights, weights_only=True)
    for repeat in (0, 1):  # the probe beside the supervised model is the supervised-probe model
        for key, value in weights["supervised-probe", repeat]["classifier"].items():
            torch.testing.assert_close(weights["supervised", repeat]["probe_classifier"][key], value, rtol=0, atol=0)
    # one sample of annotations and background for both baselines and every repeat
    assert all(p == places["supervised", 0] for p in places.values()) and places["supervised", 0][0] and places["supervised", 0][1]
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| disc | supervised-probe | all | 0 |" in report
    assert "The trained strategies (supervised) average their probabilities with a linear probe's" in report
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["supervised_probe_share"] == 0.5
    del saved["supervised_probe_share"]  # written before the baseline followed the setting: trained alone
    (tmp_path / "eval" / "results.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="supervised trials were trained with the probe at 0, this run .* at 0.5"):
        evaluate(plan, say=lambda line: None)


@pytest.mark.parametrize("layout", ["yolo", "one mask per object"])
def test_eval_reads_yolo_labels_and_one_mask_per_object_folders(tmp_path, capsys, layout):
    """Ground truth as public sets ship it, end to end: YOLO labels (fractions of each image's
    size, read with the dataset's sizes) with their class names, or the Data Science Bowl
    layout (`<id>/images/<id>.png`, `<id>/masks/*.png`, the images found by a glob)."""
    from PIL import Image

    from conftest import planted_image

    yy, xx = np.mgrid[:160, :200]
    for i in range(8):
        image, discs, _ = planted_image(i)
        if layout == "yolo":
            (tmp_path / "images").mkdir(exist_ok=True)
            (tmp_path / "labels").mkdir(exist_ok=True)
            Image.fromarray(image).save(tmp_path / "images" / f"f{i}.png")
            (tmp_path / "labels" / f"f{i}.txt").write_text(
                "".join(f"0 {x / image.shape[1]} {y / image.shape[0]} {18 / image.shape[1]} {18 / image.shape[0]}\n" for y, x in discs))
            (tmp_path / "classes.txt").write_text("nucleus\n")
        else:
            sample = tmp_path / "dsb" / f"s{i}"
            (sample / "images").mkdir(parents=True)
            (sample / "masks").mkdir()
            Image.fromarray(image).save(sample / "images" / f"s{i}.png")
            for number, (y, x) in enumerate(discs):
                Image.fromarray(((yy - y) ** 2 + (xx - x) ** 2 <= 81).astype(np.uint8) * 255).save(sample / "masks" / f"m{number}.png")
    images, truth = ((str(tmp_path / "images"), str(tmp_path / "labels")) if layout == "yolo"
                     else (str(tmp_path / "dsb" / "*" / "images" / "*.png"), str(tmp_path / "dsb")))
    assert main(["-q", "eval", "--images", images, "--truth", truth, "--classes", "nucleus", "--patch-size", "32",
                 "--prototypes", "3", "--negatives", "0", "--strategies", "similarity", "--repeats", "1", "--displayed", "2",
                 "--backbone", "efficientnet-lite0", "--device", "cpu", "--out", str(tmp_path / "eval")]) == 0
    assert "not in the dataset" not in capsys.readouterr().out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    side = 18 if layout == "yolo" else 19                            # a mask of radius 9 spans 19 px
    assert results["classes"]["nucleus"]["box_sides"][1] == pytest.approx(side)
    trial = results["trials"]["nucleus|P3|N0|similarity|r0"]
    assert trial["true_objects"] == 6 and trial["pr_auc"] > 0.6  # 2 test images of 3 discs each


def test_eval_uses_the_channels_asked_for_and_keeps_them_on_resume(tmp_path, capsys):
    """Two-channel images whose objects are in channel 1 only: --channels 1 embeds that channel
    (recorded in the plan), and resuming the evaluation with other channels is refused."""
    import tifffile

    from conftest import planted_image

    folder = tmp_path / "images"
    folder.mkdir()
    rows = ["image,class,x,y"]
    rng = np.random.default_rng(0)
    for i in range(8):
        image, discs, _ = planted_image(i)
        tifffile.imwrite(folder / f"f{i}.tif", np.stack([rng.integers(0, 255, image.shape).astype(np.uint8), image]))
        rows += [f"f{i}.tif,disc,{x},{y}" for y, x in discs]
    (tmp_path / "truth.csv").write_text("\n".join(rows) + "\n")
    command = ["-q", "eval", "--images", str(folder), "--truth", str(tmp_path / "truth.csv"), "--classes", "disc",
               "--patch-size", "32", "--prototypes", "3", "--negatives", "0", "--strategies", "similarity", "--repeats", "1",
               "--displayed", "2", "--backbone", "efficientnet-lite0", "--device", "cpu", "--out", str(tmp_path / "eval")]
    assert main(command + ["--channels", "1"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["plan"]["channels"] == [1] and results["trials"]["disc|P3|N0|similarity|r0"]["pr_auc"] > 0.6
    with Project.open(tmp_path / "eval" / "base" / "disc-32", read_only=True) as base:
        assert base.channels == (1,)
    capsys.readouterr()
    assert main(command + ["--channels", "0"]) == 2
    assert "--channels: the embeddings in" in capsys.readouterr().err


def test_a_resumed_evaluation_refuses_settings_that_change_its_trials(annotated, tmp_path):
    """A rerun in the same --out reuses the finished trials, so every setting that changes a
    trial's result must be the one they were run with: another patch size (which embeds anew
    in its own base folder) had reused the first run's detections under the new size."""
    folder, truth = annotated
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"],
                    patch_sizes={"disc": 32}, prototypes=[2], negatives=[0], strategies=["similarity"], repeats=1,
                    displayed=2, backbone="efficientnet-lite0", device="cpu")
    evaluate(plan, say=lambda line: None)
    saved = (tmp_path / "eval" / "results.json").read_text()
    for change, option in (({"patch_sizes": {"disc": 40}}, "--patch-size 32 for class 'disc', this run asks for 40"),
                           ({"scales": "1,2"}, "--scales [1.0] for class 'disc', this run asks for [1.0, 2.0]"),
                           ({"pooling": 0.2}, "--pooling"), ({"flat_field": "divide"}, "--flat-field"),
                           ({"displayed": 3}, "--displayed"),
                           ({"border": False}, "--no-border"), ({"seed": 1}, "--seed"),
                           ({"test_fraction": 0.5}, "tested on other images (2 images")):
        with pytest.raises(ConfigError, match=re.escape(option)):
            evaluate(replace(plan, **change), say=lambda line: None)
        assert (tmp_path / "eval" / "results.json").read_text() == saved
    assert not (tmp_path / "eval" / "base" / "disc-40").exists()  # refused before any work
    # an edited truth file (a box moved; the classes and images unchanged) changes what was curated and scored
    rows = truth.read_text().splitlines()
    row = next(i for i, line in enumerate(rows) if ",disc," in line)
    edited = tmp_path / "edited.csv"
    edited.write_text("\n".join(rows[:row] + [rows[row].rsplit(",", 1)[0] + ",3"] + rows[row + 1:]) + "\n")
    with pytest.raises(ConfigError, match=r"other ground truth \(\d+ boxes, digest \w+ for class 'disc'; this run"):
        evaluate(replace(plan, truth=str(edited)), say=lambda line: None)
    assert (tmp_path / "eval" / "results.json").read_text() == saved
    shuffled = tmp_path / "shuffled.csv"  # the same boxes in another order resume
    shuffled.write_text("\n".join(rows[:1] + rows[:0:-1]) + "\n")
    assert evaluate(replace(plan, truth=str(shuffled)), say=lambda line: None)["trials"] == json.loads(saved)["trials"]
    assert evaluate(plan, say=lambda line: None)["trials"] == json.loads(saved)["trials"]  # the same settings resume


def test_a_truth_box_wholly_outside_its_image_is_refused_naming_the_file_line_and_image(annotated, tmp_path):
    """Such a box is an object no detection can find: it had capped recall silently. A box
    partly outside (an object cut by the edge) is kept."""
    folder, truth = annotated
    rows = ["image,class,x0,y0,x1,y1"] + [f"{name},disc,{x - 9},{y - 9},{x + 9},{y + 9}"
                                          for name, (discs, _) in _planted_truth(folder).items() for y, x in discs]
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["disc"],
                    patch_sizes={"disc": 32}, prototypes=[2], negatives=[0], strategies=["similarity"],
                    backbone="efficientnet-lite0", device="cpu")
    for outside in ("500,500,520,520", "-30,10,-2,40"):
        truth.write_text("\n".join(rows + ["img3.tif,disc,200,170,230,190", f"img4.tif,disc,{outside}"]) + "\n")
        message = (f"{truth} line {len(rows) + 2}: box ({outside.replace(',', ', ')}) of class 'disc' "
                   "lies wholly outside image img4.tif (208 x 176 px)")
        with pytest.raises(ConfigError, match=re.escape(message)):
            evaluate(plan, say=lambda line: None)
        assert not (tmp_path / "eval" / "base").exists()


def test_the_split_keeps_every_frame_of_a_file_on_one_side(tmp_path):
    """Frames of one TIFF (a z-stack, or channels read as frames) are near copies: shuffled one
    by one they landed on both sides, and a list naming the file took only one of them."""
    import tifffile

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        frames = rng.integers(0, 255, (6, 32, 32)).astype(np.uint8)
        tifffile.imwrite(folder / f"stack{i}.tif", frames, photometric="minisblack")
    dataset = Dataset.open(folder)
    assert len(dataset) == 48
    file_of = {record.id: record.relpath for record in dataset}
    plan = EvalPlan(images=str(folder), truth="t.csv", out=tmp_path / "eval", classes=["disc"],
                    patch_sizes={"disc": 16}, prototypes=[2], negatives=[0], strategies=["similarity"])
    for seed in range(5):
        train_ids, test_ids = split(dataset, replace(plan, seed=seed))
        assert len(test_ids) == 12 and len(train_ids) == 36  # 2 of the 8 files, each with its 6 frames
        assert not {file_of[i] for i in train_ids} & {file_of[i] for i in test_ids}
    (tmp_path / "train.txt").write_text("stack0.tif\nstack1\nstack2.tif\n")
    (tmp_path / "test.txt").write_text("stack7.tif\n")
    train_ids, test_ids = split(dataset, replace(plan, train_list=str(tmp_path / "train.txt"),
                                                 test_list=str(tmp_path / "test.txt")))
    assert [file_of[i] for i in train_ids] == ["stack0.tif"] * 6 + ["stack1.tif"] * 6 + ["stack2.tif"] * 6
    assert sorted(test_ids) == sorted(i for i, name in file_of.items() if name == "stack7.tif")


@pytest.mark.parametrize("arguments, message", [
    (["--patch-size", "0"], "--patch-size disc: 0x0 px is too small (at least 4x4)"),
    (["--patch-size", "disc=-8"], "--patch-size disc: -8x-8 px is too small"),
    (["--patch-size", "32", "--classes", ""], "--classes: no class given")])
def test_eval_refuses_a_patch_too_small_and_no_class_before_any_work(annotated, tmp_path, capsys, arguments, message):
    folder, truth = annotated
    command = ["-q", "eval", "--images", str(folder), "--truth", str(truth), "--classes", "disc", "--strategies",
               "similarity", "--backbone", "efficientnet-lite0", "--out", str(tmp_path / "eval")]
    assert main(command + arguments) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err and "note:" not in captured.out
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--repeats", "0"], "--repeats: at least 1, got 0"), (["--prototypes", "5,0"], "--prototypes: at least 1, got 0"),
    (["--prototypes", ","], "--prototypes: no count given"), (["--negatives", "-1"], "--negatives: at least 0, got -1"),
    (["--displayed", "0"], "--displayed: at least 1, got 0"), (["--seed", "-1"], "--seed: at least 0, got -1"),
    (["--review-rounds", "-1"], "--review-rounds: at least 0"), (["--review-size", "0"], "--review-size: at least 1"),
    (["--retrain", "0"], "--retrain: at least 1"), (["--test-fraction", "1"], "--test-fraction: between 0 and 1")])
def test_eval_refuses_counts_out_of_range_before_any_work(annotated, tmp_path, capsys, arguments, message):
    """--repeats 0 wrote an empty report, --prototypes 0 a PR-AUC 0 row, --displayed 0 showed one image."""
    folder, truth = annotated
    command = ["-q", "eval", "--images", str(folder), "--truth", str(truth), "--classes", "disc", "--patch-size", "32",
               "--strategies", "similarity", "--backbone", "efficientnet-lite0", "--out", str(tmp_path / "eval")]
    assert main(command + arguments) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("saved, message", [
    ('{"trials": {"disc|P2|N0|similarity|r0": {"pr_a', "results.json: not an evaluation's results, or cut short ("),
    ("[]", "results.json: not an evaluation's results, or cut short (no trials)"),
    (None, "eval: a file, not a folder")])
def test_eval_refuses_results_it_cannot_resume_and_leaves_them(annotated, tmp_path, capsys, saved, message):
    """A results.json cut short was a JSONDecodeError traceback, an --out naming a file a FileExistsError."""
    folder, truth = annotated
    out = tmp_path / "eval"
    if saved is None:
        out.write_text("my notes")
    else:
        out.mkdir()
        (out / "results.json").write_text(saved)
    command = ["-q", "eval", "--images", str(folder), "--truth", str(truth), "--classes", "disc", "--patch-size", "32",
               "--strategies", "similarity", "--backbone", "efficientnet-lite0", "--out", str(out)]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert (out.read_text() == "my notes" if saved is None
            else [p.name for p in out.iterdir()] == ["results.json"] and (out / "results.json").read_text() == saved)


def test_eval_names_the_image_files_it_skips_and_why(annotated, tmp_path):
    """A truncated TIFF, a 0-byte file and a text file among the images were only reported as
    annotations 'not in the dataset'."""
    folder, truth = annotated
    data = (folder / "img0.tif").read_bytes()
    (folder / "cut.tif").write_bytes(data[: len(data) // 3])
    (folder / "empty.tif").touch()
    (folder / "notes.tif").write_text("not an image")
    truth.write_text(truth.read_text() + "cut.tif,disc,50,50\nempty,disc,50,50\ngone.tif,disc,50,50\n")
    plan = EvalPlan(images=str(folder), truth=str(truth), out=tmp_path / "eval", classes=["blob"],
                    patch_sizes={"blob": 32}, prototypes=[2], negatives=[0], strategies=["similarity"])
    lines = []
    with pytest.raises(ConfigError, match="have no annotation"):  # stops after the checks of the inputs
        evaluate(plan, say=lines.append)
    assert lines[0] == "warning: skipped 3 file(s):" and lines[2] == f"  {folder / 'empty.tif'}: zero-size file"
    assert lines[1].startswith(f"  {folder / 'cut.tif'}: truncated or corrupt TIFF")
    assert lines[3].startswith(f"  {folder / 'notes.tif'}: ")
    assert lines[4:6] == [
        "warning: the annotations of 2 skipped file(s) (above) are left out, e.g. ['cut.tif', 'empty']",
        "warning: annotations for 1 image(s) not in the dataset, e.g. ['gone.tif']"]


def test_eval_refuses_a_patch_larger_than_the_images_before_any_work(annotated, tmp_path, capsys):
    """--patch-size 512 on 176 x 208 px images had embedded, then said a prototype's box lay outside the image."""
    folder, truth = annotated
    command = ["-q", "eval", "--images", str(folder), "--truth", str(truth), "--classes", "disc", "--patch-size", "512",
               "--strategies", "similarity", "--backbone", "efficientnet-lite0", "--out", str(tmp_path / "eval")]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert ("--patch-size disc: 512 px is larger than 8 of the 8 image(s): image img0.tif (208x176 px) is smaller "
            "than one patch (512x512 px)") in captured.err and "Traceback" not in captured.err
    assert "hint: give a patch size up to 176 px (the smallest image side)" in captured.err
    assert not (tmp_path / "eval").exists()
