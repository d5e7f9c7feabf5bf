"""Training on planted discs and crosses: stages, detections, cancel and resume."""
import math
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
import yaml

from conftest import TINY
from simsearch import ConfigError, Curation, DatasetError, Project, ProjectError
from simsearch.inference.predict import Predictor
from simsearch.features.embed import crop_windows
from simsearch.features.geometry import PatchGeometry
from simsearch.io.preprocess import Normalization
from simsearch.training.check import check_held_out
from simsearch.training.model import PatchModel
from simsearch.training.stages import EPOCH_DRAWS, StageData
from simsearch.training.loop import (LATER_SETTINGS, TRAINING_VERSION, StageSettings, TrainSettings, balanced_order,
                                     balanced_subset, crop_pixels, iter_train, model_check, noisy_cap, saved_model,
                                     train, training_records, training_status)

def _weights(project):
    return torch.load(project.folder / "model" / "model.pt", weights_only=True)


def _save_without(project, weights: dict, part: str) -> None:
    """The saved model again without one part of its weights, as a model of an older SimSearch
    (model.yaml without the weights' hash: taken as it is)."""
    del weights[part]
    config = yaml.safe_load((project.folder / "model" / "model.yaml").read_text())
    config.pop("weights_blake2b")
    torch.save(weights, project.folder / "model" / "model.pt")
    (project.folder / "model" / "model.yaml").write_text(yaml.safe_dump(config))


def test_training_stages_and_detections(curated):
    project, truth = curated
    events = list(iter_train(project, TINY, device="cpu"))
    stages = [e.stage for e in events]
    assert stages[0] == "selflearn" and "supcon" in stages and "classifier" in stages and stages[-1] == "done"
    assert all(np.isfinite(e.loss) for e in events) and all(e.patches_per_s >= 0 for e in events[:-1])
    predictor = Predictor(project, device="cpu")
    assert predictor.class_names == ["disc", "cross", "background"]
    image_id = project.dataset.find("img4.tif").id
    maps = predictor.probability_maps(project.dataset.read(image_id))
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, rtol=1e-5)
    found = predictor.detections(image_id, {"disc": 0.5, "cross": 0.5})
    discs, crosses = truth["img4.tif"]
    for kind, objects in (("disc", discs), ("cross", crosses)):
        mine = [d for d in found if d.class_name == kind]
        hits = sum(any(np.hypot(d.y - oy, d.x - ox) <= 12 for d in mine) for oy, ox in objects)
        assert hits >= 2, (kind, mine)


# the settings every run's identity has held since TRAINING_VERSION 3 (4 and 5 changed no setting)
VERSION_3_SETTINGS = {"augment", "classifier", "context_cells", "contrastive", "frozen_batch_norm", "holdout",
                      "learn_pooling", "max_noisy", "max_noisy_pixels", "negatives_in_classifier", "off_centre_views",
                      "seed", "selflearn", "supcon", "use_negatives", "use_noisy"}


def test_a_setting_added_at_its_no_op_value_leaves_saved_models_their_identity():
    """A setting added to TrainSettings changes every run's identity, and so retrains every
    saved model, unless it is in LATER_SETTINGS with the value at which it changes nothing (or
    TRAINING_VERSION is bumped, and this set with it)."""
    assert TRAINING_VERSION == 5
    old = {"classifier_copies": 4}  # 16 since 2026-12, on purpose: every saved model trains again
    assert TrainSettings.cpu().classifier_copies == TrainSettings.paper().classifier_copies == 16
    for settings in (TrainSettings(), TrainSettings.paper("pos"),
                     replace(TrainSettings.cpu("probe"), similarity_gate=False),
                     replace(TrainSettings.cpu(), probe_share=0.0, similarity_gate=False)):
        assert set(settings.identity_dict()) == VERSION_3_SETTINGS | set(old)
        assert set(replace(settings, **old).identity_dict()) == VERSION_3_SETTINGS
    # the CPU preset's probe beside the model and its similarity gate changed its default on
    # purpose: its models train again
    assert set(TrainSettings.cpu().identity_dict()) == VERSION_3_SETTINGS | {"probe_share", "similarity_gate", *old}
    assert set(TrainSettings.cpu("probe").identity_dict()) == VERSION_3_SETTINGS | {"similarity_gate", *old}
    for key, value in LATER_SETTINGS.items():
        assert getattr(replace(TrainSettings(), **old), key) == value  # the default changes nothing, or did
        moved = replace(TrainSettings(), **{key: {float: 0.5, bool: not value, int: value + 1}[type(value)]})
        assert key in moved.identity_dict()


def test_a_classifier_epoch_takes_as_many_steps_whatever_the_copies(curated):
    """The classifier schedule's epochs were set with 4 embeddings of each example: 16 copies
    draw 4 of each per epoch (an epoch over all 16 took 4x the steps and ranked worse), 1 copy
    draws its embedding 4 times, class-balanced as every epoch."""
    project, _ = curated
    steps = {}
    for copies in (1, 4, 16):
        settings = replace(TINY.with_strategy("probe"), classifier_copies=copies, holdout=0.0,
                           classifier=replace(TINY.classifier, epochs=1))
        steps[copies] = {e.steps for e in iter_train(project, settings, device="cpu") if e.stage == "classifier"}
    examples = len(training_records(project, settings).clean)
    assert steps[1] == steps[4] == steps[16] == {math.ceil(examples * EPOCH_DRAWS / TINY.classifier.batch_size)}
    assert EPOCH_DRAWS == 4


def test_probe_trains_only_a_linear_classifier_on_the_frozen_features(curated):
    project, truth = curated
    settings = TINY.with_strategy("probe")
    assert settings.strategy == "probe" and not settings.use_noisy and settings.use_negatives and not settings.contrastive
    stages = {e.stage for e in iter_train(project, settings, device="cpu")}
    assert stages == {"classifier", "done"}
    pretrained = project.backbone.network.state_dict()
    trained = _weights(project)["network"]
    assert len(pretrained) > 50 and all(torch.equal(trained[name], value.cpu()) for name, value in pretrained.items())  # unchanged
    found = Predictor(project, device="cpu").detections(project.dataset.find("img4.tif").id, {"disc": 0.5, "cross": 0.5})
    discs, crosses = truth["img4.tif"]
    for kind, objects in (("disc", discs), ("cross", crosses)):
        mine = [d for d in found if d.class_name == kind]
        assert sum(any(np.hypot(d.y - oy, d.x - ox) <= 12 for d in mine) for oy, ox in objects) >= 2, (kind, mine)


