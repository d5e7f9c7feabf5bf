import numpy as np
import pytest
import torch

from conftest import blob_image
from simsearch import ConfigError, DenseEmbedder, Normalization, PatchGeometry, find_peaks, similarity_map
from simsearch.features.backbones import IMAGENET_MEAN
from simsearch.features.embed import _Resampler, scaled_tops_lefts
from simsearch.search.peaks import peak_spacing

NORM8 = Normalization((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


def _textured(shape=(176, 224), seed=0):
    """Smooth random colour texture, (H, W, 3) uint8: every window differs."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (shape[0] // 8 + 1, shape[1] // 8 + 1, 3)).astype(np.float32)
    image = np.kron(small, np.ones((8, 8, 1)))[: shape[0], : shape[1]]
    return image.astype(np.uint8)


def test_geometry_scale_kernel_and_grid():
    g = PatchGeometry.for_patch(96)
    assert (g.scale, g.kernel, g.grid_step) == (1.0, (6, 6), 16.0)
    small = PatchGeometry.for_patch(40)  # upsampled to span MIN_CELLS = 6 cells
    assert small.scale == pytest.approx(2.4) and small.kernel == (6, 6) and small.grid_step == pytest.approx(16 / 2.4)
    coarse = PatchGeometry.for_patch(40, min_cells=4)
    assert coarse.scale == pytest.approx(1.6) and coarse.kernel == (4, 4) and coarse.grid_step == pytest.approx(10.0)
    fine = PatchGeometry.for_patch(96, passes=2)
    assert fine.grid_step == 8.0
    assert g.grid_shape(480, 640) == (25, 35)
    assert fine.grid_shape(480, 640) == (49, 69)
    assert g.grid_shape(50, 640) == (0, 35)  # image smaller than a patch: no positions
    rect = PatchGeometry.for_patch((100, 60))
    assert rect.kernel == (10, 6) and rect.scale == pytest.approx(96 / 60, rel=1e-5)
    for geometry in (g, small, fine):
        y, x = geometry.centre(3, 5)
        assert geometry.nearest_position(y, x, (50, 50)) == (3, 5)
        x0, y0, x1, y1 = geometry.box(3, 5)
        assert (y1 - y0) == pytest.approx(geometry.kernel[0] * 16 / geometry.scale)
    assert PatchGeometry.from_dict(small.to_dict()) == small
    with pytest.raises(ConfigError, match="passes"):
        PatchGeometry.for_patch(96, passes=3)
    with pytest.raises(ConfigError, match="patch_size"):
        PatchGeometry.for_patch(2)
    for cells in (0, 17):
        with pytest.raises(ConfigError, match=f"min_cells: must be between 1 and 16, got {cells}"):
            PatchGeometry.for_patch(32, min_cells=cells)


def test_pooling_sets_the_width_of_the_gaussian_window(lite0):
    """The window's sigma is `pooling` x its side: narrower weights the centre more; a geometry
    written before the setting reads the old 0.25 and writes the dict (the cache key) it had."""
    wide, narrow = (np.array(PatchGeometry.for_patch(32, pooling=p).window) for p in (0.25, 1 / 6))
    assert wide.shape == narrow.shape == (6, 6) and wide.sum() == pytest.approx(1) and narrow.sum() == pytest.approx(1)
    assert narrow[2:4, 2:4].sum() > wide[2:4, 2:4].sum() and narrow[0, 0] < wide[0, 0]
    sigma = np.sqrt((narrow.sum(axis=1) * (np.arange(6) - 2.5) ** 2).sum())  # the discrete window's spread, in cells
    assert 0.85 < sigma < 1.0  # a Gaussian of sigma 1 cell, cut at the window's edge
    geometry = PatchGeometry.for_patch(32, pooling=1 / 6)
    assert PatchGeometry.from_dict(geometry.to_dict()) == geometry and geometry.at_scale(2).pooling == geometry.pooling
    embedder = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu")
    np.testing.assert_allclose(embedder._window.numpy(), narrow, rtol=1e-6)  # what the dense path pools with
    old = PatchGeometry.for_patch(32, pooling=0.25).to_dict()
    assert "pooling" not in old and PatchGeometry.from_dict(old).pooling == 0.25
    for bad in (0, 2):
        with pytest.raises(ConfigError, match=f"pooling: the window's sigma must be 0.05 to 1 x its side, got {bad}"):
            PatchGeometry.for_patch(32, pooling=bad)


def test_border_grid_reaches_the_image_edge_around_the_plain_grid():
    """A border grid holds the plain grid's positions (shifted by the margin's steps) and
    a quarter window more on every side, so row 0's centre lies a quarter patch from the
    image's edge; `grid_position`
    inverts `centre`; projects made before it keep their settings and cache keys."""
    for patch, passes, margin_steps in ((40, 1, 1), (96, 2, 3), (80, 1, 1), (192, 1, 3)):
        plain = PatchGeometry.for_patch(patch, passes=passes)
        bordered = PatchGeometry.for_patch(patch, passes=passes, border=True)
        assert bordered.margin == (margin_steps * bordered.step_scaled,) * 2 and plain.margin == (0, 0)
        rows, cols = plain.grid_shape(300, 260)
        assert bordered.grid_shape(300, 260) == (rows + 2 * margin_steps, cols + 2 * margin_steps)
        assert bordered.centre(3 + margin_steps, 5 + margin_steps) == pytest.approx(plain.centre(3, 5))
        first = bordered.centre(0, 0)  # a quarter patch from the edge, or up to a step more
        assert first[0] == first[1] == pytest.approx((bordered.kernel[0] * 8 - bordered.margin[0]) / bordered.scale)
        assert patch / 4 - 1 <= first[0] < patch / 4 + bordered.grid_step
        last = bordered.centre(*(n - 1 for n in bordered.grid_shape(300, 260)))
        assert 300 - bordered.grid_step - first[0] < last[0] <= 300 and 260 - bordered.grid_step - first[1] < last[1] <= 260
        r, c = np.meshgrid(np.arange(7.0), np.arange(4.0), indexing="ij")
        back = bordered.grid_position(*bordered.centre(r, c))
        np.testing.assert_allclose(back[0], r, atol=1e-9)
        np.testing.assert_allclose(back[1], c, atol=1e-9)
        assert bordered.nearest_position(*bordered.centre(4, 6), (50, 50)) == (4, 6)
        assert bordered.at_scale(2).border and bordered.at_scale(2).margin == bordered.margin
        assert PatchGeometry.from_dict(bordered.to_dict()) == bordered
        assert "border" not in plain.to_dict() and PatchGeometry.from_dict(plain.to_dict()) == plain
    assert PatchGeometry.for_patch(64, min_cells=4, border=True).grid_shape(50, 640) == (0, 39)  # smaller than a patch: none


def test_fill_is_part_of_the_geometry_and_its_cache_key_but_not_of_older_projects(lite0):
    """The background fill travels with the geometry (over the pyramid too) and changes the
    embedding cache key; a geometry without the key (made before it) fills neutrally, and
    keeps its key; an unknown fill is refused by name."""
    neutral = PatchGeometry.for_patch(40, border=True)
    background = PatchGeometry.for_patch(40, border=True, fill="background")
    assert "fill" not in neutral.to_dict() and background.to_dict()["fill"] == "background"
    assert PatchGeometry.from_dict(neutral.to_dict()).fill == "neutral"
    assert PatchGeometry.from_dict(background.to_dict()) == background and background.at_scale(2).fill == "background"
    embedder = lambda geometry: DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu")  # noqa: E731
    assert embedder(neutral).cache_settings() != embedder(background).cache_settings()
    with pytest.raises(ConfigError, match="fill: 'mirror'"):
        PatchGeometry.for_patch(40, fill="mirror")


def test_resampler_fills_beyond_the_image_with_the_backbone_mean():
    """Beyond the border a region holds the fill colour (the backbone's input mean, 0 after
    its normalisation), at any scale; inside, the image itself, up to its edge pixels."""
    image = _textured((37, 41))
    fill = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    region = _Resampler(image, NORM8, (0, 1, 2), 1.0).region(-20, 60, -3, 47)
    torch.testing.assert_close(region[:, 20:57, 3:44], torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1))
    outside = torch.ones(region.shape[1:], dtype=torch.bool)
    outside[20:57, 3:44] = False
    assert (region == fill).all(dim=0)[outside].all()
    upscaled = _Resampler(image, NORM8, (0, 1, 2), 2.5).region(-10, 110, -10, 110)  # 37 px x 2.5: scaled rows 0-92
    is_fill = (upscaled == fill).all(dim=0).all(dim=1)
    assert is_fill[:10].all() and is_fill[103:].all() and not is_fill[10:103].any()
    grey = _Resampler(image[..., :1], Normalization((0.0,), (255.0,)), (0,), 1.0, fill=(0.5, 0.5, 0.5)).region(-1, 1, 0, 1)
    assert grey[:, 0].flatten().tolist() == [0.5, 0.5, 0.5]


def test_background_fill_is_the_images_median_colour_mapped_as_its_channels():
    """fill='background': beyond the edge each selected channel's median over the image,
    normalised, as the image's channels are shown (one as grey, two as red and green); a
    slide is sampled through its overview, never read whole."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (60, 70, 3)).astype(np.uint8)
    image[:40] = (10, 200, 90)  # most of the image: its ground
    median = np.median(image.reshape(-1, 3), axis=0) / 255
    region = _Resampler(image, NORM8, (0, 1, 2), 1.0, fill="background").region(-4, 0, 0, 3)
    np.testing.assert_allclose(region[:, 0, 0].numpy(), median, atol=1e-6)
    grey = _Resampler(image, NORM8, (1,), 2.0, fill="background").region(-2, 0, 0, 1)
    np.testing.assert_allclose(grey[:, 0, 0].numpy(), [median[1]] * 3, atol=1e-6)
    two = _Resampler(image, NORM8, (2, 0), 1.0, fill="background").region(0, 1, -1, 0)
    np.testing.assert_allclose(two[:, 0, 0].numpy(), [median[2], median[0], 0.0], atol=1e-6)
    dark = Normalization((5.0,) * 3, (105.0,) * 3)  # a dataset's range: the median maps through it, clipped
    np.testing.assert_allclose(_Resampler(image, dark, (0, 1, 2), 1.0, fill="background").background_colour(),
                               np.clip((median * 255 - 5) / 100, 0, 1), atol=1e-6)


@pytest.mark.parametrize("patch, passes, tile_cells, fill", [(64, 1, 32, "neutral"), (96, 2, 32, "neutral"), (64, 1, 6, "neutral"),
                                                             (64, 1, 6, "background"), (96, 2, 32, "background")])
def test_border_grid_equals_the_plain_grid_over_the_padded_image(lite0, patch, passes, tile_cells, fill):
    """The border grid's vectors are those of the plain grid over the image padded by the
    margin with the fill colour (the backbone's mean, or the image's median colour), whole or
    in tiles: every tile of an image sees the same fill."""
    bordered = PatchGeometry.for_patch(patch, min_cells=4, passes=passes, border=True, fill=fill)
    plain = PatchGeometry.for_patch(patch, min_cells=4, passes=passes)
    image = _textured((176, 224), seed=5).astype(np.float32)
    margin = bordered.margin[0]
    colour = np.median(image.reshape(-1, 3), axis=0) if fill == "background" else 255 * np.array(IMAGENET_MEAN)
    padded = np.stack([np.pad(image[..., c], margin, constant_values=colour[c]) for c in range(3)], axis=-1)
    make = lambda geometry: DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu",  # noqa: E731
                                          tile_cells=tile_cells, halo_cells=4)
    at_edge = make(bordered).embed(image)
    reference = make(plain).embed(padded)
    assert at_edge.grid_shape == reference.grid_shape == bordered.grid_shape(176, 224)
    np.testing.assert_allclose(at_edge.vectors, reference.vectors, atol=1e-4)


