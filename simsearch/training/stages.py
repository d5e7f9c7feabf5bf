"""The stages of a training run (paper Sec. II-D), one object each, holding all that differs
between them; `simsearch.training.loop` runs a list of them the same way, whatever they are.

A stage has
- a name (in progress events, metrics and the seeds of its epochs' random streams);
- a schedule: its `StageSettings` (epochs, batch size, learning rate, step decay), from which
  it makes its optimizer (Adam) and learning-rate scheduler (StepLR);
- the parameters it trains (`trainable`); every other parameter stays as it is;
- its data: the examples an epoch draws from (`labels`: one class-balanced epoch order is
  drawn over them) and how a batch of them becomes a loss (`loss`);
- `trains_embedding`: whether the model is in training mode during the stage.

The stages:
1. `SelfLearnStage`: SimCLR (NT-Xent, tau 0.5) on two augmented views of each noisy patch;
2. `SupConStage`: supervised contrastive loss (tau 0.07) on two clean-augmented views of
   the clean examples, each class's negatives added to its anchors' denominator;
3. `ClassifierStage`: the embedding frozen, the linear classifier trained with cross
   entropy (and "not this class" on the negatives) on embeddings computed once (`prepare`).
Both contrastive stages train the unfrozen backbone layers (the model's frozen prefix stays),
the learnt pooling window if any and the projection head; the classifier stage only the
classifier.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from simsearch.project.project import Project
from simsearch.training.augment import AugmentSettings, augment
from simsearch.training.crops import patch_crops
from simsearch.training.losses import NotClassLoss, NTXentLoss, SupConWithNegativesLoss
from simsearch.training.model import PatchModel
from simsearch.training.sampling import balanced_order, stream
from simsearch.util.errors import ConfigError

if TYPE_CHECKING:
    from simsearch.training.loop import StageSettings, TrainSettings


@dataclass
class StageData:
    """The pixels a stage learns from: crops (N, 3, H, W) float16 with their labels (N,),
    and negatives (M, 3, H, W) with the class each is not (M,), empty when there are none."""

    crops: torch.Tensor
    labels: torch.Tensor
    negatives: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    negative_labels: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))

    @classmethod
    def load(cls, project: Project, pairs, context_cells: int, negatives=()) -> "StageData":
        """The crops of (PatchRecord, label) pairs and of the negative pairs."""
        data = cls(*_crops(project, pairs, context_cells))
        if negatives:
            data.negatives, data.negative_labels = _crops(project, negatives, context_cells)
        return data


def _crops(project: Project, pairs, context_cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    return patch_crops(project, [p for p, _ in pairs], context_cells), torch.tensor([label for _, label in pairs], dtype=torch.int64)


class Stage(ABC):
    """One stage of a run: its schedule, the parameters it trains, its data and its loss."""

    name: ClassVar[str]
    trains_embedding: ClassVar[bool]  # the model in training mode (False: eval, the embedding fixed)

    def __init__(self, schedule: StageSettings):
        self.schedule = schedule

    @abstractmethod
    def trainable(self, model: PatchModel) -> list[nn.Parameter]:
        """The parameters this stage trains, in the optimizer's order."""

    def frozen(self, model: PatchModel) -> list[nn.Parameter]:
        """The parameters this stage leaves as they are: all but `trainable`."""
        mine = {id(p) for p in self.trainable(model)}
        return [p for p in model.parameters() if id(p) not in mine]

    def optimizer(self, model: PatchModel) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        """Adam over `trainable` at the schedule's rate, which a StepLR multiplies by `gamma`
        every `step_epochs` epochs (stepped once an epoch)."""
        optimizer = torch.optim.Adam(self.trainable(model), lr=self.schedule.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, self.schedule.step_epochs), gamma=self.schedule.gamma)
        return optimizer, scheduler

    def prepare(self, model: PatchModel, device: torch.device) -> None:
        """Before the stage's first epoch of a run (after the stages before it): nothing here."""

    def finish(self, model: PatchModel) -> None:
        """After the stage's last epoch, before the checkpoint that marks it done: nothing here."""

    @property
    @abstractmethod
    def labels(self) -> torch.Tensor:
        """The class of each example an epoch draws from (the epoch's order indexes them)."""

    @property
    def epoch_size(self) -> int:
        """How many examples an epoch draws, class-balanced (`balanced_order`): each once."""
        return len(self.labels)

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """The indices into `labels` an epoch draws, in order: `epoch_size` of them, class-balanced."""
        return balanced_order(self.labels, self.epoch_size, generator)

    @abstractmethod
    def loss(self, model: PatchModel, index: torch.Tensor, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The loss of the batch of examples `index`, drawing its augmentations from `generator`."""

    def steps(self, examples: int) -> int:
        """Optimizer steps of an epoch over `examples` examples."""
        return math.ceil(examples / self.schedule.batch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schedule})"


class _ContrastiveStage(Stage):
    """Trains the embedding: the unfrozen backbone layers, the learnt pooling window if any,
    and the projection head."""

    trains_embedding = True

    def __init__(self, schedule: StageSettings, data: StageData, augment_settings: AugmentSettings):
        super().__init__(schedule)
        self.data = data
        self.augment = augment_settings
        # (the pretrained backbone's network, its share) when this stage ends the embedding's
        # training and moves it back toward the pretrained weights (`TrainSettings.pretrained_share`)
        self.blend: tuple[nn.Module, float] | None = None

    def trainable(self, model: PatchModel) -> list[nn.Parameter]:
        return model.trainable_backbone_parameters() + list(model.projection.parameters())

    def finish(self, model: PatchModel) -> None:
        if self.blend is not None:
            blend_weights(model.network, *self.blend)

    @property
    def labels(self) -> torch.Tensor:
        return self.data.labels


class SelfLearnStage(_ContrastiveStage):
    """SimCLR on the noisy patches: NT-Xent (tau 0.5) between two augmented views of each
    (the full augmentations, solarize and coarse dropout included). A patch drawn twice into
    one batch (the class-balanced epoch repeats a rare class's) is not its own negative."""

    name = "selflearn"

    def __init__(self, schedule: StageSettings, data: StageData, augment_settings: AugmentSettings):
        super().__init__(schedule, data, augment_settings)
        self.criterion = NTXentLoss(0.5)

    def loss(self, model, index, generator, device):
        crops = self.data.crops[index].float()
        views = [augment(crops, self.augment, generator).to(device) for _ in range(2)]
        return self.criterion(*(model.project(model.embed(v)) for v in views), sources=index)


class SupConStage(_ContrastiveStage):
    """Supervised contrastive loss (tau 0.07) on two augmented views of each clean example,
    with up to a batch of the negatives, each in the denominator of its class's anchors."""

    name = "supcon"

    def __init__(self, schedule: StageSettings, data: StageData, augment_settings: AugmentSettings):
        super().__init__(schedule, data, augment_settings)
        self.criterion = SupConWithNegativesLoss(0.07)

    def loss(self, model, index, generator, device):
        crops = self.data.crops[index].float()
        views = torch.cat([augment(crops, self.augment, generator) for _ in range(2)]).to(device)
        labels = torch.cat([self.data.labels[index]] * 2).to(device)
        negatives = negative_labels = None
        if len(self.data.negatives):
            pick = torch.randperm(len(self.data.negatives), generator=generator)[: self.schedule.batch_size]
            negatives = model.project(model.embed(self.data.negatives[pick].float().to(device)))
            negative_labels = self.data.negative_labels[pick].to(device)
        return self.criterion(model.project(model.embed(views)), labels, negatives, negative_labels)


@dataclass(frozen=True)
class ClassifierFeatures:
    """The frozen embeddings the classifier stage learns from: clean patches (vectors, labels)
    and negatives (negative_vectors, the class each is not), each with augmented copies."""

    vectors: torch.Tensor
    labels: torch.Tensor
    negative_vectors: torch.Tensor
    negative_labels: torch.Tensor


# embeddings of each example a classifier epoch draws: the presets' classifier schedules were set
# with 4 copies of each example, all drawn every epoch (benchmarks/results/issue17-epoch-draws)
EPOCH_DRAWS = 4


class ClassifierStage(Stage):
    """The linear classifier on the frozen embedding: cross entropy on the clean examples and,
    with `use_negatives`, "not this class" (NotClassLoss) on the negatives, each negative
    weighing as much as one clean example over an epoch (every step sees all the negatives,
    scaled by their count against the clean examples'). A few negatives are then a few
    examples among many: one that looks like the class (an object the annotation missed) no
    longer outweighs the positives on features that cannot move apart (the probe). The
    embeddings are computed once (`prepare`), of each example and `copies` - 1 augmented
    copies of it, from random streams of their own (seeded by `seed`): the more copies, the
    less the fit depends on which augmentations the seed drew. An epoch draws `EPOCH_DRAWS` of
    each example's embeddings, class-balanced (`epoch_size`), whatever the copies."""

    name = "classifier"
    trains_embedding = False

    def __init__(self, schedule: StageSettings, data: StageData, augment_settings: AugmentSettings, *, seed: int,
                 copies: int, use_negatives: bool = True):
        super().__init__(schedule)
        if copies < 1:
            raise ConfigError(f"classifier_copies: expected 1 or more, got {copies}")
        self.data = data
        self.augment = augment_settings
        self.seed = seed
        self.use_negatives = use_negatives
        self.copies = copies
        self.criterion = NotClassLoss()
        self.features: ClassifierFeatures | None = None

    def trainable(self, model: PatchModel) -> list[nn.Parameter]:
        return list(model.classifier.parameters())

    def prepare(self, model: PatchModel, device: torch.device) -> None:
        vectors, labels = frozen_features(model, self.data.crops, self.data.labels, self.augment,
                                          stream(self.seed, self.name, "features"), device, self.copies)
        negatives, negative_labels = torch.zeros(0, model.dim), torch.zeros(0, dtype=torch.int64)
        if self.use_negatives and len(self.data.negatives):
            negatives, negative_labels = frozen_features(model, self.data.negatives, self.data.negative_labels, self.augment,
                                                         stream(self.seed, self.name, "negative features"), device,
                                                         self.copies)
        self.features = ClassifierFeatures(vectors, labels, negatives, negative_labels)

    @property
    def labels(self) -> torch.Tensor:
        return self._features().labels

    @property
    def epoch_size(self) -> int:
        """`EPOCH_DRAWS` embeddings of each example, from its `copies`: the schedule's epochs mean
        as many optimizer steps whatever the copies (an epoch over all 16 copies took 4x the steps
        of the 4 the schedule was set with, and its classifier ranked worse)."""
        return len(self.data.labels) * EPOCH_DRAWS

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """Class-balanced, and within a class each example as often as the others, a different
        one of its copies each time (`balanced_order` with the examples: embedding i is a copy of
        example i mod N, `frozen_features`' order). Drawn at random from all the copies, how
        often an example was seen in an epoch varied from 0 to 9 where 4 was meant."""
        examples = torch.arange(len(self.labels)) % len(self.data.labels)
        return balanced_order(self.labels, self.epoch_size, generator, examples)

    def loss(self, model, index, generator, device):
        features = self._features()
        loss = F.cross_entropy(model.classifier(features.vectors[index].to(device)).float(), features.labels[index].to(device))
        if len(features.negative_labels):
            share = len(features.negative_labels) / len(features.labels)
            loss = loss + share * self.criterion(model.classifier(features.negative_vectors.to(device)),
                                                 features.negative_labels.to(device))
        return loss

    def _features(self) -> ClassifierFeatures:
        if self.features is None:
            raise RuntimeError("the classifier stage learns from embeddings: call prepare(model, device) first")
        return self.features


@torch.no_grad()
def frozen_features(model: PatchModel, crops: torch.Tensor, labels: torch.Tensor, augment_settings: AugmentSettings,
                    generator: torch.Generator, device, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of the crops and `copies` - 1 augmented copies of them, with their labels."""
    model.eval()
    vectors, out_labels = [], []
    for copy_index in range(copies):
        for start in range(0, len(labels), 64):
            batch = crops[start : start + 64].float()
            if copy_index:
                batch = augment(batch, augment_settings, generator)
            vectors.append(model.embed(batch.to(device)).cpu())
            out_labels.append(labels[start : start + 64])
    return torch.cat(vectors), torch.cat(out_labels)


@torch.no_grad()
def blend_weights(network: nn.Module, pretrained: nn.Module, share: float) -> None:
    """Move every floating-point weight and buffer of `network` `share` of the way back to
    those of `pretrained` (the same network before training): (1 - share) x trained + share x pretrained, the
    weight-space ensemble of a fine-tuned and a pretrained network (WiSE-FT, Wortsman et al.,
    CVPR 2022). Fine-tuning on a few examples moves features the pretrained network already
    separates well; the blend keeps part of what it knew. Layers training left alone stay as
    they are.

    Examples
    --------
    >>> import copy
    >>> before = nn.Linear(2, 1)
    >>> layer = copy.deepcopy(before)
    >>> _ = layer.weight.data.add_(1.0)       # "training"
    >>> blend_weights(layer, before, 0.25)
    >>> torch.allclose(layer.weight, before.weight + 0.75)
    True
    """
    pretrained = pretrained.state_dict()
    for name, value in network.state_dict().items():
        if value.is_floating_point():
            value.mul_(1 - share).add_(pretrained[name].to(value.device, value.dtype), alpha=share)


# every stage in the order a run trains them; a checkpoint names a stage by its place here
STAGE_KINDS: tuple[type[Stage], ...] = (SelfLearnStage, SupConStage, ClassifierStage)


def training_stages(settings: TrainSettings, clean: StageData, noisy: StageData | None,
                    pretrained: nn.Module | None = None) -> list[Stage]:
    """The stages a run with `settings` trains, in order: self-learning on the noisy patches
    (when there are some: `use_noisy`), the supervised contrastive stage (`contrastive`), and
    always the classifier. The supervised stages augment without solarize and coarse dropout.
    With a `pretrained_share`, the last stage that trains the embedding ends by moving the
    backbone that share of the way back to `pretrained` (the pretrained backbone's network)."""
    stages: list[Stage] = []
    if noisy is not None:
        stages.append(SelfLearnStage(settings.selflearn, noisy, settings.augment))
    if settings.contrastive:
        stages.append(SupConStage(settings.supcon, clean, settings.augment.clean()))
    if settings.pretrained_share and stages:
        if pretrained is None:
            raise ValueError("training_stages: pretrained_share needs the pretrained backbone's network")
        stages[-1].blend = (pretrained, settings.pretrained_share)
    stages.append(ClassifierStage(settings.classifier, clean, settings.augment.clean(), seed=settings.seed,
                                  copies=settings.classifier_copies, use_negatives=settings.negatives_in_classifier))
    return stages
