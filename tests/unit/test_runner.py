"""`simsearch run CONFIG.yaml` end to end on planted discs and crosses."""
import json

import pytest
import yaml

from conftest import write_planted
from simsearch import ConfigError
from simsearch.cli.main import main
from simsearch.cli.runner import _check_run_file_settings, load_config
from simsearch.project.project import Project


def _write_inputs(tmp_path):
    truth = write_planted(tmp_path / "images", 5)
    (dy, dx), (cy, cx) = truth["img0.tif"][0][0], truth["img0.tif"][1][0]
    lines = [
        "kind,class,image,x0,y0,x1,y1",
        f"prototype,disc,img0.tif,{dx - 16},{dy - 16},{dx + 16},{dy + 16}",
        f"prototype,cross,img0.tif,{cx - 16},{cy - 16},{cx + 16},{cy + 16}",
        f"negative,disc,img0.tif,{cx - 16},{cy - 16},{cx + 16},{cy + 16}",
    ]
    (tmp_path / "prototypes.csv").write_text("\n".join(lines) + "\n")
    config = {
        "dataset": "images", "project": "proj", "output": "results", "displayed": ["img0.tif", "img1.tif", "img2.tif"],
        "backbone": "efficientnet-lite0", "annotations": "prototypes.csv",
        "classes": {"disc": {"similarity_threshold": 0.8, "confidence_threshold": 0.5}},
        "background": {"count": 4}, "noisy": {"background_per_image": 2},
        "training": {"preset": "cpu", "selflearn": {"epochs": 1, "batch_size": 16},
                     "supcon": {"epochs": 1, "batch_size": 16}, "classifier": {"epochs": 5},
                     "classifier_copies": 4},
        "segmentation": True, "device": "cpu",
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    return tmp_path / "run.yaml"


@pytest.mark.slow
def test_run_end_to_end_and_again(tmp_path, capsys):
    config = _write_inputs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["scales"] = [1, 2]  # a pyramid through every step (its level 2 is cheap)
    data["border"] = False  # and the patch grid inside the image
    data["min_cells"] = 4  # at 4 cells per patch
    data["pooling"] = 0.2  # pooled by a Gaussian of sigma 0.2 x the patch
    config.write_text(yaml.safe_dump(data))
    assert main(["-q", "run", str(config)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 prototype(s) and 1 negative(s)" in out and "results in" in out
    assert "disc: held-out ROC-AUC model" in out or "disc: not checked" in out  # the check after training
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert manifest["annotation_counts"]["disc"]["negatives"] == 1
    assert manifest["confidence_thresholds"]["disc"] == 0.5 and manifest["similarity_thresholds"]["disc"] == 0.8
    assert (tmp_path / "results" / "labels" / "img3.tif.tif").is_file()
    assert manifest["scales"] == [1.0, 2.0] and (tmp_path / "results" / "maps" / "img3.tif.level2.npy").is_file()
    embedding = yaml.safe_load((tmp_path / "proj" / "project.yaml").read_text())["embedding"]
    assert embedding == {"border": False, "min_cells": 4, "passes": 1, "pooling": 0.2, "fill": "background"}
    assert main(["-q", "run", str(config)]) == 0  # everything reused
    again = capsys.readouterr().out
    assert "reusing project" in again and "reusing the trained model" in again and "imported" not in again
    assert "on no line of" not in out + again  # every prototype of the project is in the file
    with open(tmp_path / "prototypes.csv", "a") as csv_file:  # the user adds a line: only it is imported, and trains
        csv_file.write(f"negative,cross,{manifest_first_disc(tmp_path)}\n")
    assert main(["-q", "run", str(config)]) == 0
    third = capsys.readouterr().out
    assert "imported 0 prototype(s) and 1 negative(s)" in third and "reusing the trained model" not in third


def manifest_first_disc(tmp_path) -> str:
    """'img0.tif,x0,y0,x1,y1' of the CSV's disc prototype."""
    line = next(row for row in (tmp_path / "prototypes.csv").read_text().splitlines() if row.startswith("prototype,disc"))
    return line.split(",", 2)[2]


def test_config_errors_name_the_key(tmp_path):
    config = _write_inputs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["epochs"] = 3
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"epochs: unknown key"):
        load_config(config)
    del data["epochs"], data["annotations"]
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="annotations: required"):
        load_config(config)
    data["annotations"] = "prototypes.csv"
    data["training"]["supcon"] = {"epoch": 1}
    config.write_text(yaml.safe_dump(data))
    assert main(["-q", "run", str(config)]) == 2


def test_the_whole_run_file_is_checked_before_any_work(tmp_path, capsys):
    """Types, ranges, unknown keys at every level and missing files: every problem named by its
    key path and value, at once, exit 2, nothing created."""
    config = _write_inputs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data.update(displayed="abc", seed=-1, backbone="vgg", device="tpu", segmentation="maybe", annotations="missing.csv",
                patch_size=[96], classes={"disc": {"similarity": 0.9, "similarity_threshold": 2}},
                background={"count": "lots"}, noisy={"capp": 3, "cap": "many"}, scales=[0.5, 100], normalization="global",
                border="sometimes")
    data["training"] = {"preset": "gpu", "supcon": {"epochs": -3, "batch_size": "x"}, "max_noisy": 0}
    config.write_text(yaml.safe_dump(data))
    assert main(["-q", "run", str(config)]) == 2
    err = capsys.readouterr().err
    for problem in ("displayed: expected a whole number of at least 1, got 'abc'", "seed: expected a whole number of at least 0",
                    "backbone: expected one of auto, resnet18, efficientnet-lite0, got 'vgg'", "device: expected auto, cpu",
                    "segmentation: expected true or false, got 'maybe'", "annotations: file 'missing.csv' does not exist",
                    "patch_size: expected a whole number", "classes.disc.similarity: unknown key",
                    "classes.disc.similarity_threshold: expected a number in [-1.0, 1.0], got 2",
                    "background.count: expected a whole number of at least 1, got 'lots'", "noisy.capp: unknown key",
                    "noisy.cap: expected a whole number of at least 0 or null, got 'many'",
                    "training.preset: expected one of cpu, paper, got 'gpu'", "training.supcon.epochs: expected a whole number of at least 1, got -3",
                    "training.supcon.batch_size:", "training.max_noisy:", "scales[1]: expected a number in [0.05, 20.0], got 100",
                    "normalization: expected one of auto, dataset, image, got 'global'",
                    "border: expected true or false, got 'sometimes'"):
        assert problem in err, problem
    assert "nothing was done" in err and not (tmp_path / "proj").exists()


def test_training_section_sets_augmentations_and_batch_norm(tmp_path, capsys):
    from simsearch.cli.runner import training_settings

    settings = training_settings({"preset": "cpu", "augment": {"brightness": 0.0, "solarize": 0.1}, "frozen_batch_norm": False})
    assert settings.augment.brightness == 0.0 and settings.augment.solarize == 0.1 and settings.augment.contrast == 0.2
    assert settings.augment.clean().brightness == 0.0 and settings.augment.clean().solarize == 0.0
    assert not settings.frozen_batch_norm and training_settings({}).frozen_batch_norm
    assert not training_settings({"off_centre_views": False}).off_centre_views and training_settings({}).off_centre_views
    assert training_settings({"pretrained_share": 0.5}).pretrained_share == 0.5 and training_settings({}).pretrained_share == 0.0
    assert training_settings({}).probe_share == 0.5 and training_settings({"preset": "paper"}).probe_share == 0.0
    assert training_settings({"probe_share": 0.0}).probe_average == 0.0
    assert training_settings({}).similarity_gate and not training_settings({"preset": "paper"}).similarity_gate
    assert not training_settings({"similarity_gate": False}).similarity_gate
    assert training_settings({"classifier_copies": 4}).classifier_copies == 4 and training_settings({}).classifier_copies == 16
    with pytest.raises(ConfigError, match=r"training.augment: .*keys: flips, rotations, brightness"):
        training_settings({"augment": {"hue": 0.1}})
    config = _write_inputs(tmp_path)
    data = yaml.safe_load(config.read_text())
    data["training"] = {"augment": {"brightness": 2, "hue": 0.1}, "frozen_batch_norm": "yes", "pretrained_share": 1.5,
                        "probe_share": -0.1, "classifier_copies": 0}
    config.write_text(yaml.safe_dump(data))
    assert main(["-q", "run", str(config)]) == 2
    err = capsys.readouterr().err
    for problem in ("training.augment.brightness: expected a number in [0.0, 1.0], got 2", "training.augment.hue: unknown key",
                    "training.frozen_batch_norm: expected true or false, got 'yes'",
                    "training.pretrained_share: expected a number in [0.0, 1.0], got 1.5",
                    "training.probe_share: expected a number in [0.0, 1.0], got -0.1",
                    "training.classifier_copies: expected a whole number of at least 1, got 0"):
        assert problem in err, problem


@pytest.mark.parametrize("key, value, shown", [
    ("pooling", 0.125, "pooling 0.2, the run file asks for 0.125"),
    ("min_cells", 6, "min_cells 4, the run file asks for 6"),
    ("patch_size", 48, "patch_size 32x32, the run file asks for 48x48"),
    ("border", True, "border False, the run file asks for True"),
])
def test_a_reused_project_refuses_a_run_file_asking_other_embeddings(tmp_path, capsys, key, value, shown):
    """A run file edited after the first run must not mix two kinds of vectors in one project:
    the run stops before any work, naming the key, and the project is unchanged."""
    config = _write_inputs(tmp_path)
    project = Project.create(tmp_path / "proj", tmp_path / "images", patch_size=32, backbone="efficientnet-lite0",
                             min_cells=4, pooling=0.2, border=False)
    project.close()
    before = (tmp_path / "proj" / "project.yaml").read_text()
    data = yaml.safe_load(config.read_text())
    data.update(patch_size=32, min_cells=4, pooling=0.2, border=False)  # the project's own: accepted
    data[key] = value
    config.write_text(yaml.safe_dump(data))
    assert main(["-q", "run", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{key}: project {tmp_path / 'proj'} was made with {shown}" in err and str(config) in err
    assert (tmp_path / "proj" / "project.yaml").read_text() == before
    assert not (tmp_path / "results").exists()


def test_a_reused_project_without_a_patch_size_takes_the_run_file_s(tmp_path):
    config = _write_inputs(tmp_path)
    Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0").close()
    data = yaml.safe_load(config.read_text())
    data["patch_size"] = 40
    config.write_text(yaml.safe_dump(data))
    project = Project.open(tmp_path / "proj", dataset=tmp_path / "images")
    _check_run_file_settings(project, load_config(config), config)
    assert project.geometry.patch_size == (40, 40)
    project.close()
    assert Project.open(tmp_path / "proj", read_only=True).geometry.patch_size == (40, 40)