def test_channel_selection_to_three_backbone_channels():
    image = np.random.default_rng(3).integers(0, 256, (5, 6, 4)).astype(np.uint8)
    norm = Normalization((0.0,) * 4, (255.0,) * 4)
    expected = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)
    grey = _Resampler(image, norm, (2,), 1.0).region(0, 5, 0, 6)
    assert grey.shape == (3, 5, 6) and all(torch.allclose(grey[c], expected[2]) for c in range(3))
    two = _Resampler(image, norm, (3, 0), 1.0).region(0, 5, 0, 6)
    assert torch.allclose(two[0], expected[3]) and torch.allclose(two[1], expected[0]) and (two[2] == 0).all()
    three = _Resampler(image, norm, (1, 2, 3), 1.0).region(0, 5, 0, 6)
    assert torch.allclose(three, expected[1:])


def test_resampler_applies_the_normalization():
    image = np.random.default_rng(4).integers(0, 4096, (7, 9, 2)).astype(np.uint16)
    norm = Normalization((100.0, 50.0), (3000.0, 50.0))  # channel 1 is constant: maps to 0
    region = _Resampler(image, norm, (0, 1), 1.0).region(0, 7, 0, 9)
    expected = torch.from_numpy(norm.apply(image)).permute(2, 0, 1)
    torch.testing.assert_close(region[:2], expected, rtol=1e-5, atol=1e-6)


