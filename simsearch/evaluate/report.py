"""`simsearch eval`: the simulated-user evaluation over classes, P, N, strategies and repeats,
written incrementally (an interrupted evaluation resumes) to results.json, a Markdown table
(mean +- std PR-AUC) and PR-curve plots."""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from simsearch.util.errors import ConfigError
from simsearch.features.geometry import (MIN_CELLS, POOLING, PatchGeometry, check_patch_size, object_side,
                                         parse_scales, pooling_for_objects, scales_for_sizes)
from simsearch.util.files import atomic_path, file_name, write_text_atomic
from simsearch.io.images import Dataset
from simsearch.io.truth import annotations_by_image, outside_their_images, read_truth, unmatched_images
from simsearch.project.layout import ProjectLayout
from simsearch.project.project import Project, image_smaller_than_patch
from simsearch.training.check import ClassCheck
from simsearch.training.loop import LATER_SETTINGS, TRAINING_STRATEGIES, TrainSettings
from simsearch.evaluate.metrics import MATCHING_RULES, Matching
from simsearch.evaluate.resume import check_resumable, read_results
from simsearch.evaluate.simulate import BASELINES, STRATEGIES, SimulatedUser, Trial, result_key


@dataclass(frozen=True)
class EvalPlan:
    images: str
    truth: str
    out: Path
    classes: list[str]
    patch_sizes: dict[str, int | str]  # px, or 'auto' (the class's median box side)
    prototypes: list[int]
    negatives: list[int]
    strategies: list[str]
    repeats: int = 3
    seed: int = 0
    displayed: int = 6
    train_list: str | None = None
    test_list: str | None = None
    test_fraction: float = 0.25
    backbone: str = "auto"
    weights: str | None = None  # the backbone's weights file (e.g. the paper's ResNet-18 ImageNet weights)
    training: TrainSettings = TrainSettings.cpu()
    device: str = "auto"
    review_rounds: int = 0  # review rounds after training (beyond the paper)
    review_size: int = 20  # items answered per round
    review_images: int = 100  # undisplayed training images the review items come from, at most
    retrain: int = 1  # trainings per curated data set, with training seeds 0..retrain-1
    joint: bool = False  # also trials whose project holds every class at once (one patch size)
    scales: str = ""  # the similarity search's pyramid: '' one level, '0.5,1,2', or 'auto' per class from its boxes
    matching: str = "patch"  # scoring: 'patch' (the paper's 0.3 x patch radius) or 'object' (grows with the object)
    normalization: str = "auto"  # 'auto', 'dataset' (the paper's one range) or 'image' (each image's own)
    flat_field: str = "none"  # 'none', 'divide' or 'subtract' the dataset's fixed background (`FlatField`)
    border: bool = True  # the patch grid reaches the image's edge, the image's median colour beyond it (`PatchGeometry`)
    channels: list[int] | None = None  # the image channels to use (None: up to the first 3, as a project's default)
    min_cells: int = MIN_CELLS  # a patch spans at least this many feature cells (`PatchGeometry.for_patch`)
    pooling: float | str = "auto"  # the Gaussian pooling's sigma, a fraction of the patch side, or 'auto': per class from its boxes (`pooling_for_objects`)

    @property
    def joint_label(self) -> str:
        return "+".join(self.classes)

    def measurements(self, trial: Trial) -> list[str]:
        """The results.json keys one trial writes: per class scored (every class for a joint
        trial), one per review round and training seed of a trained strategy."""
        labels = self.classes if trial.joint else [trial.label]
        if trial.strategy == "similarity" or trial.strategy in BASELINES:
            return [result_key(trial, label) for label in labels]
        return [result_key(trial, label, r, s) for label in labels for r in range(self.review_rounds + 1) for s in range(self.retrain)]

    def trials(self) -> list[Trial]:
        """Every (class, repeat, P, N, strategy); N only where the curated suggestions are used;
        a baseline (`BASELINES`) once per class and repeat: the same sample of annotations each
        time, trained with the repeat's seed, so its spread is the training's own."""
        trials = []
        for label, repeat in itertools.product(self.classes, range(self.repeats)):
            trials += [Trial(label, 0, 0, strategy, repeat) for strategy in self.strategies if strategy in BASELINES]
            for prototypes, strategy in itertools.product(self.prototypes, self.strategies):
                if strategy in BASELINES:
                    continue
                for negatives in [0] if strategy == "similarity" else self.negatives:
                    trials.append(Trial(label, prototypes, negatives, strategy, repeat))
        if self.joint:  # the baselines stay per class
            for repeat, prototypes, strategy in itertools.product(range(self.repeats), self.prototypes, self.strategies):
                for negatives in [] if strategy in BASELINES else [0] if strategy == "similarity" else self.negatives:
                    trials.append(Trial(self.joint_label, prototypes, negatives, strategy, repeat, joint=True))
        return trials


def _names(path: str) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]


