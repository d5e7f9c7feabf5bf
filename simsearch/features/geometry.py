"""Where patch embeddings sit: the patch shape, the resampling scale and the grid.

A patch of (h, w) original pixels becomes a window of (kh, kw) feature cells of
16 scaled pixels. Small patches are upsampled first so that they span at least
`min_cells` cells per side (`MIN_CELLS`, 6): a 40 px platelet at scale 2.4 spans 6
cells instead of 2.5, so neighbours are no longer merged into one cell, the centre-weighted
pooling has a centre to weight, and the maps of touching objects keep a maximum on each.
Grid positions are `16 / passes` scaled pixels apart; passes > 1 uses shifted backbone
passes (see embed.py).

With `border`, the grid reaches beyond the image by a quarter of the window (in whole steps)
on every side, where the network sees `fill` (embed.py's `_Resampler`): patch centres then
come within about a quarter patch of the image's edge, within the matching radius (0.3 x the
patch) of an object cut by it. Without it no centre lies within half a patch of the edge (on
planted nuclei at patch 32, 16 % of the objects). A quarter is enough for that, and keeps
every window at least three quarters image.

`fill` is what lies beyond the edge: 'background', the image's own median colour, so that an
object cut by the edge sits beside what surrounds objects inside the image (new projects); or
'neutral', the backbone's input mean, a grey that a dark fluorescence ground never holds
(projects made before 2026-12-04).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from simsearch.util.errors import ConfigError

NETWORK_STRIDE = 16
# a patch spans at least this many feature cells per side (smaller patches are upsampled): at
# 4, two touching planted nuclei (patch 32) gave one maximum of the trained map between them
# for 101 of 339 close pairs, at 6 the maps have a maximum on each (with peaks 0.4 x the patch
# apart, `peak_spacing`): PR-AUC 0.793 against 0.782, similarity search 0.789 against 0.727
# (benchmarks/results/issue14-crowding)
MIN_CELLS = 6
# the Gaussian pooling window's sigma as a fraction of the window's side (`gaussian_window`).
# What counts is the pooled area against the object: sigma about 0.15 x the object's side served
# objects of 19 to 207 px best (planted nuclei, BCCD platelets, red and white cells; wider takes
# in the neighbours, narrower sees only the object's middle; benchmarks/results/issue14-pooling).
# A project takes its patch (the first prototype's box) for the object; an evaluation knows its
# objects' boxes (`pooling_for_objects`). Projects made before it was a setting pooled with
# LEGACY_POOLING, and those made before 2026-12-03 by default too.
POOLING = 0.15
LEGACY_POOLING = 0.25
FILLS = ("background", "neutral")  # beyond the image's edge: its median colour, or the backbone's input mean
AUTO_SCALES = "auto"  # a project's scale pyramid follows its prototype boxes


def check_patch_size(height: int, width: int, name: str = "patch_size") -> None:
    """A ConfigError naming `name` unless the patch is at least 4 x 4 px.

    Examples
    --------
    >>> check_patch_size(0, 0, "--patch-size cell")
    Traceback (most recent call last):
    ...
    simsearch.util.errors.ConfigError: --patch-size cell: 0x0 px is too small (at least 4x4)
    """
    if height < 4 or width < 4:
        raise ConfigError(f"{name}: {height}x{width} px is too small (at least 4x4)")


@dataclass(frozen=True)
class PatchGeometry:
    """patch_size: (h, w) original px; scale: resampling factor applied before the
    backbone (>= 1 for a project's base patch; below 1 at the larger levels of a scale
    pyramid, see `at_scale`); kernel: (kh, kw) pooling window in feature cells;
    passes: shifted passes per axis (1, 2 or 4); border: whether the grid reaches beyond the
    image by `margin` (then row 0's window starts `margin` scaled pixels above the image);
    pooling: the sigma of the Gaussian pooling window as a fraction of its side (`window`);
    fill: what the network sees beyond the image, one of `FILLS`.

    Examples
    --------
    >>> geometry = PatchGeometry.for_patch(96)
    >>> geometry.scale, geometry.kernel, geometry.grid_step
    (1.0, (6, 6), 16.0)
    >>> geometry.grid_shape(96, 192), geometry.centre(0, 0)
    ((1, 7), (48.0, 48.0))
    >>> bordered = PatchGeometry.for_patch(96, border=True)
    >>> bordered.margin, bordered.grid_shape(96, 192), bordered.centre(0, 0)
    ((16, 16), (3, 9), (32.0, 32.0))
    """

    patch_size: tuple[int, int]
    scale: float
    kernel: tuple[int, int]
    passes: int = 1
    border: bool = False
    pooling: float = POOLING
    fill: str = "neutral"

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise ConfigError(f"fill: {self.fill!r} is not one of {', '.join(FILLS)}")

    @classmethod
    def for_patch(cls, patch_size: int | tuple[int, int], *, min_cells: int = MIN_CELLS, passes: int = 1,
                  border: bool = False, pooling: float = POOLING, fill: str = "neutral") -> "PatchGeometry":
        """The geometry of an (h, w) px patch (an int: a square one): the image is upsampled by
        `scale` (never below 1) until the patch's shorter side spans `min_cells` feature cells,
        and the pooling kernel is the (kh, kw) cells the patch covers. ConfigError for a patch
        under 4 x 4 px, `passes` not 1, 2 or 4, `min_cells` outside 1-16 or `pooling` outside
        0.05-1 (the Gaussian window's sigma as a share of the patch side).

        Examples
        --------
        >>> geometry = PatchGeometry.for_patch(112)
        >>> geometry.patch_size, geometry.scale, geometry.kernel
        ((112, 112), 1.0, (7, 7))
        >>> PatchGeometry.for_patch((32, 48)).scale   # 32 px upsampled to 6 cells of 16 px
        3.0
        """
        if isinstance(patch_size, int):
            patch_size = (patch_size, patch_size)
        height, width = (int(v) for v in patch_size)
        check_patch_size(height, width)
        if passes not in (1, 2, 4):
            raise ConfigError(f"passes: must be 1, 2 or 4, got {passes}")
        if not 1 <= min_cells <= 16:
            raise ConfigError(f"min_cells: must be between 1 and 16, got {min_cells}")
        if not 0.05 <= pooling <= 1:
            raise ConfigError(f"pooling: the window's sigma must be 0.05 to 1 x its side, got {pooling}")
        scale = max(1.0, min_cells * NETWORK_STRIDE / min(height, width))
        kernel = (
            max(1, round(height * scale / NETWORK_STRIDE)),
            max(1, round(width * scale / NETWORK_STRIDE)),
        )
        return cls((height, width), round(scale, 6), kernel, passes, bool(border), float(pooling), fill)

    def at_scale(self, factor: float) -> "PatchGeometry":
        """The geometry of objects `factor` times this patch's size, seen by the network
        exactly as this patch is: the same pooling window over the same scaled pixels, the
        image resampled by scale / factor. Vectors of the two are comparable, so a prototype
        of one size matches objects of another at their own level of the pyramid.

        Examples
        --------
        >>> base = PatchGeometry.for_patch(40)
        >>> base.scale, base.kernel
        (2.4, (6, 6))
        >>> twice = base.at_scale(2)
        >>> twice.patch_size, twice.scale, twice.kernel
        ((80, 80), 1.2, (6, 6))
        """
        factor = float(factor)
        if not 0.05 <= factor <= 20:
            raise ConfigError(f"scale: {factor:g} is outside 0.05 to 20")
        if factor == 1.0:
            return self
        height, width = (max(1, round(v * factor)) for v in self.patch_size)
        return PatchGeometry((height, width), round(self.scale / factor, 6), self.kernel, self.passes, self.border, self.pooling,
                             self.fill)

    @property
    def step_scaled(self) -> int:
        """Grid step in scaled pixels."""
        return NETWORK_STRIDE // self.passes

    @property
    def grid_step(self) -> float:
        """Grid step in original pixels."""
        return self.step_scaled / self.scale

    @property
    def margin(self) -> tuple[int, int]:
        """(y, x) scaled pixels the grid reaches beyond each edge of the image: a quarter of
        the window in whole steps with `border`, else 0."""
        if not self.border:
            return (0, 0)
        return tuple(cells * NETWORK_STRIDE // 4 // self.step_scaled * self.step_scaled for cells in self.kernel)

    def scaled_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of a `height` x `width` px image resampled by `scale` (rounded, at least 1 px)."""
        return max(1, round(height * self.scale)), max(1, round(width * self.scale))

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Number of patch positions (rows, cols) over an image of that size: those whose window
        lies wholly inside the image grown by `margin` on every side."""
        scaled = self.scaled_size(height, width)
        return tuple(
            max(0, (extent + 2 * margin - cells * NETWORK_STRIDE) // self.step_scaled + 1)
            if extent >= cells * NETWORK_STRIDE else 0
            for extent, cells, margin in zip(scaled, self.kernel, self.margin)
        )

    def window_top_left(self, row, col):
        """Top-left corner (y, x) of the window at grid (row, col), in scaled pixels (negative
        in the margin of a `border` grid)."""
        margin_y, margin_x = self.margin
        return row * self.step_scaled - margin_y, col * self.step_scaled - margin_x

    def centre(self, row, col):
        """Patch centre (y, x) in original pixel coordinates (continuous; pixel i spans [i, i+1)).

        Works on scalars and numpy arrays alike; fractional rows/cols interpolate.
        """
        top, left = self.window_top_left(row, col)
        half_h, half_w = (cells * NETWORK_STRIDE / 2 for cells in self.kernel)
        return (top + half_h) / self.scale, (left + half_w) / self.scale

    def grid_position(self, y, x):
        """Fractional grid (row, col) whose patch centre is (y, x) original px: `centre` inverted.
        Works on scalars and numpy arrays alike."""
        half_h, half_w = (cells * NETWORK_STRIDE / 2 for cells in self.kernel)
        margin_y, margin_x = self.margin
        return (
            (y * self.scale - half_h + margin_y) / self.step_scaled,
            (x * self.scale - half_w + margin_x) / self.step_scaled,
        )

    def box(self, row, col):
        """(x0, y0, x1, y1) of the represented window in original pixels."""
        y, x = self.centre(row, col)
        half_h, half_w = (cells * NETWORK_STRIDE / 2 / self.scale for cells in self.kernel)
        return (x - half_w, y - half_h, x + half_w, y + half_h)

    def nearest_position(self, y: float, x: float, grid_shape: tuple[int, int]) -> tuple[int, int]:
        """Grid (row, col) whose patch centre is nearest to (y, x), clipped to the grid."""
        row, col = (round(v) for v in self.grid_position(y, x))
        return (min(max(row, 0), grid_shape[0] - 1), min(max(col, 0), grid_shape[1] - 1))

    @property
    def window(self) -> "list[list[float]]":
        """The pooling weights over the window's (kh, kw) cells (`gaussian_window`)."""
        return gaussian_window(self.kernel, self.pooling)

    def to_dict(self) -> dict:
        """The fields as project.yaml keeps them (lists for tuples); border, pooling and fill
        are left out at their old defaults, so that older projects keep their settings and
        cache keys (`from_dict` reads both)."""
        data = asdict(self)
        data["patch_size"] = list(self.patch_size)
        data["kernel"] = list(self.kernel)
        if not self.border:  # the settings and cache keys of projects made before the border grid
            del data["border"]
        if self.pooling == LEGACY_POOLING:  # ... and before the pooling was a setting
            del data["pooling"]
        if self.fill == "neutral":  # ... and before the background fill
            del data["fill"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "PatchGeometry":
        """The geometry of a `to_dict` entry, with border, pooling and fill at their old defaults
        where it has none; ConfigError naming the entry when it is malformed."""
        try:
            return cls(tuple(data["patch_size"]), float(data["scale"]), tuple(data["kernel"]), int(data["passes"]),
                       bool(data.get("border", False)), float(data.get("pooling", LEGACY_POOLING)), str(data.get("fill", "neutral")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"geometry: malformed entry {data!r}") from exc


def parse_scales(scales: "str | float | Sequence[float] | None") -> tuple[float, ...]:
    """A scale pyramid from text ('0.5,1,2') or numbers: object sizes relative to the project's
    patch, sorted, always holding 1 (the patch itself); None or '' is one level.

    Examples
    --------
    >>> parse_scales("2, 0.5"), parse_scales(None)
    ((0.5, 1.0, 2.0), (1.0,))
    """
    if scales is None or (isinstance(scales, str) and not scales.strip()):
        return (1.0,)
    if isinstance(scales, str):
        try:
            values = [float(v) for v in scales.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"scales: {scales!r} is not a comma-separated list of numbers (e.g. 0.5,1,2)") from None
    else:
        values = [float(v) for v in (scales if isinstance(scales, (list, tuple)) else [scales])]
    for value in values:
        if not 0.05 <= value <= 20:
            raise ConfigError(f"scales: {value:g} is outside 0.05 to 20 (object sizes relative to the patch)")
    return tuple(sorted({round(v, 4) for v in values} | {1.0}))


def scales_for_sizes(sizes: "Sequence[float]", patch: float, *, step: float = 2.0) -> tuple[float, ...]:
    """Pyramid levels `step` apart that cover object sizes (box sides, px) around a patch
    of side `patch`: what `--scales auto` picks from the prototype boxes. Sizes that span
    no more than `step` around the patch need no pyramid: the patch serves them (extra levels
    there cost time and, on BCCD platelets, 32-59 px at patch 48, precision: PR-AUC 0.61
    with one level, 0.55 with levels 0.5 and 1).

    Examples
    --------
    >>> scales_for_sizes([12, 40, 168], 40)
    (0.25, 0.5, 1.0, 2.0, 4.0)
    >>> scales_for_sizes([32, 59], 48), scales_for_sizes([100, 110], 48)
    ((1.0,), (1.0, 2.0))
    """
    ratios = [float(v) / patch for v in sizes if v > 0]
    if not ratios:
        return (1.0,)
    if max(ratios) / min(ratios) <= step and min(ratios) <= math.sqrt(step) and max(ratios) >= 1 / math.sqrt(step):
        return (1.0,)
    low = math.floor(math.log(min(ratios), step) + 0.5)
    high = math.ceil(math.log(max(ratios), step) - 0.5)
    return parse_scales([step ** k for k in range(min(low, 0), max(high, 0) + 1)])


def object_side(height: float, width: float) -> float:
    """The size of an object's box as the scale pyramid measures it: its longer side, the
    patch that frames the whole object (as `--patch-size auto` measures it). A box cut by the
    image border keeps the object's size on its uncut side; a shorter-side measure would put
    such a cell one level down, where the patch sees only its middle.

    Examples
    --------
    >>> object_side(100, 200), object_side(48, 48)
    (200, 48)
    """
    return max(height, width)


def nearest_scale(size: float, patch: float, scales: "Sequence[float]") -> float:
    """The level whose patch side is nearest (in ratio) to an object of side `size`."""
    return min(scales, key=lambda level: abs(math.log(max(size, 1e-6) / (patch * level))))


def box_around(y: float, x: float, patch_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a patch of `patch_size` (h, w) centred on (y, x), as Python floats
    whatever numbers it is given (numpy scalars from arrays of peaks or sizes included).

    Examples
    --------
    >>> import numpy as np
    >>> box_around(np.float64(40.0), 50.0, (np.int64(32), 16))
    (42.0, 24.0, 58.0, 56.0)
    """
    half_h, half_w = float(patch_size[0]) / 2, float(patch_size[1]) / 2
    y, x = float(y), float(x)
    return (x - half_w, y - half_h, x + half_w, y + half_h)


def box_within(box: tuple[float, float, float, float], image_size: tuple[int, int] | None) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) cut to an image of `image_size` (height, width); as it is without a
    size. A box wholly outside comes back empty (x1 <= x0 or y1 <= y0).

    Examples
    --------
    >>> box_within((-8.0, 4.0, 24.0, 36.0), (30, 100))
    (0.0, 4.0, 24.0, 30.0)
    """
    if image_size is None:
        return box
    height, width = image_size
    x0, y0, x1, y1 = box
    return (max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1))


def pooling_for_objects(side: float, patch: float) -> float:
    """The pooling width (a fraction of the patch side, as `PatchGeometry.pooling`) that pools
    `POOLING` x the objects' `side` (`object_side`): a patch larger than its objects pools
    narrower, one smaller wider, within the range `PatchGeometry.for_patch` takes (0.05 to 1).

    Examples
    --------
    >>> pooling_for_objects(19, 32), pooling_for_objects(96, 96), pooling_for_objects(207, 112)
    (0.089, 0.15, 0.277)
    """
    return round(min(1.0, max(0.05, POOLING * side / patch)), 3)


def gaussian_window(cells: tuple[int, int], pooling: float = LEGACY_POOLING) -> "list[list[float]]":
    """Centre-weighted Gaussian pooling weights over (kh, kw) cells, sigma = `pooling` x the
    size (at least half a cell), sum 1."""
    rows, cols = cells
    def axis(size: int) -> list[float]:
        sigma = max(size * pooling, 0.5)
        centre = (size - 1) / 2.0
        return [math.exp(-0.5 * ((i - centre) / sigma) ** 2) for i in range(size)]
    wy, wx = axis(rows), axis(cols)
    total = sum(wy) * sum(wx)
    return [[a * b / total for b in wx] for a in wy]