@pytest.mark.parametrize("gate", [False, True])
def test_a_probe_reads_its_maps_from_the_cached_embeddings(curated, tmp_path, monkeypatch, gate):
    """The probe's embedding is the pretrained one, so its maps come from the project's cached
    embeddings: the network's maps to float16 rounding, and processing reads no image; a
    trained embedding, or an image not embedded, goes through the network."""
    from simsearch import Dataset, iter_process
    from simsearch.inference.process import maps_path
    from simsearch.inference.review import Review

    project, _ = curated
    train(project, replace(TINY.with_strategy("probe"), holdout=0.0, similarity_gate=gate), device="cpu")
    predictor = Predictor(project, device="cpu")
    assert predictor.on_pretrained and predictor.twin == gate  # gated (the CPU preset): the twin's halves are one
    for _ in project.iter_embed():
        pass
    dense = {r.id: predictor.level_maps(project.dataset.read(r)) for r in project.dataset}
    for image_id, levels in dense.items():
        cached = predictor.cached_level_maps(image_id)
        assert [(s, g) for s, g, _ in cached] == [(s, g) for s, g, _ in levels]
        for (_, _, mine), (_, _, reference) in zip(cached, levels):
            np.testing.assert_allclose(mine, reference, atol=2e-3)
    monkeypatch.setattr(Dataset, "read", lambda *_: pytest.fail("an image was read"))
    out = tmp_path / "results"
    assert [e.status for e in iter_process(project, out, predictor=predictor)] == ["computed"] * 5
    for image_id, levels in dense.items():
        np.testing.assert_allclose(np.load(maps_path(out, image_id)), levels[0][2], atol=2e-3)
    listed = Dataset.open(project.dataset.source).subset(list(dense)[:2])  # a worker's share: the same ids
    assert [e.status for e in iter_process(project, tmp_path / "part", predictor=predictor, images=listed)] == ["computed"] * 2
    (tmp_path / "rgb").mkdir()
    tifffile.imwrite(tmp_path / "rgb" / "colour.tif", np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"rgb have 3 channel\(s\) \(e.g. colour.tif\); the project's model was trained "
                                           r"on images of 1"):
        next(iter_process(project, tmp_path / "other", predictor=predictor, images=Dataset.open(tmp_path / "rgb")))
    review = Review(project, device="cpu")
    assert {e.status for e in review.iter_prepare()} == {"computed"}  # the review's candidates too
    monkeypatch.undo()
    cached = review._image_candidates(review.image_ids[0])
    review._predictor.on_pretrained = False  # the network's, as a model on another embedding gets them
    network = review._image_candidates(review.image_ids[0])
    assert cached.keys() == network.keys() and len(cached["places0"]) > 0
    for key in cached:
        np.testing.assert_allclose(cached[key], network[key], rtol=1e-3, atol=2e-3)  # sub-pixel peaks: 0.02 px
    assert predictor.cached_level_maps("elsewhere.tif@0123456789ab") is None
    train(project, replace(TINY.with_strategy("pos"), holdout=0.0), device="cpu")
    trained = Predictor(project, device="cpu")
    assert not trained.on_pretrained and trained.cached_level_maps(next(iter(dense))) is None


def test_a_twins_pretrained_half_comes_from_the_cached_embeddings(curated, tmp_path, monkeypatch):
    """A trained model with the probe beside it and the similarity gate (the CPU preset) runs
    the trained and the pretrained network as a twin. Where the project has an image's
    embeddings cached, the pretrained half comes from them and only the trained network runs:
    the twin's maps to float16 rounding, one image at a time, in batches, for processing and
    for the review's candidates."""
    from simsearch import iter_process
    from simsearch.inference.process import maps_path
    from simsearch.inference.review import Review
    from simsearch.training.model import TwinNetwork

    project, _ = curated
    train(project, replace(TINY.with_strategy("pos"), holdout=0.0, probe_share=0.5, similarity_gate=True), device="cpu")
    predictor = Predictor(project, device="cpu")
    assert predictor.twin and not predictor.on_pretrained
    for _ in project.iter_embed():
        pass
    images = {r.id: project.dataset.read(r) for r in project.dataset}
    twin = {image_id: predictor.level_maps(image) for image_id, image in images.items()}
    review = Review(project, device="cpu")
    review._predictor = Predictor(project, device="cpu")
    review._predictor.cached_pretrained = lambda *_: None  # the twin's, as an image not cached gets them
    twin_candidates = review._image_candidates(review.image_ids[0])
    del review._predictor.cached_pretrained
    monkeypatch.setattr(TwinNetwork, "forward", lambda *_: pytest.fail("the twin ran"))
    for image_id, levels in twin.items():
        halves = predictor.level_maps_of(image_id)
        assert [(s, g) for s, g, _ in halves] == [(s, g) for s, g, _ in levels]
        for (_, _, mine), (_, _, reference) in zip(halves, levels):
            np.testing.assert_allclose(mine, reference, atol=2e-3)
    ids = list(images)[:3]
    batch = predictor.level_maps_batch([images[i] for i in ids], [predictor.cached_pretrained(i) for i in ids])
    for image_id, levels in zip(ids, batch):
        np.testing.assert_allclose(levels[0][2], twin[image_id][0][2], atol=2e-3)
    out = tmp_path / "results"
    assert [e.status for e in iter_process(project, out, predictor=predictor)] == ["computed"] * 5
    for image_id, levels in twin.items():
        np.testing.assert_allclose(np.load(maps_path(out, image_id)), levels[0][2], atol=2e-3)
    halves = review._image_candidates(review.image_ids[0])
    assert halves.keys() == twin_candidates.keys() and len(halves["places0"]) > 0
    for key in halves:
        np.testing.assert_allclose(halves[key], twin_candidates[key], rtol=1e-3, atol=2e-3)
    assert predictor.cached_pretrained("elsewhere.tif@0123456789ab") is None  # not cached: the twin runs
    image_id = ids[0]
    short = {scale: vectors[:-1] for scale, vectors in predictor.cached_pretrained(image_id).items()}
    with pytest.raises(ProjectError, match="cached embeddings of shape .* do not match the image's grid"):
        predictor.level_maps(images[image_id], short)  # a cache that does not fit the image is named, not mixed in


def test_a_probe_trained_beside_the_model_is_averaged_into_its_probabilities(curated):
    """The probe beside the model is the probe strategy's model on the same curation, to the
    bit; detection's maps are the share-weighted mean of the model alone and that probe, each
    run as its own Predictor (the reference); the held-out check ranks with the same mean."""
    project, _ = curated
    image = project.dataset.read(project.dataset.find("img4.tif").id)
    pos = replace(TINY.with_strategy("pos+neg"), holdout=0.3)
    probe = train(project, pos.with_strategy("probe"), device="cpu")
    probe_weights, probe_maps = _weights(project), Predictor(project, device="cpu").level_maps(image)
    train(project, pos, device="cpu")
    alone_weights, alone_maps = _weights(project), Predictor(project, device="cpu").level_maps(image)
    events = list(iter_train(project, replace(pos, probe_share=0.25), device="cpu"))
    assert [e.stage for e in events][-2:] == ["probe", "done"]
    assert {e.epochs for e in events if e.stage == "probe"} == {pos.classifier.epochs}
    both = _weights(project)
    for part in ("network", "classifier"):  # the model as trained alone
        for key, value in alone_weights[part].items():
            torch.testing.assert_close(both[part][key], value, rtol=0, atol=0)
    for key, value in probe_weights["classifier"].items():
        torch.testing.assert_close(both["probe_classifier"][key], value, rtol=0, atol=0)
    predictor = Predictor(project, device="cpu")
    assert predictor.probe_share == 0.25
    for (_, _, mixed), (_, _, model), (_, _, linear) in zip(predictor.level_maps(image), alone_maps, probe_maps):
        np.testing.assert_allclose(mixed, 0.75 * model + 0.25 * linear, rtol=1e-6, atol=1e-6)
    batch = predictor.level_maps_batch([image, image])  # images of one shape go through the network together
    np.testing.assert_allclose(batch[1][0][2], predictor.level_maps(image)[0][2], rtol=1e-4, atol=1e-5)
    saved = yaml.safe_load((project.folder / "model" / "model.yaml").read_text())
    assert saved["probe_share"] == 0.25 and len(saved["metrics"]["probe"]) == pos.classifier.epochs
    assert len(model_check(project)) == 2
    # the probe strategy has no probe beside it: the share changes neither the run nor its identity
    assert train(project, replace(pos.with_strategy("probe"), probe_share=0.5), device="cpu").identity == probe.identity