def test_resampler_regions_are_tile_independent():
    image = _textured((37, 41))
    for scale in (1.0, 1.6, 3.3, 0.5, 0.3):
        resampler = _Resampler(image, NORM8, (0, 1, 2), scale)
        whole = resampler.region(-5, 70, -3, 80)
        piece = resampler.region(20, 50, 10, 60)
        torch.testing.assert_close(piece, whole[:, 25:55, 13:63])
    plain = _Resampler(image, NORM8, (0, 1, 2), 1.0).region(0, 37, 0, 41)
    torch.testing.assert_close(plain, torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1))


def test_reduction_filters_out_what_it_cannot_sample():
    """At scale < 1 the image is low-pass filtered first: a one-pixel checkerboard reduced
    by 0.3 becomes even grey (point sampling would keep full-contrast aliases), while a
    smooth ramp keeps its values."""
    checks = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)[..., None]
    reduced = _Resampler(checks, Normalization((0.0,), (255.0,)), (0,), 0.3).region(0, 19, 0, 19)
    assert float(reduced.std()) < 0.02 and abs(float(reduced.mean()) - 0.5) < 0.02
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1)).astype(np.uint8)[..., None]
    smooth = _Resampler(ramp, Normalization((0.0,), (255.0,)), (0,), 0.5).region(8, 24, 8, 24)[0]
    expected = ramp[16:48:2, 16:48:2, 0].astype(np.float32) / 255 + (ramp[0, 1, 0] / 255) / 2  # pixel centres shift by half
    torch.testing.assert_close(smooth, torch.from_numpy(expected.astype(np.float32)), atol=0.01, rtol=0)


