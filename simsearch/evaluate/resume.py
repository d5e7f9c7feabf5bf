"""Resuming an evaluation: its results.json read back, and a clear refusal where its finished
trials were run with other settings than this run's (their results would be reused as this
run's); the settings this run records for the next to compare."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from simsearch.evaluate.simulate import BASELINES, USER_VERSION
from simsearch.io.truth import Annotation
from simsearch.training.loop import LATER_SETTINGS
from simsearch.training.records import HOLD_OUT_RULE
from simsearch.util.errors import ConfigError

if TYPE_CHECKING:
    from simsearch.evaluate.report import EvalPlan


def read_results(path: Path) -> dict:
    """The results.json of an evaluation to resume ({"trials": {}} when there is none); a
    ConfigError naming the file when it cannot be resumed: --out is a file, or results.json is
    not an evaluation's results (cut short, say). Nothing is changed there.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> read_results(folder / "results.json")
    {'trials': {}}
    >>> _ = (folder / "results.json").write_text('{"trials": {"a|P5')
    >>> read_results(folder / "results.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    simsearch.util.errors.ConfigError: .../results.json: not an evaluation's results, or cut short (...
    """
    if path.parent.exists() and not path.parent.is_dir():
        raise ConfigError(f"--out {path.parent}: a file, not a folder",
                          hint="give a folder for the results: a new one, or an evaluation's to resume")
    if not path.exists():
        return {"trials": {}}
    try:
        results = json.loads(path.read_text())
        problem = None if isinstance(results, dict) and isinstance(results.get("trials"), dict) else "no trials"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        results, problem = None, str(error)
    if problem:
        raise ConfigError(f"{path}: not an evaluation's results, or cut short ({problem}); it is left as it is",
                          hint="give another --out, or put back a copy of the file to resume its trials")
    return results


def check_resumable(results_path: Path, results: dict, plan: EvalPlan, truth: list[Annotation],
                    sizes: dict[str, dict], test_ids: list[str]) -> None:
    """Record this run's settings in `results` (an evaluation's, `read_results`); a ConfigError
    naming the setting when its finished trials were run with another: the matching rule, the
    simulated user's version, the training settings, the supervised baseline's probe share, the
    held-out rule and the settings of `trial_settings` (per class `sizes`, `class_sizes`).
    Results written before a setting was recorded compare as run with what they were run with."""
    scored_with = results.get("matching", "patch")  # results written before the choice existed used the paper's
    if results["trials"] and scored_with != plan.matching:
        raise ConfigError(f"{results_path}: its trials were scored with --matching {scored_with}, not {plan.matching}",
                          hint="give another --out, or the same --matching to resume")
    results["matching"] = plan.matching
    curated_by = results.get("simulated_user", 1)  # results written before the version existed: the first user
    if results["trials"] and curated_by != USER_VERSION:
        raise ConfigError(f"{results_path}: its trials were curated by version {curated_by} of the simulated user, "
                          f"this is version {USER_VERSION} (it shows more images where the first hold too few whole objects)",
                          hint="give another --out")
    results["simulated_user"] = USER_VERSION
    training = json.loads(json.dumps(plan.training.to_dict()))  # as results.json holds it
    # results written before a setting existed were trained at its no-op value (LATER_SETTINGS)
    trained_with = {**LATER_SETTINGS, **results.get("training", training)}
    if results["trials"] and trained_with != training:
        changed = sorted(key for key in training if trained_with.get(key) != training[key])
        raise ConfigError(f"{results_path}: its trials were trained with other settings ({', '.join(changed)})",
                          hint="give another --out, or the same training settings to resume")
    results["training"] = training
    # the supervised baseline trains as the strategies do, probe beside it included; results
    # written before it did (no "supervised_probe_share") trained it alone
    baseline_share = plan.training.with_strategy(BASELINES["supervised"]).probe_average
    supervised_with = results.get("supervised_probe_share", 0.0)
    if any(t["strategy"] == "supervised" for t in results["trials"].values()) and supervised_with != baseline_share:
        raise ConfigError(f"{results_path}: its supervised trials were trained with the probe at {supervised_with:g}, "
                          f"this run trains them with it at {baseline_share:g} (`--probe-share`)",
                          hint="give another --out to train the baseline as the strategies are trained")
    results["supervised_probe_share"] = baseline_share
    # before 2026-12-05 the training seed chose the held-out fifth: seed 0's choice is today's
    # rule, the other seeds' trials (--retrain) were checked and trained on other examples
    if results.get("hold_out") != HOLD_OUT_RULE and any(t.get("seed", 0) for t in results["trials"].values()):
        raise ConfigError(f"{results_path}: its --retrain trials held out a fifth chosen by the training seed; "
                          f"today every seed holds out the same examples, so they would not compare",
                          hint="give another --out")
    results["hold_out"] = HOLD_OUT_RULE
    results["settings"] = resumed_settings(results_path, results, trial_settings(plan, sizes, test_ids, truth))


# the results.json "classes" entries that hold a per-class setting, by its option
_CLASS_SETTINGS = {"--patch-size": "patch", "--scales": "scales"}
# settings recorded per class: a class's own is compared, another's kept
_PER_CLASS = {*_CLASS_SETTINGS, "--truth"}


def trial_settings(plan: EvalPlan, sizes: dict[str, dict], test_ids: list[str], truth: list[Annotation]) -> dict:
    """The settings, by option, that change a trial's result but not its results.json key,
    beyond those checked elsewhere (the training settings, the matching rule, and the embedding
    settings the class's base project refuses: its folder is named by class and patch size):
    per class the patch size and scales as resolved (`class_sizes`) and its ground truth (count
    and digest of its boxes: the simulated user curates from them and the trials are scored on
    them), the backbone, the simulated user's options, and the test images (a digest: the split
    by --train-list/--test-list or --test-fraction and --seed)."""
    settings = {option: {label: entry[key] for label, entry in sizes.items()}
                for option, key in _CLASS_SETTINGS.items()}
    settings["--truth"] = {label: _truth_digest([a for a in truth if a.label == label]) for label in sizes}
    digest = hashlib.blake2b("\n".join(sorted(test_ids)).encode(), digest_size=8).hexdigest()
    return {**settings, "--backbone": plan.backbone, "--weights": plan.weights, "--seed": plan.seed,
            "--displayed": plan.displayed, "--review-size": plan.review_size, "--review-images": plan.review_images,
            "test images": f"{len(test_ids)} images, digest {digest}"}


def _truth_digest(annotations: list[Annotation]) -> str:
    """A class's ground truth as results.json records it: its boxes' count and a digest of them
    in any order (where each was read takes no part)."""
    boxes = sorted(f"{a.image}|{a.x0:g},{a.y0:g},{a.x1:g},{a.y1:g}" for a in annotations)
    return f"{len(boxes)} boxes, digest {hashlib.blake2b(chr(10).join(boxes).encode(), digest_size=8).hexdigest()}"


def resumed_settings(results_path: Path, results: dict, settings: dict) -> dict:
    """The settings (`trial_settings`) to record in results.json; a ConfigError naming the
    option when its finished trials were run with others (their results would be reused as
    this run's). Per-class settings are compared for the classes both runs hold, and kept for
    the others; results written before the settings were recorded compare those their
    "classes" entries hold (patch size, scales)."""
    if not results["trials"]:
        return settings
    classes = results.get("classes", {})
    recorded = results.get("settings") or {option: {label: entry[key] for label, entry in classes.items() if key in entry}
                                           for option, key in _CLASS_SETTINGS.items()}
    merged = dict(settings)
    for option, value in settings.items():
        if option not in recorded:
            continue
        if option in _PER_CLASS:
            before = recorded[option]
            differing = [label for label in value if label in before and before[label] != value[label]]
            merged[option] = {**before, **value}
            if not differing:
                continue
            label = differing[0]
            was, asked = f"{before[label]} for class {label!r}", f"{value[label]}"
        elif recorded[option] == value:
            continue
        else:
            was, asked = (("the default" if v is None else v) for v in (recorded[option], value))
        if option == "--truth":
            raise ConfigError(f"{results_path}: its trials were curated and scored on other ground truth "
                              f"({was}; this run {asked}): the truth file was edited",
                              hint="give another --out to evaluate the edited ground truth")
        if option == "test images":
            raise ConfigError(f"{results_path}: its trials were tested on other images ({was}; this run {asked}): "
                              f"the split changed (--train-list/--test-list, --test-fraction, --seed or the images)",
                              hint="give another --out, or the split of the run you resume")
        raise ConfigError(f"{results_path}: its trials were run with {option} {was}, this run asks for {asked}",
                          hint=f"give another --out, or the same {option} to resume")
    return merged
