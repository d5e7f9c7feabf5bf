"""Flat-field correction: the per-pixel background against numpy's percentile, the corrected pixels every path
sees (display, embeddings, training crops) against a reference, the setting in the project file,
and the errors that name the file or the parameter."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from PIL import Image

from simsearch import ConfigError, Dataset, DenseEmbedder, Normalization, PatchGeometry, Project, ProjectError, display_rgb
from simsearch.features.embed import crop_windows
from simsearch.io.flatfield import AUTO_AGREEMENT, MIN_GAIN, FlatField, choose_flat_field, compute_flat_field

SHAPE = (64, 80)
SPECK = (20, 30)  # dust on the optics: a dark speck at the same place in every image


def field_of_view(seed: int, *, dark_ground: bool = False) -> np.ndarray:
    """A uint16 field: light falling off to one side, a dust speck, and two discs at random places
    (a dark ground with bright discs and a bright speck for fluorescence)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    light = 1.1 - 0.4 * xx / SHAPE[1]
    speck = (yy - SPECK[0]) ** 2 + (xx - SPECK[1]) ** 2 <= 9
    if dark_ground:
        image = 300 + 200 * light + rng.normal(0, 5, SHAPE) + 400 * speck
    else:
        image = 3000 * light * np.where(speck, 0.5, 1.0) + rng.normal(0, 20, SHAPE)
    for cy, cx in rng.integers(8, [SHAPE[0] - 8, SHAPE[1] - 8], (2, 2)):
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 25
        image[disc] = 2500 if dark_ground else 800
    return np.clip(image, 0, 65535).astype(np.uint16)[..., None]


def write_fields(folder: Path, count: int, **kwargs) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [field_of_view(seed, **kwargs) for seed in range(count)]
    for i, image in enumerate(images):
        tifffile.imwrite(folder / f"field{i:02d}.tif", image[..., 0])
    return images


def test_the_background_is_numpys_percentile_of_the_images_spread_over_the_dataset(tmp_path):
    images = write_fields(tmp_path / "images", 12)
    dataset = Dataset.open(tmp_path / "images")
    flat = compute_flat_field(dataset, "divide")  # objects darker than the background: its 80th percentile
    np.testing.assert_array_equal(flat.background, np.percentile(np.stack(images), 80, axis=0).astype(np.float32))
    assert flat.images == 12 and flat.shape == SHAPE
    fewer = compute_flat_field(dataset, "subtract", max_images=9)  # every image but 3, spread evenly; the 20th
    picked = [images[i] for i in np.unique(np.linspace(0, 11, 9).round().astype(int))]
    np.testing.assert_allclose(fewer.background, np.percentile(np.stack(picked), 20, axis=0), rtol=1e-6)
    assert compute_flat_field(dataset, "none") is None


def test_the_halves_agree_on_a_microscopes_pattern_and_not_on_noise(tmp_path, caplog):
    caplog.set_level(logging.INFO)  # as the command line logs: the agreement is said at INFO, the warning below it
    write_fields(tmp_path / "images", 16)
    flat = compute_flat_field(Dataset.open(tmp_path / "images"), "divide")
    halves = [np.percentile(np.stack([field_of_view(seed) for seed in range(start, 16, 2)]), 80, axis=0) for start in (0, 1)]
    assert flat.agreement == pytest.approx(np.corrcoef(halves[0].ravel(), halves[1].ravel())[0, 1], abs=1e-4)
    assert flat.agreement > 0.9 and "two halves of them agree 1.00" in caplog.text and "agree only" not in caplog.text
    noise = tmp_path / "noise"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(16):  # no pattern at all
        tifffile.imwrite(noise / f"n{i:02d}.tif", rng.normal(1000, 50, SHAPE).astype(np.uint16))
    unreliable = compute_flat_field(Dataset.open(noise), "divide")
    assert abs(unreliable.agreement) < 0.2 and "two halves of the images agree only" in caplog.text


def test_dividing_takes_out_the_light_and_the_dust_and_keeps_the_range(tmp_path):
    images = write_fields(tmp_path / "images", 12)
    flat = compute_flat_field(Dataset.open(tmp_path / "images"), "divide")
    corrected = flat.correct(images[0])
    ground = ~np.isin(corrected, corrected[images[0] == 800])  # the background, without the discs
    assert corrected[SPECK].item() == pytest.approx(np.median(corrected), rel=0.05)  # the speck is gone
    raw_spread, corrected_spread = np.std(images[0][ground]), np.std(corrected[ground])
    assert corrected_spread < raw_spread / 5  # the light falling off is gone
    assert np.mean(corrected) == pytest.approx(np.mean(images[0]), rel=0.05)  # scaled to its mean: the same range
    reference = images[0].astype(np.float32) / np.maximum(flat.background / flat.background.mean(), MIN_GAIN)
    np.testing.assert_allclose(corrected, reference, rtol=1e-6)


