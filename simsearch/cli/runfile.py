"""The run file's schema (`simsearch run CONFIG.yaml`): every key at every level, its type and
range, and the files that must exist, checked before any work. Each problem names the key by its
path (`training.supcon.epochs`) and the value given; all problems are reported at once."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Callable

from simsearch.util.errors import ConfigError
from simsearch.features.backbones import BACKBONES
from simsearch.io.flatfield import FLAT_FIELD_MODES
from simsearch.io.preprocess import NORMALIZATION_MODES
from simsearch.training.loop import TRAINING_STRATEGIES, TrainSettings

Check = Callable[[Any, str, Path], list[str]]  # (value, key path, the run file's folder) -> problems


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def integer(minimum: int | None = None, *, optional: bool = False) -> Check:
    def check(value, key, base):
        if value is None and optional:
            return []
        if not _is_int(value) or (minimum is not None and value < minimum):
            least = f" of at least {minimum}" if minimum is not None else ""
            return [f"{key}: expected a whole number{least}{' or null' if optional else ''}, got {value!r}"]
        return []
    return check


def number(low: float, high: float | None = None) -> Check:
    def check(value, key, base):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or value < low or (high is not None and value > high):
            span = f"in [{low}, {high}]" if high is not None else f"of at least {low}"
            return [f"{key}: expected a number {span}, got {value!r}"]
        return []
    return check


def boolean(value, key, base) -> list[str]:
    return [] if isinstance(value, bool) else [f"{key}: expected true or false, got {value!r}"]


def choice(*options: str) -> Check:
    def check(value, key, base):
        return [] if value in options else [f"{key}: expected one of {', '.join(options)}, got {value!r}"]
    return check


def text(value, key, base) -> list[str]:
    return [] if isinstance(value, str) and value.strip() else [f"{key}: expected a text, got {value!r}"]


def existing(kind: str) -> Check:
    """A path (relative to the run file) to a 'file', or to 'images' (a folder, glob or list file)."""
    def check(value, key, base):
        if not isinstance(value, str) or not value.strip():
            return [f"{key}: expected a path, got {value!r}"]
        path = base / value
        if kind == "images" and any(c in value for c in "*?["):
            return [] if glob.glob(str(path), recursive=True) else [f"{key}: no file matches {value!r}"]
        if not path.exists() or (kind == "file" and not path.is_file()):
            return [f"{key}: {'file' if kind == 'file' else 'folder or file'} {value!r} does not exist (looked at {path})"]
        return []
    return check


def either(*checks: Check) -> Check:
    def check(value, key, base):
        problems = [check(value, key, base) for check in checks]
        return [] if any(not p for p in problems) else problems[0]
    return check


def list_of(item: Check, *, length: int | None = None) -> Check:
    def check(value, key, base):
        if not isinstance(value, list) or not value or (length is not None and len(value) != length):
            size = f"of {length} " if length is not None else ""
            return [f"{key}: expected a non-empty list {size}of values, got {value!r}"]
        return [problem for i, v in enumerate(value) for problem in item(v, f"{key}[{i}]", base)]
    return check


def section(fields: dict[str, Check], *, required: tuple[str, ...] = (), any_key: Check | None = None) -> Check:
    """A mapping with these keys (unknown keys are problems), or any keys whose values pass `any_key`."""
    def check(value, key, base):
        prefix = f"{key}." if key else ""
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return [f"{key or 'the run file'}: expected keys and values, got {value!r}"]
        problems = [f"{prefix}{name}: required" for name in required if name not in value]
        for name, item in value.items():
            if any_key is not None:
                problems += any_key(item, f"{prefix}{name}", base)
            elif name in fields:
                problems += fields[name](item, f"{prefix}{name}", base)
            else:
                problems.append(f"{prefix}{name}: unknown key (known: {', '.join(sorted(fields))})")
        return problems
    return check


STAGE = section({"epochs": integer(1), "batch_size": integer(1), "lr": number(1e-12), "step_epochs": integer(1),
                 "gamma": number(1e-12)})
TRAINING = section({
    "preset": choice(*TrainSettings.PRESETS), "strategy": choice(*TRAINING_STRATEGIES),
    "selflearn": STAGE, "supcon": STAGE, "classifier": STAGE,
    "use_noisy": boolean, "use_negatives": boolean, "negatives_in_classifier": boolean, "classifier_copies": integer(1),
    "learn_pooling": boolean,
    "max_noisy": integer(1, optional=True), "max_noisy_pixels": integer(1, optional=True),
    "context_cells": integer(0), "seed": integer(0), "frozen_batch_norm": boolean, "off_centre_views": boolean,
    "holdout": number(0.0, 0.5), "pretrained_share": number(0.0, 1.0),
    "probe_share": number(0.0, 1.0), "similarity_gate": boolean,
    "augment": section({"flips": boolean, "rotations": boolean, "brightness": number(0.0, 1.0), "contrast": number(0.0, 1.0),
                        "solarize": number(0.0, 1.0), "dropout": number(0.0, 1.0)}),
})
RUN_FILE = section({
    "dataset": existing("images"), "project": text, "output": text, "annotations": existing("file"),
    "displayed": either(integer(1), list_of(text)), "seed": integer(0),
    "backbone": choice("auto", *BACKBONES), "weights": existing("file"),
    "channels": list_of(integer(0)), "patch_size": either(integer(4), list_of(integer(4), length=2)),
    "scales": lambda value, key, base: [] if value == "auto" else (
        list_of(number(0.05, 20.0))(value, key, base) if isinstance(value, list)
        else [f"{key}: expected auto or a list of object sizes relative to the patch (e.g. [0.5, 1, 2]), got {value!r}"]),
    "normalization": choice(*NORMALIZATION_MODES), "flat_field": choice(*FLAT_FIELD_MODES), "border": boolean, "min_cells": integer(1), "pooling": number(0.05, 1.0),
    "classes": section({}, any_key=section({"similarity_threshold": number(-1.0, 1.0),
                                             "confidence_threshold": number(0.0, 1.0)})),
    "background": section({"count": integer(1)}),
    "noisy": section({"cap": integer(0, optional=True), "background_per_image": integer(0)}),
    "training": TRAINING, "segmentation": boolean,
    "device": lambda value, key, base: [] if value in ("auto", "cpu", "cuda") or (
        isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit()) else [
        f"{key}: expected auto, cpu, cuda or cuda:N, got {value!r}"],
}, required=("dataset", "project", "output", "annotations"))


def validate(config: Any, path: Path) -> None:
    """ConfigError listing every problem of the run file `path` (its content: `config`)."""
    problems = RUN_FILE(config, "", path.parent)
    if problems:
        listed = "\n  ".join(problems)
        raise ConfigError(f"{path}: {len(problems)} problem(s), nothing was done:\n  {listed}",
                          hint="the run file's keys are described in the README and in simsearch/cli/runner.py")
