"""The staged training of the SimSearch paper (Sec. II-D), resumable and cancellable.

1. selflearn: SimCLR (NT-Xent, tau 0.5) on two augmented views of each noisy patch,
   early layers frozen;
2. supcon: supervised contrastive loss (tau 0.07) on the clean positives of every class
   and clean background, each class's user negatives added to its anchors' denominator;
3. classifier: projection head dropped, embedding frozen, a linear classifier trained
   with cross entropy.

Each stage is an object (`simsearch.training.stages`) holding what differs between stages:
its data, its loss, the parameters it trains and its schedule (its `StageSettings`). This
module runs the list of stages a run's settings choose, the same way for each: epochs,
checkpoints, resume, progress events and cancel. Every stage draws class-balanced epochs: each
class fills 1/k of an epoch's places (k classes), the rare ones repeated, the common ones
covered once in random order.

The strategies (`TRAINING_STRATEGIES`, simplest first) choose the stages and the data: "probe"
trains only the linear classifier on the frozen pretrained features (beyond the paper; seconds
on a CPU), "pos" adds the supervised contrastive stage, "+neg" the user's negatives, and
"+selflearn" self-learning on the noisy patches first. Beyond the paper too, the CPU preset
trains a probe beside the model of the other strategies and detection averages the two
(`TrainSettings.probe_share`), and every strategy's detections are gated by the similarity to
the class's prototypes (`TrainSettings.similarity_gate`); the paper preset trains the model
alone and detects with its probabilities.

>>> TRAINING_STRATEGIES
('probe', 'pos', 'pos+neg', 'pos+selflearn', 'pos+neg+selflearn')
>>> [TrainSettings.cpu(name).contrastive for name in TRAINING_STRATEGIES]
[False, True, True, True, True]
>>> TrainSettings().strategy    # the paper's
'pos+neg+selflearn'

A run is keyed on its content: a hash of every record it learns from (positives, prototypes,
negatives, background, noisy patches, each with image, position and class), the settings,
the backbone weights and the patch geometry. `iter_train` yields TrainProgress events:
with the same content as the saved model it reuses that model at once; with an interrupted
run of the same content it resumes after the last finished epoch (exactly: each epoch draws
from its own seeded random stream); otherwise it trains again, from the pretrained backbone
or, with `from_last`, from the last model. `train` is the same as one blocking call.

What a run learns from is in `simsearch.training.records`, its seeded sampling in
`simsearch.training.sampling`, its checkpoint and saved model in `simsearch.training.saved`;
the names of those modules the rest of SimSearch uses are importable from here too.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Generator, Iterator

import numpy as np
import torch

from simsearch.curation.session import Curation
from simsearch.features.embed import resolve_device
from simsearch.project.project import Project
from simsearch.training.augment import AugmentSettings
from simsearch.training.check import ClassCheck, check_held_out
from simsearch.training.model import PatchModel
# part of this module's interface too (`__all__`): tests, inference and the evaluation import them from here
from simsearch.training.records import (BACKGROUND, TrainingRecords, class_names, crop_pixels, crops_within,
                                        examples_to_hold_one_out, hold_out, noisy_cap, training_records)
from simsearch.training.sampling import balanced_order, balanced_subset, stream
from simsearch.training.saved import (Checkpoints, save_model, saved_check, saved_model_config,
                                      start_from_last, trained_model_config)
from simsearch.training.stages import STAGE_KINDS, ClassifierStage, Stage, StageData, training_stages
from simsearch.util.errors import ConfigError

__all__ = [
    # defined here
    "LATER_SETTINGS", "STAGES", "STRATEGIES", "TRAINING_STRATEGIES", "TRAINING_VERSION", "StageSettings", "TrainSettings",
    "TrainProgress", "TrainedModel", "TrainingStatus", "iter_train", "model_check", "train", "training_identity",
    "training_status",
    # from records, sampling, saved and stages
    "BACKGROUND", "TrainingRecords", "class_names", "crop_pixels", "crops_within", "hold_out", "noisy_cap",
    "training_records", "balanced_order", "balanced_subset", "stream", "Checkpoints", "save_model", "saved_check",
    "saved_model_config", "start_from_last", "trained_model_config", "Stage", "StageData", "training_stages",
]

STAGES = tuple(kind.name for kind in STAGE_KINDS)  # ("selflearn", "supcon", "classifier")
# part of every run's identity: bump it when the same data and settings give another model
# (2: class-balanced epochs, per-epoch random streams, content-keyed runs; 3: each negative
# weighs as one clean example in the classifier stage; 4: a classifier epoch draws EPOCH_DRAWS
# embeddings of each example, not all its copies; 5: each example of a class as often as the
# others in a classifier epoch, a self-learning batch's repeated patch not its own negative, a
# positive on a prototype's own object never held out, no off-centre view on a held-out positive).
# Not bumped when the held-out fifth
# stopped depending on the training seed (2026-12-05): seed 0's fifth is unchanged, and models
# saved with another seed before that day had 4 classifier copies, so train again anyway
TRAINING_VERSION = 5
# settings added since TRAINING_VERSION, with the value at which they change nothing: at that
# value a setting is left out of a run's identity, so models saved before it keep theirs
LATER_SETTINGS = {"pretrained_share": 0.0, "probe_share": 0.0, "similarity_gate": False, "classifier_copies": 4}
# strategy -> (use_noisy, use_negatives, contrastive). "probe" is beyond the paper: only the
# linear classifier, on the frozen pretrained features (seconds on a CPU), with the negatives
STRATEGIES = {"probe": (False, True, False), "pos": (False, False, True), "pos+neg": (False, True, True),
              "pos+selflearn": (True, False, True), "pos+neg+selflearn": (True, True, True)}
TRAINING_STRATEGIES = tuple(STRATEGIES)  # the public names, simplest first


@dataclass(frozen=True)
class StageSettings:
    """The schedule of one stage: its epochs, batch size and Adam learning rate, multiplied by
    `gamma` every `step_epochs` epochs.

    Examples
    --------
    >>> supcon = StageSettings(epochs=8, batch_size=32, lr=1e-3, step_epochs=6, gamma=0.1)
    >>> supcon == TrainSettings.cpu().supcon
    True
    >>> [supcon.lr * supcon.gamma ** (epoch // supcon.step_epochs) for epoch in (0, 5, 6)]   # each epoch's rate
    [0.001, 0.001, 0.0001]
    """

    epochs: int
    batch_size: int
    lr: float
    step_epochs: int  # multiply the learning rate by `gamma` every this many epochs
    gamma: float


@dataclass(frozen=True)
class TrainSettings:
    """The settings of a training run: one StageSettings per stage, the strategy's flags
    (`use_noisy`: self-learning; `use_negatives`; `contrastive`: the supervised contrastive
    stage), and what the stages learn from. Paper defaults (`paper()`) suit a GPU; `cpu()`
    finishes in minutes on the sample data.

    Examples
    --------
    >>> settings = TrainSettings.cpu("pos+neg")
    >>> settings.strategy, settings.use_noisy, settings.use_negatives, settings.contrastive
    ('pos+neg', False, True, True)
    >>> settings.classifier
    StageSettings(epochs=40, batch_size=64, lr=0.01, step_epochs=30, gamma=0.1)
    >>> replace(settings, use_noisy=True).strategy    # the flags name the strategy
    'pos+neg+selflearn'
    """

    selflearn: StageSettings = StageSettings(100, 128, 1e-3, 50, 0.05)
    supcon: StageSettings = StageSettings(50, 32, 1e-3, 25, 0.1)
    classifier: StageSettings = StageSettings(100, 64, 1e-3, 50, 0.1)
    use_noisy: bool = True
    use_negatives: bool = True
    contrastive: bool = True  # False: no supervised contrastive stage (the probe)
    # beyond the paper: the classifier stage also learns from the negatives ("not this
    # class", NotClassLoss; each weighs as one clean example), not only the contrastive
    # stage's denominator
    negatives_in_classifier: bool = True
    # the classifier stage learns from the embeddings of each example and this many - 1
    # augmented copies of it, computed once, an epoch drawing 4 of them (EPOCH_DRAWS): with 4
    # copies (until 2026-12-05) the training seed moved a trial's PR-AUC by up to 0.11 (the planted
    # smear's probe); 16 cut the seed's spread 2.4-2.6x on three of four noisy rows
    # (benchmarks/results/issue17-seeds, issue17-epoch-draws)
    classifier_copies: int = 16
    # beyond the paper: each class example also trains as background half a patch off its
    # centre (`off_centre_views`), so that a clump of touching objects gives one peak each
    off_centre_views: bool = True
    # beyond the paper: after the contrastive stages the backbone moves this share of the way
    # back to its pretrained weights (`blend_weights`, WiSE-FT), before the classifier stage;
    # 0: the fine-tuned backbone, as the paper
    pretrained_share: float = 0.0
    # beyond the paper: a linear probe on the frozen pretrained features is trained beside the
    # model on the same examples (the "probe" strategy's classifier), and detection averages the
    # two models' class probabilities, this share of the probe's (`probe_average`); 0: the
    # trained model alone, as the paper
    probe_share: float = 0.0
    # beyond the paper: detection scores each class as the geometric mean of its probability
    # and the patch's similarity to the class's prototypes (`gate_by_similarity`: cosine on the
    # pretrained embedding, the best over the prototypes and their rotations, 0 below 0), so
    # that a patch unlike every example the user gave is not detected however the classifier
    # extrapolates; False: the probability alone, as the paper
    similarity_gate: bool = False
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
        """The paper's settings (for a GPU: 100 self-learning, 50 contrastive and 100
        classifier epochs), for `strategy`, one of TRAINING_STRATEGIES; ConfigError for another.

        Examples
        --------
        >>> settings = TrainSettings.paper()
        >>> settings.strategy, settings.selflearn.epochs, settings.supcon.epochs, settings.classifier.epochs
        ('pos+neg+selflearn', 100, 50, 100)
        >>> TrainSettings.paper("pos").use_negatives
        False
        """
        return cls().with_strategy(strategy)

    @classmethod
    def cpu(cls, strategy: str = "pos+neg+selflearn") -> "TrainSettings":
        """Settings that finish in minutes on a CPU, for `strategy`, one of TRAINING_STRATEGIES
        (ConfigError for another): short stages, at most 256 noisy crops, and beyond the paper
        the probe's average (`probe_share` 0.5) and the similarity gate.

        Examples
        --------
        >>> settings = TrainSettings.cpu("pos+neg")
        >>> settings.selflearn.epochs, settings.supcon.epochs, settings.classifier.epochs, settings.max_noisy
        (4, 8, 40, 256)
        >>> settings.probe_share, settings.similarity_gate
        (0.5, True)
        """
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
            # the plain mean of the trained model and the probe met max(similarity, probe) on
            # every BCCD, grey 16-bit and planted-nuclei class where the model alone missed the
            # red cells (P 10, N 5; benchmarks/results/issue17-standing/ensemble, README)
            probe_share=0.5,
            # where the classifiers ranked first what the curation never showed (leukocytes on a
            # planted smear: infected cells 0.695 -> 0.799, P 5; README "A similarity gate")
            similarity_gate=True,
        ).with_strategy(strategy)

    def with_strategy(self, strategy: str) -> "TrainSettings":
        """A copy with the flags of `strategy` (`use_noisy`, `use_negatives`, `contrastive`), one
        of TRAINING_STRATEGIES; every other setting as it is. ConfigError for another name.

        Examples
        --------
        >>> settings = TrainSettings.cpu().with_strategy("probe")
        >>> settings.strategy, settings.use_noisy, settings.use_negatives, settings.contrastive
        ('probe', False, True, False)
        >>> settings.classifier == TrainSettings.cpu().classifier
        True
        """
        if strategy not in STRATEGIES:
            raise ConfigError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
        use_noisy, use_negatives, contrastive = STRATEGIES[strategy]
        return replace(self, use_noisy=use_noisy, use_negatives=use_negatives, contrastive=contrastive)

    @property
    def strategy(self) -> str:
        """The name of the strategy the flags (`use_noisy`, `use_negatives`, `contrastive`) make,
        one of TRAINING_STRATEGIES, or 'custom' when they make none of them."""
        flags = (self.use_noisy, self.use_negatives, self.contrastive)
        return {value: key for key, value in STRATEGIES.items()}.get(flags, "custom")

    @property
    def probe_average(self) -> float:
        """The probe's share of detection's class probabilities: `probe_share` where the
        strategy trains the embedding (a contrastive or self-learning stage); 0 for the probe
        strategy, whose model is the probe.

        Examples
        --------
        >>> TrainSettings.cpu().probe_average, TrainSettings.cpu("probe").probe_average, TrainSettings.paper().probe_average
        (0.5, 0.0, 0.0)
        >>> replace(TrainSettings.cpu("probe"), use_noisy=True).probe_average   # a run file's self-learning probe
        0.5
        """
        return self.probe_share if self.contrastive or self.use_noisy else 0.0

    def to_dict(self) -> dict:
        """Every setting as a plain dict, the stages and augmentations as nested dicts."""
        return asdict(self)

    def identity_dict(self) -> dict:
        """The settings as a run's identity holds them: `to_dict` with the probe's share as the
        strategy uses it (`probe_average`), without the settings added since TRAINING_VERSION
        that are at their no-op value (`LATER_SETTINGS`).

        Examples
        --------
        >>> "pretrained_share" in TrainSettings.cpu().identity_dict()
        False
        >>> replace(TrainSettings.cpu(), pretrained_share=0.5).identity_dict()["pretrained_share"]
        0.5
        >>> "probe_share" in TrainSettings.cpu("probe").identity_dict()   # the probe has no probe beside it
        False
        """
        values = {**self.to_dict(), "probe_share": self.probe_average}
        return {key: value for key, value in values.items() if key not in LATER_SETTINGS or value != LATER_SETTINGS[key]}


@dataclass(frozen=True)
class TrainProgress:
    """One event of a run: after each optimizer step, the stage ('selflearn' | 'supcon' |
    'classifier' | 'probe': the probe trained beside the model, `TrainSettings.probe_share`), its epoch (from 1) of `epochs`, the step (from 1) of `steps` in the epoch,
    the mean loss over the epoch so far, the throughput and the time left in the stage; last,
    one 'done' event. reused (on 'done' only): the saved model already holds this content,
    nothing was trained.

    Examples
    --------
    >>> event = TrainProgress("supcon", 2, 8, 3, 10, loss=1.25, patches_per_s=40.0, eta_s=95.0)
    >>> f"{event.stage} epoch {event.epoch}/{event.epochs}, step {event.step}/{event.steps}: loss {event.loss:.2f}"
    'supcon epoch 2/8, step 3/10: loss 1.25'
    >>> event.reused
    False
    """

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
    earlier model of the same content was reused, the per-epoch losses of each stage, the
    check on held-out curated examples (one ClassCheck per class; empty without a holdout) and
    the strategy it was trained with ('' where not known).

    Examples
    --------
    >>> from pathlib import Path
    >>> trained = TrainedModel(Path("project/model"), "5f3c0a9e", reused=False,
    ...                        metrics={"supcon": [2.2, 2.0], "classifier": [1.04, 0.62, 0.12]})
    >>> trained.metrics["classifier"][-1], trained.check     # the last epoch's loss; no holdout
    (0.12, ())
    >>> model = train(project, TrainSettings.cpu("pos"))       # doctest: +SKIP
    """

    folder: Path
    identity: str
    reused: bool
    metrics: dict
    check: tuple[ClassCheck, ...] = ()
    strategy: str = ""


def training_identity(project: Project, settings: TrainSettings, records: TrainingRecords | None = None) -> str:
    """The identity of a run: a hash of everything it learns from (the records, the settings,
    the backbone weights, the patch geometry, normalisation and channels). The same identity
    trains the same model; any change to the curation gives another.

    Examples
    --------
    The same content, the same identity; other settings, another; a model trained on it
    records it in its model.yaml:

    >>> identity = training_identity(project, TrainSettings.cpu("pos"))       # doctest: +SKIP
    >>> identity == training_identity(project, TrainSettings.cpu("pos"))      # doctest: +SKIP
    True
    >>> identity == training_identity(project, TrainSettings.cpu("pos+neg"))  # doctest: +SKIP
    False
    >>> train(project, TrainSettings.cpu("pos")).identity == identity         # doctest: +SKIP
    True
    """
    if project.geometry is None:
        raise ConfigError("training: the project has no patch size yet", hint="add prototypes first")
    records = records or training_records(project, settings)
    content = {
        "version": TRAINING_VERSION,
        "settings": settings.identity_dict(),
        "records": records.digest(),
        "backbone": [project.backbone_spec.name, project.backbone_spec.weights_sha256],
        "geometry": project.geometry.to_dict(),
        "normalization": project.normalization.fingerprint(),
        "channels": list(project.channels),
    }
    return hashlib.blake2b(json.dumps(content, sort_keys=True).encode(), digest_size=12).hexdigest()


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
    checkpoints = Checkpoints(project.layout)
    with checkpoints.running():
        yield from _run(project, settings, records, identity, checkpoints, device=resolve_device(device), cancel=cancel,
                        from_last=from_last)


def _run(project: Project, settings: TrainSettings, records: TrainingRecords, identity: str, checkpoints: Checkpoints, *,
         device: torch.device, cancel: threading.Event | None, from_last: bool) -> Iterator[TrainProgress]:
    """A training run of the settings' stages, resumed from its checkpoint where there is one;
    then the check on the held-out examples, the saved model and a 'done' event."""
    names = list(records.names)
    backbone = project.backbone  # loaded (if it was not) before the seed: loading draws random numbers
    torch.manual_seed(settings.seed)  # the heads' initial weights
    model = PatchModel(backbone, project.geometry, len(names), context_cells=settings.context_cells,
                       learn_pooling=settings.learn_pooling, frozen_batch_norm=settings.frozen_batch_norm)
    start = start_from_last(project, model, names) if from_last else "pretrained"
    model.to(device)
    key = _run_key(identity, start)
    resume = _Resume.from_checkpoint(checkpoints.load(key))
    if resume.model is not None:
        model.load_state_dict(resume.model)
    clean = StageData.load(project, records.clean, settings.context_cells, records.negatives)
    noisy = StageData.load(project, records.noisy, settings.context_cells) if settings.use_noisy else None
    runner = _Runner(model, checkpoints, key, seed=settings.seed, device=device, cancel=cancel)
    # the model trains a copy of the backbone's network, which stays pretrained
    metrics = yield from runner.run(training_stages(settings, clean, noisy, backbone.network), resume)
    if metrics is None:
        return  # cancelled: the last checkpoint stays
    probe = None
    if settings.probe_average:
        probe = yield from _probe_beside(project, settings, clean, names, device=device, cancel=cancel)
        if probe is None:
            return  # cancelled: the checkpoint of the finished stages stays, and the probe trains again
        metrics["probe"] = probe.metrics
    gate = gate_prototypes(project, names) if settings.similarity_gate else None
    checks = check_held_out(project, model, names, clean.crops, clean.labels, records.held_out, records.held_out_negatives,
                            context_cells=settings.context_cells, seed=settings.seed, device=device,
                            probe_beside=None if probe is None else (probe.model.classifier, settings.probe_average),
                            gate=gate)
    checks = [replace(check, strategy=settings.strategy,
                      to_check=0 if check.positives else max(0, examples_to_hold_one_out(settings.holdout) - records.holdable[label]))
              for label, check in enumerate(checks)]
    save_model(project, model, names, settings, metrics, identity=identity, start=start, checks=checks,
               probe=None if probe is None else probe.model, gate=gate)
    checkpoints.clear()
    yield TrainProgress("done", 0, 0, 0, 0, float(metrics.get("classifier", [float("nan")])[-1]), 0.0, 0.0)


def gate_prototypes(project: Project, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """What detection's similarity gate (`TrainSettings.similarity_gate`) compares patches with:
    every prototype of the classes of `names` (background last) and its rotations on the
    pretrained embedding, as similarity search compares them (`Curation.prototype_vectors`,
    (K, D)), and each row's class index (K,)."""
    curation = Curation(project)
    vectors = [curation.prototype_vectors(name) for name in names[:-1]]
    classes = np.concatenate([np.full(len(rows), index, np.int64) for index, rows in enumerate(vectors)])
    return torch.from_numpy(np.concatenate(vectors).astype(np.float32)), torch.from_numpy(classes)


@dataclass(frozen=True)
class _Probe:
    """The probe trained beside a model: a PatchModel whose embedding stays pretrained, and
    the classifier's per-epoch losses."""

    model: PatchModel
    metrics: list[float]


def _probe_beside(project: Project, settings: TrainSettings, clean: StageData, names: list[str], *,
                  device: torch.device, cancel: threading.Event | None) -> Generator[TrainProgress, None, _Probe | None]:
    """The linear probe averaged with the model (`TrainSettings.probe_average`): the "probe"
    strategy's run on the same examples (its classifier stage alone on a pretrained PatchModel,
    seeded as that run: the same weights to the bit), shown as stage "probe". Not checkpointed:
    it takes seconds, and a run cancelled here trains it again. None when cancelled."""
    torch.manual_seed(settings.seed)  # the classifier's initial weights, as in a run of the probe strategy
    model = PatchModel(project.backbone, project.geometry, len(names), context_cells=settings.context_cells,
                       frozen_batch_norm=settings.frozen_batch_norm).to(device)
    stages = training_stages(replace(settings, use_noisy=False, contrastive=False), clean, None)
    runner = _Runner(model, None, "", seed=settings.seed, device=device, cancel=cancel, shown_as="probe")
    metrics = yield from runner.run(stages, _Resume())
    return None if metrics is None else _Probe(model, metrics[ClassifierStage.name])


@dataclass(frozen=True)
class _Resume:
    """Where a run starts: after `epoch` epochs of the stage at place `stage` of STAGES (the
    stages before it finished), with the model, optimizer and scheduler states and the
    per-epoch losses of each stage saved then (a new run: at the start, nothing saved)."""

    stage: int = 0
    epoch: int = 0
    model: dict | None = None
    optimizer: dict = field(default_factory=dict)
    scheduler: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, state: dict | None) -> "_Resume":
        if state is None:
            return cls()
        return cls(state["stage"], state["epoch"], state["model"], state["optimizer"], state["scheduler"], state["metrics"])

    def epochs_done(self, place: int) -> int | None:
        """The epochs of the stage at `place` of STAGES already trained; None: it is finished."""
        if place < self.stage:
            return None
        return self.epoch if place == self.stage else 0


class _Runner:
    """Runs stages on one model, each the same way: epoch by epoch, each epoch from its own
    random stream, progress after every step, a checkpoint after every epoch and stage; it
    stops as soon as `cancel` is set, leaving the last checkpoint. Without `checkpoints` it
    saves none; with `shown_as` its progress events name that stage instead of each stage's own."""

    def __init__(self, model: PatchModel, checkpoints: Checkpoints | None, key: str, *, seed: int, device: torch.device,
                 cancel: threading.Event | None, shown_as: str | None = None):
        self.model, self.checkpoints, self.key = model, checkpoints, key
        self.seed, self.device, self.cancel = seed, device, cancel
        self.shown_as = shown_as

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def run(self, stages: list[Stage], resume: _Resume) -> Generator[TrainProgress, None, dict | None]:
        """Train `stages` on from `resume`; returns the per-epoch losses of each stage (those
        of `resume` included), or None when cancelled."""
        metrics = {name: list(losses) for name, losses in resume.metrics.items()}
        for stage in stages:
            place = STAGES.index(stage.name)  # a checkpoint names a stage by its place, whatever the run's stages
            done = resume.epochs_done(place)
            if done is None:
                continue
            optimizer, scheduler = stage.optimizer(self.model)
            if done:
                optimizer.load_state_dict(resume.optimizer)
                scheduler.load_state_dict(resume.scheduler)
            stage.prepare(self.model, self.device)
            for epoch in range(done, stage.schedule.epochs):
                if self.cancelled():
                    return None
                losses = yield from self._epoch(stage, optimizer, epoch)
                if self.cancelled():
                    return None  # the epoch was cut short: the last checkpoint stays
                scheduler.step()
                metrics.setdefault(stage.name, []).append(float(np.mean(losses)) if losses else float("nan"))
                self._save(place, epoch + 1, metrics, optimizer.state_dict(), scheduler.state_dict())
            stage.finish(self.model)
            self._save(place + 1, 0, metrics, {}, {})
        return metrics

    def _epoch(self, stage: Stage, optimizer: torch.optim.Optimizer, epoch: int) -> Generator[TrainProgress, None, list[float]]:
        """One epoch of `stage`: a class-balanced order of its examples, batch by batch; returns
        the batches' losses (fewer when cancelled)."""
        generator = stream(self.seed, stage.name, epoch)
        order = stage.epoch_order(generator)
        schedule = stage.schedule
        steps = stage.steps(len(order))
        started, seen, losses = time.perf_counter(), 0, []
        self.model.train(stage.trains_embedding)
        device = self.device
        for step in range(steps):
            if self.cancelled():
                return losses
            index = order[step * schedule.batch_size : (step + 1) * schedule.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = stage.loss(self.model, index, generator, device)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            seen += len(index)
            elapsed = time.perf_counter() - started
            rate = seen / elapsed if elapsed > 0 else 0.0
            remaining = (schedule.epochs - epoch - 1) * len(order) + (len(order) - seen)
            yield TrainProgress(self.shown_as or stage.name, epoch + 1, schedule.epochs, step + 1, steps,
                                float(np.mean(losses)), rate, remaining / rate if rate > 0 else 0.0)
        return losses

    def _save(self, place: int, epoch: int, metrics: dict, optimizer: dict, scheduler: dict) -> None:
        """The checkpoint after `epoch` epochs of the stage at `place` of STAGES."""
        if self.checkpoints is None:
            return
        self.checkpoints.save({"key": self.key, "stage": place, "epoch": epoch, "model": self.model.state_dict(),
                               "optimizer": optimizer, "scheduler": scheduler, "metrics": metrics})


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
    return replace(saved_model(project) or TrainedModel(project.layout.model, "", False, {}), reused=last.reused)


def saved_model(project: Project) -> TrainedModel | None:
    """The project's saved model as `train` returned it (`reused` False): its content identity,
    each stage's per-epoch losses and the held-out check, from its model.yaml; None without a
    model, or where model.yaml does not describe model.pt.

    Examples
    --------
    >>> model = saved_model(project)                                          # doctest: +SKIP
    >>> {stage: len(losses) for stage, losses in model.metrics.items()}     # doctest: +SKIP
    {'selflearn': 4, 'supcon': 8, 'classifier': 40, 'probe': 40}
    """
    config = saved_model_config(project)
    if config is None:
        return None
    return TrainedModel(project.layout.model, config.get("identity", ""), False, config.get("metrics", {}),
                        saved_check(config), config.get("strategy", ""))


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
    model = saved_model(project)
    return model.check if model is not None else ()


@dataclass(frozen=True)
class TrainingStatus:
    """Where a project's training stands: a saved model, and/or an interrupted run's last
    checkpoint (stage name and epochs done in it). Given the settings, `training_status` also
    says whether the saved model holds the curation as it is now (`up_to_date`) and whether
    the interrupted run would be resumed by a run from the pretrained backbone (`resumable`:
    its content is still the current one).

    Examples
    --------
    >>> status = TrainingStatus(has_model=False, checkpoint_stage="supcon", checkpoint_epoch=3, resumable=True)
    >>> f"{status.checkpoint_stage}: {status.checkpoint_epoch} epoch(s) done" if status.resumable else "start again"
    'supcon: 3 epoch(s) done'
    >>> training_status(project, TrainSettings.cpu()).up_to_date   # doctest: +SKIP
    False
    """

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
    checkpoints = Checkpoints(project.layout)
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