def test_the_held_out_check_ranks_with_the_probe_beside_the_model_and_the_gate(curated):
    """At share 1 the check's model ranking is the probe beside it alone: one that gives every
    example the same probabilities ties every pair (ROC-AUC 0.5), whatever the model. A gate
    whose prototypes resemble nothing (zero vectors) scores every example 0: ties again.
    Similarity search and the probe of the check are neither averaged nor gated."""
    project, _ = curated
    settings = replace(TINY.with_strategy("pos+neg"), holdout=0.3)
    records = training_records(project, settings)
    clean = StageData.load(project, records.clean, settings.context_cells, records.negatives)
    names = list(records.names)
    model = PatchModel(project.backbone, project.geometry, len(names), context_cells=settings.context_cells)
    constant = torch.nn.Linear(model.dim, len(names))
    torch.nn.init.zeros_(constant.weight)
    args = (project, model, names, clean.crops, clean.labels, records.held_out, records.held_out_negatives)
    kwargs = dict(context_cells=settings.context_cells, seed=0, device=torch.device("cpu"))
    alone = check_held_out(*args, **kwargs)
    beside = check_held_out(*args, **kwargs, probe_beside=(constant, 1.0))
    gated = check_held_out(*args, **kwargs, gate=(torch.zeros(2, model.dim), torch.tensor([0, 1])))
    assert [c.model for c in beside] == [c.model for c in gated] == [0.5, 0.5]
    assert [c.model for c in alone] != [0.5, 0.5]
    assert [(c.similarity, c.probe) for c in beside] == [(c.similarity, c.probe) for c in gated] \
        == [(c.similarity, c.probe) for c in alone]


@pytest.mark.parametrize("probe_share", [0.0, 0.25])
def test_the_similarity_gate_scales_each_class_by_its_similarity_to_its_prototypes(curated, probe_share):
    """With the gate, each class's map is the geometric mean of the ungated model's and the
    largest cosine similarity (0 below 0) of the cached pretrained embedding to the class's
    prototype vectors as similarity search compares them (the reference, computed here from the
    project); the background's is unchanged. Training itself is not changed by it."""
    project, _ = curated
    image_id = project.dataset.find("img4.tif").id
    image = project.dataset.read(image_id)
    settings = replace(TINY.with_strategy("pos+neg"), probe_share=probe_share)
    train(project, settings, device="cpu")
    plain_weights, plain = _weights(project), Predictor(project, device="cpu").level_maps(image)[0][2]
    train(project, replace(settings, similarity_gate=True), device="cpu")
    weights, predictor = _weights(project), Predictor(project, device="cpu")
    for key, value in plain_weights["classifier"].items():
        torch.testing.assert_close(weights["classifier"][key], value, rtol=0, atol=0)
    gated = predictor.level_maps(image)[0][2]
    vectors = np.asarray(project.embeddings(image_id).vectors, np.float32)
    curation = Curation(project)
    expected = plain.copy()
    for index, name in enumerate(["disc", "cross"]):
        prototypes = curation.prototype_vectors(name)
        prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
        expected[..., index] = np.sqrt(plain[..., index] * np.clip((vectors @ prototypes.T).max(axis=-1), 0, None))
    np.testing.assert_allclose(gated, expected, atol=3e-3)
    np.testing.assert_array_equal(gated[..., -1], plain[..., -1])
    assert np.abs(gated - plain)[..., :2].max() > 0.05  # the gate changed the classes' maps
    assert yaml.safe_load((project.folder / "model" / "model.yaml").read_text())["similarity_gate"] is True
    assert weights["gate_classes"].tolist().count(0) == 4 * len(project.store.prototypes("disc"))  # and rotations
    _save_without(project, weights, "gate_prototypes")
    with pytest.raises(ProjectError, match="gates by similarity but has no prototype vectors"):
        Predictor(project, device="cpu")


def test_a_run_cancelled_while_its_probe_trains_trains_only_the_probe_again(curated):
    project, _ = curated
    settings = replace(TINY.with_strategy("pos"), probe_share=0.5)
    list(iter_train(project, settings, device="cpu"))
    uninterrupted = _weights(project)
    shutil.rmtree(project.folder / "model")
    cancel = threading.Event()
    for event in iter_train(project, settings, device="cpu", cancel=cancel):
        if event.stage == "probe" and event.epoch == 3:
            cancel.set()
    assert not (project.folder / "model" / "model.pt").exists()
    status = training_status(project, settings)
    assert (status.checkpoint_stage, status.resumable) == ("done", True)  # every stage of the model finished
    resumed = [(e.stage, e.epoch) for e in iter_train(project, settings, device="cpu")]
    assert resumed[0] == ("probe", 1) and {stage for stage, _ in resumed} == {"probe", "done"}
    weights = _weights(project)
    for part in ("network", "classifier", "probe_classifier"):
        for key, value in uninterrupted[part].items():
            torch.testing.assert_close(weights[part][key], value, rtol=0, atol=0)


def test_a_model_whose_probe_is_missing_is_refused(curated):
    project, _ = curated
    train(project, replace(TINY.with_strategy("pos"), probe_share=0.5), device="cpu")
    _save_without(project, _weights(project), "probe_classifier")
    with pytest.raises(ProjectError, match="has a probe share but no probe"):
        Predictor(project, device="cpu")


def test_pretrained_share_moves_the_trained_backbone_back_toward_the_pretrained_one(curated):
    """The blend happens once, after the contrastive stages and before the classifier learns
    on the blended features: share 0.5 saves exactly the midpoint of the fine-tuned and the
    pretrained backbone (the contrastive stages train the same either way), share 1 the
    pretrained backbone itself."""
    project, _ = curated
    pos = TINY.with_strategy("pos")
    pretrained = {name: value.cpu() for name, value in project.backbone.network.state_dict().items()}
    tuned = train(project, pos, device="cpu")
    fine = _weights(project)["network"]
    moved = [name for name, value in fine.items() if value.is_floating_point() and not torch.equal(value, pretrained[name])]
    assert len(moved) > 20  # training moved the unfrozen layers
    half = train(project, replace(pos, pretrained_share=0.5), device="cpu")
    assert half.identity != tuned.identity and not half.reused
    blended = _weights(project)
    for name in moved:
        torch.testing.assert_close(blended["network"][name], (fine[name] + pretrained[name]) / 2, rtol=1e-5, atol=1e-6)
    train(project, replace(pos, pretrained_share=1.0), device="cpu")
    back = _weights(project)["network"]
    assert all(torch.allclose(back[name], pretrained[name], atol=1e-6) for name in moved)
    saved = yaml.safe_load((project.folder / "model" / "model.yaml").read_text())
    assert saved["settings"]["pretrained_share"] == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("stage, epoch, share", [("supcon", 2, 0.0), ("classifier", 5, 0.0), ("supcon", 2, 0.5),
                                                 ("classifier", 5, 0.5)])
