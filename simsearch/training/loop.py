"""The staged training of the SimSearch paper (Sec. II-D), resumable and cancellable.

1. selflearn: SimCLR (NT-Xent, tau 0.5) on two augmented views of each noisy patch,
   early layers frozen;
2. supcon: supervised contrastive loss (tau 0.07) on the clean positives of every class
   and clean background, each class's user negatives added to its anchors' denominator;
3. classifier: projection head dropped, embedding frozen, a linear classifier trained
   with cross entropy.

Every stage draws class-balanced epochs: each class fills 1/k of an epoch's places (k
classes), the rare ones repeated, the common ones covered once in random order.

A run is keyed on its content: a hash of every record it learns from (positives, prototypes,
negatives, background, noisy patches, each with image, position and class), the settings,
the backbone weights and the patch geometry. `iter_train` yields TrainProgress events:
with the same content as the saved model it reuses that model at once; with an interrupted
run of the same content it resumes after the last finished epoch (exactly: each epoch draws
from its own seeded random stream); otherwise it trains again, from the pretrained backbone
or, with `from_last`, from the last model. `train` is the same as one blocking call.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import math
import os
import threading
import time
import logging
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from simsearch.project.store import PatchRecord, ProjectLockedError
from simsearch.util.errors import ConfigError, ProjectError
from simsearch.features.embed import resolve_device
from simsearch.features.geometry import NETWORK_STRIDE, PatchGeometry
from simsearch.util.files import write_bytes_atomic, write_text_atomic
from simsearch.project.layout import ProjectLayout
from simsearch.project.project import Project
from simsearch.training.augment import AugmentSettings, augment
from simsearch.training.check import ClassCheck, check_held_out
from simsearch.curation.session import prototype_record
from simsearch.training.crops import patch_crops
from simsearch.training.losses import NotClassLoss, NTXentLoss, SupConWithNegativesLoss
from simsearch.training.model import PatchModel

log = logging.getLogger(__name__)

STAGES = ("selflearn", "supcon", "classifier")
# part of every run's identity: bump it when the same data and settings give another model
# (2: class-balanced epochs, per-epoch random streams, content-keyed runs)
TRAINING_VERSION = 2
# strategy -> (use_noisy, use_negatives, contrastive). "probe" is beyond the paper: only the
# linear classifier, on the frozen pretrained features (seconds on a CPU), with the negatives
STRATEGIES = {"probe": (False, True, False), "pos": (False, False, True), "pos+neg": (False, True, True),
              "pos+selflearn": (True, False, True), "pos+neg+selflearn": (True, True, True)}
TRAINING_STRATEGIES = tuple(STRATEGIES)  # the public names, simplest first
BACKGROUND = "background"


@dataclass(frozen=True)
class StageSettings:
    epochs: int
    batch_size: int
    lr: float
    step_epochs: int  # multiply the learning rate by `gamma` every this many epochs
    gamma: float


@dataclass(frozen=True)
class TrainSettings:
    """Paper defaults (`paper()`) suit a GPU; `cpu()` finishes in minutes on the sample data."""

    selflearn: StageSettings = StageSettings(100, 128, 1e-3, 50, 0.05)
    supcon: StageSettings = StageSettings(50, 32, 1e-3, 25, 0.1)
    classifier: StageSettings = StageSettings(100, 64, 1e-3, 50, 0.1)
    use_noisy: bool = True
    use_negatives: bool = True
    contrastive: bool = True  # False: no supervised contrastive stage (the probe)
    # beyond the paper: the classifier stage also learns from the negatives ("not this
    # class", NotClassLoss), not only the contrastive stage's denominator
    negatives_in_classifier: bool = True
    # the paper's Gaussian pooling is initialised as a Gaussian and learnt in the contrastive
    # stages; False keeps it fixed (the dense path's own)
    learn_pooling: bool = False
    max_noisy: int | None = None  # noisy patches used, sampled across classes (None: all)
    # and at most this many network-input pixels of noisy crops (None: no limit): self-learning
    # time grows with the crop area, so this bounds it whatever the patch size
    max_noisy_pixels: int | None = None
    context_cells: int = 2
    # the self-learning stage's augmentations; the supervised stages use them without
    # solarize and coarse dropout (`AugmentSettings.clean`)
    augment: AugmentSettings = AugmentSettings()
    # batch norm keeps its ImageNet statistics (small, imbalanced batches); False: the
    # statistics follow the training batches
    frozen_batch_norm: bool = True
    # this fraction of each class's confirmed positives, of its negatives and of the background
    # is held out of training to check the model against similarity search and a linear probe
    # (`check`); prototypes always train. 0: everything trains, nothing is checked
    holdout: float = 0.2
    seed: int = 0

    PRESETS: ClassVar[tuple[str, ...]] = ("cpu", "paper")

    @classmethod
    def preset(cls, name: str, strategy: str = "pos+neg+selflearn") -> "TrainSettings":
        """The settings of a preset, `cpu` (minutes on a CPU) or `paper` (the paper's, for a GPU),
        for `strategy`.

        Examples
        --------
        >>> TrainSettings.preset("cpu", "pos").supcon.epochs
        8
        """
        if name not in cls.PRESETS:
            raise ConfigError(f"preset: {name!r} is not one of {', '.join(cls.PRESETS)}")
        return (cls.cpu if name == "cpu" else cls.paper)(strategy)

    @classmethod
    def paper(cls, strategy: str = "pos+neg+selflearn") -> "TrainSettings":
        return cls().with_strategy(strategy)

    @classmethod
    def cpu(cls, strategy: str = "pos+neg+selflearn") -> "TrainSettings":
        return cls(
            # 1e-3 for a few epochs disturbed the pretrained features (BCCD platelets, P10 N5:
            # PR-AUC 0.61 +- 0.02 against 0.79 +- 0.01 at 1e-4; benchmarks/results/bccd-eval)
            selflearn=StageSettings(4, 64, 1e-4, 3, 0.05),
            supcon=StageSettings(8, 32, 1e-3, 6, 0.1),
            classifier=StageSettings(40, 64, 1e-2, 30, 0.1),
            # self-learning dominates CPU time: 256 crops of 160 px (a 96 px patch with its
            # context), fewer for larger patches (BCCD WBC, 192 px: 100 crops of 256 px)
            max_noisy=256,
            max_noisy_pixels=256 * 160 * 160,
        ).with_strategy(strategy)

    def with_strategy(self, strategy: str) -> "TrainSettings":
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
        use_noisy, use_negatives, contrastive = STRATEGIES[strategy]
        return replace(self, use_noisy=use_noisy, use_negatives=use_negatives, contrastive=contrastive)

    @property
    def strategy(self) -> str:
        flags = (self.use_noisy, self.use_negatives, self.contrastive)
        return {value: key for key, value in STRATEGIES.items()}.get(flags, "custom")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainProgress:
    """stage: 'selflearn' | 'supcon' | 'classifier' | 'done'; loss: mean over the epoch so far.
    reused (on 'done' only): the saved model already holds this content, nothing was trained."""

    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    patches_per_s: float
    eta_s: float
    reused: bool = False


@dataclass(frozen=True)
class TrainedModel:
    """A finished run: the model folder, the content identity it was trained on, whether an
    earlier model of the same content was reused, the per-epoch losses of each stage, and the
    check on held-out curated examples (one ClassCheck per class; empty without a holdout)."""

    folder: Path
    identity: str
    reused: bool
    metrics: dict
    check: tuple[ClassCheck, ...] = ()


# -- what a run learns from ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRecords:
    """What a run learns from, as store records (no pixels). Each list holds (patch, label)
    pairs, the label an index into `names`: the ROI classes in creation order, then background.
    Clean: positives, prototypes and accepted review items of each class, then clean
    background. Negatives (flagged suggestions and rejected review items) carry the class they
    are not. Noisy patches are already capped. Held out: clean examples and negatives kept out
    of training to check the model (`TrainSettings.holdout`)."""

    names: tuple[str, ...]
    clean: tuple[tuple[PatchRecord, int], ...]
    negatives: tuple[tuple[PatchRecord, int], ...] = ()
    noisy: tuple[tuple[PatchRecord, int], ...] = ()
    held_out: tuple[tuple[PatchRecord, int], ...] = ()
    held_out_negatives: tuple[tuple[PatchRecord, int], ...] = ()

    def digest(self) -> str:
        parts = (self.clean, self.negatives, self.noisy, self.held_out, self.held_out_negatives)
        content = json.dumps([list(self.names), *[[_place(p) + (label,) for p, label in part] for part in parts]])
        return hashlib.blake2b(content.encode(), digest_size=16).hexdigest()


def class_names(project: Project) -> list[str]:
    """Output order of the classifier: the ROI classes in creation order, then background."""
    return [c.name for c in project.store.classes()] + [BACKGROUND]


def training_records(project: Project, settings: TrainSettings) -> TrainingRecords:
    """The records a run with `settings` learns from; ConfigError when a part is missing."""
    store = project.store
    names = class_names(project)
    prototypes: list[tuple[PatchRecord, int]] = []
    confirmed: list[tuple[PatchRecord, int]] = []
    negatives: list[tuple[PatchRecord, int]] = []
    for label, name in enumerate(names[:-1]):
        own_prototypes = store.prototypes(name)
        own_confirmed = store.patches(name, "positive") + store.review_answers(name, "accepted")
        if not own_prototypes and not own_confirmed:
            raise ConfigError(f"training: class {name!r} has no clean positives", hint="confirm the class first")
        prototypes += [(prototype_record(project, p), label) for p in own_prototypes]
        confirmed += [(_position(p), label) for p in own_confirmed]
        if settings.use_negatives:
            negatives += [(_position(p), label) for p in store.patches(name, "negative") + store.review_answers(name, "rejected")]
    background = store.clean_background()
    if not background:
        raise ConfigError("training: no clean background", hint="propose and confirm background first")
    confirmed += [(_position(p), len(names) - 1) for p in background]
    confirmed, held_out = hold_out(confirmed, settings.holdout, settings.seed)
    negatives, held_out_negatives = hold_out(negatives, settings.holdout, settings.seed)
    clean = prototypes + confirmed
    noisy: list[tuple[PatchRecord, int]] = []
    if settings.use_noisy:
        for label, name in enumerate(names):
            noisy += [(_position(p), label) for p in store.noisy(None if name == BACKGROUND else name)]
        if not noisy:
            raise ConfigError("training: no noisy patches for self-learning", hint="run noisy extraction first, or train without self-learning")
        cap = noisy_cap(settings, project.geometry)
        if cap is not None and len(noisy) > cap:
            keep = balanced_subset(torch.tensor([label for _, label in noisy]), cap, _stream(settings.seed, "noisy cap"))
            noisy = [noisy[i] for i in keep.tolist()]
    return TrainingRecords(tuple(names), tuple(clean), tuple(negatives), tuple(noisy), tuple(held_out), tuple(held_out_negatives))


def hold_out(pairs: list[tuple[PatchRecord, int]], fraction: float, seed: int) -> tuple[list, list]:
    """(kept, held out): of each label, the `fraction` (rounded down) of the pairs whose place
    hashes lowest, so the same curation always holds out the same examples and one more
    example moves at most one. Both lists keep the input order."""
    by_label: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(pairs):
        by_label.setdefault(label, []).append(index)
    held: set[int] = set()
    for members in by_label.values():
        ranked = sorted(members, key=lambda i: hashlib.blake2b(
            json.dumps([seed, pairs[i][0].image_id, pairs[i][0].y, pairs[i][0].x]).encode(), digest_size=8).digest())
        held.update(ranked[: int(fraction * len(members))])
    return [pair for i, pair in enumerate(pairs) if i not in held], [pair for i, pair in enumerate(pairs) if i in held]


def _position(patch: PatchRecord) -> PatchRecord:
    """The patch without its similarity: only the place (and its pyramid level) is learnt from."""
    return PatchRecord(patch.image_id, float(patch.y), float(patch.x), level=float(patch.level))


def _place(patch: PatchRecord) -> tuple:
    """What identifies a training example: image, centre and, off the patch size, its level
    (so that records from before scale pyramids keep their digests)."""
    return (patch.image_id, patch.y, patch.x) if patch.level == 1.0 else (patch.image_id, patch.y, patch.x, patch.level)


def training_identity(project: Project, settings: TrainSettings, records: TrainingRecords | None = None) -> str:
    """The identity of a run: a hash of everything it learns from (the records, the settings,
    the backbone weights, the patch geometry, normalisation and channels). The same identity
    trains the same model; any change to the curation gives another."""
    if project.geometry is None:
        raise ConfigError("training: the project has no patch size yet", hint="add prototypes first")
    records = records or training_records(project, settings)
    content = {
        "version": TRAINING_VERSION,
        "settings": settings.to_dict(),
        "records": records.digest(),
        "backbone": [project.backbone_spec.name, project.backbone_spec.weights_sha256],
        "geometry": project.geometry.to_dict(),
        "normalization": project.normalization.fingerprint(),
        "channels": list(project.channels),
    }
    return hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=12).hexdigest()


# -- sampling -------------------------------------------------------------------------------


def _stream(seed: int, *parts) -> torch.Generator:
    """A random stream of its own for each use (an epoch of a stage, the noisy cap, ...), so
    that resuming after any epoch draws exactly what an uninterrupted run draws."""
    key = hashlib.blake2b(json.dumps([seed, *parts]).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(key, "little") & (2**63 - 1))


def balanced_order(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices into `labels` in which each of the k classes present fills count/k
    places: a class's samples in random order, repeated as often as its share needs (the rare
    ones oversampled, the common ones each drawn at most once more than the others), the whole
    shuffled. So a batch holds each class at about 1/k whatever the class frequencies."""
    classes = torch.unique(labels)
    if not len(classes) or count <= 0:
        return torch.zeros(0, dtype=torch.int64)
    shares = torch.full((len(classes),), count // len(classes), dtype=torch.int64)
    shares[torch.randperm(len(classes), generator=generator)[: count % len(classes)]] += 1
    parts = []
    for value, share in zip(classes.tolist(), shares.tolist()):
        members = torch.nonzero(labels == value).flatten()
        rounds = -(-share // len(members))
        parts.append(torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])[:share])
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]


