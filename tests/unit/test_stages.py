"""The stage objects of training, alone: what each trains and leaves frozen, its schedule, its
data, and which stages a strategy runs. (EfficientNet-Lite0 on random crops: no project.)"""
import copy
import math
from dataclasses import replace

import pytest
import torch

from conftest import TINY
from simsearch.features.geometry import PatchGeometry
from simsearch.training.augment import AugmentSettings
from simsearch.training.loop import STAGES, TRAINING_STRATEGIES, StageSettings
from simsearch.training.model import PatchModel, frozen_prefix
from simsearch.training.sampling import balanced_order, stream
from simsearch.training.stages import (EPOCH_DRAWS, STAGE_KINDS, ClassifierFeatures, ClassifierStage, SelfLearnStage,
                                       StageData, SupConStage, training_stages)
from simsearch.util.errors import ConfigError

GEOMETRY = PatchGeometry.for_patch(32, min_cells=4)  # 96 px crops with a context of 2 cells
SCHEDULE = StageSettings(2, 4, 1e-2, 1, 0.5)


def _data(count=9, negatives=3, seed=0) -> StageData:
    generator = torch.Generator().manual_seed(seed)
    crops = torch.rand(count, 3, 96, 96, generator=generator).half()
    data = StageData(crops, torch.arange(count) % 3)
    if negatives:
        data.negatives = torch.rand(negatives, 3, 96, 96, generator=generator).half()
        data.negative_labels = torch.arange(negatives) % 2
    return data


def _model(lite0, **options) -> PatchModel:
    torch.manual_seed(0)
    return PatchModel(lite0, GEOMETRY, 3, context_cells=2, **options)


def _ids(parameters) -> set[int]:
    return {id(p) for p in parameters}


def _stage(kind, data):
    if kind is ClassifierStage:
        return ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=4)
    return kind(SCHEDULE, data, AugmentSettings() if kind is SelfLearnStage else AugmentSettings().clean())


@pytest.mark.parametrize("learn_pooling", [False, True])
def test_each_stage_says_which_parameters_it_trains(lite0, learn_pooling):
    model = _model(lite0, learn_pooling=learn_pooling)
    shadow = copy.copy(lite0)  # the backbone with the model's own copy of its network
    shadow.network = model.network
    prefix = _ids(p for module in frozen_prefix(shadow) for p in module.parameters())
    unfrozen = _ids(p for p in model.network.parameters() if id(p) not in prefix)
    projection, classifier = _ids(model.projection.parameters()), _ids(model.classifier.parameters())
    window = {id(model.window)} if learn_pooling else set()
    assert prefix and unfrozen and not prefix & unfrozen
    for kind in (SelfLearnStage, SupConStage):  # the embedding: unfrozen layers, learnt pooling, projection head
        stage = _stage(kind, _data())
        assert _ids(stage.trainable(model)) == unfrozen | window | projection, kind
        assert _ids(stage.frozen(model)) == prefix | classifier, kind
        assert stage.trains_embedding
    stage = _stage(ClassifierStage, _data())  # only the linear classifier, on the frozen embedding
    assert _ids(stage.trainable(model)) == classifier
    assert _ids(stage.frozen(model)) == prefix | unfrozen | window | projection
    assert not stage.trains_embedding
    optimizer, _ = stage.optimizer(model)
    assert _ids(p for group in optimizer.param_groups for p in group["params"]) == classifier


@pytest.mark.parametrize("kind", STAGE_KINDS)
def test_a_step_of_a_stage_changes_its_trainable_parameters_and_nothing_else(lite0, kind):
    """One optimizer step on the stage's loss: every parameter the stage trains moves; every
    other parameter and every buffer (batch norm statistics included) stays bit for bit."""
    model = _model(lite0, learn_pooling=True)
    stage = _stage(kind, _data())
    stage.prepare(model, torch.device("cpu"))
    model.train(stage.trains_embedding)
    trainable = {name for name, p in model.named_parameters() if id(p) in _ids(stage.trainable(model))}
    before = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer, _ = stage.optimizer(model)
    generator = stream(0, stage.name, 0)
    loss = stage.loss(model, torch.arange(4), generator, torch.device("cpu"))
    assert loss.ndim == 0 and torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert trainable and changed == trainable, (sorted(trainable - changed)[:5], sorted(changed - trainable)[:5])