def test_cancel_then_resume_gives_exactly_the_same_model(curated, stage, epoch, share):
    """Also with a pretrained share: the blend at the end of the contrastive stages happens
    once, whether the run resumes before it or after it."""
    project, _ = curated
    settings = replace(TINY, pretrained_share=share)
    list(iter_train(project, settings, device="cpu"))
    uninterrupted = _weights(project)
    shutil.rmtree(project.folder / "model")
    cancel = threading.Event()
    for event in iter_train(project, settings, device="cpu", cancel=cancel):
        if event.stage == stage and event.epoch == epoch and event.step == 1:
            cancel.set()  # mid-epoch: the previous epoch's checkpoint stays
    assert not (project.folder / "model" / "model.pt").exists()
    status = training_status(project, settings)
    assert (status.has_model, status.checkpoint_stage, status.checkpoint_epoch) == (False, stage, epoch - 1)
    assert status.resumable and not status.up_to_date
    _status_comes_from_the_summary_only_while_it_matches_the_checkpoint(project, training_status(project))
    resumed_events = list(iter_train(project, settings, device="cpu"))
    assert resumed_events[0].stage == stage and resumed_events[0].epoch == epoch  # resumed, not restarted
    resumed = _weights(project)
    for part in ("network", "classifier"):
        for key, value in uninterrupted[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=0, atol=0)  # each epoch draws its own stream
    status = training_status(project, settings)
    assert status.has_model and status.checkpoint_stage is None and status.model_stamp is not None  # finished: no checkpoint
    assert status.up_to_date


@pytest.mark.slow
def test_training_is_keyed_on_the_curation(curated):
    """Every change to what training learns from trains again; nothing else does."""
    project, _ = curated
    curation = Curation(project)
    assert saved_model(project) is None
    first = train(project, TINY, device="cpu")
    assert first is not None and not first.reused
    assert saved_model(project) == first and first.metrics["classifier"]  # read back from model.yaml
    stamp = training_status(project).model_stamp
    again = train(project, TINY, device="cpu")
    assert again.reused and again.identity == first.identity and training_status(project).model_stamp == stamp  # untouched
    project.store.set_confidence_threshold("disc", 0.9)  # detections only: the model stays
    assert train(project, TINY, device="cpu").reused and training_status(project).model_stamp == stamp

    def retrained() -> str:
        assert not training_status(project, TINY).up_to_date
        events = list(iter_train(project, TINY, device="cpu"))
        assert (events[0].stage, events[0].epoch, events[-1].stage) == ("selflearn", 1, "done")  # from the start
        assert not events[-1].reused and training_status(project, TINY).up_to_date
        return yaml.safe_load((project.folder / "model" / "model.yaml").read_text())["identity"]

    identities = {first.identity}
    curation.flag_negative([s for s in curation.suggestions("disc", threshold=-1.0) if not s.flagged][-1])  # one negative more
    identities.add(retrained())
    positives = project.store.patches("cross", "positive")
    elsewhere = curation.suggestions("cross", threshold=-1.0)[-1].record()
    assert elsewhere not in positives
    project.store.confirm_class("cross", -1.0, positives[:-1] + [elsewhere])  # one positive swapped, same count
    assert len(project.store.patches("cross", "positive")) == len(positives)
    identities.add(retrained())
    curation.set_threshold("disc", project.store.class_info("disc").similarity_threshold + 0.05)
    list(curation.iter_noisy(background_per_image=3))  # a new threshold: other noisy patches
    identities.add(retrained())
    assert len(identities) == 4


@pytest.mark.slow
def test_fine_tuning_from_the_last_model(curated):
    project, _ = curated
    with pytest.raises(ConfigError, match="no trained model"):
        train(project, TINY, device="cpu", from_last=True)
    first = train(project, TINY, device="cpu")
    curation = Curation(project)
    curation.flag_negative([s for s in curation.suggestions("disc", threshold=-1.0) if not s.flagged][-1])
    tuned = train(project, TINY, device="cpu", from_last=True)
    config = yaml.safe_load((project.folder / "model" / "model.yaml").read_text())
    assert not tuned.reused and config["start"] == f"fine-tuned from {first.identity}"
    assert train(project, TINY, device="cpu", from_last=True).reused  # the same content: nothing to do


@pytest.mark.slow
def test_an_interrupted_run_on_another_curation_is_not_resumed(curated):
    project, _ = curated
    cancel = threading.Event()
    for event in iter_train(project, TINY, device="cpu", cancel=cancel):
        if event.stage == "supcon":
            cancel.set()
    assert training_status(project).checkpoint_stage == "supcon"
    curation = Curation(project)
    curation.flag_negative([s for s in curation.suggestions("disc", threshold=-1.0) if not s.flagged][-1])
    assert training_status(project, TINY).resumable is False
    events = list(iter_train(project, TINY, device="cpu"))
    assert (events[0].stage, events[0].epoch) == ("selflearn", 1)


def test_balanced_order_fills_every_batch_with_each_class_equally():
    labels = torch.tensor([0] * 90 + [1] * 10)
    order = balanced_order(labels, len(labels), torch.Generator().manual_seed(0))
    assert torch.bincount(labels[order]).tolist() == [50, 50]
    assert torch.bincount(order[labels[order] == 1], minlength=100)[90:].tolist() == [5] * 10  # each rare one 5 times
    assert len(set(order[labels[order] == 0].tolist())) == 50  # common ones never repeated
    shares = [float((labels[batch] == 1).float().mean()) for batch in order.split(32)]
    assert all(0.3 <= share <= 0.7 for share in shares), shares
    four = torch.tensor([0] * 90 + [1] * 5 + [2] * 3 + [3] * 2)
    counts = torch.bincount(four[balanced_order(four, 102, torch.Generator().manual_seed(1))]).tolist()
    assert sorted(counts) == [25, 25, 26, 26]
    again = balanced_order(labels, len(labels), torch.Generator().manual_seed(0))
    assert torch.equal(order, again)  # seeded


def test_balanced_order_goes_round_the_examples_of_a_class():
    # the classifier stage's 16 copies of each example (index i a copy of example i mod 40): class 0 has 10
    # examples, class 1 has 30; an epoch of 4 draws per example
    examples, copies = 40, 16
    labels = (torch.arange(examples * copies) % examples >= 10).long()
    which = torch.arange(examples * copies) % examples
    order = balanced_order(labels, examples * 4, torch.Generator().manual_seed(0), which)
    assert torch.bincount(labels[order]).tolist() == [80, 80]
    draws = torch.bincount(which[order], minlength=examples)
    assert draws[:10].tolist() == [8] * 10  # the rare class's examples oversampled alike
    assert set(draws[10:].tolist()) == {2, 3} and int(draws[10:].sum()) == 80  # at most one more than another
    assert len(set(order.tolist())) == len(order)  # a different copy each time (none drawn 16 times)
    # the naive reference: drawn from all the copies of a class, examples are seen unevenly
    loose = balanced_order(labels, examples * 4, torch.Generator().manual_seed(0))
    loose = torch.bincount(which[loose], minlength=examples)
    assert int(loose[:10].max() - loose[:10].min()) >= 3
    # beyond the copies, each copy again before any thrice
    many = balanced_order(labels[:80], 40 * 6, torch.Generator().manual_seed(2), which[:80])  # 2 copies of each
    many = torch.bincount(many, minlength=80)
    assert set(many[labels[:80] == 0].tolist()) == {6} and set(many[labels[:80] == 1].tolist()) <= {2}