def test_subtracting_takes_out_an_added_background_on_a_dark_ground(tmp_path):
    images = write_fields(tmp_path / "images", 10, dark_ground=True)
    flat = compute_flat_field(Dataset.open(tmp_path / "images"), "subtract")
    corrected = flat.correct(images[3])
    np.testing.assert_allclose(corrected, images[3] - (flat.background - flat.background.mean()), rtol=1e-6)
    assert corrected[SPECK].item() == pytest.approx(np.median(corrected), abs=30)  # the bright speck is gone


def test_auto_divides_a_bright_ground_subtracts_a_dark_one_and_leaves_images_sharing_no_pattern(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    write_fields(tmp_path / "bright", 16)
    write_fields(tmp_path / "dark", 16, dark_ground=True)
    for folder, mode in (("bright", "divide"), ("dark", "subtract")):
        flat = compute_flat_field(Dataset.open(tmp_path / folder), "auto")
        asked = compute_flat_field(Dataset.open(tmp_path / folder), mode)
        assert flat.mode == mode and flat.agreement >= AUTO_AGREEMENT
        np.testing.assert_array_equal(flat.background, asked.background)  # what asking for that mode gives
        assert f"flat field auto: {mode}: the images' median" in caplog.text
    lit_alone = tmp_path / "lit-alone"  # each field lit from its own side: no fixed background
    lit_alone.mkdir()
    rng = np.random.default_rng(1)
    xx = np.mgrid[:SHAPE[0], :SHAPE[1]][1] / SHAPE[1]
    for i in range(16):
        light = 1 + 0.4 * (xx - 0.5) * rng.choice([-1, 1]) + rng.normal(0, 0.05, SHAPE)
        tifffile.imwrite(lit_alone / f"f{i:02d}.tif", (2000 * light).astype(np.uint16))
    flat, reason = choose_flat_field(Dataset.open(lit_alone))
    assert flat is None and reason.startswith("none: the patterns of two halves of 16 images agree")
    write_fields(tmp_path / "mixed", 9)  # what 'divide' refuses, 'auto' leaves as it is, saying why
    tifffile.imwrite(tmp_path / "mixed" / "other.tif", np.zeros((50, 50), np.uint16))
    assert compute_flat_field(Dataset.open(tmp_path / "mixed"), "auto") is None
    assert "flat field auto: none: flat field: needs images of one size" in caplog.text
    empty_channel = tmp_path / "empty-channel"  # a bright ground in red and green, nothing in blue
    empty_channel.mkdir()
    for i, image in enumerate(write_fields(tmp_path / "bright-again", 8)):
        grey = (image[..., 0] // 16).astype(np.uint8)
        Image.fromarray(np.stack([grey, grey, np.zeros_like(grey)], axis=2)).save(empty_channel / f"f{i}.png")
    flat, reason = choose_flat_field(Dataset.open(empty_channel))
    assert flat is None and "'divide' needs a background brighter than 0" in reason
    write_fields(tmp_path / "few", 5)
    assert choose_flat_field(Dataset.open(tmp_path / "few"))[1] == ("none: flat field: the per-pixel background needs at "
                                                                    "least 8 images; the dataset has 5")


def test_a_project_made_with_auto_records_what_it_decided(tmp_path):
    write_fields(tmp_path / "images", 12, dark_ground=True)
    project = Project.create(tmp_path / "project", tmp_path / "images", patch_size=24, backbone="efficientnet-lite0",
                             flat_field="auto")
    assert project.normalization.flat_field.mode == "subtract"
    assert yaml.safe_load(project.layout.settings_file.read_text())["normalization"]["flat_field"]["mode"] == "subtract"
    assert project.differing_settings(flat_field="auto") == {}  # what it decided stands
    assert project.differing_settings(flat_field="divide") == {"flat_field": ("subtract", "divide")}
    project.close()


def test_every_path_sees_the_corrected_pixels(tmp_path, lite0):
    """Display, embeddings at every scale (with the anti-aliasing of a reduction) and training
    crops of a raw image through a flat-field normalisation equal those of the image corrected
    beforehand through the same range without one."""
    images = write_fields(tmp_path / "images", 10)
    flat = compute_flat_field(Dataset.open(tmp_path / "images"), "divide")
    with_flat, plain = Normalization((1000.0,), (3500.0,), flat_field=flat), Normalization((1000.0,), (3500.0,))
    raw, corrected = images[1], flat.correct(images[1])
    np.testing.assert_allclose(display_rgb(raw, with_flat, (0,)), display_rgb(corrected, plain, (0,)), atol=1e-6)
    np.testing.assert_allclose(with_flat.apply(raw), plain.apply(corrected), atol=1e-6)
    for patch in (16, 40):  # scaled up; and down, where the image is smoothed first; the margin: the image's median
        geometry = PatchGeometry.for_patch(patch, min_cells=2, border=True, fill="background")
        a = DenseEmbedder(lite0, with_flat, geometry, channels=(0,), device="cpu").embed(raw).vectors
        b = DenseEmbedder(lite0, plain, geometry, channels=(0,), device="cpu").embed(corrected).vectors
        np.testing.assert_allclose(a, b, atol=1e-4)
    centres = np.array([[SPECK[0], SPECK[1]], [5, 70]])
    geometry = PatchGeometry.for_patch(24, border=True, fill="background")
    np.testing.assert_allclose(crop_windows(raw, with_flat, (0,), geometry, centres, context_cells=1),
                               crop_windows(corrected, plain, (0,), geometry, centres, context_cells=1), atol=1e-6)


def test_a_per_image_range_is_that_of_the_corrected_image(tmp_path):
    images = write_fields(tmp_path / "images", 10)
    flat = compute_flat_field(Dataset.open(tmp_path / "images"), "divide")
    own = Normalization((0.0,), (1.0,), per_image=True, flat_field=flat).for_image(images[2])
    corrected = flat.correct(images[2])
    assert own.low[0] == pytest.approx(np.percentile(corrected, 5)) and own.high[0] == pytest.approx(np.percentile(corrected, 95))
    assert own.low[0] > np.percentile(images[2], 5) + 100  # the dark side, lifted
    assert own.flat_field is flat


def test_the_project_records_the_flat_field_and_reopens_with_it(tmp_path):
    write_fields(tmp_path / "images", 10)
    project = Project.create(tmp_path / "project", tmp_path / "images", patch_size=24, backbone="efficientnet-lite0",
                             flat_field="divide")
    flat = project.normalization.flat_field
    assert project.layout.flat_field.is_file() and flat.mode == "divide"
    entry = yaml.safe_load(project.layout.settings_file.read_text())["normalization"]["flat_field"]
    assert entry == {"mode": "divide", "file": "flat_field.npy", "images": 10, "agreement": round(flat.agreement, 4),
                     "digest": flat.digest}
    corrected_range = compute_flat_field(project.dataset, "divide")
    expected_low = np.percentile([np.percentile(corrected_range.correct(project.dataset.read(r)), 5) for r in project.dataset], 0.5)
    assert project.normalization.low[0] == pytest.approx(expected_low)  # the range of the corrected images
    fingerprint = project.normalization.fingerprint()
    assert "flat field: each image divided by the per-pixel 80th percentile of 10 images (64x80; two halves" in project.summary()
    assert project.differing_settings(flat_field="divide") == {}
    assert project.differing_settings(flat_field="none") == {"flat_field": ("divide", "none")}
    project.close()
    with Project.open(tmp_path / "project") as again:
        assert again.normalization.fingerprint() == fingerprint
        np.testing.assert_array_equal(again.normalization.flat_field.background, flat.background)
    plain = Project.create(tmp_path / "plain", tmp_path / "images", patch_size=24, backbone="efficientnet-lite0")
    assert plain.normalization.flat_field is None and not plain.layout.flat_field.exists()
    assert plain.normalization.fingerprint() != fingerprint
    assert plain.differing_settings(flat_field="none") == {}
    plain.close()


def test_projects_made_before_the_option_keep_their_settings_and_cache_keys():
    entry = {"low": [10.0], "high": [200.0]}  # a project.yaml written before flat fields
    normalization = Normalization.from_dict(entry)
    assert normalization.flat_field is None and normalization.to_dict() == entry
    assert normalization.fingerprint() == Normalization((10.0,), (200.0,)).fingerprint()


def test_a_missing_or_changed_flat_field_file_is_a_clear_error(tmp_path):
    write_fields(tmp_path / "images", 10)
    Project.create(tmp_path / "project", tmp_path / "images", patch_size=24, backbone="efficientnet-lite0",
                   flat_field="subtract").close()
    path = tmp_path / "project" / "flat_field.npy"
    background = np.load(path)
    np.save(path, background + 1)
    with pytest.raises(ProjectError, match="not the one the project was made with"):
        Project.open(tmp_path / "project")
    path.unlink()
    with pytest.raises(ProjectError, match="flat_field.npy"):
        Project.open(tmp_path / "project")
    np.save(path, background)
    Project.open(tmp_path / "project").close()


def test_bad_datasets_and_parameters_are_named(tmp_path):
    write_fields(tmp_path / "few", 5)
    with pytest.raises(ConfigError, match="at least 8 images; the dataset has 5"):
        compute_flat_field(Dataset.open(tmp_path / "few"), "divide")
    write_fields(tmp_path / "mixed", 9)
    tifffile.imwrite(tmp_path / "mixed" / "other.tif", np.zeros((50, 50), np.uint16))
    with pytest.raises(ConfigError, match=r"one size; field00.tif is 64x80 pixels, other.tif 50x50"):
        compute_flat_field(Dataset.open(tmp_path / "mixed"), "divide")
    with pytest.raises(ConfigError, match="flat_field: 'flat' is not one of none, divide, subtract, auto"):
        Project.create(tmp_path / "p", tmp_path / "few", backbone="efficientnet-lite0", flat_field="flat")
    assert not (tmp_path / "p").exists()
    dark = tmp_path / "dark"
    dark.mkdir()
    for i in range(8):
        tifffile.imwrite(dark / f"d{i}.tif", np.zeros((16, 16), np.uint16))
    with pytest.raises(ConfigError, match="'divide' needs a background brighter than 0") as error:
        compute_flat_field(Dataset.open(dark), "divide")
    assert "subtract" in error.value.hint
    with pytest.raises(ConfigError, match="do not fit"):
        compute_flat_field(Dataset.open(tmp_path / "dark"), "divide", memory=1000)
    flat = FlatField("divide", np.ones((4, 4, 1), np.float32))
    with pytest.raises(ConfigError, match="the image is 5x4 pixels, the flat field 4x4"):
        display_rgb(np.zeros((5, 4, 1), np.uint8), Normalization((0.0,), (1.0,), flat_field=flat), (0,))


def test_an_image_of_another_size_fails_alone_naming_the_sizes(tmp_path):
    write_fields(tmp_path / "images", 8)
    project = Project.create(tmp_path / "project", tmp_path / "images", patch_size=24, backbone="efficientnet-lite0",
                             flat_field="divide")
    project.close()
    tifffile.imwrite(tmp_path / "images" / "zz-other.tif", np.zeros((50, 50), np.uint16))
    with Project.open(tmp_path / "project") as project:
        events = list(project.iter_embed())
    failed = [event for event in events if event.status == "failed"]
    assert len(events) == 9 and [event.image_id.split("@")[0] for event in failed] == ["zz-other.tif"]
    assert failed[0].message == "50x50 pixels; the project's flat field is for images of 64x80"


def test_the_command_line_and_run_file_take_the_setting(tmp_path):
    write_fields(tmp_path / "images", 8)
    command = [sys.executable, "-m", "simsearch", "-q", "embed", str(tmp_path / "images"), "--project", str(tmp_path / "p"),
               "--patch-size", "24", "--backbone", "efficientnet-lite0", "--flat-field", "subtract"]
    made = subprocess.run(command, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "flat field: each image less the per-pixel 20th percentile of 8 images (64x80" in made.stdout
    again = subprocess.run(command[:-1] + ["divide"], capture_output=True, text=True)
    assert again.returncode != 0 and "--flat-field: project" in again.stderr and "made with subtract, not divide" in again.stderr
    from simsearch.cli.runfile import validate

    (tmp_path / "a.csv").write_text("kind,class,image,x0,y0,x1,y1\n")
    config = {"dataset": "images", "project": "p", "output": "o", "annotations": "a.csv", "flat_field": "multiply"}
    with pytest.raises(ConfigError, match="flat_field"):
        validate(config, tmp_path / "run.yaml")
    validate({**config, "flat_field": "divide"}, tmp_path / "run.yaml")