def split(dataset: Dataset, plan: EvalPlan) -> tuple[list[str], list[str]]:
    """(train ids, test ids) by file: from the lists (names, relative paths or stems of files)
    or a seeded fraction of the files. Every frame of a multi-frame file (a z-stack, or
    channels read as frames) goes with its file, so that no test image has a sibling in
    training."""
    frames: dict[str, list[str]] = {}  # relative path -> its frames' ids
    for record in dataset:
        frames.setdefault(record.relpath, []).append(record.id)
    if plan.train_list or plan.test_list:
        if not (plan.train_list and plan.test_list):
            raise ConfigError("give both --train-list and --test-list, or --test-fraction")
        lookup = {}
        for record in dataset:
            for key in (record.relpath, record.path.name, record.path.stem):
                lookup[key] = record.relpath
        def ids(path):
            names = _names(path)
            missing = [n for n in names if n not in lookup]
            if missing:
                raise ConfigError(f"{path}: {len(missing)} name(s) match no image, e.g. {missing[:3]}")
            return [image_id for n in names for image_id in frames[lookup[n]]]
        return ids(plan.train_list), ids(plan.test_list)
    files = list(frames)
    order = np.random.default_rng(plan.seed).permutation(len(files))
    count = max(1, round(len(files) * plan.test_fraction))
    ids = [frames[files[i]] for i in order]
    return [i for file in ids[count:] for i in file], [i for file in ids[:count] for i in file]


def check_counts(plan: EvalPlan) -> None:
    """A ConfigError naming the option and its range unless every count of the plan is in it:
    --repeats, --prototypes (each), --displayed, --review-size, --review-images and --retrain at
    least 1 (0 displayed images showed one, as 1 does; 0 prototypes scored a search for
    nothing), --negatives (each), --review-rounds and --seed at least 0, and --test-fraction
    (without --train-list/--test-list) between 0 and 1.

    Examples
    --------
    >>> plan = EvalPlan(images="x", truth="y", out=Path("eval"), classes=["a"], patch_sizes={"a": 32},
    ...                 prototypes=[5, 0], negatives=[5], strategies=["similarity"])
    >>> check_counts(plan)
    Traceback (most recent call last):
    ...
    simsearch.util.errors.ConfigError: --prototypes: at least 1, got 0
    """
    for name, values, least in (("--repeats", [plan.repeats], 1), ("--prototypes", plan.prototypes, 1),
                                ("--negatives", plan.negatives, 0), ("--displayed", [plan.displayed], 1),
                                ("--seed", [plan.seed], 0), ("--review-rounds", [plan.review_rounds], 0),
                                ("--review-size", [plan.review_size], 1), ("--review-images", [plan.review_images], 1),
                                ("--retrain", [plan.retrain], 1)):
        if not values:
            raise ConfigError(f"{name}: no count given", hint=f"give one or more, at least {least}, e.g. {name} 5")
        for value in values:
            if value < least:
                raise ConfigError(f"{name}: at least {least}, got {value}")
    if not (plan.train_list or plan.test_list) and not 0 < plan.test_fraction < 1:
        raise ConfigError(f"--test-fraction: between 0 and 1 (both excluded), got {plan.test_fraction:g}")


def check_images_hold_a_patch(plan: EvalPlan, dataset: Dataset) -> None:
    """A ConfigError naming the class, its patch size and an image when an image is smaller than
    one patch of the class (`Project.smaller_than_patch`): it would hold no patch vector, and a
    prototype on it no patch (the error named a box outside the image after the embedding).

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> folder = Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((128, 96), np.uint8)).save(folder / "em_2.png")
    >>> plan = EvalPlan(images=str(folder), truth="y", out=folder / "eval", classes=["cell"],
    ...                 patch_sizes={"cell": 512}, prototypes=[5], negatives=[5], strategies=["similarity"])
    >>> check_images_hold_a_patch(plan, Dataset.open(folder))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simsearch.util.errors.ConfigError: --patch-size cell: 512 px is larger than 1 of the 1 image(s): image em_2.png ...
    """
    for label in plan.classes:
        size = plan.patch_sizes[label]
        geometry = PatchGeometry.for_patch(size, min_cells=plan.min_cells)
        small = [reason for record in dataset if (reason := image_smaller_than_patch(record, geometry))]
        if small:
            raise ConfigError(f"--patch-size {label}: {size} px is larger than {len(small)} of the {len(dataset)} "
                              f"image(s): {small[0]}",
                              hint=f"give a patch size up to {min(min(r.height, r.width) for r in dataset)} px "
                                   f"(the smallest image side), or leave the smaller images out of --images")