def test_balanced_subset_is_distinct_and_even():
    labels = torch.tensor([0] * 90 + [1] * 10 + [2] * 40)
    picks = balanced_subset(labels, 60, torch.Generator().manual_seed(0))
    assert len(set(picks.tolist())) == 60 and torch.equal(picks, torch.sort(picks).values)
    assert torch.bincount(labels[picks]).tolist() == [25, 10, 25]
    assert len(balanced_subset(labels, 500, torch.Generator().manual_seed(0))) == 140


def test_strategies_and_missing_data_errors(curated, caplog):
    project, _ = curated
    assert TrainSettings.cpu("pos").strategy == "pos" and not TrainSettings.cpu("pos").use_noisy
    with pytest.raises(ConfigError, match="strategy"):
        TrainSettings.cpu("everything")
    assert TrainSettings.preset("paper", "pos") == TrainSettings.paper("pos") and TrainSettings.preset("cpu") == TrainSettings.cpu()
    with pytest.raises(ConfigError, match="preset: 'gpu' is not one of cpu, paper"):
        TrainSettings.preset("gpu")
    # one error for "no model", whichever step needs it
    from simsearch import ProjectError, Review, write_results

    for needs_a_model in (lambda: Predictor(project, device="cpu"), lambda: Review(project, device="cpu"),
                          lambda: write_results(project, project.folder.parent / "out")):
        with pytest.raises(ProjectError, match=f"no trained model in {project.layout.model}"):
            needs_a_model()
    events = list(iter_train(project, TINY.with_strategy("pos+neg"), device="cpu"))
    assert "selflearn" not in {e.stage for e in events}
    project.store.clear_noisy()
    with pytest.raises(ConfigError, match="no noisy patches") as raised:
        list(iter_train(project, TINY, device="cpu"))
    assert "run noisy extraction first" in raised.value.hint
    project.choose_displayed(len(project.dataset))  # no undisplayed image: extraction has nothing to read
    with caplog.at_level("WARNING"):
        assert list(Curation(project).iter_noisy()) == []
    assert "every image is displayed, so there is none to extract noisy patches from" in caplog.text
    with pytest.raises(ConfigError, match=r"every image of the dataset \(5\) is displayed") as raised:
        list(iter_train(project, TINY, device="cpu"))
    assert "display fewer images (simsearch displayed N" in raised.value.hint


@pytest.mark.slow
def test_process_exports_and_rethreshold(curated, tmp_path):
    import json

    from simsearch import iter_process, write_results

    project, truth = curated
    list(iter_train(project, TINY, device="cpu"))
    out = tmp_path / "results"
    events = list(iter_process(project, out, device="cpu"))
    assert [e.status for e in events] == ["computed"] * 5
    assert [e.status for e in iter_process(project, out, device="cpu")] == ["cached"] * 5  # resumable
    project.store.set_confidence_threshold("disc", 0.5)
    project.store.set_confidence_threshold("cross", 0.5)
    manifest = write_results(project, out, segmentation=True)
    rows = (out / "detections.csv").read_text().splitlines()
    assert rows[0] == "image,class,x,y,confidence,x0,y0,x1,y1" and len(rows) - 1 == manifest["detections"] > 0
    collection = json.loads((out / "geojson" / "img4.tif.geojson").read_text())
    assert collection["type"] == "FeatureCollection"
    feature = collection["features"][0]
    assert feature["geometry"]["type"] == "Polygon" and len(feature["geometry"]["coordinates"][0]) == 5
    assert feature["properties"]["classification"]["name"] in ("disc", "cross")
    assert (out / "napari" / "img4.tif.csv").read_text().startswith("index,axis-0,axis-1,class,confidence")
    labels = tifffile.imread(out / "labels" / "img4.tif.tif")
    assert labels.shape == (176, 208) and set(np.unique(labels)) <= {0, 1, 2}
    disc_y, disc_x = (int(v) for v in truth["img4.tif"][0][0])
    assert labels[disc_y, disc_x] == 1  # the disc centre is labelled disc
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("image,detections,disc_count,disc_fraction,cross_count,cross_fraction,disc_area_fraction")
    assert (out / "overviews" / "img4.tif.png").is_file() and (out / "model" / "model.pt").is_file()
    saved = json.loads((out / "manifest.json").read_text())
    assert saved["confidence_thresholds"] == {"disc": 0.5, "cross": 0.5}
    assert saved["annotation_counts"]["disc"]["prototypes"] == 1 and "torch" in saved["versions"]
    strict = write_results(project, out, thresholds={"disc": 0.99, "cross": 0.99}, overviews=False)
    assert strict["detections"] < manifest["detections"]  # re-thresholded from the cached maps
    list(iter_train(project, TINY.with_strategy("pos"), device="cpu"))  # another model: its own maps
    assert [e.status for e in iter_process(project, out, device="cpu")] == ["computed"] * 5


