"""The terminal UI's drawing (numpy/PIL only), against simple references."""
import numpy as np
import pytest

pytest.importorskip("textual")
from simsearch_tui.render import CURSOR, Overlay, Viewport, crop_patch, mosaic, render_view, sparkline  # noqa: E402


def gradient(height=60, width=80):
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([ys * 4 % 256, xs * 3 % 256, (ys + xs) % 256], axis=-1).astype(np.uint8)


def test_whole_image_at_zoom_one_matches_a_plain_resize():
    rgb = gradient()
    viewport = Viewport(60, 80)
    region = viewport.region(80 / 60)
    assert region == pytest.approx((0, 0, 80, 60))
    view = np.asarray(render_view(rgb, 1.0, region, (80, 60)))
    np.testing.assert_array_equal(view, rgb)  # same size: the pixels themselves


def test_zoomed_region_is_the_crop_and_stays_inside_the_image():
    rgb = gradient()
    viewport = Viewport(60, 80, zoom=4.0, cy=2.0, cx=78.0)  # asks for a corner: clamped inside
    x0, y0, x1, y1 = viewport.region(80 / 60)
    assert (x1 - x0, y1 - y0) == pytest.approx((20, 15))
    assert (x0, y0) == pytest.approx((60, 0))
    view = np.asarray(render_view(rgb, 1.0, (x0, y0, x1, y1), (20, 15)))
    np.testing.assert_array_equal(view, rgb[0:15, 60:80])


def test_downsampled_display_images_map_back_to_image_pixels():
    rgb = gradient(120, 160)
    half = rgb[::2, ::2]
    full = np.asarray(render_view(rgb, 1.0, (40, 20, 120, 80), (40, 30))).astype(int)
    halved = np.asarray(render_view(half, 0.5, (40, 20, 120, 80), (40, 30))).astype(int)
    assert np.abs(full - halved).mean() < 6  # the same place, at a coarser sampling


def test_overlays_are_drawn_where_the_boxes_are():
    rgb = np.zeros((60, 80, 3), np.uint8)
    view = np.asarray(render_view(rgb, 1.0, (0, 0, 80, 60), (80, 60), [Overlay((10, 20, 30, 40), (255, 0, 0), "thin")]))
    red = np.argwhere((view == (255, 0, 0)).all(axis=-1))
    assert red[:, 0].min() == 20 and red[:, 0].max() == 39 and red[:, 1].min() == 10 and red[:, 1].max() == 29
    assert (view[25, 15] == 0).all()  # inside the box: untouched
    white = np.argwhere((view == 255).all(axis=-1))  # the dark red line's light edge, just outside it
    assert white[:, 0].min() == 19 and white[:, 0].max() == 40 and white[:, 1].min() == 9 and white[:, 1].max() == 30
    dashed = np.asarray(render_view(rgb, 1.0, (0, 0, 80, 60), (80, 60), [Overlay((10, 20, 30, 40), CURSOR, "dashed")]))
    top = dashed[20, 10:30, 0]
    assert 0 < (top == 255).sum() < 20  # dashes, not a solid line


def test_a_box_smaller_than_a_view_pixel_is_a_dot():
    """A 20 px box on a 512 px image shown 40 px wide (a small pyramid level at 80x24) is less
    than a pixel across: it is drawn as a dot, in every style, not refused by PIL."""
    rgb = np.zeros((512, 512, 3), np.uint8)
    for style in ("thin", "solid", "focus", "cross", "dashed"):
        view = np.asarray(render_view(rgb, 1.0, (0, 0, 512, 512), (40, 40), [Overlay((100, 100, 110, 110), (255, 0, 0), style)]))
        assert (view.sum(axis=-1) > 0).any(), style


def test_a_box_drawn_small_frames_its_object_instead_of_covering_it():
    """An 80x24 terminal shows a 32 px nucleus of a 320 px image about 4 px wide: its box lines
    (and their edges) filled it, and the Thresholds screen showed solid squares. The box grows
    about its centre until 3 px show inside its lines; a box with room inside is drawn as it was."""
    rgb = np.zeros((320, 320, 3), np.uint8)
    rgb[150:170, 150:170] = 200  # the object, 20 px: about 3 px in the view
    for style, width in (("thin", 1), ("solid", 2), ("cross", 1)):
        view = np.asarray(render_view(rgb, 1.0, (0, 0, 320, 320), (44, 44), [Overlay((144, 144, 176, 176), (255, 0, 0), style)]))
        if style != "cross":
            assert (view[21, 21] > 150).all(), style  # the object's middle shows
        red = np.argwhere((view == (255, 0, 0)).all(axis=-1))
        inside = red[:, 1].max() - red[:, 1].min() + 1 - 2 * width
        assert inside >= 3 and red[:, 0].min() <= 19 <= 23 <= red[:, 0].max(), (style, inside)
    large = np.asarray(render_view(rgb, 1.0, (0, 0, 320, 320), (320, 320), [Overlay((144, 144, 176, 176), (255, 0, 0), "thin")]))
    red = np.argwhere((large == (255, 0, 0)).all(axis=-1))
    assert (red.min(axis=0) == 144).all() and (red.max(axis=0) == 175).all()  # unchanged where there is room


