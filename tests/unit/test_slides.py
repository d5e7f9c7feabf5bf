"""Whole-slide images: read region by region (LazyImage), embedded and processed in bands of
rows, exported in full-resolution coordinates; each compared with the whole-image path."""
import json
import weakref

import numpy as np
import pytest
import tifffile

import simsearch.features.embed as embed_module
from conftest import TINY, planted_image
from simsearch import (DenseEmbedder, LazyImage, Normalization, PatchGeometry, Project, compute_dataset_statistics,
                       iter_process, overview, read_image, train, write_results)
from simsearch.io.images import Dataset
from simsearch.util.files import save_npy_rows

NORM8 = Normalization((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def _pyramid_tiff(path, image, levels=(1, 2, 4), axes="YXS"):
    """A tiled pyramidal OME-TIFF of an (H, W, C) image (C = 3, YXS) or (C, H, W) (CYX)."""
    photometric = "rgb" if axes == "YXS" else "minisblack"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(image, tile=(128, 128), subifds=len(levels) - 1, metadata={"axes": axes},
                  compression="zlib", photometric=photometric)
        for factor in levels[1:]:
            sub = image[::factor, ::factor] if axes == "YXS" else image[:, ::factor, ::factor]
            tif.write(sub, tile=(128, 128), subfiletype=1, compression="zlib", photometric=photometric)


def _slide(rows=3, cols=4):
    """Planted discs and crosses tiled into one larger (H, W, 3) uint8 'slide'."""
    tiles = [[planted_image(r * cols + c) for c in range(cols)] for r in range(rows)]
    grey = np.block([[tile[0] for tile in row] for row in tiles])
    return np.repeat(grey[..., None], 3, axis=-1)


@pytest.fixture
def one_band_held(monkeypatch):
    """Fails a test if a band of vectors yielded by `DenseEmbedder.iter_rows` is still held by
    anyone (the generator, torch's wrappers, the consumer) while the next band is computed:
    a slide's peak memory is one band, not two. Returns a function that stops the watch (e.g.
    before `embed`, which keeps every band by design) and says how many bands were checked."""
    yielded, checked, watching = [], [], [True]
    iter_rows, embed_rows = DenseEmbedder.iter_rows, DenseEmbedder._embed_rows

    def watched_rows(self, *args, **kwargs):
        for first, vectors in iter_rows(self, *args, **kwargs):
            yielded.append(weakref.ref(vectors))
            yield first, vectors
            del vectors

    def watched_embed(self, *args, **kwargs):
        if watching[0]:
            alive = sum(ref() is not None for ref in yielded)
            assert alive == 0, f"{alive} band(s) yielded earlier still held while the next is computed"
            checked.append(len(yielded))
        return embed_rows(self, *args, **kwargs)

    def stop() -> int:
        watching[0] = False
        return sum(1 for n in checked if n)

    monkeypatch.setattr(DenseEmbedder, "iter_rows", watched_rows)
    monkeypatch.setattr(DenseEmbedder, "_embed_rows", watched_embed)
    return stop


@pytest.fixture
def lazy_above(monkeypatch):
    def set_limit(pixels):
        monkeypatch.setenv("SIMSEARCH_LAZY_IMAGE_PIXELS", str(pixels))
    return set_limit


def test_large_tiled_tiff_is_read_by_region(tmp_path, lazy_above):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    _pyramid_tiff(tmp_path / "rgb.ome.tif", rgb)
    planes = rng.integers(0, 4096, (2, 700, 900), dtype=np.uint16)
    _pyramid_tiff(tmp_path / "two.ome.tif", planes, axes="CYX")
    tall = np.concatenate([rgb[..., 0], rgb[..., 0]])
    tifffile.imwrite(tmp_path / "strips.tif", tall, rowsperstrip=len(tall))  # one strip of 1,400 rows: read whole

    lazy_above(600 * 900)
    image = read_image(tmp_path / "rgb.ome.tif")
    assert isinstance(image, LazyImage) and image.shape == (700, 900, 3) and image.dtype == np.uint8
    assert image.levels == [(700, 900), (350, 450), (175, 225)]
    np.testing.assert_array_equal(image[130:390, 250:700], rgb[130:390, 250:700])
    np.testing.assert_array_equal(image[690:800, -5:], rgb[690:800, -5:])  # clipped as numpy clips
    np.testing.assert_array_equal(image[5:9, 7:8, 1], rgb[5:9, 7:8, 1])
    with pytest.raises(TypeError):
        image[::2, ::2]
    two = read_image(tmp_path / "two.ome.tif")
    np.testing.assert_array_equal(two[100:200, 300:310], np.moveaxis(planes, 0, 2)[100:200, 300:310])
    assert isinstance(read_image(tmp_path / "strips.tif"), np.ndarray)
    lazy_above(700 * 900)  # at or below the limit: read whole, as every other image
    assert isinstance(read_image(tmp_path / "rgb.ome.tif"), np.ndarray)


def test_overview_uses_a_pyramid_level_or_bands(tmp_path, lazy_above):
    rgb = np.random.default_rng(1).integers(0, 256, (700, 900, 3), dtype=np.uint8)
    _pyramid_tiff(tmp_path / "pyramid.ome.tif", rgb)
    _pyramid_tiff(tmp_path / "flat.ome.tif", rgb, levels=(1,))
    lazy_above(1000)
    small, factor = overview(read_image(tmp_path / "pyramid.ome.tif"), max_pixels=200 * 250)
    assert factor == 4.0 and small.shape == (175, 225, 3)
    np.testing.assert_array_equal(small, rgb[::4, ::4])  # the file's own level
    small, factor = overview(read_image(tmp_path / "flat.ome.tif"), max_pixels=200 * 250)
    assert factor == 4.0
    np.testing.assert_array_equal(small, rgb[::4, ::4])  # read in bands, subsampled
    array, factor = overview(rgb)
    assert array is rgb and factor == 1.0


def test_statistics_of_a_slide_come_from_its_overview(tmp_path, lazy_above):
    slide = _slide()
    _pyramid_tiff(tmp_path / "slide.ome.tif", slide)
    lazy_above(10_000)
    lazy = compute_dataset_statistics(Dataset.open(tmp_path))
    lazy_above(10**9)
    whole = compute_dataset_statistics(Dataset.open(tmp_path))
    np.testing.assert_allclose(lazy.normalization.low, whole.normalization.low, atol=2)
    np.testing.assert_allclose(lazy.normalization.high, whole.normalization.high, atol=2)


def test_npy_rows_draw_the_first_band_before_the_file_and_hold_one_band(tmp_path):
    """A generator of bands is asked for its first before any file exists (a process killed
    while computing it leaves nothing), and each band written is let go before the next is
    computed."""
    path, refs = tmp_path / "vectors.npy", []

    def bands():
        for k in range(3):
            assert not list(tmp_path.iterdir()) if k == 0 else True, "the file was created before the first band"
            assert all(ref() is None for ref in refs), "an earlier band is still held"
            band = np.full((2, 4), k, np.float16)  # already the file's dtype: written without a copy
            refs.append(weakref.ref(band))
            yield band
            del band

    save_npy_rows(path, (6, 4), np.float16, bands())
    np.testing.assert_array_equal(np.load(path)[:, 0], [0, 0, 1, 1, 2, 2])


def test_npy_written_in_bands_is_np_save(tmp_path):
    vectors = np.random.default_rng(2).normal(size=(7, 5, 3)).astype(np.float32)
    np.save(tmp_path / "whole.npy", vectors.astype(np.float16))
    save_npy_rows(tmp_path / "bands.npy", vectors.shape, np.float16, (vectors[:3], vectors[3:6], vectors[6:]))
    assert (tmp_path / "bands.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    with pytest.raises(ValueError):
        save_npy_rows(tmp_path / "short.npy", vectors.shape, np.float16, (vectors[:3],))
    assert not (tmp_path / "short.npy").exists()


@pytest.mark.parametrize("patch, passes, border", [(48, 1, False), (40, 2, True), (96, 1, True)])
def test_embedding_in_bands_matches_the_whole_image(lite0, patch, passes, border):
    image = _slide(2, 2)
    geometry = PatchGeometry.for_patch(patch, passes=passes, border=border)
    embedder = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu")
    whole = embedder.embed(image).vectors
    bands = list(embedder.iter_rows(image, band_rows=2 * passes))
    assert [first for first, _ in bands] == list(range(0, len(whole), 2 * passes))
    banded = np.concatenate([vectors for _, vectors in bands])
    cosine = (whole * banded).sum(axis=-1)
    assert banded.shape == whole.shape and cosine.min() > 0.97 and cosine.mean() > 0.995, (cosine.min(), cosine.mean())
    one_band = np.concatenate([vectors for _, vectors in embedder.iter_rows(image, band_rows=len(whole))])
    np.testing.assert_array_equal(one_band, whole)


def test_a_lazy_slide_embeds_as_the_array_does(lite0, tmp_path, lazy_above):
    slide = _slide(2, 2)
    _pyramid_tiff(tmp_path / "slide.ome.tif", slide)
    lazy_above(10_000)
    lazy = read_image(tmp_path / "slide.ome.tif")
    embedder = DenseEmbedder(lite0, NORM8, PatchGeometry.for_patch(32), channels=(0, 1, 2), device="cpu")
    for band_rows in (3, None):
        from_file = np.concatenate([v for _, v in embedder.iter_rows(lazy, band_rows=band_rows)])
        from_array = np.concatenate([v for _, v in embedder.iter_rows(slide, band_rows=band_rows)])
        np.testing.assert_array_equal(from_file, from_array)


class _Counting(LazyImage):
    """A LazyImage that remembers the largest region it decoded."""
    largest = 0

    def _region(self, level, ys, xs):
        block = super()._region(level, ys, xs)
        type(self).largest = max(type(self).largest, block.shape[0] * block.shape[1])
        return block


def test_processing_a_slide_in_bands_matches_the_whole_image(curated, tmp_path, lazy_above, monkeypatch, one_band_held):
    """A 528 x 832 slide of planted objects processed as a LazyImage, in bands of rows (a small
    band budget stands in for a slide's size) gives the detections, label image and exports of
    the same pixels processed whole, in full-resolution coordinates, reading only regions."""
    project, _ = curated
    train(project, TINY, device="cpu")
    slide = _slide(3, 4)[..., :1]  # the planted project's images are grey
    folder = tmp_path / "slides"
    folder.mkdir()
    with tifffile.TiffWriter(folder / "slide.ome.tif", bigtiff=True, ome=True) as tif:
        tif.write(slide[..., 0], tile=(128, 128), subifds=1, compression="zlib")
        tif.write(slide[::4, ::4, 0], tile=(128, 128), subfiletype=1, compression="zlib")
    results = {}
    for mode in ("whole", "bands"):
        if mode == "bands":
            lazy_above(10_000)
            monkeypatch.setattr(embed_module, "BAND_BYTES", 6 * 52 * 112 * 4)  # six grid rows of this slide per band
            monkeypatch.setattr("simsearch.io.slides.LazyImage", _Counting)
        dataset = Dataset.open(folder)
        assert isinstance(dataset.read(dataset.images[0]), _Counting if mode == "bands" else np.ndarray)
        out = tmp_path / mode
        _Counting.largest = 0
        events = list(iter_process(project, out, images=dataset, device="cpu"))
        assert [e.status for e in events] == ["computed"]
        if mode == "bands":  # the network saw regions, never the whole slide at once, and one band at a time
            assert 0 < _Counting.largest < slide.shape[0] * slide.shape[1] / 2
            assert one_band_held() >= 2
        write_results(project, out, images=dataset, segmentation=True)
        results[mode] = out

    whole_maps = np.load(results["whole"] / "maps" / "slide.ome.tif.npy").astype(np.float32)
    band_maps = np.load(results["bands"] / "maps" / "slide.ome.tif.npy").astype(np.float32)
    assert whole_maps.shape == band_maps.shape and np.abs(whole_maps - band_maps).max() < 0.05
    whole = json.loads((results["whole"] / "detections.json").read_text())
    banded = json.loads((results["bands"] / "detections.json").read_text())
    assert len(whole) >= 12 and abs(len(whole) - len(banded)) <= len(whole) // 10
    for detection in banded:  # the same objects, in full-resolution pixels
        nearest = min(whole, key=lambda d: np.hypot(d["x"] - detection["x"], d["y"] - detection["y"]))
        assert np.hypot(nearest["x"] - detection["x"], nearest["y"] - detection["y"]) <= 8
        assert 0 <= detection["x"] < slide.shape[1] and 0 <= detection["y"] < slide.shape[0]
    geojson = json.loads((results["bands"] / "geojson" / "slide.ome.tif.geojson").read_text())
    xs = [x for feature in geojson["features"] for x, _ in feature["geometry"]["coordinates"][0]]
    assert max(xs) > slide.shape[1] / 2  # QuPath gets full-resolution coordinates, not the overview's
    whole_labels = tifffile.imread(results["whole"] / "labels" / "slide.ome.tif.tif")
    band_labels = tifffile.imread(results["bands"] / "labels" / "slide.ome.tif.tif")
    assert band_labels.shape == slide.shape[:2]
    assert (whole_labels != band_labels).mean() < 0.02
    with tifffile.TiffFile(results["bands"] / "labels" / "slide.ome.tif.tif") as tif:
        assert tif.pages[0].is_tiled  # a slide's labels are written tile by tile


def test_labels_in_bands_equal_labels_whole(tmp_path, lazy_above):
    from simsearch.inference.process import _write_labels

    geometry = PatchGeometry.for_patch(32)
    maps = np.random.default_rng(3).dirichlet(np.ones(3), size=(40, 50)).astype(np.float32)
    levels = [(1.0, geometry, maps)]
    size = (40 * 8 + 24, 50 * 8 + 24)
    lazy_above(10**9)
    fractions_whole = _write_labels(tmp_path / "whole.tif", levels, size, [0.4, 0.4], ["a", "b"])
    lazy_above(1000)
    fractions_bands = _write_labels(tmp_path / "bands.tif", levels, size, [0.4, 0.4], ["a", "b"])
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "bands.tif"), tifffile.imread(tmp_path / "whole.tif"))
    np.testing.assert_allclose(fractions_bands, fractions_whole)


def test_project_caches_a_slide_band_by_band(lite0, tmp_path, lazy_above, monkeypatch, one_band_held):
    slide = _slide(2, 3)
    (tmp_path / "images").mkdir()
    _pyramid_tiff(tmp_path / "images" / "slide.ome.tif", slide)
    lazy_above(10_000)
    monkeypatch.setattr(embed_module, "BAND_BYTES", 4 * 60 * 112 * 4)
    project = Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0", patch_size=32)
    try:
        image_id = project.dataset.images[0].id
        events = list(project.iter_embed())
        assert [e.status for e in events] == ["embedded"] and one_band_held() >= 2
        cached = project.embeddings(image_id)
        whole = project.embedder.embed(slide).vectors
        cosine = (np.asarray(cached.vectors, np.float32) * whole).sum(axis=-1)
        assert cached.vectors.shape == whole.shape and cosine.min() > 0.97
        index = project.build_index()
        assert len(index._on_disk) == 1 and index._cpu_index.ntotal == 0  # the slide is searched from its cache file
        for index in (index, project.load_index()):
            hits = index.search(np.asarray(cached.vectors[3, 5], np.float32), k=1)
            np.testing.assert_allclose(hits.centres[0, 0], cached.centres()[3, 5])  # full-resolution pixels
    finally:
        project.close()


def _ome_zarr(path, data, zarr_format, axes="tcyx"):
    """An OME-Zarr image of `data` with a 2x smaller level: NGFF 0.4 (Zarr v2) or 0.5 (Zarr v3)."""
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    group.create_array("0", data=data, chunks=(1,) * (data.ndim - 2) + (64, 64))
    group.create_array("1", data=data[..., ::2, ::2], chunks=(1,) * (data.ndim - 2) + (64, 64))
    multiscales = [{"version": "0.4", "axes": [{"name": a} for a in axes], "datasets": [{"path": "0"}, {"path": "1"}]}]
    if zarr_format == 2:
        group.attrs["multiscales"] = multiscales
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": multiscales}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_images_are_read_by_region(tmp_path, lazy_above, zarr_format):
    data = np.random.default_rng(4).integers(0, 4000, (2, 3, 300, 400)).astype(np.uint16)  # T, C, Y, X
    _ome_zarr(tmp_path / "plate" / "well.ome.zarr", data, zarr_format)
    (tmp_path / "plate" / "empty.zarr").mkdir()  # a folder named .zarr that is no image: walked into, nothing found
    lazy_above(100_000)
    dataset = Dataset.open(tmp_path)
    assert [(r.relpath, r.frame, r.channels, r.dtype) for r in dataset] == [
        ("plate/well.ome.zarr", 0, 3, "uint16"), ("plate/well.ome.zarr", 1, 3, "uint16")]
    for record in dataset:  # each time point is a frame, as in a TIFF
        image = dataset.read(record)
        assert isinstance(image, LazyImage) and image.levels == [(300, 400), (150, 200)]
        np.testing.assert_array_equal(image[40:250, 100:130], np.moveaxis(data[record.frame], 0, 2)[40:250, 100:130])
    assert dataset.images[0].id != dataset.images[1].id
    lazy_above(10**9)  # small: read whole, as a TIFF would be
    whole = Dataset.open(tmp_path / "plate" / "well.ome.zarr")
    np.testing.assert_array_equal(whole.read(whole.images[1]), np.moveaxis(data[1], 0, 2))


def test_a_zarr_folder_without_an_image_is_skipped_by_name(tmp_path):
    import zarr

    group = zarr.open_group(str(tmp_path / "labels.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "fine.tif", np.zeros((32, 32), np.uint8))
    dataset = Dataset.open(tmp_path)
    assert [r.relpath for r in dataset] == ["fine.tif"]
    assert [(s.path.name, "multiscales" in s.reason) for s in dataset.skipped] == [("labels.zarr", True)]


def test_a_corrupt_tile_or_a_bad_limit_is_named(tmp_path, lazy_above):
    """A slide whose tile fails to decode fails by its file name where the tile is read, and
    only that image fails; a malformed SIMSEARCH_LAZY_IMAGE_PIXELS names the variable."""
    from simsearch import DatasetError, ImageReadError
    from simsearch.io.slides import lazy_image_pixels

    rgb = np.random.default_rng(5).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    path = tmp_path / "broken.ome.tif"
    _pyramid_tiff(path, rgb, levels=(1,))
    with tifffile.TiffFile(path) as tif:
        offset, size = tif.pages[0].dataoffsets[5], tif.pages[0].databytecounts[5]
    with open(path, "r+b") as handle:  # garble the middle of one zlib tile
        handle.seek(offset + size // 4)
        handle.write(b"\xff" * (size // 2))
    lazy_above(1000)
    image = read_image(path)
    np.testing.assert_array_equal(image[:100, :100], rgb[:100, :100])  # tiles before it read fine
    with pytest.raises(ImageReadError, match="broken.ome.tif"):
        image[:, :]
    lazy_above("many")
    with pytest.raises(DatasetError, match="SIMSEARCH_LAZY_IMAGE_PIXELS"):
        lazy_image_pixels()


def test_tiles_of_a_slide_show_its_full_resolution(tmp_path, lazy_above):
    """`write_tiles` on a slide crops each item from the full-resolution pixels (only its tiles
    decoded), not from the overview the UI keeps (a 16 MP pyramid level, where a small patch
    is a few pixels): a noise slide just above 16 MP, whose overview is its half-size level."""
    from PIL import Image
    from simsearch import write_tiles
    from simsearch.curation.tiles import TILE_SIDE

    rng = np.random.default_rng(3)
    planes = rng.integers(0, 4096, (1, 4100, 4100), dtype=np.uint16)
    (tmp_path / "images").mkdir()
    _pyramid_tiff(tmp_path / "images" / "slide.ome.tif", planes, levels=(1, 2), axes="CYX")
    lazy_above(10_000)
    project = Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0", patch_size=32)
    try:
        image_id = project.dataset.images[0].id
        assert overview(project.dataset.read(image_id))[1] == 2.0
        (low,), (high,) = project.normalization.low, project.normalization.high
        Item = type("Item", (), {})
        items = []
        for y, x in [(2000.0, 1500.0), (10.0, 4095.0)]:  # the second reaches beyond two edges
            item = Item()
            item.image_id, item.y, item.x = image_id, y, x
            items.append(item)
        paths = write_tiles(project, items, tmp_path / "tiles")
        for item, path in zip(items, paths):
            tile = np.asarray(Image.open(path))
            top, left = int(item.y) - 32, int(item.x) - 32  # the patch and half a patch around it: 64 px
            crop = np.zeros((64, 64), np.float32)  # black beyond the image
            inner = planes[0, max(0, top):top + 64, max(0, left):left + 64].astype(np.float32)
            crop[max(0, -top):max(0, -top) + inner.shape[0], max(0, -left):max(0, -left) + inner.shape[1]] = (
                (inner - low) / (high - low)).clip(0, 1)
            expected = np.repeat((crop[..., None] * 255).astype(np.uint8), 3, axis=-1)
            expected = np.asarray(Image.fromarray(expected).resize((TILE_SIDE, TILE_SIDE), Image.Resampling.NEAREST))
            inside = slice(50, 110)  # within the box's lines (40 to 120 px of the tile)
            np.testing.assert_array_equal(tile[inside, inside], expected[inside, inside])
        assert (tile[:, -40:] == 0).all()  # beyond the right edge: black
    finally:
        project.close()
