"""The staged training of the SimSearch paper (Sec. II-D), resumable and cancellable.

1. selflearn: SimCLR (NT-Xent, tau 0.5) on two augmented views of each noisy patch,
   early layers frozen;
2. supcon: supervised contrastive loss (tau 0.07) on the clean positives of every class
   and clean background, each class's user negatives added to its anchors' denominator;
3. classifier: projection head dropped, embedding frozen, a linear classifier trained
   with cross entropy.

Weighted oversampling balances the classes in every stage. `train` is a generator of
TrainProgress events; it checkpoints after every epoch and, started again with the same
settings, resumes after the last finished epoch.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from ..curation.store import PatchRecord
from ..errors import ConfigError, ProjectError
from ..features.embed import crop_windows, resolve_device
from ..features.geometry import NETWORK_STRIDE, PatchGeometry
from ..files import write_text_atomic
from ..project import Project
from .augment import AugmentSettings, augment
from .losses import NTXentLoss, SupConWithNegativesLoss
from .model import PatchModel

STAGES = ("selflearn", "supcon", "classifier")
STRATEGIES = {"pos": (False, False), "pos+neg": (False, True), "pos+selflearn": (True, False), "pos+neg+selflearn": (True, True)}
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
    max_noisy: int | None = None  # noisy patches used, sampled across classes (None: all)
    # and at most this many network-input pixels of noisy crops (None: no limit): self-learning
    # time grows with the crop area, so this bounds it whatever the patch size
    max_noisy_pixels: int | None = None
    context_cells: int = 2
    seed: int = 0

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
        use_noisy, use_negatives = STRATEGIES[strategy]
        return replace(self, use_noisy=use_noisy, use_negatives=use_negatives)

    @property
    def strategy(self) -> str:
        return {value: key for key, value in STRATEGIES.items()}[(self.use_noisy, self.use_negatives)]

    def fingerprint(self) -> str:
        return hashlib.blake2b(json.dumps(asdict(self), sort_keys=True).encode(), digest_size=8).hexdigest()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainProgress:
    """stage: 'selflearn' | 'supcon' | 'classifier' | 'done'; loss: mean over the epoch so far."""

    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    patches_per_s: float
    eta_s: float


@dataclass
class _Data:
    crops: torch.Tensor  # (N, 3, H, W) float16
    labels: torch.Tensor  # (N,) int64
    negatives: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    negative_labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))


def _crops(project: Project, patches: list[PatchRecord], context_cells: int) -> torch.Tensor:
    """Crops of all patches, reading each image once; float16 to halve memory."""
    by_image: dict[str, list[int]] = {}
    for index, patch in enumerate(patches):
        by_image.setdefault(patch.image_id, []).append(index)
    out = None
    for image_id, indices in by_image.items():
        pixels = project.dataset.read(image_id)
        centres = np.array([(patches[i].y, patches[i].x) for i in indices])
        crops = crop_windows(pixels, project.normalization, project.channels, project.geometry, centres, context_cells=context_cells)
        if out is None:
            out = torch.empty((len(patches), *crops.shape[1:]), dtype=torch.float16)
        out[indices] = crops.half()
    return out if out is not None else torch.zeros(0)


def class_names(project: Project) -> list[str]:
    """Output order of the classifier: the ROI classes in creation order, then background."""
    return [c.name for c in project.store.classes()] + [BACKGROUND]


def _clean_data(project: Project, settings: TrainSettings) -> _Data:
    store = project.store
    names = class_names(project)
    patches, labels = [], []
    for label, name in enumerate(names[:-1]):
        own = store.patches(name, "positive") + [PatchRecord(p.image_id, *p.centre) for p in store.prototypes(name)]
        if not own:
            raise ConfigError(f"training: class {name!r} has no clean positives", hint="confirm the class first")
        patches += own
        labels += [label] * len(own)
    background = [p for p, _, is_background in store.background(confirmed_only=True) if is_background]
    if not background:
        raise ConfigError("training: no clean background", hint="propose and confirm background first")
    patches += background
    labels += [len(names) - 1] * len(background)
    data = _Data(_crops(project, patches, settings.context_cells), torch.tensor(labels))
    if settings.use_negatives:
        negatives, negative_labels = [], []
        for label, name in enumerate(names[:-1]):
            own = store.patches(name, "negative")
            negatives += own
            negative_labels += [label] * len(own)
        if negatives:
            data.negatives = _crops(project, negatives, settings.context_cells)
            data.negative_labels = torch.tensor(negative_labels)
    return data


def _noisy_data(project: Project, settings: TrainSettings, generator: torch.Generator) -> _Data:
    names = class_names(project)
    patches, labels = [], []
    for label, name in enumerate(names):
        own = project.store.noisy(None if name == BACKGROUND else name)
        patches += own
        labels += [label] * len(own)
    if not patches:
        raise ConfigError("training: no noisy patches for self-learning", hint="run noisy extraction first, or train without self-learning")
    cap = noisy_cap(settings, project.geometry)
    if cap is not None and len(patches) > cap:
        keep = _balanced_indices(torch.tensor(labels), cap, generator).tolist()
        patches, labels = [patches[i] for i in keep], [labels[i] for i in keep]
    return _Data(_crops(project, patches, settings.context_cells), torch.tensor(labels))


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


def _balanced_indices(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices drawn with weights inverse to class frequency (weighted oversampling)."""
    frequency = torch.bincount(labels).float()
    weights = 1.0 / frequency[labels]
    return torch.multinomial(weights, count, replacement=len(labels) < count, generator=generator)