def balanced_subset(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` distinct indices (sorted), as evenly spread over the classes as their sizes
    allow: small classes whole, the rest of the room shared equally by the larger ones."""
    classes, sizes = torch.unique(labels, return_counts=True)
    room, left = {}, count
    for position, index in enumerate(torch.argsort(sizes).tolist()):  # smallest first: water filling
        share = left // (len(classes) - position)
        room[int(classes[index])] = min(int(sizes[index]), share)
        left -= room[int(classes[index])]
    picks = []
    for value, share in room.items():
        members = torch.nonzero(labels == value).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:share]])
    return torch.sort(torch.cat(picks)).values


# -- pixels -------------------------------------------------------------------------------


@dataclass
class _Data:
    crops: torch.Tensor  # (N, 3, H, W) float16
    labels: torch.Tensor  # (N,) int64
    negatives: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    negative_labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))


def _data(project: Project, pairs, context_cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    return patch_crops(project, [p for p, _ in pairs], context_cells), torch.tensor([label for _, label in pairs], dtype=torch.int64)


def _clean_data(project: Project, records: TrainingRecords, settings: TrainSettings) -> _Data:
    data = _Data(*_data(project, records.clean, settings.context_cells))
    if records.negatives:
        data.negatives, data.negative_labels = _data(project, records.negatives, settings.context_cells)
    return data


def _noisy_data(project: Project, records: TrainingRecords, settings: TrainSettings) -> _Data:
    return _Data(*_data(project, records.noisy, settings.context_cells))


def crop_pixels(geometry: PatchGeometry, context_cells: int) -> int:
    """Pixels of one training crop as the network sees it: the scaled patch and its context."""
    margin = 2 * context_cells * NETWORK_STRIDE
    kh, kw = geometry.kernel
    return (kh * NETWORK_STRIDE + margin) * (kw * NETWORK_STRIDE + margin)


def crops_within(pixels: int, geometry: PatchGeometry, context_cells: int) -> int:
    """How many training crops fit in a budget of `pixels` network-input pixels, at least one."""
    return max(1, pixels // crop_pixels(geometry, context_cells))


def noisy_cap(settings: TrainSettings, geometry: PatchGeometry) -> int | None:
    """How many noisy patches self-learning uses at most (None: all of them), at least one."""
    caps = [settings.max_noisy] if settings.max_noisy is not None else []
    if settings.max_noisy_pixels is not None:
        caps.append(crops_within(settings.max_noisy_pixels, geometry, settings.context_cells))
    return min(caps) if caps else None


# -- checkpoints and the saved model ------------------------------------------------------------


class _Checkpoints:
    """training/checkpoint.pt of the run in progress, written atomically after every epoch,
    and beside it checkpoint.json: the run's key, stage and epoch with the checkpoint's size
    and modification time, so that `training_status` need not unpickle the weights (16-22 ms)
    to learn them. Removed when the run finishes: a finished run is its saved model."""

    def __init__(self, layout: ProjectLayout):
        self.folder = layout.training
        self.path = layout.checkpoint
        self.summary_path = layout.checkpoint_summary
        self.lock_path = layout.training_lock

    def load(self, key: str) -> dict | None:
        """The checkpoint of the run `key`, or None (a checkpoint of another run is removed)."""
        if not self.path.is_file():
            return None
        state = self._read()
        if state.get("key") == key:
            return state
        log.info("the interrupted run in %s was trained on other data or settings; starting again", self.folder)
        self.clear()
        return None

    def _read(self) -> dict:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ProjectError(f"training checkpoint {self.path} is unreadable: {exc}", hint="delete it to start training again") from exc

    def save(self, state: dict) -> None:
        write_bytes_atomic(self.path, _torch_bytes(state))
        summary = {"key": state["key"], "stage": int(state["stage"]), "epoch": int(state["epoch"]), "checkpoint": self._stamp()}
        write_text_atomic(self.summary_path, json.dumps(summary))

    def clear(self) -> None:
        for path in (self.summary_path, self.path):  # the summary first: it must never outlive its checkpoint
            path.unlink(missing_ok=True)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Held while a run trains: a second run in the same project (another process, or the
        terminal UI beside the command line) is refused instead of mixing checkpoints."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise ProjectLockedError(f"training is already running in {self.folder.parent} ({owner})",
                                         hint="wait for it to finish, or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stamp(self) -> list[int]:
        info = self.path.stat()
        return [info.st_size, info.st_mtime_ns]

    def key_stage_and_epoch(self) -> tuple[str | None, int, int]:
        """From the summary when it describes the checkpoint as it is now, else from the checkpoint."""
        try:
            summary = json.loads(self.summary_path.read_text())
            if summary["checkpoint"] == self._stamp():
                return summary.get("key"), int(summary["stage"]), int(summary["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no summary, or a stale or damaged one: the checkpoint itself says
        state = self._read()
        return state.get("key"), int(state["stage"]), int(state["epoch"])


def saved_model_config(project: Project) -> dict | None:
    """model.yaml of the saved model (classes, settings, identity, metrics), or None when there
    is no model, or when model.yaml does not describe the model.pt beside it (a save cut short:
    model.yaml is written last and holds model.pt's hash)."""
    layout = project.layout
    if not layout.model_weights.is_file() or not layout.model_config.is_file():
        return None
    try:
        config = yaml.safe_load(layout.model_config.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    if "weights_blake2b" not in config:  # saved before models recorded their hash: taken as it is
        return config
    return config if config["weights_blake2b"] == _weights_hash(layout.model_weights.read_bytes()) else None


def trained_model_config(project: Project) -> dict:
    """model.yaml of the saved model, or a ProjectError naming the folder: no model, or one whose
    model.yaml does not describe its model.pt."""
    folder = project.layout.model
    if not project.layout.model_weights.is_file():
        raise ProjectError(f"no trained model in {folder}", hint="train first (simsearch train)")
    config = saved_model_config(project)
    if config is None:
        raise ProjectError(f"the model in {folder} is incomplete: model.yaml does not describe model.pt "
                           "(a save cut short, or a model of an older SimSearch)", hint="train again (simsearch train)")
    return config


def _weights_hash(weights: bytes) -> str:
    """The hash model.yaml records of model.pt's bytes."""
    return hashlib.blake2b(weights, digest_size=16).hexdigest()


def _torch_bytes(state: dict) -> bytes:
    """`torch.save` into memory: the same weights give the same bytes (saved to a file, the
    archive inside is named after the file, here a temporary one named by process id)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_model(project: Project, model: PatchModel, names: list[str], settings: TrainSettings, metrics: dict,
               *, identity: str, start: str, checks: list[ClassCheck] = ()) -> Path:
    layout = project.layout
    weights = _torch_bytes({"network": model.network.state_dict(), "classifier": model.classifier.state_dict(),
                            "projection": model.projection.state_dict(), "window": model.window.detach().cpu()})
    write_bytes_atomic(layout.model_weights, weights)
    config = {  # written last, with the weights' hash: a save cut short between the two is seen as no model
        "weights_blake2b": _weights_hash(weights),
        "classes": names,
        "identity": identity,
        "start": start,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": project.backbone_spec.to_dict(),
        "geometry": project.geometry.to_dict(),
        "scales": list(project.scales),  # the pyramid detection runs over
        "normalization": project.normalization.to_dict(),
        "channels": list(project.channels),
        "strategy": settings.strategy,
        "settings": settings.to_dict(),
        "metrics": metrics,
        "check": [check.to_dict() for check in checks],
    }
    write_text_atomic(layout.model_config, yaml.safe_dump(config, sort_keys=False))
    return layout.model_weights


def _start_from_last(project: Project, model: PatchModel, names: list[str]) -> str:
    """Load the last model's weights into `model` (its classifier only if the classes are the
    same); returns the start point's description, part of the checkpoint key."""
    config = saved_model_config(project)
    if config is None:
        raise ConfigError("training from the last model: there is no trained model yet", hint="train once without --from-last")
    weights = torch.load(project.layout.model_weights, map_location="cpu", weights_only=True)
    model.network.load_state_dict(weights["network"])
    if "projection" in weights:
        model.projection.load_state_dict(weights["projection"])
    if "window" in weights and isinstance(model.window, torch.nn.Parameter):
        model.window.data.copy_(weights["window"])
    if config.get("classes") == list(names):
        model.classifier.load_state_dict(weights["classifier"])
    else:
        log.info("classes changed since the last model (%s -> %s): a new classifier", config.get("classes"), names)
    return f"fine-tuned from {config.get('identity')}"


# -- the run --------------------------------------------------------------------------------


def _run_key(identity: str, start: str) -> str:
    """The key of a run's checkpoints: its content and where it started from."""
    return hashlib.blake2b(f"{identity} {start}".encode(), digest_size=12).hexdigest()


def iter_train(
    project: Project,
    settings: TrainSettings | None = None,
    *,
    device: str = "auto",
    cancel: threading.Event | None = None,
    from_last: bool = False,
) -> Iterator[TrainProgress]:
    """Train the project's model on its curation as it is now; yields progress; the model
    is saved in project/model/.

    The same content as the saved model: nothing is trained, one 'done' event with
    reused=True. An interrupted run of the same content and start: resumed after its last
    finished epoch. Otherwise a new run, from the pretrained backbone or, with `from_last`,
    fine-tuned from the saved model.

    Examples
    --------
    >>> for event in iter_train(project, TrainSettings.cpu("pos")):   # doctest: +SKIP
    ...     print(event.stage, event.epoch, event.loss)
    """
    settings = settings or TrainSettings.cpu()
    records = training_records(project, settings)
    identity = training_identity(project, settings, records)
    saved = saved_model_config(project)
    if saved is not None and saved.get("identity") == identity:
        losses = saved.get("metrics", {}).get("classifier") or [float("nan")]
        yield TrainProgress("done", 0, 0, 0, 0, float(losses[-1]), 0.0, 0.0, reused=True)
        return
    checkpoints = _Checkpoints(project.layout)
    with checkpoints.running():
        yield from _run(project, settings, records, identity, checkpoints, device=resolve_device(device), cancel=cancel,
                        from_last=from_last)


def _run(project: Project, settings: TrainSettings, records: TrainingRecords, identity: str, checkpoints: _Checkpoints, *,
         device: torch.device, cancel: threading.Event | None, from_last: bool) -> Iterator[TrainProgress]:
    """A training run of the stages, resumed from its checkpoint where there is one."""
    names = list(records.names)
    torch.manual_seed(settings.seed)
    model = PatchModel(project.backbone, project.geometry, len(names), context_cells=settings.context_cells,
                       learn_pooling=settings.learn_pooling, frozen_batch_norm=settings.frozen_batch_norm)
    start = _start_from_last(project, model, names) if from_last else "pretrained"
    model.to(device)
    key = _run_key(identity, start)
    state = checkpoints.load(key)
    start_stage, start_epoch, metrics = 0, 0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        start_stage, start_epoch, metrics = state["stage"], state["epoch"], state["metrics"]
    clean = _clean_data(project, records, settings)
    noisy = _noisy_data(project, records, settings) if settings.use_noisy else None
    for stage_index, stage in enumerate(STAGES):
        if (stage == "selflearn" and noisy is None) or (stage == "supcon" and not settings.contrastive) \
                or stage_index < start_stage:
            continue
        stage_settings: StageSettings = getattr(settings, stage)
        optimizer, scheduler = _optimizer(model, stage, stage_settings)
        first_epoch = start_epoch if stage_index == start_stage else 0
        if state is not None and stage_index == start_stage and first_epoch > 0:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        data = noisy if stage == "selflearn" else clean
        features = _classifier_features(model, clean, settings, device) if stage == "classifier" else None
        for epoch in range(first_epoch, stage_settings.epochs):
            if cancel is not None and cancel.is_set():
                return
            losses: list[float] = []
            generator = _stream(settings.seed, stage, epoch)
            yield from _run_epoch(model, stage, data, features, stage_settings, settings.augment, optimizer, generator, device,
                                  epoch, losses, cancel)
            if cancel is not None and cancel.is_set():
                return  # the epoch was cut short: the last checkpoint stays
            scheduler.step()
            metrics.setdefault(stage, []).append(float(np.mean(losses)) if losses else float("nan"))
            checkpoints.save({
                "key": key, "stage": stage_index, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "metrics": metrics,
            })
        state, start_epoch = None, 0
        checkpoints.save({
            "key": key, "stage": stage_index + 1, "epoch": 0, "model": model.state_dict(),
            "optimizer": {}, "scheduler": {}, "metrics": metrics,
        })
    checks = check_held_out(project, model, names, clean.crops, clean.labels, records.held_out, records.held_out_negatives,
                            context_cells=settings.context_cells, seed=settings.seed, device=device)
    save_model(project, model, names, settings, metrics, identity=identity, start=start, checks=checks)
    checkpoints.clear()
    yield TrainProgress("done", 0, 0, 0, 0, float(metrics.get("classifier", [float("nan")])[-1]), 0.0, 0.0)


def train(
    project: Project,
    settings: TrainSettings | None = None,
    *,
    device: str = "auto",
    cancel: threading.Event | None = None,
    from_last: bool = False,
) -> TrainedModel | None:
    """`iter_train` as one blocking call: the TrainedModel, or None when cancelled.

    Examples
    --------
    >>> model = train(project, TrainSettings.cpu())   # doctest: +SKIP
    >>> model.reused, model.folder                    # doctest: +SKIP
    (False, PosixPath('.../model'))
    """
    last = None
    for last in iter_train(project, settings, device=device, cancel=cancel, from_last=from_last):
        pass
    if last is None or last.stage != "done":
        return None
    config = saved_model_config(project) or {}
    return TrainedModel(project.layout.model, config.get("identity", ""), last.reused, config.get("metrics", {}),
                        saved_check(config))


def saved_check(config: dict | None) -> tuple[ClassCheck, ...]:
    """The held-out check recorded in a saved model's model.yaml (empty when it has none)."""
    return tuple(ClassCheck.from_dict(item) for item in (config or {}).get("check") or ())


def model_check(project: Project) -> tuple[ClassCheck, ...]:
    """How the saved model ranks the curated examples held out of its training, beside
    similarity search and a linear probe: one ClassCheck per class (empty without a saved
    model, or one trained with holdout 0).

    Examples
    --------
    >>> for check in model_check(project):   # doctest: +SKIP
    ...     print(check.verdict())
    disc: held-out ROC-AUC model 0.98, similarity 0.91, probe 0.95 (2 positive(s), 5 other(s))
    """
    return saved_check(saved_model_config(project))


def _optimizer(model: PatchModel, stage: str, settings: StageSettings):
    if stage == "classifier":
        parameters = list(model.classifier.parameters())
    else:
        parameters = model.trainable_backbone_parameters() + list(model.projection.parameters())
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, settings.step_epochs), gamma=settings.gamma)
    return optimizer, scheduler


@dataclass(frozen=True)
class _ClassifierFeatures:
    """The frozen embeddings the classifier stage learns from: clean patches (vectors, labels)
    and negatives (negative_vectors, the class each is not), each with augmented copies."""

    vectors: torch.Tensor
    labels: torch.Tensor
    negative_vectors: torch.Tensor
    negative_labels: torch.Tensor


def _classifier_features(model: PatchModel, data: _Data, settings: TrainSettings, device) -> _ClassifierFeatures:
    vectors, labels = _frozen_features(model, data.crops, data.labels, settings.augment,
                                       _stream(settings.seed, "classifier", "features"), device)
    negatives, negative_labels = torch.zeros(0, model.dim), torch.zeros(0, dtype=torch.int64)
    if settings.negatives_in_classifier and len(data.negatives):
        negatives, negative_labels = _frozen_features(model, data.negatives, data.negative_labels, settings.augment,
                                                      _stream(settings.seed, "classifier", "negative features"), device)
    return _ClassifierFeatures(vectors, labels, negatives, negative_labels)


@torch.no_grad()
def _frozen_features(model: PatchModel, crops: torch.Tensor, labels: torch.Tensor, augment_settings: AugmentSettings,
                     generator: torch.Generator, device,
                     copies: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of the crops and `copies` - 1 augmented copies of them, with their labels."""
    model.eval()
    vectors, out_labels = [], []
    for copy_index in range(copies):
        for start in range(0, len(labels), 64):
            batch = crops[start : start + 64].float()
            if copy_index:
                batch = augment(batch, augment_settings.clean(), generator)
            vectors.append(model.embed(batch.to(device)).cpu())
            out_labels.append(labels[start : start + 64])
    return torch.cat(vectors), torch.cat(out_labels)


def _run_epoch(model, stage, data, features, settings, augment_settings, optimizer, generator, device, epoch, losses,
               cancel) -> Iterator[TrainProgress]:
    labels = features.labels if stage == "classifier" else data.labels
    order = balanced_order(labels, len(labels), generator)
    steps = math.ceil(len(order) / settings.batch_size)
    started = time.perf_counter()
    seen = 0
    model.train(stage != "classifier")
    ntxent, supcon, not_class = NTXentLoss(0.5), SupConWithNegativesLoss(0.07), NotClassLoss()
    for step in range(steps):
        if cancel is not None and cancel.is_set():
            return
        index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if stage == "classifier":
                loss = F.cross_entropy(model.classifier(features.vectors[index].to(device)).float(), labels[index].to(device))
                if len(features.negative_labels):
                    pick = torch.randperm(len(features.negative_labels), generator=generator)[: settings.batch_size]
                    loss = loss + not_class(model.classifier(features.negative_vectors[pick].to(device)),
                                            features.negative_labels[pick].to(device))
            else:
                crops = data.crops[index].float()
                if stage == "selflearn":
                    views = [augment(crops, augment_settings, generator).to(device) for _ in range(2)]
                    loss = ntxent(*(model.project(model.embed(v)) for v in views))
                else:
                    views = torch.cat([augment(crops, augment_settings.clean(), generator) for _ in range(2)]).to(device)
                    batch_labels = torch.cat([labels[index]] * 2).to(device)
                    negatives = negative_labels = None
                    if len(data.negatives):
                        pick = torch.randperm(len(data.negatives), generator=generator)[: settings.batch_size]
                        negatives = model.project(model.embed(data.negatives[pick].float().to(device)))
                        negative_labels = data.negative_labels[pick].to(device)
                    loss = supcon(model.project(model.embed(views)), batch_labels, negatives, negative_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        seen += len(index)
        elapsed = time.perf_counter() - started
        rate = seen / elapsed if elapsed > 0 else 0.0
        remaining = (settings.epochs - epoch - 1) * len(order) + (len(order) - seen)
        yield TrainProgress(stage, epoch + 1, settings.epochs, step + 1, steps, float(np.mean(losses)), rate,
                            remaining / rate if rate > 0 else 0.0)


@dataclass(frozen=True)
class TrainingStatus:
    """Where a project's training stands: a saved model, and/or an interrupted run's last
    checkpoint (stage name and epochs done in it). Given the settings, `training_status` also
    says whether the saved model holds the curation as it is now (`up_to_date`) and whether
    the interrupted run would be resumed by a run from the pretrained backbone (`resumable`:
    its content is still the current one)."""

    has_model: bool
    checkpoint_stage: str | None = None
    checkpoint_epoch: int = 0
    model_stamp: int | None = None  # the saved model's modification time (ns): changes when trained again
    up_to_date: bool | None = None
    resumable: bool | None = None


def training_status(project: Project, settings: TrainSettings | None = None) -> TrainingStatus:
    """Cheap without `settings` (a file stat and a small JSON read, for a UI that redraws
    often); with them it also reads the curation to compare identities.

    Examples
    --------
    >>> training_status(project, TrainSettings.cpu()).up_to_date   # doctest: +SKIP
    False
    """
    model = project.layout.model_weights
    has_model = model.is_file()
    stamp = model.stat().st_mtime_ns if has_model else None
    checkpoints = _Checkpoints(project.layout)
    stage, epoch, key = None, 0, None
    if checkpoints.path.is_file():
        key, stage_index, epoch = checkpoints.key_stage_and_epoch()
        stage = STAGES[stage_index] if stage_index < len(STAGES) else "done"
    up_to_date = resumable = None
    if settings is not None:
        try:
            identity = training_identity(project, settings)
        except ConfigError:
            identity = None
        saved = saved_model_config(project) if has_model else None
        up_to_date = identity is not None and saved is not None and saved.get("identity") == identity
        resumable = None if stage is None else (identity is not None and key == _run_key(identity, "pretrained"))
    return TrainingStatus(has_model, stage, epoch, stamp, up_to_date, resumable)
