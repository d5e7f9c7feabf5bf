"""Training on planted discs and crosses: stages, detections, cancel and resume."""
import shutil
import threading
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch

from conftest import planted_project
from simsearch import ConfigError, Curation, Project
from simsearch.predict import Predictor
from simsearch.features.embed import crop_windows
from simsearch.features.geometry import PatchGeometry
from simsearch.preprocess import Normalization
from simsearch.train.loop import (StageSettings, TrainSettings, _noisy_data, crop_pixels, noisy_cap, train,
                                  training_status)

TINY = TrainSettings(
    selflearn=StageSettings(1, 16, 1e-3, 1, 0.5),
    supcon=StageSettings(2, 16, 1e-3, 1, 0.5),
    classifier=StageSettings(15, 32, 1e-2, 10, 0.1),
)


@pytest.fixture
def curated(tmp_path):
    project, truth = planted_project(tmp_path, 5)
    curation = Curation(project)
    for kind, index in (("disc", 0), ("cross", 1)):
        curation.add_class(kind)
        y, x = truth["img0.tif"][index][0]
        curation.add_prototype(kind, "img0.tif", (x - 16, y - 16, x + 16, y + 16))
        curation.confirm_class(kind, threshold=curation.suggestions(kind, threshold=-1.0)[8].similarity)
    curation.propose_background(count=5)
    curation.confirm_background()
    list(curation.iter_noisy(background_per_image=3))
    yield project, truth
    project.close()


def _weights(project):
    return torch.load(project.folder / "model" / "model.pt", weights_only=True)


def test_training_stages_and_detections(curated):
    project, truth = curated
    events = list(train(project, TINY, device="cpu"))
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


def test_cancel_then_resume_gives_the_same_model(curated):
    project, _ = curated
    list(train(project, TINY, device="cpu"))
    uninterrupted = _weights(project)
    shutil.rmtree(project.folder / "model")
    shutil.rmtree(project.folder / "training")
    cancel = threading.Event()
    for event in train(project, TINY, device="cpu", cancel=cancel):
        if event.stage == "supcon" and event.epoch == 2:
            cancel.set()  # mid-epoch: the epoch-1 checkpoint stays
    assert not (project.folder / "model" / "model.pt").exists()
    status = training_status(project)
    assert (status.has_model, status.checkpoint_stage, status.checkpoint_epoch) == (False, "supcon", 1)
    _status_comes_from_the_summary_only_while_it_matches_the_checkpoint(project, status)
    resumed_events = list(train(project, TINY, device="cpu"))
    assert resumed_events[0].stage == "supcon" and resumed_events[0].epoch == 2  # resumed, not restarted
    resumed = _weights(project)
    for part in ("network", "classifier"):
        for key, value in uninterrupted[part].items():
            torch.testing.assert_close(resumed[part][key], value, rtol=1e-4, atol=1e-5)
    status = training_status(project)
    assert status.has_model and status.checkpoint_stage == "done" and status.model_stamp is not None


def test_strategies_and_missing_data_errors(curated):
    project, _ = curated
    assert TrainSettings.cpu("pos").strategy == "pos" and not TrainSettings.cpu("pos").use_noisy
    with pytest.raises(ConfigError, match="strategy"):
        TrainSettings.cpu("everything")
    events = list(train(project, TINY.with_strategy("pos+neg"), device="cpu"))
    assert "selflearn" not in {e.stage for e in events}
    project.store.clear_noisy()
    with pytest.raises(ConfigError, match="no noisy patches"):
        list(train(project, TINY, device="cpu"))


def test_process_exports_and_rethreshold(curated, tmp_path):
    import json

    from simsearch import iter_process, write_results

    project, truth = curated
    list(train(project, TINY, device="cpu"))
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
    list(train(project, TINY.with_strategy("pos"), device="cpu"))  # another model: its own maps
    assert [e.status for e in iter_process(project, out, device="cpu")] == ["computed"] * 5


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
        "from simsearch.train.loop import StageSettings, TrainSettings, train, training_status\n"
        "settings = TrainSettings(selflearn=StageSettings(3, 16, 1e-3, 1, 0.5), supcon=StageSettings(2, 16, 1e-3, 1, 0.5),\n"
        "                         classifier=StageSettings(5, 32, 1e-2, 10, 0.1))\n"
        f"with Project.open({str(project.folder)!r}) as p:\n"
        "    for e in train(p, settings, device='cpu'):\n"
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
        events = list(train(again, settings, device="cpu"))
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
    assert len(_noisy_data(project, settings, torch.Generator().manual_seed(0)).labels) == 5
    assert len(_noisy_data(project, TINY, torch.Generator().manual_seed(0)).labels) == available


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