class _Checkpoints:
    """training/checkpoint.pt, written atomically after every epoch, and beside it
    checkpoint.json: its stage and epoch with the checkpoint's size and modification time,
    so that `training_status` need not unpickle the weights (16-22 ms) to learn them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / "checkpoint.pt"
        self.summary_path = folder / "checkpoint.json"

    def load(self, fingerprint: str) -> dict | None:
        if not self.path.is_file():
            return None
        state = self._read()
        return state if state.get("fingerprint") == fingerprint else None

    def _read(self) -> dict:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ProjectError(f"training checkpoint {self.path} is unreadable: {exc}", hint="delete it to start training again") from exc

    def save(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)
        summary = {"stage": int(state["stage"]), "epoch": int(state["epoch"]), "checkpoint": self._stamp()}
        write_text_atomic(self.summary_path, json.dumps(summary))

    def _stamp(self) -> list[int]:
        info = self.path.stat()
        return [info.st_size, info.st_mtime_ns]

    def stage_and_epoch(self) -> tuple[int, int]:
        """From the summary when it describes the checkpoint as it is now, else from the checkpoint."""
        try:
            summary = json.loads(self.summary_path.read_text())
            if summary["checkpoint"] == self._stamp():
                return int(summary["stage"]), int(summary["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no summary, or a stale or damaged one: the checkpoint itself says
        state = self._read()
        return int(state["stage"]), int(state["epoch"])


def train(
    project: Project,
    settings: TrainSettings | None = None,
    *,
    device: str = "auto",
    cancel: threading.Event | None = None,
) -> Iterator[TrainProgress]:
    """Train the project's model; yields progress; the model is saved in project/model/."""
    settings = settings or TrainSettings.cpu()
    device = resolve_device(device)
    if project.geometry is None:
        raise ConfigError("training: the project has no patch size yet", hint="add prototypes first")
    names = class_names(project)
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    clean = _clean_data(project, settings)
    noisy = _noisy_data(project, settings, generator) if settings.use_noisy else None
    model = PatchModel(project.backbone, project.geometry, len(names), context_cells=settings.context_cells).to(device)
    fingerprint = hashlib.blake2b(
        (settings.fingerprint() + json.dumps(names) + project.backbone_spec.weights_sha256
         + str(len(clean.labels)) + str(0 if noisy is None else len(noisy.labels))).encode(), digest_size=8
    ).hexdigest()
    checkpoints = _Checkpoints(project.folder / "training")
    state = checkpoints.load(fingerprint)
    start_stage, start_epoch, metrics = 0, 0, {}
    if state is not None:
        model.load_state_dict(state["model"])
        generator.set_state(state["generator"])
        start_stage, start_epoch, metrics = state["stage"], state["epoch"], state["metrics"]
    stages = [s for s in STAGES if s != "selflearn" or noisy is not None]
    for stage_index, stage in enumerate(STAGES):
        if stage not in stages or stage_index < start_stage:
            continue
        stage_settings: StageSettings = getattr(settings, stage)
        optimizer, scheduler = _optimizer(model, stage, stage_settings)
        first_epoch = start_epoch if stage_index == start_stage else 0
        if state is not None and stage_index == start_stage and first_epoch > 0:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        data = noisy if stage == "selflearn" else clean
        features = _frozen_features(model, clean, generator, device) if stage == "classifier" else None
        for epoch in range(first_epoch, stage_settings.epochs):
            if cancel is not None and cancel.is_set():
                return
            losses = []
            for progress in _run_epoch(model, stage, data, features, stage_settings, optimizer, generator, device, epoch, losses, cancel):
                yield progress
            if cancel is not None and cancel.is_set():
                return  # the epoch was cut short: the last checkpoint stays
            scheduler.step()
            metrics.setdefault(stage, []).append(float(np.mean(losses)) if losses else float("nan"))
            checkpoints.save({
                "fingerprint": fingerprint, "stage": stage_index, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(), "metrics": metrics,
            })
        state, start_epoch = None, 0
        checkpoints.save({
            "fingerprint": fingerprint, "stage": stage_index + 1, "epoch": 0, "model": model.state_dict(),
            "optimizer": {}, "scheduler": {}, "generator": generator.get_state(), "metrics": metrics,
        })
    save_model(project, model, names, settings, metrics)
    yield TrainProgress("done", 0, 0, 0, 0, float(metrics.get("classifier", [float("nan")])[-1]), 0.0, 0.0)


