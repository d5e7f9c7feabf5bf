"""The check of a trained model on curated examples held out of its training."""
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import mannwhitneyu

from conftest import TINY
from simsearch.curation.session import prototype_record
from simsearch.project.store import PatchRecord
from simsearch.training.check import ClassCheck, check_held_out, fit_probe, roc_auc
from simsearch.training.crops import patch_crops
from simsearch.training.loop import hold_out, train, training_records
from simsearch.training.model import PatchModel
from simsearch.training.records import examples_to_hold_one_out, on_an_example


def test_roc_auc_equals_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    for size in (1, 3, 17):
        positives, others = rng.integers(0, 5, size).astype(float), rng.integers(0, 5, 2 * size + 1).astype(float)  # ties
        u = mannwhitneyu(positives, others).statistic
        assert roc_auc(positives, others) == pytest.approx(u / (len(positives) * len(others)))
    assert roc_auc([0.9, 0.8], [0.1]) == 1.0 and roc_auc([0.1], [0.9, 0.8]) == 0.0
    assert np.isnan(roc_auc([], [0.3])) and np.isnan(roc_auc([0.3], []))


def test_fit_probe_separates_separable_classes_whatever_their_sizes():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 3
    labels = torch.tensor([0] * 40 + [1] * 5 + [2] * 2)
    vectors = torch.tensor(centres[labels.numpy()] + rng.normal(size=(len(labels), 16)), dtype=torch.float32)
    probe = fit_probe(vectors, labels, 3)
    assert (probe(vectors).argmax(1) == labels).all()  # the two-member class too: classes weigh equally
    again = fit_probe(vectors, labels, 3)
    assert torch.equal(probe.weight, again.weight)  # seeded


def test_hold_out_is_stable_per_label_and_keeps_order():
    pairs = [(PatchRecord(f"im{i % 3}", float(i), 2.0 * i), i % 2) for i in range(23)]  # 12 of label 0, 11 of label 1
    kept, held = hold_out(pairs, 0.2)
    assert sorted(kept + held, key=pairs.index) == pairs and kept == [p for p in pairs if p not in held]
    assert [sum(label == k for _, label in held) for k in (0, 1)] == [2, 2]  # floor(0.2 * 12), floor(0.2 * 11)
    assert hold_out(list(reversed(pairs)), 0.2)[1] == list(reversed(held))  # chosen by place, not by order
    assert {p.y for p, _ in held} == {1.0, 4.0, 7.0, 18.0}  # the places seed 0 held out before 2026-12-05
    more = pairs + [(PatchRecord("im9", 99.0, 1.0), 1)]
    assert len(set(held) - set(hold_out(more, 0.2)[1])) <= 1  # one more example moves at most one
    assert hold_out(pairs, 0.0) == (pairs, [])
    always = [p.y in (1.0, 4.0) for p, _ in pairs]  # two of those held out always train: others are held out
    kept, held = hold_out(pairs, 0.2, always_train=always)
    assert not {1.0, 4.0} & {p.y for p, _ in held} and [sum(label == k for _, label in held) for k in (0, 1)] == [2, 2]


def test_class_check_verdicts():
    good = ClassCheck("disc", 3, 8, model=0.95, similarity=0.9, probe=0.7)
    bad = ClassCheck("cross", 3, 8, model=0.6, similarity=0.7, probe=0.9)
    unchecked = ClassCheck("ring", 0, 8, model=float("nan"), similarity=float("nan"), probe=float("nan"))
    assert good.helps and "WARNING" not in good.verdict() and "model 0.95, similarity 0.90, probe 0.70 (3 positive(s), 8 other(s))" in good.verdict()
    assert not bad.helps and "WARNING: training does not beat probe" in bad.verdict()
    assert bad.verdict().endswith("or try `--strategy probe`")  # the probe did better: try it
    # a probe-trained model is not told to try the probe; below similarity search, the probe is no way out either
    assert replace(bad, strategy="probe").verdict().endswith("or train the whole pipeline (`--strategy pos+neg+selflearn`)")
    below_search = ClassCheck("cross", 3, 8, model=0.6, similarity=0.9, probe=0.7, strategy="pos+neg+selflearn")
    assert below_search.verdict().endswith("WARNING: training does not beat similarity search on your held-out examples; "
                                           "add prototypes and negatives where the model errs")
    assert unchecked.helps and not unchecked.checked and "not checked" in unchecked.verdict()
    alone = ClassCheck("ring", 2, 0, model=float("nan"), similarity=float("nan"), probe=float("nan"))
    assert "confirm more background" in alone.verdict()
    assert ClassCheck.from_dict(bad.to_dict()) == bad
    unsearched = ClassCheck("ring", 3, 8, model=0.8, similarity=float("nan"), probe=0.7)  # no prototype left
    assert unsearched.best_other == ("probe", 0.7) and unsearched.helps
    alike = ClassCheck("wbc", 2, 9, model=1.0, similarity=1.0, probe=0.996)  # 1.00 all three, as shown
    assert alike.alike and alike.helps and "cannot tell whether training helped" in alike.verdict()
    assert not good.alike and not bad.alike and not unchecked.alike
    assert "cannot tell" not in good.verdict() and "cannot tell" not in bad.verdict()