@pytest.mark.slow
def test_images_processed_together_equal_one_at_a_time(curated, tmp_path, monkeypatch):
    """Same-shape images through the network together (`embed_batch_pixels`: here up to 3)
    give the same events in the same order (a broken file fails in its place and ends the
    batch) and the maps of one image at a time; the export names the image that failed."""
    from simsearch import iter_process, write_results
    from simsearch.features.embed import DenseEmbedder
    from simsearch.inference.process import maps_path

    project, _ = curated
    list(iter_train(project, TINY, device="cpu"))
    (tmp_path / "images" / "img3.tif").write_bytes(b"II*\x00 truncated")
    batches = []
    embed_batch = DenseEmbedder.embed_batch
    monkeypatch.setattr(DenseEmbedder, "embed_batch", lambda self, images: batches.append(len(images)) or embed_batch(self, images))
    height, width = tifffile.imread(tmp_path / "images" / "img0.tif").shape[:2]
    runs = []
    for budget in (0, 3 * height * width):
        project.embed_batch_pixels = budget
        out = tmp_path / f"out{budget}"
        events = [(event.done, event.image_id, event.status) for event in iter_process(project, out, device="cpu")]
        runs.append((events, [np.load(maps_path(out, r.id)) for r in project.dataset if r.relpath != "img3.tif"]))
    assert [status for *_, status in runs[0][0]] == ["computed"] * 3 + ["failed", "computed"]
    assert runs[0][0] == runs[1][0]
    assert batches == [3], batches  # img0-2 together; img4 alone after the broken img3
    for alone, together in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(together.astype(np.float32), alone.astype(np.float32), atol=2e-3)
    project.store.set_confidence_threshold("disc", 0.5)
    manifest = write_results(project, tmp_path / "out0", overviews=False)
    assert manifest["dataset"]["without_results"] == ["img3.tif"]  # the image that failed is named, not missed silently


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes(curated):
    """A `simsearch train` process killed after its first checkpoint resumes from it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    project, _ = curated
    project.close()
    code = (
        "import sys\n"
        "from simsearch import Project\n"
        "from simsearch.training.loop import StageSettings, TrainSettings, iter_train, training_status\n"
        "settings = TrainSettings(selflearn=StageSettings(3, 16, 1e-3, 1, 0.5), supcon=StageSettings(2, 16, 1e-3, 1, 0.5),\n"
        "                         classifier=StageSettings(5, 32, 1e-2, 10, 0.1))\n"
        f"with Project.open({str(project.folder)!r}) as p:\n"
        "    for e in iter_train(p, settings, device='cpu'):\n"
        "        print(e.stage, e.epoch, e.step, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    checkpoint = project.folder / "training" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if checkpoint.is_file() and line.startswith("selflearn 2"):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.is_file() and not (project.folder / "model" / "model.pt").exists()
    settings = TrainSettings(selflearn=StageSettings(3, 16, 1e-3, 1, 0.5), supcon=StageSettings(2, 16, 1e-3, 1, 0.5),
                             classifier=StageSettings(5, 32, 1e-2, 10, 0.1))
    with Project.open(project.folder) as again:
        events = list(iter_train(again, settings, device="cpu"))
    assert (events[0].stage, events[0].epoch) in {("selflearn", 2), ("selflearn", 3)}  # not from epoch 1
    assert events[-1].stage == "done" and (project.folder / "model" / "model.pt").is_file()


@pytest.mark.parametrize("patch, expected", [(48, 256), (96, 256), (192, 100)])
def test_noisy_cap_bounds_the_pixels_of_self_learning(patch, expected):
    geometry = PatchGeometry.for_patch(patch)
    # the crop size is the one the training crops really have
    crops = crop_windows(np.zeros((400, 400, 3), np.uint8), Normalization((0.0,) * 3, (255.0,) * 3), (0, 1, 2), geometry,
                         np.array([[200.0, 200.0]]), context_cells=2)
    assert crop_pixels(geometry, 2) == crops.shape[-2] * crops.shape[-1]
    assert noisy_cap(TrainSettings.cpu(), geometry) == expected
    assert noisy_cap(TrainSettings.paper(), geometry) is None
    assert noisy_cap(TrainSettings(max_noisy_pixels=10), geometry) == 1


def test_self_learning_uses_at_most_the_capped_noisy_patches(curated):
    project, _ = curated
    available = project.store.noisy_count(None) + sum(project.store.noisy_count(c.name) for c in project.store.classes())
    area = crop_pixels(project.geometry, TINY.context_cells)
    settings = replace(TINY, max_noisy_pixels=5 * area)
    assert available > 5
    assert len(training_records(project, settings).noisy) == 5
    assert len(training_records(project, TINY).noisy) == available


def _status_comes_from_the_summary_only_while_it_matches_the_checkpoint(project, status):
    import json
    import os

    summary = project.folder / "training" / "checkpoint.json"
    checkpoint = project.folder / "training" / "checkpoint.pt"
    saved = summary.read_text()
    summary.unlink()  # no summary: the checkpoint itself is read
    assert training_status(project) == status
    summary.write_text(json.dumps({**json.loads(saved), "epoch": 7}))  # matches the checkpoint's stamp: used
    assert training_status(project).checkpoint_epoch == 7
    info = checkpoint.stat()
    os.utime(checkpoint, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # the checkpoint changed since: ignored
    assert training_status(project) == status
    summary.write_text("{not json")
    assert training_status(project) == status
    summary.write_text(saved)
    os.utime(checkpoint, ns=(info.st_atime_ns, info.st_mtime_ns))


@pytest.mark.parametrize("probe_share", [0.0, 0.5])
def test_a_learnt_pooling_window_is_what_detection_uses(curated, probe_share):
    """learn_pooling: the Gaussian pooling is trained in the contrastive stages, saved with the
    model, and the dense inference pools with it: its vectors match the training path's. With
    a probe beside the model, the one pass of both networks pools the trained half with the
    learnt window and the pretrained half with the Gaussian, each half a unit vector, on the
    dense path and on the per-window reference alike."""
    project, truth = curated
    settings = replace(TINY, learn_pooling=True, probe_share=probe_share)
    train(project, settings, device="cpu")
    window = torch.load(project.folder / "model" / "model.pt", weights_only=True)["window"]
    gaussian = torch.tensor(project.geometry.window)
    assert window.shape == gaussian.shape and not torch.allclose(window, gaussian, atol=1e-4)  # it was learnt
    predictor = Predictor(project, device="cpu")
    torch.testing.assert_close(predictor.embedder._window, torch.stack([window, gaussian]) if probe_share else window)
    model = PatchModel(project.backbone, project.geometry, 3, context_cells=settings.context_cells, learn_pooling=True)
    weights = torch.load(project.folder / "model" / "model.pt", weights_only=True)
    model.network.load_state_dict(weights["network"])
    model.window.data.copy_(window)
    pretrained = PatchModel(project.backbone, project.geometry, 3, context_cells=settings.context_cells)
    model.eval(), pretrained.eval()
    image_id = project.dataset.find("img4.tif").id
    pixels = project.dataset.read(image_id)
    dense = predictor.embedder.embed(pixels)
    dim = predictor.dim
    assert dense.vectors.shape[-1] == (2 * dim if probe_share else dim)
    y, x = truth["img4.tif"][0][0]
    row, col = project.geometry.nearest_position(y, x, dense.grid_shape)
    cy, cx = project.geometry.centre(row, col)
    crop = crop_windows(pixels, project.normalization, project.channels, project.geometry, np.array([[cy, cx]]),
                        context_cells=settings.context_cells)
    with torch.no_grad():
        alone = model.embed(crop)[0].numpy()
        plain = pretrained.embed(crop)[0].numpy()
    assert float(alone @ dense.vectors[row, col, :dim]) > 0.97
    if probe_share:
        assert float(plain @ dense.vectors[row, col, dim:]) > 0.97
        corner = np.array([project.geometry.window_top_left(row, col)])
        reference = predictor.embedder.embed_windows(pixels, corner, context_cells=4, rotations=(0, 1))
        for vector in reference:  # the window and its turn: each half a unit vector
            np.testing.assert_allclose([np.linalg.norm(vector[:dim]), np.linalg.norm(vector[dim:])], 1.0, rtol=1e-5)
        assert float(reference[0, :dim] @ alone) > 0.97 and float(reference[0, dim:] @ plain) > 0.97


def test_one_training_run_at_a_time_in_a_project(curated):
    from simsearch import ProjectLockedError

    project, _ = curated
    first = iter_train(project, TINY, device="cpu")
    next(first)  # running: it holds the project's training lock
    with pytest.raises(ProjectLockedError, match="training is already running"):
        next(iter_train(project, replace(TINY, seed=1), device="cpu"))
    first.close()  # a run stopped (or finished) lets the next one in
    assert list(iter_train(project, TINY, device="cpu"))[-1].stage == "done"


@pytest.mark.slow
def test_train_command_reports_json_progress_on_a_project_open_elsewhere(curated, capsys):
    import json

    from simsearch.cli.main import main

    project, _ = curated  # still open for writing here, as the terminal UI holds it
    assert main(["-q", "train", "--project", str(project.folder), "--strategy", "pos", "--device", "cpu",
                 "--progress", "json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["stage"] == "supcon" and events[-1]["stage"] == "done" and not events[-1]["reused"]
    assert (project.folder / "model" / "model.pt").is_file()
    # again with the bar: the model is reused, and its check on held-out examples is shown
    assert main(["-q", "train", "--project", str(project.folder), "--strategy", "pos", "--device", "cpu"]) == 0
    shown = capsys.readouterr().out
    assert ": reused" in shown and "disc: held-out ROC-AUC model" in shown and "cross: held-out ROC-AUC model" in shown
    out = project.folder.parent / "results"
    assert main(["-q", "process", "--project", str(project.folder), "--out", str(out), "--device", "cpu", "--progress", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["status"] for e in lines[:-1]] == ["computed"] * 5 and lines[-1]["images"] == 5
    assert lines[-1]["detections"] == len((out / "detections.csv").read_text().splitlines()) - 1


@pytest.mark.slow
def test_a_model_save_cut_short_is_no_model(curated):
    """model.yaml is written last with model.pt's hash: a model.pt without its matching
    model.yaml (a kill between the two) is not used, and training runs again."""
    from simsearch import ProjectError

    project, _ = curated
    train(project, TINY, device="cpu")
    config = project.folder / "model" / "model.yaml"
    saved = config.read_text()
    config.write_text(saved.replace("weights_blake2b:", "weights_blake2b: 0"))  # another model.pt's
    with pytest.raises(ProjectError, match="incomplete"):
        Predictor(project, device="cpu")
    assert not training_status(project, TINY).up_to_date
    assert not train(project, TINY, device="cpu").reused  # trained again, not reused
    Predictor(project, device="cpu")


def test_temporary_files_of_dead_writers_go_when_the_project_is_opened(curated):
    from simsearch.util.files import atomic_path

    project, _ = curated
    folder = project.folder
    dead = folder / "training" / ".checkpoint.pt.999999999.1.tmp.pt"
    dead.parent.mkdir(exist_ok=True)
    dead.write_bytes(b"half")
    project.close()  # (closing twice, as the fixture will, is harmless)
    with atomic_path(folder / "training" / "x.pt") as mine:  # a live process's stays
        mine.write_bytes(b"being written")
        with Project.open(folder):
            assert not dead.exists() and mine.exists()
    assert (folder / "training" / "x.pt").read_bytes() == b"being written"


@pytest.mark.parametrize("name, frozen, trainable", [
    # EfficientNet-Lite0: stem to the end of the stride-8 stage (blocks 0-4)
    ("efficientnet-lite0", ("_conv_stem.", "_bn0.", *(f"_blocks.{i}." for i in range(5))), tuple(f"_blocks.{i}." for i in range(5, 11))),
    # ResNet-18 (conv1, bn1, relu, maxpool, layer1, layer2, layer3): conv1..layer2, as in the paper
    ("resnet18", ("0.", "1.", "4.", "5."), ("6.",)),
])
def test_patch_model_freezes_the_early_layers_and_batch_norm_statistics(name, frozen, trainable, tmp_path):
    """The frozen prefix gets no gradients, the rest does; batch norm keeps its statistics in
    training mode unless frozen_batch_norm=False. (ResNet-18 with random weights: no download.)"""
    from torchvision.models import resnet18

    from simsearch.features.backbones import load_backbone
    from simsearch.training.model import PatchModel

    weights = None
    if name == "resnet18":
        weights = tmp_path / "resnet18.pth"
        torch.save(resnet18(weights=None).state_dict(), weights)
    backbone = load_backbone(name, weights=weights)
    geometry = PatchGeometry.for_patch(32, min_cells=4)
    for frozen_batch_norm in (True, False):
        model = PatchModel(backbone, geometry, 2, frozen_batch_norm=frozen_batch_norm).train()
        for parameter_name, parameter in model.network.named_parameters():
            assert parameter_name.startswith(frozen + trainable), parameter_name
            assert parameter.requires_grad == parameter_name.startswith(trainable), parameter_name
        norms = [m for m in model.network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert norms and all(m.training != frozen_batch_norm for m in norms)
        before = norms[-1].running_mean.clone()
        model.embed(torch.rand(4, 3, 96, 96))
        assert torch.equal(norms[-1].running_mean, before) == frozen_batch_norm


def test_every_file_a_project_holds_is_at_a_path_of_its_layout(curated):
    """The layout object knows every path inside a project folder: after indexing, training,
    a review round and processing into the project, nothing lies elsewhere."""
    from simsearch import Review, iter_process

    project, _ = curated
    project.build_index()
    list(iter_train(project, TINY, device="cpu"))
    review = Review(project, device="cpu", max_images=2)
    review.prepare()
    review.propose("disc", count=2)
    list(iter_process(project, project.layout.results, device="cpu"))
    layout = project.layout
    places = [layout.settings_file, layout.store_file, layout.store_lock, layout.embeddings,
              layout.index_folder(""), layout.model, layout.training, layout.review_folder(""), layout.results]
    files = [path for path in project.folder.rglob("*") if path.is_file()]
    stray = [path for path in files
             if not any(path == place or place in path.parents for place in places)
             and not path.name.startswith(layout.store_file.name)]  # SQLite's -wal and -shm beside the store
    assert files and not stray, stray
    for place in (layout.embeddings, layout.index_folder(""), layout.model, layout.review_folder(""), layout.results):
        assert any(place in path.parents for path in files), place  # each place really holds files


def test_the_same_curation_trains_the_same_model_in_a_project_just_opened(curated):
    """A project just opened (the command line) loads its backbone during training; that load
    must not shift the seeded initial heads: the same model as in a project whose backbone the
    curation had loaded (the UI). Before the fix the two models differed."""
    from simsearch import Project

    project, _ = curated
    settings = TINY.with_strategy("pos")
    list(iter_train(project, settings, device="cpu"))
    loaded = _weights(project)
    folder = project.folder
    project.close()
    shutil.rmtree(folder / "model")
    with Project.open(folder) as fresh:
        list(iter_train(fresh, settings, device="cpu"))
        again = _weights(fresh)
    assert loaded.keys() == again.keys()
    for part in loaded:
        for name, tensor in loaded[part].items() if isinstance(loaded[part], dict) else [(part, loaded[part])]:
            reference = again[part][name] if isinstance(again[part], dict) else again[part]
            assert torch.equal(tensor, reference), (part, name)


def test_off_centre_views_sit_half_a_patch_off_each_example_inside_the_image():
    """Four views a quarter turn apart, half the example's level's patch off its centre, at its
    level, labelled background; none outside the image."""
    from simsearch import PatchRecord
    from simsearch.training.records import off_centre_views

    sizes = {"a.png@0123456789ab": (256, 300)}
    for level in (1.0, 2.0):
        example = PatchRecord("a.png@0123456789ab", 128.0, 150.0, level=level)
        views = off_centre_views([(example, 0, level)], (32, 48), sizes, 3, seed=1)
        assert len(views) == 4 and {label for _, label in views} == {3} and {v.level for v, _ in views} == {level}
        offsets = np.array([((v.y - 128) / (32 * level), (v.x - 150) / (48 * level)) for v, _ in views])
        assert np.allclose(np.hypot(offsets[:, 0], offsets[:, 1]), 0.5)
        angles = np.sort(np.mod(np.arctan2(offsets[:, 0], offsets[:, 1]) - np.arctan2(offsets[0, 0], offsets[0, 1]), 2 * np.pi))
        assert np.allclose(angles, [0, np.pi / 2, np.pi, 3 * np.pi / 2])
    corner = off_centre_views([(PatchRecord("a.png@0123456789ab", 3.0, 3.0), 0, 1.0)], (32, 32), sizes, 1, seed=1)
    assert len(corner) < 4 and all(0 <= v.y < 256 and 0 <= v.x < 300 for v, _ in corner)


def test_off_centre_views_keep_clear_of_the_other_examples():
    """Two touching cells 16 px apart (patch 32): no view lands within 0.3 x the patch of
    either (it would be a cell called background); some turns lose a view to that rule."""
    from simsearch import PatchRecord
    from simsearch.training.records import off_centre_views

    cells = [PatchRecord("a.png@0123456789ab", 64.0, 64.0), PatchRecord("a.png@0123456789ab", 64.0, 80.0)]
    counts = []
    for seed in range(12):
        views = off_centre_views([(cell, 0, 1.0) for cell in cells], (32, 32), {"a.png@0123456789ab": (128, 128)}, 1, seed)
        assert min(np.hypot(v.y - c.y, v.x - c.x) for v, _ in views for c in cells) >= 0.3 * 32
        counts.append(len(views))
    assert min(counts) < 8 and max(counts) <= 8
    # the second cell held out of training: its views go, and none of the first's lands on it
    for seed in range(12):
        views = off_centre_views([(cells[0], 0, 1.0)], (32, 32), {"a.png@0123456789ab": (128, 128)}, 1, seed, avoid=cells[1:])
        assert views and min(np.hypot(v.y - c.y, v.x - c.x) for v, _ in views for c in cells) >= 0.3 * 32


def test_training_sees_examples_off_centre_as_background_under_the_users_own_count(curated):
    """With `off_centre_views` (the default) the clean background gains views half a patch off
    the class examples, never more than the user's own background; without, none."""
    from simsearch.training.records import training_records

    project, _ = curated
    background = 2
    records = training_records(project, TINY)
    user = {(p.image_id, p.y, p.x) for p in project.store.clean_background()}
    examples = [(p.image_id, p.y, p.x) for p, label in records.clean if label != background]
    views = [(p.image_id, p.y, p.x) for p, label in records.clean if label == background and (p.image_id, p.y, p.x) not in user]
    kept_user = sum(label == background for _, label in records.clean) - len(views)
    assert 0 < len(views) <= kept_user
    half = 0.5 * project.geometry.patch_size[0]
    for image_id, y, x in views:
        assert min(abs(np.hypot(y - ey, x - ex) - half) for eid, ey, ex in examples if eid == image_id) < 1e-6
    plain = training_records(project, replace(TINY, off_centre_views=False))
    assert sum(label == background for _, label in plain.clean) == kept_user
    assert records.digest() != plain.digest()


