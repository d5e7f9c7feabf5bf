"""Tests for simsearch.io.images: readers, dataset sources, skipping and stable ids."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile

from simsearch.util.errors import DatasetError, ImageReadError
from simsearch.io.images import (
    SUPPORTED_SUFFIXES, Dataset, ImageRecord, SkippedFile, probe_frames, read_image,
)

H, W = 40, 50


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _u8(rng, *shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _write_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def _write_jpeg(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path, quality=95)
    return path


def _skip_for(ds: Dataset, name: str) -> SkippedFile:
    matches = [s for s in ds.skipped if s.path.name == name]
    assert len(matches) == 1, f"{name} not skipped exactly once: {ds.skipped}"
    return matches[0]


# ------------------------------------------------------------------ TIFF kinds

@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32"])
def test_tiff_grey_round_trip(tmp_path, rng, dtype):
    arr = (rng.random((H, W)) * 200).astype(dtype)
    path = tmp_path / f"grey_{dtype}.tif"
    tifffile.imwrite(path, arr)
    assert probe_frames(path) == [(H, W, 1, dtype)]
    out = read_image(path)
    assert out.shape == (H, W, 1) and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out[..., 0], arr)


def test_tiff_imagej_cyx(tmp_path, rng):
    arr = _u8(rng, 3, H, W)
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "CYX"})
    assert probe_frames(path) == [(H, W, 3, "uint8")]
    np.testing.assert_array_equal(read_image(path), arr.transpose(1, 2, 0))


def test_tiff_rgb_yxs(tmp_path, rng):
    arr = _u8(rng, H, W, 3)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, arr, photometric="rgb")
    assert probe_frames(path) == [(H, W, 3, "uint8")]
    np.testing.assert_array_equal(read_image(path), arr)


def test_ome_tiff_tcyx_gives_frames(tmp_path, rng):
    arr = rng.integers(0, 60000, (4, 2, H, W), dtype=np.uint16)
    path = tmp_path / "ome.ome.tif"
    tifffile.imwrite(path, arr, ome=True, metadata={"axes": "TCYX"})
    assert probe_frames(path) == [(H, W, 2, "uint16")] * 4
    for t in range(4):
        out = read_image(path, t)
        assert out.dtype == np.uint16
        np.testing.assert_array_equal(out, arr[t].transpose(1, 2, 0))
    ds = Dataset.open(tmp_path)
    assert [r.frame for r in ds] == [0, 1, 2, 3]
    assert ds.channels == 2
    assert "#" not in ds.images[0].id and ds.images[2].id.startswith("ome.ome.tif#2@")
    with pytest.raises(ImageReadError, match="out of range"):
        read_image(path, 4)


def test_multipage_stack_becomes_frames(tmp_path, rng):
    arr = _u8(rng, 6, H, W)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, arr, photometric="minisblack")
    assert tifffile.TiffFile(path).series[0].axes == "QYX"
    assert probe_frames(path) == [(H, W, 1, "uint8")] * 6
    np.testing.assert_array_equal(read_image(path, 5)[..., 0], arr[5])


def test_unlabelled_three_planes_are_channels(tmp_path, rng):
    arr = _u8(rng, 3, H, W)
    path = tmp_path / "q3.tif"
    tifffile.imwrite(path, arr, photometric="minisblack")
    assert tifffile.TiffFile(path).series[0].axes == "QYX"
    assert probe_frames(path) == [(H, W, 3, "uint8")]
    np.testing.assert_array_equal(read_image(path), arr.transpose(1, 2, 0))


@pytest.mark.parametrize("arr", [np.zeros((H, W), bool), np.zeros((H, W), np.complex64)])
def test_unsupported_pixel_type(tmp_path, arr):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, arr)
    with pytest.raises(ImageReadError, match="unsupported pixel type") as info:
        read_image(path)
    assert "odd.tif" in str(info.value)


# ------------------------------------------------------------------ Pillow kinds

def test_png_rgb_round_trip(tmp_path, rng):
    arr = _u8(rng, H, W, 3)
    path = _write_png(tmp_path / "rgb.png", arr)
    out = read_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, arr)


def test_png_16bit_grey_round_trip(tmp_path, rng):
    arr = rng.integers(0, 65536, (H, W), dtype=np.uint16)
    path = _write_png(tmp_path / "grey16.png", arr)
    assert Image.open(path).mode.startswith("I;16")
    assert probe_frames(path) == [(H, W, 1, "uint16")]
    out = read_image(path)
    assert out.dtype == np.uint16 and out.shape == (H, W, 1)
    np.testing.assert_array_equal(out[..., 0], arr)


def test_png_rgba_drops_alpha(tmp_path, rng):
    arr = _u8(rng, H, W, 4)
    path = _write_png(tmp_path / "rgba.png", arr)
    np.testing.assert_array_equal(read_image(path), arr[..., :3])


def test_png_palette_greyalpha_and_bilevel(tmp_path, rng):
    rgb = _u8(rng, H, W, 3)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    grey = _u8(rng, H, W)
    Image.fromarray(np.stack([grey, grey // 2], axis=-1), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[..., 0], grey)
    bits = rng.random((H, W)) > 0.5
    Image.fromarray(bits).save(tmp_path / "bits.png")
    out = read_image(tmp_path / "bits.png")
    assert out.dtype == np.uint8 and out.shape == (H, W, 1)
    np.testing.assert_array_equal(out[..., 0], bits.astype(np.uint8) * 255)


def test_jpeg_and_bmp(tmp_path, rng):
    yy, xx = np.mgrid[0:H, 0:W]
    smooth = np.stack([yy * 5, xx * 4, (yy + xx) * 2], axis=-1).astype(np.uint8)
    jpg = _write_jpeg(tmp_path / "a.jpg", smooth)
    out = read_image(jpg)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(Image.open(jpg)))
    assert np.abs(out.astype(int) - smooth).mean() < 3  # lossy, but the same picture
    arr = _u8(rng, H, W, 3)
    bmp = tmp_path / "a.bmp"
    Image.fromarray(arr).save(bmp)
    np.testing.assert_array_equal(read_image(bmp), arr)


# ------------------------------------------------------------------ bad files

def test_corrupt_files_are_skipped_with_reasons(tmp_path, rng):
    good = _u8(rng, H, W, 3)
    _write_png(tmp_path / "good.png", good)
    tifffile.imwrite(tmp_path / "good.tif", _u8(rng, H, W, 3), photometric="rgb")
    (tmp_path / "empty.tif").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(_u8(rng, 200, 200, 3)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "garbage.png").write_bytes(rng.bytes(500))
    (tmp_path / "notes.xml").write_text("<xml/>")  # ignored silently

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    ds = Dataset.open(tmp_path)
    assert sorted(r.relpath for r in ds) == ["good.png", "good.tif"]
    assert len(ds.skipped) == 3
    assert _skip_for(ds, "empty.tif").reason == "zero-size file"
    assert "truncated or corrupt JPEG" in _skip_for(ds, "cut.jpg").reason
    assert "PNG" in _skip_for(ds, "garbage.png").reason
    np.testing.assert_array_equal(ds.read(ds.by_id(ds.images[0].id)), good)
    assert "cut.jpg" in ds.summary() and "zero-size file" in ds.summary()
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # global state restored

    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_truncated_jpeg_passes_header_probe_without_verify(tmp_path, rng):
    buf = io.BytesIO()
    Image.fromarray(_u8(rng, 200, 200, 3)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _write_png(tmp_path / "ok.png", _u8(rng, 200, 200, 3))
    assert len(Dataset.open(tmp_path, verify=False)) == 2
    assert len(Dataset.open(tmp_path, verify=True)) == 1


def test_list_file_with_missing_and_unsupported(tmp_path, rng):
    data = tmp_path / "data"
    data.mkdir()
    arr = _u8(rng, H, W)
    _write_png(data / "a.png", arr)
    (data / "scan.czi").write_bytes(b"xxxx")
    listing = tmp_path / "files.txt"
    listing.write_text("# my images\n\ndata/a.png\ndata/scan.czi\ndata/missing.tif\n")
    ds = Dataset.open(listing)
    assert ds.root == tmp_path.resolve()
    assert [r.relpath for r in ds] == ["data/a.png"]
    assert "unsupported file type '.czi'" in _skip_for(ds, "scan.czi").reason
    assert "not found" in _skip_for(ds, "missing.tif").reason
    np.testing.assert_array_equal(ds.read(ds.images[0])[..., 0], arr)


def test_mixed_channel_counts_raise_naming_odd_file(tmp_path, rng):
    for i in range(3):
        _write_png(tmp_path / f"rgb{i}.png", _u8(rng, H, W, 3))
    _write_png(tmp_path / "grey.png", _u8(rng, H, W))
    with pytest.raises(DatasetError, match="grey.png") as info:
        Dataset.open(tmp_path)
    assert "1 channel" in str(info.value) and "same channels" in info.value.hint
    assert "rgb0.png" not in str(info.value)


# ------------------------------------------------------------------ sources

@pytest.fixture
def tree(tmp_path, rng):
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    _write_png(root / "a.png", _u8(rng, H, W))
    tifffile.imwrite(root / "sub" / "b.tif", _u8(rng, H, W))
    tifffile.imwrite(root / "sub" / "c.TIFF", _u8(rng, H, W))
    _write_png(root / ".hidden" / "d.png", _u8(rng, H, W))
    _write_png(root / ".e.png", _u8(rng, H, W))
    return root


def test_folder_source_is_recursive_and_skips_hidden(tree):
    ds = Dataset.open(tree)
    assert ds.root == tree.resolve()
    assert [r.relpath for r in ds] == ["a.png", "sub/b.tif", "sub/c.TIFF"]
    assert len(ds) == 3 and ds.skipped == [] and ds.channels == 1
    assert all(isinstance(r, ImageRecord) and r.path.is_absolute() for r in ds)
    assert str(tree.resolve()) in ds.summary()


def test_glob_source(tree):
    ds = Dataset.open(str(tree / "sub" / "*.tif"))
    assert ds.root == (tree / "sub").resolve()
    assert [r.relpath for r in ds] == ["b.tif"]
    ds = Dataset.open(str(tree / "**" / "*.png"))
    assert ds.root == tree.resolve() and [r.relpath for r in ds] == ["a.png"]


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        Dataset.open(tmp_path / "nowhere")
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match="empty_folder"):
        Dataset.open(empty)


def test_no_readable_image_lists_reasons(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(DatasetError, match="zero-size file") as info:
        Dataset.open(tmp_path)
    assert str(tmp_path.resolve()) in str(info.value)


# ------------------------------------------------------------------ ids and reading

def test_ids_are_stable_and_content_based(tree, tmp_path):
    ids = [r.id for r in Dataset.open(tree)]
    assert ids[0].startswith("a.png@") and len(ids[0].split("@")[1]) == 12
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tree, copy)
    assert [r.id for r in Dataset.open(copy)] == ids

    arr = tifffile.imread(copy / "sub" / "b.tif")
    arr[0, 0] ^= 1
    tifffile.imwrite(copy / "sub" / "b.tif", arr)
    changed = [r.id for r in Dataset.open(copy)]
    assert changed[0] == ids[0] and changed[2] == ids[2] and changed[1] != ids[1]


def test_read_by_id_and_unknown_id(tree):
    ds = Dataset.open(tree)
    for record in ds:
        assert ds.by_id(record.id) is record
        np.testing.assert_array_equal(ds.read(record.id), read_image(record.path, record.frame))
    with pytest.raises(DatasetError, match="no-such-image@123"):
        ds.read("no-such-image@123")


def test_supported_suffixes_constant():
    assert SUPPORTED_SUFFIXES == (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".zarr")


def test_non_finite_pixels_are_refused_by_name(tmp_path):
    image = np.ones((20, 30), np.float32)
    image[3, 4] = np.nan
    image[5, 6] = np.inf
    tifffile.imwrite(tmp_path / "nan.tif", image)
    with pytest.raises(ImageReadError, match=r"nan.tif.*2 of 600 pixel values are NaN or infinite"):
        read_image(tmp_path / "nan.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((20, 30), np.float32))
    assert read_image(tmp_path / "ok.tif").shape == (20, 30, 1)
    dataset = Dataset.open(tmp_path)  # the other images load; this one is skipped with its reason
    assert [r.path.name for r in dataset] == ["ok.tif"] and "NaN" in dataset.skipped[0].reason


def test_images_larger_than_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch, rng):
    tifffile.imwrite(tmp_path / "big.tif", rng.integers(0, 255, (40, 50), dtype=np.uint8))
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setenv("SIMSEARCH_MAX_IMAGE_PIXELS", "1999")
    for name in ("big.tif", "big.png"):
        with pytest.raises(ImageReadError, match=rf"{name}.*50x40 pixels is more than the 1,999") as info:
            read_image(tmp_path / name)
        assert "SIMSEARCH_MAX_IMAGE_PIXELS" in info.value.hint
    monkeypatch.setenv("SIMSEARCH_MAX_IMAGE_PIXELS", "2000")
    assert read_image(tmp_path / "big.tif").shape == (40, 50, 1)


def test_ome_channel_names_are_shown_where_the_files_give_them(tmp_path):
    from simsearch import Project
    from simsearch.io.images import channel_names

    for i in range(2):
        tifffile.imwrite(tmp_path / f"f{i}.ome.tif", np.full((4, 40, 40), i, np.uint16), ome=True,
                         metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP", "Cy5", "brightfield"]}})
    dataset = Dataset.open(tmp_path)
    assert dataset.channel_names == ["DAPI", "GFP", "Cy5", "brightfield"]
    assert "channels: 4: 0 (DAPI), 1 (GFP), 2 (Cy5), 3 (brightfield)" in dataset.summary()
    project = Project.create(tmp_path / "proj", dataset, channels=[1, 3], backbone="efficientnet-lite0", displayed=1)
    with project:
        assert "channels  [1, 3] of 4 (GFP, brightfield)" in project.summary()
    plain = tmp_path / "plain"
    plain.mkdir()
    tifffile.imwrite(plain / "a.tif", np.zeros((2, 40, 40), np.uint16), metadata={"axes": "CYX"})
    assert channel_names(plain / "a.tif") == [] and Dataset.open(plain).channel_names == []
    assert "channels: 2\n" in Dataset.open(plain).summary() + "\n"
    unnamed = tmp_path / "unnamed.ome.tif"  # OME without names
    tifffile.imwrite(unnamed, np.zeros((2, 40, 40), np.uint16), ome=True, metadata={"axes": "CYX"})
    assert channel_names(unnamed) == []
