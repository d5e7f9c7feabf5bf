"""Pixels for the terminal: the image view with its overlays, and patch mosaics.

Pure numpy/PIL (no Textual), so the drawing is tested on its own. Everything is drawn at
the resolution the terminal will show (half-block cells are 1x2 pixels; Sixel and Kitty
cells are their real pixel size), so a one-pixel box line stays visible.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

import simsearch

# Okabe-Ito colours: distinguishable by colour-blind users, readable on dark and light themes
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167)]
NEGATIVE = (220, 40, 40)
CURSOR = (255, 255, 255)
FOCUS = (255, 0, 255)
MAX_DISPLAY_SIDE = 2048  # larger images are kept downsampled for display


def class_colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Overlay:
    """A box (x0, y0, x1, y1) in image pixels. style: 'solid' (prototypes, positives),
    'thin' (suggestions, detections), 'cross' (negatives: the box crossed out),
    'dashed' (the cursor box), 'focus' (the suggestion the grid points at)."""

    box: tuple[float, float, float, float]
    colour: tuple[int, int, int]
    style: str = "thin"


class DisplayImages:
    """What the backbone sees (normalised, channels mapped to RGB) as uint8, for the displayed
    images; a few kept in memory (least recently used out), large ones downsampled."""

    def __init__(self, project: simsearch.Project, capacity: int = 8):
        self.project = project
        self.capacity = capacity
        self._cache: OrderedDict[str, tuple[np.ndarray, float]] = OrderedDict()
        self._slides: set[str] = set()  # images read region by region: a zoomed view reads detail
        self._detail: dict[str, Detail] = {}  # per slide the last detail read, reused while panning

    def forget(self) -> None:
        """Drop every kept image (after the channels or the normalisation changed)."""
        self._cache.clear()
        self._detail.clear()

    def get(self, image_id: str) -> tuple[np.ndarray, float]:
        """(H', W', 3) uint8 and the factor from image pixels to its pixels (<= 1)."""
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        pixels = self.project.dataset.read(image_id)
        if isinstance(pixels, simsearch.LazyImage):
            self._slides.add(image_id)
        raw, smaller = simsearch.overview(pixels)  # a slide: a pyramid level
        rgb = (simsearch.display_rgb(raw, self.project.normalization, self.project.channels) * 255).astype(np.uint8)
        factor = min(1.0, MAX_DISPLAY_SIDE / max(rgb.shape[:2]))
        if factor < 1.0:
            size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
            rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        factor /= smaller
        self._cache[image_id] = (rgb, factor)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return rgb, factor

    def detail(self, image_id: str, region: tuple[float, float, float, float], scale: float) -> "Detail | None":
        """For a slide shown `scale` view px per image px over `region` (x0, y0, x1, y1 image px):
        that part read from the coarsest pyramid level that is sharp enough, with a margin for
        panning; None when the kept overview is sharp enough (or the image is no slide)."""
        if image_id not in self._slides or scale <= self.get(image_id)[1] * 1.05:
            return None
        x0, y0, x1, y1 = region
        kept = self._detail.get(image_id)
        if kept is not None and kept.factor >= min(1.0, scale) / 1.05 and kept.covers(region):
            return kept
        slide = self.project.dataset.read(image_id)
        height = slide.shape[0]
        index = max((i for i, (h, _) in enumerate(slide.levels) if h / height >= min(1.0, scale)), default=0)
        down = height / slide.levels[index][0]  # image px per level px
        margin_x, margin_y = (x1 - x0) / 2, (y1 - y0) / 2
        top, bottom = int(max(0.0, y0 - margin_y) / down), int(np.ceil((y1 + margin_y) / down))
        left, right = int(max(0.0, x0 - margin_x) / down), int(np.ceil((x1 + margin_x) / down))
        raw = slide.level_region(index, top, bottom, left, right)
        whole = self.project.normalization.for_image(slide)  # a per-image range is the slide's, not the region's
        rgb = (simsearch.display_rgb(raw, whole, self.project.channels) * 255).astype(np.uint8)
        piece = Detail(rgb, 1.0 / down, (left * down, top * down))
        self._detail[image_id] = piece
        return piece


@dataclass(frozen=True)
class Detail:
    """Part of a slide read for a zoomed view: `rgb` shows image px from `origin` (x, y) on,
    `factor` rgb px per image px."""

    rgb: np.ndarray
    factor: float
    origin: tuple[float, float]

    def covers(self, region: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = region
        ox, oy = self.origin
        height, width = self.rgb.shape[0] / self.factor, self.rgb.shape[1] / self.factor
        return ox <= max(0.0, x0) and oy <= max(0.0, y0) and x1 <= ox + width + 1 and y1 <= oy + height + 1


@dataclass
class Viewport:
    """Which part of an image is shown: zoom 1 fits the whole image; the centre is in image px."""

    height: int
    width: int
    zoom: float = 1.0
    cy: float = 0.0
    cx: float = 0.0

    def __post_init__(self):
        if not self.cy and not self.cx:
            self.cy, self.cx = self.height / 2, self.width / 2

    def region(self, aspect: float) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in image px shown in a view of width/height `aspect`, kept inside
        the image where it can be."""
        if self.width / self.height > aspect:
            view_w = self.width / self.zoom
            view_h = view_w / aspect
        else:
            view_h = self.height / self.zoom
            view_w = view_h * aspect
        x0 = _clamp_start(self.cx - view_w / 2, view_w, self.width)
        y0 = _clamp_start(self.cy - view_h / 2, view_h, self.height)
        return x0, y0, x0 + view_w, y0 + view_h

    def follow(self, y: float, x: float, aspect: float, margin: float = 0.1) -> None:
        """Pan just enough that (y, x) is inside the shown region."""
        x0, y0, x1, y1 = self.region(aspect)
        mx, my = (x1 - x0) * margin, (y1 - y0) * margin
        if x < x0 + mx or x > x1 - mx:
            self.cx = x
        if y < y0 + my or y > y1 - my:
            self.cy = y

    def set_zoom(self, zoom: float) -> None:
        """1 (the whole image) to 32x, or on a slide until about 64 image px fill the view."""
        self.zoom = float(min(max(32.0, max(self.height, self.width) / 64), max(1.0, zoom)))

    def fit(self, box: tuple[float, float, float, float], aspect: float, context: float = 0.75) -> None:
        """Centre on the box and zoom so that it fills the view with `context` x its size of
        surroundings on each side (as far as the zoom range allows)."""
        x0, y0, x1, y1 = box
        self.cx, self.cy = (x0 + x1) / 2, (y0 + y1) / 2
        want_w, want_h = (x1 - x0) * (1 + 2 * context), (y1 - y0) * (1 + 2 * context)
        if self.width / self.height > aspect:  # the view's width is what the zoom divides
            self.set_zoom(self.width / max(want_w, want_h * aspect, 1e-6))
        else:
            self.set_zoom(self.height / max(want_h, want_w / aspect, 1e-6))