def evaluate(plan: EvalPlan, *, say: Callable[[str], None] = print) -> dict:
    if not plan.classes:
        raise ConfigError("--classes: no class given", hint="name the classes to evaluate, e.g. --classes RBC,WBC")
    for label, size in plan.patch_sizes.items():
        if size != "auto":
            check_patch_size(size, size, f"--patch-size {label}")
    unknown = sorted(set(plan.strategies) - set(STRATEGIES))
    if unknown:
        raise ConfigError(f"strategies: unknown {unknown}; choose from {', '.join(STRATEGIES)}")
    Matching.rule(plan.matching, 1.0)  # an unknown rule stops here, before any work
    check_counts(plan)
    if plan.joint and len({str(plan.patch_sizes.get(c)) for c in plan.classes}) != 1:
        raise ConfigError(f"--joint: a project has one patch size, the classes have {plan.patch_sizes}",
                          hint="give one size for all classes, e.g. --patch-size 96")
    results_path = plan.out / "results.json"
    results = read_results(results_path)
    dataset = Dataset.open(plan.images)
    truth = read_truth(plan.truth, label=plan.classes[0], images=dataset)  # label images: the class asked for; YOLO: the sizes
    for line in dataset.skipped_lines():
        say(f"warning: {line}" if line.startswith("skipped") else line)
    missing = unmatched_images(truth, dataset)
    unreadable = dataset.skipped_names(missing)
    if unreadable:
        say(f"warning: the annotations of {len(unreadable)} skipped file(s) (above) are left out, "
            f"e.g. {sorted(unreadable)[:3]}")
    missing = [name for name in missing if name not in unreadable]
    if missing:
        say(f"warning: annotations for {len(missing)} image(s) not in the dataset, e.g. {missing[:3]}")
    outside = outside_their_images(truth, dataset)
    if outside:
        a, record = outside[0]
        box = f"({a.x0:g}, {a.y0:g}, {a.x1:g}, {a.y1:g})"
        raise ConfigError(f"{a.source or plan.truth}: box {box} of class {a.label!r} lies wholly outside "
                          f"image {record.relpath} ({record.width} x {record.height} px)"
                          + (f"; {len(outside) - 1} more do" if len(outside) > 1 else ""),
                          hint="check the box's coordinates (in pixels of that image) and its image name")
    labels = sorted({a.label for a in truth})
    absent = [c for c in plan.classes if c not in labels]
    if absent:
        raise ConfigError(f"classes {absent} have no annotation in {plan.truth} (it has {labels})")
    automatic = [c for c in plan.classes if plan.patch_sizes.get(c) == "auto"]
    plan = replace(plan, patch_sizes={**plan.patch_sizes, **auto_patch_sizes(truth, automatic)})
    for label in automatic:
        say(f"{label}: patch size {plan.patch_sizes[label]} px (the median box side)")
    check_images_hold_a_patch(plan, dataset)
    train_ids, test_ids = split(dataset, plan)
    _check_classes(plan, annotations_by_image(truth, dataset), train_ids, test_ids, say)
    sizes = class_sizes(plan, truth)
    check_resumable(results_path, results, plan, truth, sizes, test_ids)
    results["classes"] = sizes
    for label, entry in sizes.items():
        if entry["box_sides"] and entry["box_sides"][2] > 2 * entry["box_sides"][0] and len(entry["scales"]) == 1:
            say(f"note: {label} boxes span {entry['box_sides'][0]:.0f}-{entry['box_sides'][2]:.0f} px (5th-95th percentile), "
                f"more than one patch size serves; try --scales auto")
        if plan.matching == "patch" and entry["box_sides"] and entry["box_sides"][2] > 1.5 * entry["patch"]:
            say(f"note: {label} boxes reach {entry['box_sides'][2]:.0f} px (95th percentile), beyond the {entry['patch']} px patch; "
                f"the paper's matching radius ({Matching.rule('patch', entry['patch']).radius:.0f} px) counts detections "
                f"off their centre as false; --matching object lets it grow with the object")
    try:
        plan.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--out {plan.out}: cannot make the folder ({error.strerror})",
                          hint="give a folder for the results: a new one, or an evaluation's to resume") from None
    trials = plan.trials()
    say(f"{len(trials)} trial(s); {len(train_ids)} training and {len(test_ids)} test image(s)")
    groups = [(label, None) for label in plan.classes] + ([(plan.joint_label, plan.classes)] if plan.joint else [])
    for label, joint_labels in groups:
        if joint_labels:  # one project for every class: pooled for all their boxes
            sides = [side for name in joint_labels for side in box_sides(truth, name)]
            scales, pooling = sizes[joint_labels[0]]["scales"], class_pooling(plan, sides, sizes[joint_labels[0]]["patch"])
        else:
            scales, pooling = sizes[label]["scales"], sizes[label]["pooling"]
        base = _base_project(plan, dataset, label, scales, pooling, say)
        if label in sizes:  # recorded with the class, in results.json and the report
            sizes[label]["normalization"] = "image" if base.normalization.per_image else "dataset"
            if base.normalization.flat_field is not None:
                sizes[label]["flat_field"] = base.normalization.flat_field.mode
        failed = set(base.failed_images())
        if failed:
            say(f"warning: {len(failed)} image(s) could not be embedded and are left out, e.g. {sorted(failed)[:3]}")
        user = SimulatedUser(base, truth, [i for i in train_ids if i not in failed], [i for i in test_ids if i not in failed],
                             label=label, displayed=plan.displayed,
                             workdir=plan.out / "work", settings=plan.training, device=plan.device, seed=plan.seed,
                             review_rounds=plan.review_rounds, review_size=plan.review_size,
                             review_images=plan.review_images, retrain=plan.retrain, joint_labels=joint_labels,
                             matching=plan.matching)
        def finished(trial: Trial) -> bool:
            return all(key in results["trials"] for key in plan.measurements(trial))
        for trial in (t for t in trials if t.label == label and t.joint == bool(joint_labels)):
            if finished(trial):
                continue
            for result in user.run(trial):
                results["trials"][result.key] = _row(result)
            write_text_atomic(results_path, json.dumps(results, indent=1))
            left = [t for t in trials if not finished(t)]
            scores = ", ".join(f"{results['trials'][k]['pr_auc']:.3f}" for k in plan.measurements(trial))
            seconds = sum(results["trials"][k]["seconds"] for k in plan.measurements(trial))
            say(f"[{len(trials) - len(left)}/{len(trials)}] {trial.key}: PR-AUC {scores}, "
                f"AP {results['trials'][plan.measurements(trial)[0]]['average_precision']:.3f} "
                f"({seconds:.0f} s; {_duration(remaining_seconds(results, left, lambda t: len(plan.measurements(t))))} left)")
        base.close()
    results["plan"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in plan.__dict__.items() if k != "training"}
    write_text_atomic(results_path, json.dumps(results, indent=1))
    write_text_atomic(plan.out / "report.md", markdown(results))
    plot_curves(results, plan.out)
    return results