def test_a_class_larger_than_the_patch_gets_no_off_centre_views():
    """An example three or more of whose views the similarity search suggests sits on a plateau
    wider than the patch; a class with half or more of its examples so is larger than the patch
    and gets no views, while a class with fewer (a clump's cell, neighbours on three sides) keeps
    every view, those of its plateau examples too."""
    from simsearch import PatchRecord
    from simsearch.training.records import off_centre_views

    sizes = {"a.png@0123456789ab": (512, 512)}
    place = lambda y, x: PatchRecord("a.png@0123456789ab", float(y), float(x))  # noqa: E731
    large = [(place(64, 64), 0, 1.0), (place(64, 192), 0, 1.0)]  # class 0: both on plateaus
    small = [(place(320, 64 + 64 * i), 1, 1.0) for i in range(4)]  # class 1: one of four on a plateau
    on_plateau = lambda places, labels: np.array([p.y < 128 or p.x < 100 for p in places])  # noqa: E731
    views = off_centre_views(large + small, (32, 32), sizes, 2, seed=0, suggested=on_plateau)
    assert len(views) == 16 and all(v.y > 256 for v, _ in views)  # every view of class 1, none of class 0
    half = off_centre_views(large[:1] + [(place(192, 320), 0, 1.0)], (32, 32), sizes, 2, seed=0, suggested=on_plateau)
    assert half == []  # one of two examples on a plateau: half, so the class is larger than the patch