def test_scale_pyramid_geometry_sees_objects_as_the_base_patch_does():
    base = PatchGeometry.for_patch(40)
    for factor in (0.5, 2.0, 3.0):
        level = base.at_scale(factor)
        assert level.kernel == base.kernel and level.grid_step == pytest.approx(base.grid_step * factor)
        assert level.patch_size == (round(40 * factor),) * 2
        assert level.scale * level.patch_size[0] == pytest.approx(base.scale * 40, rel=0.02)
        x0, y0, x1, y1 = level.box(2, 3)
        assert x1 - x0 == pytest.approx(40 * factor, rel=0.02)
    assert base.at_scale(1) is base
    with pytest.raises(ConfigError, match="scale"):
        base.at_scale(0)


@pytest.mark.parametrize("patch,passes", [(48, 1), (32, 2), (20, 1)])
def test_dense_embedding_equals_window_run_alone(lite0, patch, passes):
    """Away from the borders, the dense vector of a patch equals the patch cropped (with
    4 cells of context) and run through the network alone."""
    geometry = PatchGeometry.for_patch(patch, passes=passes)
    embedder = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu")
    image = _textured()
    dense = embedder.embed(image)
    assert dense.vectors.shape == (*geometry.grid_shape(*image.shape[:2]), 112)
    np.testing.assert_allclose(np.linalg.norm(dense.vectors, axis=-1), 1.0, rtol=1e-5)
    margin = 4 * passes  # 4 cells of context, in grid steps
    rows = np.arange(margin, dense.grid_shape[0] - margin)
    cols = np.arange(margin, dense.grid_shape[1] - margin)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    pick = np.random.default_rng(0).choice(rr.size, size=min(16, rr.size), replace=False)
    rr, cc = rr.ravel()[pick], cc.ravel()[pick]
    assert len(rr) == 16
    alone = embedder.embed_windows(image, scaled_tops_lefts(geometry, rr, cc), context_cells=4)
    cosine = (alone * dense.vectors[rr, cc]).sum(axis=1)
    assert cosine.min() > 0.97, cosine.min()
    # and without context (the paper's per-patch crop) it is a different, weaker match
    bare = embedder.embed_windows(image, scaled_tops_lefts(geometry, rr, cc), context_cells=0)
    assert (bare * dense.vectors[rr, cc]).sum(axis=1).mean() < cosine.mean()