def _row(result) -> dict:
    trial, score = result.trial, result.score
    return {
        "class": result.class_name or trial.label, "prototypes": trial.prototypes, "negatives": trial.negatives,
        "strategy": trial.strategy + (" (joint)" if trial.joint else ""), "repeat": trial.repeat, "review_round": result.review_round, "seed": result.seed, "reviewed": result.reviewed,
        "accepted": result.accepted, "pr_auc": score.pr_auc, "average_precision": score.average_precision,
        "true_objects": score.true_objects, "detections": score.detections,
        "negatives_found": result.negatives_found, "prototypes_used": result.prototypes_used, "seconds": result.seconds,
        "precision": score.precision[:: max(1, len(score.precision) // 200)].round(4).tolist(),
        "recall": score.recall[:: max(1, len(score.recall) // 200)].round(4).tolist(),
        **({"check": result.check.to_dict()} if result.check is not None else {}),
        "pr_auc_by_rule": result.pr_auc_by_rule, "pr_auc_away_from_edge": result.pr_auc_away_from_edge,
    }


def box_sides(truth: list, label: str) -> list[float]:
    """The size (`object_side`) of each box of the class (objects given as centres have none)."""
    return [side for a in truth if a.label == label and (side := object_side(a.y1 - a.y0, a.x1 - a.x0)) > 0]


def auto_patch_sizes(truth: list, classes: list[str]) -> dict[str, int]:
    """A patch size per class from its boxes: the median of the longer box side, rounded to a
    multiple of 8 px (at least 16). BCCD gives WBC 208, RBC 112, platelets 40."""
    sizes = {}
    for label in classes:
        boxed = box_sides(truth, label)
        if not boxed:
            raise ConfigError(f"--patch-size auto: class {label!r} has no boxes in the ground truth, only centres",
                              hint=f"give its size, e.g. --patch-size {label}=64")
        sizes[label] = max(16, int(8 * round(float(np.median(boxed)) / 8)))
    return sizes


def remaining_seconds(results: dict, left: list[Trial], measurements: Callable[[Trial], int] = lambda trial: 1) -> float:
    """A guess at the time the trials `left` take: each at the mean time of the finished
    measurements of its class and strategy, else of its strategy, else of all, times the
    measurements it makes."""
    done = list(results["trials"].values())
    if not done:
        return float("nan")
    def mean(rows):
        return float(np.mean([r["seconds"] for r in rows])) if rows else None
    overall = mean(done)
    total = 0.0
    for trial in left:
        same = mean([r for r in done if r["strategy"] == trial.strategy and r["class"] == trial.label])
        each = same if same is not None else (mean([r for r in done if r["strategy"] == trial.strategy]) or overall)
        total += each * measurements(trial)
    return total


def _duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _check_classes(plan: EvalPlan, truth_of: dict[str, list], train_ids: list[str], test_ids: list[str], say) -> None:
    """Every class needs objects in both parts of the split; fewer training objects than
    prototypes is allowed (the trials use them all) but said."""
    unannotated = sum(1 for annotations in truth_of.values() if not annotations)
    if unannotated:
        say(f"note: {unannotated} image(s) have no annotation; they count as images without objects")
    for label in plan.classes:
        def count(ids):
            return sum(1 for i in ids for a in truth_of[i] if a.label == label)
        in_train, in_test = count(train_ids), count(test_ids)
        if not in_train or not in_test:
            part = "training" if not in_train else "test"
            raise ConfigError(f"class {label!r} has no object in the {part} images ({in_train} in training, {in_test} in test)",
                              hint="choose another split (--train-list/--test-list or --test-fraction) or leave the class out")
        if in_train < max(plan.prototypes):
            say(f"warning: class {label!r} has {in_train} object(s) in the training images: "
                f"trials asking for more prototypes use these {in_train}")


def class_sizes(plan: EvalPlan, truth: list) -> dict[str, dict]:
    """Per class: its patch size, the scales its search uses and the 5th, 50th and 95th
    percentile of its box sides (px; empty for centres only), so that a report shows when
    one patch size cannot serve a class."""
    sizes = {}
    for label in plan.classes:
        sides = box_sides(truth, label)
        spread = [round(float(v), 1) for v in np.percentile(sides, [5, 50, 95])] if sides else []
        patch = int(plan.patch_sizes[label])
        if plan.scales == "auto":
            scales = scales_for_sizes(spread[::2], patch) if spread else (1.0,)
        else:
            scales = parse_scales(plan.scales)
        sizes[label] = {"patch": patch, "scales": list(scales), "box_sides": spread, "pooling": class_pooling(plan, sides, patch)}
    return sizes


def class_pooling(plan: EvalPlan, sides: list[float], patch: int) -> float:
    """The pooling width of a class's (or a joint project's) embeddings: `--pooling` as given,
    or with 'auto' the one that pools `POOLING` x the median box side (`pooling_for_objects`),
    as a project whose patch is its objects' box does; `POOLING` for objects given as centres."""
    if plan.pooling != "auto":
        return float(plan.pooling)
    return pooling_for_objects(float(np.median(sides)), patch) if sides else POOLING


def _base_project(plan: EvalPlan, dataset: Dataset, label: str, scales: list[float], pooling: float, say) -> Project:
    """One project per class (patch size) holding the shared embeddings of all images."""
    size = plan.patch_sizes[label] if label in plan.patch_sizes else plan.patch_sizes[plan.classes[0]]  # joint: the one size
    folder = plan.out / "base" / f"{file_name(label)}-{size}"
    if ProjectLayout(folder).exists():
        project = Project.open(folder, dataset=plan.images)
        project.set_scales(scales)
        differing = project.differing_settings(normalization=plan.normalization, channels=plan.channels, border=plan.border,
                                               min_cells=plan.min_cells, pooling=pooling, flat_field=plan.flat_field)
        if differing:
            project.close()
            if "normalization" in differing:
                message = f"--normalization {plan.normalization}: the embeddings in {folder} were normalised otherwise"
            elif "flat_field" in differing:
                message = (f"--flat-field {plan.flat_field}: the embeddings in {folder} were made with flat field "
                           f"{differing['flat_field'][0]}")
            elif "channels" in differing:
                made, asked = (",".join(map(str, channels)) for channels in differing["channels"])
                message = f"--channels: the embeddings in {folder} were made from channels {made}, this run asks for {asked}"
            elif "min_cells" in differing:
                made, asked = differing["min_cells"]
                message = f"--min-cells: the embeddings in {folder} were made with {made} cells per patch, this run asks for {asked}"
            elif "pooling" in differing:
                made, asked = differing["pooling"]
                message = (f"--pooling: the embeddings in {folder} were pooled with sigma {made:g} x the patch, this run asks for {asked:g}"
                           + (f" (auto: {POOLING:g} x the median box side; evaluations made before 2026-12-03 pooled 0.25 unless told)"
                              if plan.pooling == "auto" else ""))
            else:
                made, asked = ("with" if value else "without" for value in differing["border"])
                message = f"--no-border: the embeddings in {folder} were made {made} the border grid, this run is {asked} it"
            raise ConfigError(message, hint="keep the setting of the run you resume, or give another --out")
    else:
        project = Project.create(folder, dataset, patch_size=size, backbone=plan.backbone, weights=plan.weights, scales=scales,
                                 normalization=plan.normalization, flat_field=plan.flat_field, border=plan.border, channels=plan.channels,
                                 min_cells=plan.min_cells, pooling=pooling)
    say(f"{label}: normalization {'per image' if project.normalization.per_image else 'over the dataset (the paper)'}")
    if project.normalization.flat_field is not None:
        say(f"{label}: flat field: {project.normalization.flat_field.describe()}")
    say(f"{label}: channels {','.join(map(str, project.channels))} of {project.dataset.channels}")
    project.set_device(plan.device)
    started = time.perf_counter()
    for event in project.iter_embed():
        if event.status == "failed":
            say(f"  could not embed {event.image_id}: {event.message}")
    say(f"{label}: embeddings ready ({time.perf_counter() - started:.0f} s)")
    return project


def markdown(results: dict) -> str:
    """Mean ± std PR-AUC over the repeats (training seed 0) per class, strategy, P, N and, when
    there were review rounds, round; with several training seeds, a table of their spread."""
    rows = list(results["trials"].values())
    reviewed = any(row.get("review_round", 0) for row in rows)
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("seed", 0) == 0:
            key = (row["class"], row["strategy"], row["prototypes"], row["negatives"], row.get("review_round", 0))
            groups.setdefault(key, []).append(row)
    review_head = " review round | items answered (accepted) |" if reviewed else ""
    lines = ["| class | strategy | P | N |" + review_head + " PR-AUC mean ± std | repeats | time per trial |",
             "|---|---|---|---|" + ("---|---|" if reviewed else "") + "---|---|---|"]
    for key in sorted(groups):
        label, strategy, prototypes, negatives, review_round = key
        values = np.array([row["pr_auc"] for row in groups[key]])
        answered = ""
        if reviewed:
            answered = (f" {review_round} | {np.mean([r.get('reviewed', 0) for r in groups[key]]):.0f} "
                        f"({np.mean([r.get('accepted', 0) for r in groups[key]]):.0f}) |")
        lines.append(f"| {label} | {strategy} | {'all' if strategy in BASELINES else prototypes} | {negatives} |{answered} "
                     f"{values.mean():.3f} ± {values.std():.3f} | {len(values)} | "
                     f"{np.mean([row['seconds'] for row in groups[key]]):.0f} s |")
    rule = MATCHING_NOTES[results.get("matching", "patch")]
    return ("\n".join(lines) + "\n\n" + rule + "\n" + _probe_note(results, rows) + _rules_table(rows)
            + _sizes_table(results.get("classes", {})) + _goal_table(rows) + _retrain_table(rows) + _check_table(rows))


def _probe_note(results: dict, rows: list[dict]) -> str:
    """How the trained strategies' detections were made: with a probe beside the model or not."""
    present = {row["strategy"].split(" ")[0] for row in rows}
    strategies_share = float({**LATER_SETTINGS, **results.get("training", {})}["probe_share"])
    shares = dict.fromkeys(present & (set(TRAINING_STRATEGIES) - {"probe"}), strategies_share)
    if "supervised" in present:  # results written before the baseline followed the setting: trained alone
        shares["supervised"] = float(results.get("supervised_probe_share", 0.0))
    sentences = []
    for share in sorted(set(shares.values()), reverse=True):
        how = "detect with the trained model alone"
        if share:
            how = (f"average their probabilities with a linear probe's on the pretrained features, trained beside "
                   f"the model on the same examples, the probe's at {share:g}")
        names = ", ".join(sorted(name for name, value in shares.items() if value == share))
        sentences.append(f"The trained strategies ({names}) {how} (`--probe-share`).")
    gated = sorted(present & set(TRAINING_STRATEGIES))
    if gated and {**LATER_SETTINGS, **results.get("training", {})}["similarity_gate"]:
        sentences.append(f"Their detections ({', '.join(gated)}) are gated by the similarity to the trial's "
                         "prototypes: the geometric mean of the class probability and that similarity "
                         "(`--similarity-gate`).")
    return "".join(f"\n{sentence}\n" for sentence in sentences)


def _rules_table(rows: list[dict]) -> str:
    """Mean PR-AUC of the same detections under each matching rule and, under the rule of the
    score, away from the image edge (training seed 0, before review)."""
    scored = [r for r in rows if r.get("pr_auc_by_rule") and r.get("seed", 0) == 0 and r.get("review_round", 0) == 0]
    if not scored:
        return ""
    groups: dict[tuple, list[dict]] = {}
    for row in scored:
        groups.setdefault((row["class"], row["strategy"], row["prototypes"], row["negatives"]), []).append(row)
    lines = ["", "The same detections under each matching rule, and under the score's rule with the objects and detections "
             "within half a patch of the image edge left out (mean PR-AUC; `--matching` picks the rule above; "
             "a truth that leaves out objects cut by the edge scores higher away from it):", "",
             "| class | strategy | P | N | " + " | ".join(MATCHING_RULES) + " | away from the edge |",
             "|---|---|---|---|" + "---|" * (len(MATCHING_RULES) + 1)]
    for key in sorted(groups):
        means = [np.mean([r["pr_auc_by_rule"][name] for r in groups[key]]) for name in MATCHING_RULES]
        inner = [r["pr_auc_away_from_edge"] for r in groups[key] if r.get("pr_auc_away_from_edge") is not None]
        label, strategy, prototypes, negatives = key
        lines.append(f"| {label} | {strategy} | {'all' if strategy in BASELINES else prototypes} | {negatives} | "
                     + " | ".join(f"{m:.3f}" for m in means) + f" | {f'{np.mean(inner):.3f}' if inner else ''} |")
    return "\n".join(lines) + "\n"


MATCHING_NOTES = {
    "patch": "A detection is right within 0.3 x the patch width of a true centre (the paper's matching radius).",
    "object": "A detection is right within 0.3 x the larger of the patch width and the object's longer box side "
              "of a true centre (`--matching object`).",
}


def _sizes_table(sizes: dict[str, dict]) -> str:
    """Box sizes against the patch and the scales searched, per class."""
    if not sizes:
        return ""
    lines = ["", "Object sizes (box sides, px) against the patch and the similarity search's scales, each class's "
             "pooling width (the Gaussian's sigma as a fraction of the patch) and intensity normalisation:", "",
             "| class | box side 5th / 50th / 95th percentile | patch | scales (x the patch) | pooling | normalisation |",
             "|---|---|---|---|---|---|"]
    names = {"image": "per image", "dataset": "over the dataset"}
    for label, entry in sizes.items():
        spread = " / ".join(f"{v:.0f}" for v in entry["box_sides"]) or "centres only"
        pooling = f"{entry['pooling']:g}" if "pooling" in entry else ""  # results written before it was recorded have none
        flat = {"divide": ", divided by the flat field", "subtract": ", less the flat field"}.get(entry.get("flat_field"), "")
        lines.append(f"| {label} | {spread} | {entry['patch']} | {', '.join(f'{v:g}' for v in entry['scales'])} "
                     f"| {pooling} | {names.get(entry.get('normalization'), '')}{flat} |")
    return "\n".join(lines) + "\n"


def _retrain_table(rows: list[dict]) -> str:
    """The paper's inter-measurement spread: the std over training seeds on the same curated
    data, averaged over the repeats, beside the std over repeats (different curated data)."""
    if not any(row.get("seed", 0) for row in rows):
        return ""
    by_data: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        if row["strategy"].split(" ")[0] in ("similarity", *BASELINES):
            continue
        key = (row["class"], row["strategy"], row["prototypes"], row["negatives"], row.get("review_round", 0))
        by_data.setdefault(key, {}).setdefault(row["repeat"], []).append(row["pr_auc"])
    lines = ["", "Retraining on the same curated data (training seeds):", "",
             "| class | strategy | P | N | review round | seeds | PR-AUC mean | std over seeds (mean of repeats) | std over repeats |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(by_data):
        repeats = by_data[key]
        seeds = min(len(v) for v in repeats.values())
        within = np.mean([np.std(v) for v in repeats.values()])
        between = np.std([np.mean(v) for v in repeats.values()])
        mean = np.mean([np.mean(v) for v in repeats.values()])
        lines.append(f"| {' | '.join(str(k) for k in key)} | {seeds} | {mean:.3f} | {within:.3f} | {between:.3f} |")
    return "\n".join(lines) + "\n"


GOAL_SPREAD = 0.05  # the training issue's bar on a trained strategy's std over the repeats


def training_goal(rows: list[dict]) -> list[dict]:
    """Whether training earned its cost, per class, trained strategy, P and N (before review
    rounds): in each repeat, its PR-AUC (the mean over training seeds) against the better of
    similarity search (the repeat's prototypes) and the probe (the repeat's curated data).
    `above` counts the repeats where it is at least that, `margin` is its smallest lead (below
    0: it lost), `spread` its std over the repeats; `met` where it leads in every repeat with a
    spread under GOAL_SPREAD. Only repeats that have all three count; joint rows compare with
    joint baselines.

    Examples
    --------
    >>> rows = [{"class": "cell", "strategy": name, "prototypes": 5, "negatives": n, "repeat": r, "pr_auc": value}
    ...         for name, n, values in (("similarity", 0, [0.5, 0.6]), ("probe", 5, [0.7, 0.7]),
    ...                                 ("pos+neg+selflearn", 5, [0.8, 0.75])) for r, value in enumerate(values)]
    >>> goal = training_goal(rows)[0]
    >>> goal["strategy"], goal["above"], goal["repeats"], round(goal["margin"], 3), goal["met"]
    ('pos+neg+selflearn', 2, 2, 0.05, True)
    """
    scores: dict[tuple, dict[int, list[float]]] = {}
    for row in rows:
        if row.get("review_round", 0) == 0:
            key = (row["class"], row["strategy"], row["prototypes"], row["negatives"])
            scores.setdefault(key, {}).setdefault(row["repeat"], []).append(row["pr_auc"])
    means = {key: {repeat: float(np.mean(values)) for repeat, values in by_repeat.items()} for key, by_repeat in scores.items()}
    goals = []
    for (label, strategy, prototypes, negatives), mine in sorted(means.items()):
        name, _, joint = strategy.partition(" ")
        if name in ("similarity", "probe", *BASELINES):
            continue
        similarity = means.get((label, " ".join(filter(None, ("similarity", joint))), prototypes, 0), {})
        probe = means.get((label, " ".join(filter(None, ("probe", joint))), prototypes, negatives), {})
        repeats = sorted(set(mine) & set(similarity) & set(probe))
        if not repeats:
            continue
        leads = [mine[r] - max(similarity[r], probe[r]) for r in repeats]
        spread = float(np.std([mine[r] for r in repeats]))
        goals.append({"class": label, "strategy": strategy, "prototypes": prototypes, "negatives": negatives,
                      "repeats": len(repeats), "above": sum(lead >= 0 for lead in leads), "margin": min(leads),
                      "spread": spread, "met": min(leads) >= 0 and spread < GOAL_SPREAD})
    return goals


def _goal_table(rows: list[dict]) -> str:
    """`training_goal` as the report's table."""
    goals = training_goal(rows)
    if not goals:
        return ""
    lines = ["", "Did training earn its cost? Each trained strategy against the better of similarity search and the "
             "probe on the same repeat (the same prototypes and curated data; means over training seeds): met where "
             f"it is at least that in every repeat and its spread over the repeats is under {GOAL_SPREAD:g}.", "",
             "| class | strategy | P | N | at least both in | smallest lead | spread | goal |",
             "|---|---|---|---|---|---|---|---|"]
    for goal in goals:
        misses = ([f"below in {goal['repeats'] - goal['above']} repeat(s)"] if goal["above"] < goal["repeats"] else []) \
            + ([f"spread {goal['spread']:.3f}"] if goal["spread"] >= GOAL_SPREAD else [])
        lines.append(f"| {goal['class']} | {goal['strategy']} | {goal['prototypes']} | {goal['negatives']} | "
                     f"{goal['above']} of {goal['repeats']} | {lead_text(goal['margin'])} | {goal['spread']:.3f} | "
                     + ("met |" if goal["met"] else f"not met: {', '.join(misses)} |"))
    return "\n".join(lines) + "\n"


def lead_text(lead: float) -> str:
    """A signed lead to 3 decimals, or 4 where 3 would round a miss or a lead to zero.

    Examples
    --------
    >>> lead_text(0.0123), lead_text(-0.0004), lead_text(0.0)
    ('+0.012', '-0.0004', '+0.000')
    """
    return f"{lead:+.4f}" if 0 < abs(lead) < 0.0005 else f"{lead:+.3f}"


def _check_table(rows: list[dict]) -> str:
    """Whether the check on held-out curated examples foretells the test images: per trained
    class, strategy, P and N (training seed 0, before review), the held-out ROC-AUC of the
    model, similarity search and the probe; the trials it warned about (the model below
    either) and those it could not tell (all three alike, `ClassCheck.alike`); and the trials
    whose test PR-AUC beat similarity search's on the same repeat."""
    similarity = {(r["class"], r["prototypes"], r["repeat"]): r["pr_auc"] for r in rows if r["strategy"] == "similarity"}
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row.get("check") and row.get("seed", 0) == 0 and row.get("review_round", 0) == 0 and row["check"]["positives"]:
            groups.setdefault((row["class"], row["strategy"], row["prototypes"], row["negatives"]), []).append(row)
    if not groups:
        return ""
    lines = ["", "Check on held-out curated examples (what a user is told after training) against the test images:", "",
             "| class | strategy | P | N | held-out ROC-AUC: model | similarity | probe | warned | alike | "
             "test: beat similarity |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(groups):
        checks = [ClassCheck.from_dict(row["check"]) for row in groups[key]]
        warned = sum(not check.helps for check in checks)
        alike = sum(check.alike for check in checks)
        beat = [row["pr_auc"] >= similarity[(row["class"], row["prototypes"], row["repeat"])] for row in groups[key]
                if (row["class"], row["prototypes"], row["repeat"]) in similarity]
        mean = {name: np.mean([getattr(check, name) for check in checks]) for name in ("model", "similarity", "probe")}
        lines.append(f"| {' | '.join(str(k) for k in key)} | {mean['model']:.2f} | {mean['similarity']:.2f} | {mean['probe']:.2f} | "
                     f"{warned} of {len(checks)} | {alike} of {len(checks)} | "
                     + (f"{sum(beat)} of {len(beat)} |" if beat else "no similarity trials |"))
    return "\n".join(lines) + "\n"


def plot_curves(results: dict, out: Path, size: int = 360) -> None:
    """One PNG per class: the precision-recall curve of every trial, coloured by strategy."""
    colours = dict(zip(STRATEGIES, [(120, 120, 120), (204, 121, 167), (0, 114, 178), (230, 159, 0), (0, 158, 115),
                                    (213, 94, 0), (0, 0, 0), (86, 180, 233)]))
    for label in sorted({row["class"] for row in results["trials"].values()}):
        image = Image.new("RGB", (size + 140, size + 40), "white")
        draw = ImageDraw.Draw(image)
        draw.rectangle([30, 10, 30 + size, 10 + size], outline=(0, 0, 0))
        for row in results["trials"].values():
            if row["class"] != label or len(row["recall"]) < 2:
                continue
            points = [(30 + r * size, 10 + (1 - p) * size) for r, p in zip(row["recall"], row["precision"])]
            draw.line(points, fill=colours[row["strategy"].split(" ")[0]], width=1)
        for index, (strategy, colour) in enumerate(colours.items()):
            draw.text((40 + size, 14 + 14 * index), strategy, fill=colour)
        draw.text((30, size + 16), f"{label}: precision (up) vs recall (right)", fill=(0, 0, 0))
        with atomic_path(out / f"pr_{file_name(label)}.png") as tmp:
            image.save(tmp, format="PNG")