def _optimizer(model: PatchModel, stage: str, settings: StageSettings):
    if stage == "classifier":
        parameters = list(model.classifier.parameters())
    else:
        parameters = model.trainable_backbone_parameters() + list(model.projection.parameters())
    optimizer = torch.optim.Adam(parameters, lr=settings.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, settings.step_epochs), gamma=settings.gamma)
    return optimizer, scheduler


@torch.no_grad()
def _frozen_features(model: PatchModel, data: _Data, generator: torch.Generator, device, copies: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of the clean crops and `copies` - 1 augmented copies, for the classifier stage."""
    model.eval()
    vectors, labels = [], []
    for copy_index in range(copies):
        for start in range(0, len(data.labels), 64):
            batch = data.crops[start : start + 64].float()
            if copy_index:
                batch = augment(batch, AugmentSettings.clean(), generator)
            vectors.append(model.embed(batch.to(device)).cpu())
            labels.append(data.labels[start : start + 64])
    return torch.cat(vectors), torch.cat(labels)


def _run_epoch(model, stage, data, features, settings, optimizer, generator, device, epoch, losses, cancel) -> Iterator[TrainProgress]:
    labels = features[1] if stage == "classifier" else data.labels
    order = _balanced_indices(labels, len(labels), generator)
    steps = math.ceil(len(order) / settings.batch_size)
    started = time.perf_counter()
    seen = 0
    model.train(stage != "classifier")
    ntxent, supcon = NTXentLoss(0.5), SupConWithNegativesLoss(0.07)
    for step in range(steps):
        if cancel is not None and cancel.is_set():
            return
        index = order[step * settings.batch_size : (step + 1) * settings.batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if stage == "classifier":
                loss = F.cross_entropy(model.classifier(features[0][index].to(device)).float(), labels[index].to(device))
            else:
                crops = data.crops[index].float()
                if stage == "selflearn":
                    views = [augment(crops, AugmentSettings(), generator).to(device) for _ in range(2)]
                    loss = ntxent(*(model.project(model.embed(v)) for v in views))
                else:
                    views = torch.cat([augment(crops, AugmentSettings.clean(), generator) for _ in range(2)]).to(device)
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
    """Where a project's training stands: a finished model, and/or an interrupted run's last
    checkpoint (stage name and epochs done in it); `train` with the same settings resumes it."""

    has_model: bool
    checkpoint_stage: str | None = None
    checkpoint_epoch: int = 0
    model_stamp: int | None = None  # the saved model's modification time (ns): changes when trained again


def training_status(project: Project) -> TrainingStatus:
    model = project.folder / "model" / "model.pt"
    has_model = model.is_file()
    stamp = model.stat().st_mtime_ns if has_model else None
    checkpoints = _Checkpoints(project.folder / "training")
    if not checkpoints.path.is_file():
        return TrainingStatus(has_model, model_stamp=stamp)
    stage_index, epoch = checkpoints.stage_and_epoch()
    return TrainingStatus(has_model, STAGES[stage_index] if stage_index < len(STAGES) else "done", epoch, stamp)


def save_model(project: Project, model: PatchModel, names: list[str], settings: TrainSettings, metrics: dict) -> Path:
    folder = project.folder / "model"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"model.{os.getpid()}.tmp"
    torch.save({"network": model.network.state_dict(), "classifier": model.classifier.state_dict()}, tmp)
    tmp.replace(folder / "model.pt")
    config = {
        "classes": names,
        "backbone": project.backbone_spec.to_dict(),
        "geometry": project.geometry.to_dict(),
        "normalization": project.normalization.to_dict(),
        "channels": list(project.channels),
        "strategy": settings.strategy,
        "settings": settings.to_dict(),
        "metrics": metrics,
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder / "model.pt"