def test_suggested_asks_the_similarity_search_at_each_class_threshold(curated):
    """`_suggested_by` scores a place with its own class's prototypes against that class's
    threshold: a disc is suggested as a disc, not as a cross; empty background as neither; a
    class confirmed at similarity 1 (every object annotated) suggests nothing."""
    from simsearch import PatchRecord
    from simsearch.training.records import _suggested_by

    project, truth = curated
    image = project.dataset.find("img3.tif").id
    (disc, *_), (cross, *_) = truth["img3.tif"]
    objects = truth["img3.tif"][0] + truth["img3.tif"][1]
    empty = next((y, x) for y in range(20, 160, 8) for x in range(20, 190, 8)
                 if min(np.hypot(y - cy, x - cx) for cy, cx in objects) > 40)
    on_disc, on_cross, on_nothing = (PatchRecord(image, float(y), float(x)) for y, x in (disc, cross, empty))
    suggested = _suggested_by(project, ["disc", "cross"])
    places = [on_disc, on_cross, on_nothing, on_disc, on_cross, on_nothing]
    assert suggested(places, [0, 0, 0, 1, 1, 1]).tolist() == [True, False, False, False, True, False]
    project.store.set_similarity_threshold("disc", 1.0)
    assert suggested(places, [0, 0, 0, 1, 1, 1]).tolist() == [False, False, False, False, True, False]


def _resnet18_network():
    from torchvision.models import resnet18

    full = resnet18(weights=None)  # random weights: the layout is what matters here
    return torch.nn.Sequential(full.conv1, full.bn1, full.relu, full.maxpool, full.layer1, full.layer2, full.layer3).eval()


@pytest.mark.parametrize("name", ["efficientnet-lite0", "resnet18"])
def test_a_twin_network_is_both_networks_side_by_side(name):
    """TwinNetwork runs the shared frozen layers once and gives what the two networks give
    apart; where training moved the frozen layers too (batch-norm statistics that followed the
    batches) each network runs its own."""
    import copy

    from simsearch.features.backbones import load_backbone
    from simsearch.training.model import TwinNetwork, prefix_and_rest

    pretrained = load_backbone(name).network if name == "efficientnet-lite0" else _resnet18_network()
    x = torch.rand(2, 3, 64, 96)
    for moved_prefix in (False, True):
        trained = copy.deepcopy(pretrained)
        prefix, rest = prefix_and_rest(trained, name)
        with torch.no_grad():
            next(p for p in rest.parameters() if p.dim() == 4).mul_(1.5)  # training moved the later layers
            if moved_prefix:
                next(p for p in prefix.parameters() if p.dim() == 4).mul_(0.5)
        twin = TwinNetwork(trained, pretrained, name).eval()
        assert twin.shares_prefix is not moved_prefix
        with torch.no_grad():
            torch.testing.assert_close(rest(prefix(x)), trained(x), rtol=0, atol=0)  # the split is the network
            torch.testing.assert_close(twin(x), torch.cat([trained(x), pretrained(x)], dim=1), rtol=1e-6, atol=1e-6)


def test_training_refuses_a_class_an_older_project_named_background(curated):
    """A store written before the name was refused may hold a class "Background": training says
    which and how to rename it, rather than merge it with the background."""
    project, _ = curated
    with project.store.transaction() as conn:
        conn.execute("UPDATE classes SET name = 'Background' WHERE name = 'cross'")
    with pytest.raises(ConfigError, match="class name 'Background': the background has this name") as raised:
        training_records(project, TINY)
    assert "simsearch class rename Background NEW_NAME" in raised.value.hint