def test_tiled_embedding_matches_whole_image(lite0, monkeypatch):
    """Tiles with halos give the whole image's vectors within tolerance, and every tile the
    network sees has one shape: edge tiles take their context from inside the image (tiles
    of many shapes fragmented the heap of a slide's process)."""
    geometry = PatchGeometry.for_patch(48, min_cells=4)
    image = _textured((176, 208), seed=4)
    whole = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu").embed(image)
    tiler = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu", tile_cells=6, halo_cells=4)
    shapes = []
    run_network = tiler._run_network
    monkeypatch.setattr(tiler, "_run_network", lambda pixels: shapes.append(tuple(pixels.shape)) or run_network(pixels))
    tiled = tiler.embed(image)
    cosine = (whole.vectors * tiled.vectors).sum(axis=-1)
    assert cosine.min() > 0.97 and cosine.mean() > 0.995
    assert len(shapes) == 9 and len(set(shapes)) == 1, shapes  # 3 x 3 tiles of 5 or 6 cells and a halo of 4


@pytest.mark.parametrize("patch, passes, scale, tile_cells, border", [
    (48, 1, 1.0, 128, False), (96, 2, 1.0, 128, True), (64, 1, 2.0, 128, False), (48, 1, 1.0, 6, True)])
def test_images_embedded_together_equal_each_embedded_alone(lite0, patch, passes, scale, tile_cells, border):
    """`embed_batch`: same-shape images through the network as one batch, tile by tile, give
    each image's vectors as `embed` does (upscaled, two passes, reduced, 3 x 3 tiles);
    images of mixed shapes are embedded one at a time."""
    geometry = PatchGeometry.for_patch(patch, passes=passes, border=border).at_scale(scale)
    embedder = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu", tile_cells=tile_cells, halo_cells=4)
    images = [_textured((176, 224), seed=seed) for seed in (1, 2, 3)]
    together = embedder.embed_batch(images)
    for image, embedded in zip(images, together):
        alone = embedder.embed(image)
        assert embedded.vectors.shape == alone.vectors.shape and embedded.image_size == (176, 224)
        np.testing.assert_allclose(embedded.vectors, alone.vectors, atol=1e-4)
    mixed = embedder.embed_batch([images[0], images[1][:160]])
    np.testing.assert_array_equal(mixed[1].vectors, embedder.embed(images[1][:160]).vectors)