def test_a_stage_schedule_is_its_stage_settings(lite0):
    settings = replace(TINY, selflearn=StageSettings(3, 8, 1e-3, 2, 0.5), supcon=StageSettings(4, 16, 2e-3, 1, 0.1),
                       classifier=StageSettings(7, 5, 3e-2, 3, 0.2))
    stages = training_stages(settings, _data(negatives=0), _data(negatives=0))
    assert [type(stage) for stage in stages] == [SelfLearnStage, SupConStage, ClassifierStage]
    assert [stage.schedule for stage in stages] == [settings.selflearn, settings.supcon, settings.classifier]
    model = _model(lite0)
    for stage in stages:
        schedule = stage.schedule
        optimizer, scheduler = stage.optimizer(model)
        assert isinstance(optimizer, torch.optim.Adam)
        rates = []
        for _ in range(schedule.epochs):  # the loop steps the scheduler once an epoch
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates == pytest.approx([schedule.lr * schedule.gamma ** (epoch // schedule.step_epochs)
                                       for epoch in range(schedule.epochs)])
        assert stage.steps(23) == math.ceil(23 / schedule.batch_size)
    assert [stage.steps(23) for stage in stages] == [3, 2, 5]


@pytest.mark.parametrize("strategy", TRAINING_STRATEGIES)
def test_the_strategy_chooses_the_stages_and_their_data(strategy):
    settings = TINY.with_strategy(strategy)
    clean, noisy = _data(), _data(negatives=0, seed=1)
    stages = training_stages(settings, clean, noisy if settings.use_noisy else None)
    expected = {"probe": ["classifier"], "pos": ["supcon", "classifier"], "pos+neg": ["supcon", "classifier"],
                "pos+selflearn": STAGES, "pos+neg+selflearn": STAGES}[strategy]
    assert [stage.name for stage in stages] == list(expected)
    for stage in stages:
        assert stage.data is (noisy if isinstance(stage, SelfLearnStage) else clean)
        # self-learning augments fully; the supervised stages without solarize and coarse dropout
        assert stage.augment == (settings.augment if isinstance(stage, SelfLearnStage) else settings.augment.clean())
    assert stages[-1].use_negatives == settings.negatives_in_classifier
    assert stages[-1].copies == settings.classifier_copies == 4
    assert training_stages(replace(settings, classifier_copies=16), clean, None)[-1].copies == 16
    assert not training_stages(replace(settings, negatives_in_classifier=False), clean, None)[-1].use_negatives


def test_the_classifier_stage_learns_from_embeddings_made_once(lite0):
    model = _model(lite0)
    data = _data(count=6, negatives=3)
    stage = ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=4)
    with pytest.raises(RuntimeError, match="prepare"):
        stage.labels
    stage.prepare(model, torch.device("cpu"))
    features = stage.features
    assert features.vectors.shape == (24, model.dim) and torch.equal(stage.labels, data.labels.repeat(4))  # 3 augmented copies
    assert torch.equal(features.vectors[:6], model.embed(data.crops.float()).detach())  # the first copy: the crops as they are
    assert features.negative_vectors.shape == (12, model.dim) and torch.equal(features.negative_labels, data.negative_labels.repeat(4))
    again = ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=4)
    again.prepare(model, torch.device("cpu"))
    assert torch.equal(again.features.vectors, features.vectors)  # seeded
    other = ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=1, copies=4)
    other.prepare(model, torch.device("cpu"))
    assert not torch.equal(other.features.vectors[6:], features.vectors[6:])
    more = ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=6)
    more.prepare(model, torch.device("cpu"))
    assert more.features.vectors.shape == (36, model.dim) and more.features.negative_vectors.shape == (18, model.dim)
    assert torch.equal(more.features.vectors[:6], features.vectors[:6])  # the crops as they are, then the copies
    order = more.epoch_order(torch.Generator().manual_seed(0))  # embedding i is a copy of example i mod 6
    assert torch.bincount(order % 6, minlength=6).tolist() == [EPOCH_DRAWS] * 6
    assert len(set(order.tolist())) == len(order)  # a different copy each time
    with pytest.raises(ConfigError, match="classifier_copies"):
        ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=0)
    alone = ClassifierStage(SCHEDULE, data, AugmentSettings().clean(), seed=0, copies=4, use_negatives=False)
    alone.prepare(model, torch.device("cpu"))
    assert len(alone.features.negative_vectors) == 0 and torch.equal(alone.features.vectors, features.vectors)


def test_over_an_epoch_the_classifier_stage_weighs_each_negative_as_one_clean_example():
    # the naive reference: the epoch's loss summed example by example, clean (cross entropy)
    # and negative (-log(1 - p(the class it is not))) alike, over the batch size
    generator = torch.Generator().manual_seed(0)
    stage = ClassifierStage(SCHEDULE, _data(count=0, negatives=0), AugmentSettings().clean(), seed=0, copies=4)
    stage.features = ClassifierFeatures(torch.randn(12, 5, generator=generator), torch.arange(12) % 3,
                                        torch.randn(2, 5, generator=generator), torch.tensor([0, 1]))
    model = torch.nn.Module()
    model.classifier = torch.nn.Linear(5, 3)
    order = balanced_order(stage.labels, len(stage.labels), generator)
    batch = SCHEDULE.batch_size
    steps = [order[start : start + batch] for start in range(0, len(order), batch)]
    assert len(steps) == stage.steps(len(order)) == 3
    epoch = sum(stage.loss(model, index, generator, torch.device("cpu")) for index in steps)
    with torch.no_grad():
        clean = model.classifier(stage.features.vectors).log_softmax(1)
        negative = model.classifier(stage.features.negative_vectors).softmax(1)
        naive = (sum(-clean[i, stage.labels[i]] for i in order)
                 + sum(-torch.log(1 - negative[j, stage.features.negative_labels[j]]) for j in range(2))) / batch
    assert float(epoch) == pytest.approx(float(naive), rel=1e-5)