def _clamp_start(start: float, extent: float, size: float) -> float:
    if extent >= size:
        return (size - extent) / 2  # centred, with a margin on both sides
    return min(max(0.0, start), size - extent)


def render_view(rgb: np.ndarray, factor: float, region: tuple[float, float, float, float], target: tuple[int, int],
                overlays: list[Overlay] = (), *, origin: tuple[float, float] = (0.0, 0.0)) -> Image.Image:
    """The `region` (image px) of a display image, resized to `target` (w, h) px, with the
    overlays drawn; outside the image is dark grey. `rgb` shows the image from `origin` (x, y
    image px) on: the whole image, or the part of a slide read for a zoomed view."""
    width, height = max(1, target[0]), max(1, target[1])
    x0, y0, x1, y1 = region
    ox, oy = origin
    scale = width / (x1 - x0)
    canvas = Image.new("RGB", (width, height), (40, 40, 40))
    # the part of the image inside the region, in display px
    sx0, sy0 = (max(ox, x0) - ox) * factor, (max(oy, y0) - oy) * factor
    sx1, sy1 = min(rgb.shape[1], (x1 - ox) * factor), min(rgb.shape[0], (y1 - oy) * factor)
    if sx1 > sx0 and sy1 > sy0:
        crop = Image.fromarray(rgb[int(sy0): int(np.ceil(sy1)), int(sx0): int(np.ceil(sx1))])
        px0, py0 = round((max(ox, x0) - x0) * scale), round((max(oy, y0) - y0) * scale)
        px1 = round((sx1 / factor + ox - x0) * scale)
        py1 = round((sy1 / factor + oy - y0) * scale)
        if px1 > px0 and py1 > py0:
            resample = Image.Resampling.NEAREST if scale / factor > 2 else Image.Resampling.BILINEAR
            canvas.paste(crop.resize((px1 - px0, py1 - py0), resample), (px0, py0))
    draw = ImageDraw.Draw(canvas)
    for overlay in overlays:
        bx0, by0, bx1, by1 = overlay.box
        left, top = (bx0 - x0) * scale, (by0 - y0) * scale
        # at least one pixel: a box smaller than a pixel of the view (a small level of a scale
        # pyramid on a small terminal) is a dot, not a rectangle turned inside out
        box = [left, top, max(left, (bx1 - x0) * scale - 1), max(top, (by1 - y0) * scale - 1)]
        if box[2] < 0 or box[3] < 0 or box[0] > width or box[1] > height:
            continue
        _draw_box(draw, box, overlay)
    return canvas