def test_tiles_cover_an_axis_with_one_input_span_and_their_halos():
    """Tiles along an axis: interiors cover it in order without gaps; every input window has
    one span and lies inside the axis; each interior sees `halo` cells of context on both sides
    but the edge's; ceil(size / tile) tiles, computing no more cells than halos cut at the edges."""
    from simsearch.features.embed import _tiles

    for size in range(1, 400):
        for tile in (4, 6, 32, 128):
            for halo in (0, 4, 8):
                tiles, span = _tiles(size, tile, halo)
                assert [t[0] for t in tiles] == [0] + [t[1] for t in tiles[:-1]] and tiles[-1][1] == size
                for first, stop, start in tiles:
                    assert first < stop and 0 <= start and start + span <= size
                    assert first - start >= min(halo, first) and start + span - stop >= min(halo, size - stop)
                assert len(tiles) <= -(-size // tile)
                if len(tiles) > 1:
                    assert len(tiles) == -(-size // tile) or tile < 2 * halo
                    assert len(tiles) * span <= size + 2 * halo * (len(tiles) - 1) + len(tiles)


def test_pooling_a_few_rows_at_a_time_equals_one_convolution(lite0, monkeypatch):
    """The Gaussian pooling written into the (rows, cols, D) target a few rows at a time (here
    2 rows per chunk), also into a strided target as the passes use, equals one depthwise
    convolution over the whole feature map."""
    import torch.nn.functional as F
    import simsearch.features.embed as embed_module

    embedder = DenseEmbedder(lite0, NORM8, PatchGeometry.for_patch(48), channels=(0, 1, 2), device="cpu")
    kh, kw = embedder.geometry.kernel
    features = torch.randn(112, 9 + kh - 1, 7 + kw - 1, generator=torch.Generator().manual_seed(0))
    window = embedder._window
    reference = F.conv2d(features[None], window.expand(112, 1, kh, kw), groups=112)[0].permute(1, 2, 0)
    monkeypatch.setattr(embed_module, "_POOL_CHUNK_BYTES", 2 * 7 * 112 * 4)
    target = torch.full((9, 7, 112), float("nan"))
    embedder._pool_into(features, target)
    torch.testing.assert_close(target, reference, rtol=1e-5, atol=1e-5)
    strided = torch.full((18, 14, 112), float("nan"))
    embedder._pool_into(features, strided[1::2, 0::2])
    torch.testing.assert_close(strided[1::2, 0::2], reference, rtol=1e-5, atol=1e-5)
    assert strided[0::2].isnan().all() and strided[1::2, 1::2].isnan().all()  # nothing written beside the target


def test_image_smaller_than_patch_gives_empty_grid(lite0):
    geometry = PatchGeometry.for_patch(96)
    out = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu").embed(_textured((40, 300)))
    assert out.vectors.shape == (0, geometry.grid_shape(40, 300)[1], 112)


def test_single_channel_16bit_input(lite0):
    image = blob_image((96, 112), [(48, 56)], dtype=np.uint16, channels=1)
    norm = Normalization((0.0,), (65535.0,))
    out = DenseEmbedder(lite0, norm, PatchGeometry.for_patch(32), channels=(0,), device="cpu").embed(image)
    assert out.vectors.dtype == np.float32 and np.isfinite(out.vectors).all()


def _peaks(embedder, image, prototype_centre, threshold):
    dense = embedder.embed(image)
    geometry = embedder.geometry
    row, col = geometry.nearest_position(*prototype_centre, dense.grid_shape)
    heat = similarity_map(dense.vectors, dense.vectors[row, col])
    peaks = find_peaks(heat, min_distance=peak_spacing(geometry), threshold=threshold)
    return np.stack(geometry.centre(peaks.rows, peaks.cols), axis=1)


def test_small_crowded_objects_are_localised_after_upsampling(lite0):
    """16 px nuclei, 28 px apart: at stride 16 without upsampling one feature cell
    holds parts of two nuclei; upsampled so the 24 px patch spans 4 cells, every
    nucleus gets its own similarity peak near its centre."""
    centres = [(40 + 28 * i, 40 + 28 * j) for i in range(4) for j in range(5)]
    image = blob_image((170, 200), centres, radius=8, seed=5)
    norm = Normalization((0.0,) * 3, (255.0,) * 3)
    upsampled = DenseEmbedder(lite0, norm, PatchGeometry.for_patch(24), channels=(0, 1, 2), device="cpu")
    found = _peaks(upsampled, image, centres[6], threshold=0.8)
    distance = np.linalg.norm(found[:, None, :] - np.array(centres)[None], axis=-1)
    assert len(found) == len(centres)
    assert distance.min(axis=0).max() <= 0.3 * 24  # every nucleus has a peak within the matching radius
    coarse = DenseEmbedder(lite0, norm, PatchGeometry.for_patch(24, min_cells=1), channels=(0, 1, 2), device="cpu")
    merged = _peaks(coarse, image, centres[6], threshold=0.8)
    hits = (np.linalg.norm(merged[:, None] - np.array(centres)[None], axis=-1).min(axis=0) <= 0.3 * 24).sum()
    assert hits < len(centres)  # the stride-16 grid cannot place a peak on each nucleus


def test_touching_objects_each_get_a_peak_at_the_default_upsampling(lite0):
    """Pairs of touching discs (14 px, centres 15 px apart, patch 32) beside lone ones, the
    similarity to a lone disc: with the default upsampling (6 cells per patch) and peaks 0.3 x
    the patch apart, each of the 14 discs has one of the 14 best peaks within the matching
    radius; at 4 cells per patch the map has one maximum for some pairs."""
    centres = []
    for i in range(3):
        for j in range(3):
            y, x = 36 + 56 * i, 36 + 64 * j
            centres += [(y, x - 7.5), (y, x + 7.5)] if (i + j) % 2 == 0 else [(y, x)]
    image = blob_image((190, 220), centres, radius=7, seed=3)
    lone = centres[2]

    def found(geometry):
        dense = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu").embed(image)
        heat = similarity_map(dense.vectors, dense.vectors[geometry.nearest_position(*lone, dense.grid_shape)])
        peaks = find_peaks(heat, min_distance=peak_spacing(geometry))
        ys, xs = geometry.centre(peaks.rows[: len(centres)], peaks.cols[: len(centres)])
        distance = np.hypot(np.subtract.outer(ys, [c[0] for c in centres]), np.subtract.outer(xs, [c[1] for c in centres]))
        return int((distance.min(axis=0) <= 0.3 * 32).sum())

    assert found(PatchGeometry.for_patch(32)) == len(centres)
    assert found(PatchGeometry.for_patch(32, min_cells=4)) < len(centres) - 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_embeddings_match_cpu(lite0):
    geometry = PatchGeometry.for_patch(48)
    image = _textured((200, 260), seed=6)
    cpu = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu").embed(image)
    gpu = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cuda").embed(image)
    lite0.to("cpu")
    cosine = (cpu.vectors * gpu.vectors).sum(axis=-1)
    assert cosine.min() > 0.98 and cosine.mean() > 0.995


def test_embed_at_matches_dense_and_rotations_match_rotated_image(lite0):
    geometry = PatchGeometry.for_patch((32, 48))  # not square: rotated windows are transposed
    embedder = DenseEmbedder(lite0, NORM8, geometry, channels=(0, 1, 2), device="cpu")
    image = _textured((208, 240), seed=7)
    dense = embedder.embed(image)
    row, col = dense.grid_shape[0] // 2, dense.grid_shape[1] // 2
    centre = np.array([dense.geometry.centre(row, col)])
    at = embedder.embed_at(image, centre, rotations=(0, 1, 2, 3))
    assert at.shape == (4, 112)
    assert float(at[0] @ dense.vectors[row, col]) > 0.97
    # the 90-degree rotation of the patch is the same patch in the image rotated by 90 degrees
    rotated_image = np.ascontiguousarray(np.rot90(image, 1))
    y, x = centre[0]
    rotated_centre = np.array([[image.shape[1] - x, y]])  # where (y, x) lands after np.rot90
    rotated_embedder = DenseEmbedder(lite0, NORM8, PatchGeometry.for_patch((48, 32)), channels=(0, 1, 2), device="cpu")
    direct = rotated_embedder.embed_at(rotated_image, rotated_centre)[0]
    assert float(at[1] @ direct) > 0.97
    assert float(at[2] @ at[0]) < 0.999  # the rotations are different vectors