@pytest.mark.parametrize("background", [0, 128, 255])
def test_every_box_shows_on_dark_grey_and_pale_images(background):
    """Each colour keeps a contrasting edge: on black, mid-grey and white images, at every point
    of a box's outline the line or its edge stands out from the image."""
    from simsearch_tui.render import FOCUS, NEGATIVE, PALETTE

    rgb = np.full((60, 80, 3), background, np.uint8)
    for colour in [*PALETTE, CURSOR, NEGATIVE, FOCUS]:
        view = np.asarray(render_view(rgb, 1.0, (0, 0, 80, 60), (80, 60), [Overlay((10, 20, 30, 40), colour, "thin")])).astype(float)
        stands_out = np.abs(view @ [0.2126, 0.7152, 0.0722] - background) >= 64
        # the line runs along rows 20 and 39 and columns 10 and 29; its edge just outside
        assert (stands_out[20, 10:30] | stands_out[19, 10:30]).all(), (colour, background)
        assert (stands_out[39, 10:30] | stands_out[40, 10:30]).all(), (colour, background)
        assert (stands_out[20:40, 10] | stands_out[20:40, 9]).all(), (colour, background)
        assert (stands_out[20:40, 29] | stands_out[20:40, 30]).all(), (colour, background)


def test_letterboxing_outside_the_image_is_grey():
    rgb = np.full((60, 20, 3), 255, np.uint8)
    viewport = Viewport(60, 20)
    region = viewport.region(80 / 60)  # a tall image in a wide view
    view = np.asarray(render_view(rgb, 1.0, region, (80, 60)))
    assert (view[30, 0] == 40).all() and (view[30, 40] == 255).all()


def test_crop_patch_pads_outside_the_image_and_mosaic_marks():
    rgb = gradient()
    tile = np.asarray(crop_patch(rgb, 1.0, (-5, -5, 5, 5), 10))
    assert (tile[:5, :5] == 0).all()
    np.testing.assert_array_equal(tile[5:, 5:], rgb[:5, :5])
    tiles = [crop_patch(rgb, 1.0, (0, 0, 10, 10), 10) for _ in range(5)]
    grid = np.asarray(mosaic(tiles, columns=3, tile=10, flagged=[False, True, False, False, False], focus=4))
    assert grid.shape == (2 * 11, 3 * 11, 3)
    assert tuple(grid[11, 11]) == (255, 0, 255)  # the focus frame of tile 4 (row 1, column 1)
    assert tuple(grid[5, 16]) == (220, 40, 40)  # the cross of the flagged tile 1, at its centre
    assert tuple(grid[5, 5]) != (220, 40, 40)


def test_sparkline():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([]) == "" and sparkline([float("nan"), 1.0]) == "▁"


def test_a_part_of_the_image_from_an_origin_renders_as_the_whole_image():
    rgb = gradient(120, 160)
    region, target = (50.0, 30.0, 90.0, 60.0), (40, 30)
    whole = np.asarray(render_view(rgb, 1.0, region, target, [Overlay((60, 40, 70, 50), (255, 0, 0))]))
    part = np.asarray(render_view(rgb[20:90, 40:130], 1.0, region, target, [Overlay((60, 40, 70, 50), (255, 0, 0))],
                                  origin=(40.0, 20.0)))
    np.testing.assert_array_equal(part, whole)


def test_a_zoomed_slide_is_read_sharper_than_its_overview(tmp_path, monkeypatch):
    """A slide is kept as its overview; zoomed in, the view shows full-resolution pixels read for
    the region in view (the same rendering a terminal gets), reused while panning nearby."""
    import tifffile

    import simsearch
    from simsearch_tui.render import DisplayImages

    monkeypatch.setenv("SIMSEARCH_LAZY_IMAGE_PIXELS", "100000")
    monkeypatch.setattr("simsearch_tui.render.MAX_DISPLAY_SIDE", 128)
    rng = np.random.default_rng(0)
    slide = rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)
    (tmp_path / "images").mkdir()
    with tifffile.TiffWriter(tmp_path / "images" / "slide.ome.tif", bigtiff=True, ome=True) as tif:
        tif.write(slide, tile=(128, 128), subifds=2, photometric="rgb")
        tif.write(slide[::2, ::2], tile=(128, 128), subfiletype=1, photometric="rgb")
        tif.write(slide[::4, ::4], tile=(128, 128), subfiletype=1, photometric="rgb")
    project = simsearch.Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0",
                                       normalization=simsearch.Normalization((0.0,) * 3, (255.0,) * 3))
    try:
        images = DisplayImages(project)
        image_id = project.dataset.images[0].id
        rgb, factor = images.get(image_id)
        assert max(rgb.shape[:2]) == 128 and factor == pytest.approx(128 / 800)
        assert images.detail(image_id, (0, 0, 800, 600), 0.1) is None  # the overview is sharp enough
        region = (300.0, 200.0, 340.0, 230.0)
        piece = images.detail(image_id, region, 1.0)  # one view px per image px: level 0
        assert piece.factor == 1.0
        view = np.asarray(render_view(piece.rgb, piece.factor, region, (40, 30), origin=piece.origin))
        np.testing.assert_array_equal(view, slide[200:230, 300:340])
        assert images.detail(image_id, (310.0, 205.0, 350.0, 235.0), 1.0) is piece  # panning nearby: no new read
        coarse = images.detail(image_id, (100.0, 100.0, 400.0, 325.0), 0.4)
        assert coarse.factor == 0.5  # the coarsest level sharp enough
        plain = DisplayImages(project)
        monkeypatch.setenv("SIMSEARCH_LAZY_IMAGE_PIXELS", str(10**9))  # the same file read whole: no slide
        assert plain.detail(image_id, region, 1.0) is None
    finally:
        project.close()