def edge_colour(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black beside a light colour, white beside a dark one: the line's edge, so that it shows
    on pale smears, dark fluorescence and grey electron micrographs alike."""
    r, g, b = colour
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b >= 128 else (255, 255, 255)


MIN_INSIDE = 3  # display px a box keeps free inside its lines, so that what it frames shows


def with_room_inside(box: list[float], width: int) -> list[float]:
    """The box (x0, y0, x1, y1, inclusive display px), grown about its centre where its lines of
    `width` px would leave fewer than `MIN_INSIDE` px inside: a box drawn small (an 80x24
    terminal shows a 32 px object of a 320 px image about 4 px wide) frames its object instead
    of covering it with a filled square."""
    side = 2 * width + MIN_INSIDE
    grown = list(box)
    for low, high in ((0, 2), (1, 3)):
        if grown[high] - grown[low] + 1 < side:
            middle = (grown[low] + grown[high]) / 2
            grown[low], grown[high] = middle - (side - 1) / 2, middle + (side - 1) / 2
    return grown


def _draw_box(draw: ImageDraw.ImageDraw, box: list[float], overlay: Overlay) -> None:
    """The box in its colour, one pixel or two wide, with a one-pixel edge of the contrasting
    colour just outside it; a small box grows so that its object shows inside (`with_room_inside`)."""
    width = 2 if overlay.style in ("solid", "focus") else 1
    x0, y0, x1, y1 = box = with_room_inside(box, width)
    edge = edge_colour(overlay.colour)
    if overlay.style == "dashed":
        sides = lambda a, b, c, d: (((a, b), (c, b)), ((c, b), (c, d)), ((c, d), (a, d)), ((a, d), (a, b)))  # noqa: E731
        for start, end in sides(x0 - 1, y0 - 1, x1 + 1, y1 + 1):
            _dashed(draw, start, end, edge)
        for start, end in sides(x0, y0, x1, y1):
            _dashed(draw, start, end, overlay.colour)
        return
    draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], outline=edge, width=1)
    draw.rectangle(box, outline=overlay.colour, width=width)
    if overlay.style == "cross":
        draw.line([(x0, y0), (x1, y1)], fill=overlay.colour)
        draw.line([(x0, y1), (x1, y0)], fill=overlay.colour)


def _dashed(draw, start, end, colour, dash: float = 3.0) -> None:
    (ax, ay), (bx, by) = start, end
    length = max(abs(bx - ax), abs(by - ay), 1.0)
    steps = int(length // dash)
    for i in range(0, steps + 1, 2):
        t0, t1 = i * dash / length, min(1.0, (i + 1) * dash / length)
        draw.line([(ax + (bx - ax) * t0, ay + (by - ay) * t0), (ax + (bx - ax) * t1, ay + (by - ay) * t1)], fill=colour)


def crop_patch(rgb: np.ndarray, factor: float, box: tuple[float, float, float, float], size: int) -> Image.Image:
    """The box (image px) of a display image as a size x size tile; outside the image is black."""
    x0, y0, x1, y1 = (v * factor for v in box)
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = max(ix0 + 1, int(np.ceil(x1))), max(iy0 + 1, int(np.ceil(y1)))
    tile = np.zeros((iy1 - iy0, ix1 - ix0, 3), np.uint8)
    sy0, sx0 = max(0, iy0), max(0, ix0)
    sy1, sx1 = min(rgb.shape[0], iy1), min(rgb.shape[1], ix1)
    if sy1 > sy0 and sx1 > sx0:
        tile[sy0 - iy0: sy1 - iy0, sx0 - ix0: sx1 - ix0] = rgb[sy0:sy1, sx0:sx1]
    return Image.fromarray(tile).resize((size, size), Image.Resampling.BILINEAR)


def mosaic(tiles: list[Image.Image], *, columns: int, tile: int, flagged: list[bool], focus: int | None,
           rows: int | None = None) -> Image.Image:
    """Tiles in a grid, one pixel apart; flagged ones crossed in red, the focused one framed
    (lines one pixel wide on small tiles, so that the tile still shows)."""
    rows = rows if rows is not None else max(1, -(-len(tiles) // columns))
    gap = 1
    line = 1 if tile < 24 else 2
    canvas = Image.new("RGB", (columns * (tile + gap), rows * (tile + gap)), (25, 25, 25))
    draw = ImageDraw.Draw(canvas)
    for index, image in enumerate(tiles[: columns * rows]):
        x, y = (index % columns) * (tile + gap), (index // columns) * (tile + gap)
        canvas.paste(image, (x, y))
        if flagged[index]:
            draw.line([(x, y), (x + tile - 1, y + tile - 1)], fill=NEGATIVE, width=line)
            draw.line([(x, y + tile - 1), (x + tile - 1, y)], fill=NEGATIVE, width=line)
        if index == focus:
            draw.rectangle([x, y, x + tile - 1, y + tile - 1], outline=FOCUS, width=line)
    return canvas


def sparkline(values: list[float], width: int = 24) -> str:
    """A text sparkline of the last `width` values (the loss curve, the similarity histogram)."""
    blocks = "▁▂▃▄▅▆▇█"
    values = [v for v in values if np.isfinite(v)][-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low or 1.0
    return "".join(blocks[min(7, int((v - low) / span * 7.999))] for v in values)