def test_training_holds_out_curated_examples_and_checks_the_model(curated):
    project, truth = curated
    settings = replace(TINY, holdout=0.25)
    records = training_records(project, settings)
    prototypes = {(p.image_id, *p.centre) for name in ("disc", "cross") for p in project.store.prototypes(name)}
    held = {(p.image_id, p.y, p.x) for p, _ in records.held_out}
    assert records.held_out and not held & prototypes  # prototypes always train
    # a positive on a prototype's own object (its suggestion) trains but is never held out: training learns its
    # prototype; no background view lands on a held-out positive
    patch = project.geometry.patch_size
    protos = [prototype_record(project, p) for name in ("disc", "cross") for p in project.store.prototypes(name)]
    assert sum(on_an_example([p for p, label in records.clean if label < 2], protos, patch)) > len(protos)
    assert not on_an_example([p for p, label in records.held_out if label < 2], protos, patch).any()
    user_background = {(p.image_id, p.y, p.x) for p in project.store.clean_background()}
    views = [p for p, label in records.clean if label == 2 and (p.image_id, p.y, p.x) not in user_background]
    assert views and not on_an_example(views, [p for p, label in records.held_out if label < 2], patch).any()
    assert not held & {(p.image_id, p.y, p.x) for p, _ in records.clean}
    apart = replace(settings, off_centre_views=False)  # views of the examples would follow them out
    everything = training_records(project, replace(apart, holdout=0.0))
    assert not everything.held_out and len(everything.clean) == len(training_records(project, apart).clean) + len(records.held_out)
    # another training seed holds out the same examples: retraining with it measures the training alone
    reseeded = training_records(project, replace(settings, seed=7))
    assert (reseeded.held_out, reseeded.held_out_negatives) == (records.held_out, records.held_out_negatives)
    model = train(project, settings, device="cpu")
    assert [c.name for c in model.check] == ["disc", "cross"]
    for check in model.check:
        label = ["disc", "cross"].index(check.name)
        assert check.positives == sum(lab == label for _, lab in records.held_out) >= 1
        assert check.others == len(records.held_out) - check.positives + sum(lab == label for _, lab in records.held_out_negatives)
        assert all(0.0 <= value <= 1.0 for value in (check.model, check.similarity, check.probe))
        assert check.model >= 0.9  # planted discs and crosses: the trained model ranks them right
        assert check.strategy == settings.strategy  # its advice never names the strategy trained
    saved = yaml.safe_load(project.layout.model_config.read_text())["check"]
    assert [ClassCheck.from_dict(item) for item in saved] == list(model.check)
    assert train(project, settings, device="cpu").check == model.check  # reused with its check


def test_a_class_with_too_few_examples_to_hold_one_out_is_told_how_many_more(curated):
    """Each class has 8 confirmed examples off its prototypes' own objects; a holdout of a tenth
    needs 10 before it holds one out: the check says 2 more, the background (10) has one held out."""
    project, _ = curated
    settings = replace(TINY, holdout=0.1)
    assert examples_to_hold_one_out(0.1) == 10 and examples_to_hold_one_out(0.2) == 5
    records = training_records(project, settings)
    assert records.holdable == (8, 8) and [label for _, label in records.held_out] == [2]
    model = train(project, settings, device="cpu")
    assert [(c.name, c.positives, c.to_check, c.checked) for c in model.check] == [("disc", 0, 2, False), ("cross", 0, 2, False)]
    assert model.check[0].verdict() == ("disc: not checked (no positive held out); confirm 2 more example(s) besides the "
                                        "prototypes' own objects to have training checked")
    saved = yaml.safe_load(project.layout.model_config.read_text())["check"]
    assert [ClassCheck.from_dict(item) for item in saved] == list(model.check)
    assert train(project, replace(settings, holdout=0.25), device="cpu").check[0].to_check == 0  # checked: none needed
    old = {key: value for key, value in saved[0].items() if key != "to_check"}  # a model saved before it
    assert ClassCheck.from_dict(old).to_check == 0 and "curate more examples" in ClassCheck.from_dict(old).verdict()


def test_a_model_that_ranks_backwards_is_reported(curated):
    """A classifier turned against the classes: its held-out ROC-AUC falls below similarity
    search's and the verdict warns."""
    project, _ = curated
    settings = replace(TINY, holdout=0.25)
    records = training_records(project, settings)
    names = list(records.names)
    model = PatchModel(project.backbone, project.geometry, len(names), context_cells=settings.context_cells)
    train(project, settings, device="cpu")
    trained = torch.load(project.layout.model_weights, weights_only=True)
    model.network.load_state_dict(trained["network"])
    model.classifier.load_state_dict({key: -value for key, value in trained["classifier"].items()})
    train_crops = patch_crops(project, [p for p, _ in records.clean], settings.context_cells)
    train_labels = torch.tensor([label for _, label in records.clean])
    checks = check_held_out(project, model, names, train_crops, train_labels, records.held_out, records.held_out_negatives,
                            context_cells=settings.context_cells, seed=0, device=torch.device("cpu"))
    assert any(not check.helps and "WARNING" in check.verdict() for check in checks)
    # a class whose prototype was removed keeps its positives, which train it: similarity search has nothing to
    # rank by, and the check says so instead of failing after the whole run
    from simsearch import Curation
    Curation(project).remove_prototype(project.store.prototypes("cross")[0].id)
    checks = check_held_out(project, model, names, train_crops, train_labels, records.held_out, records.held_out_negatives,
                            context_cells=settings.context_cells, seed=0, device=torch.device("cpu"))
    cross = checks[names.index("cross")]
    assert np.isnan(cross.similarity) and 0 <= cross.model <= 1 and 0 <= cross.probe <= 1
    assert "similarity - (no prototype)" in cross.verdict() and cross.best_other == ("probe", cross.probe)
