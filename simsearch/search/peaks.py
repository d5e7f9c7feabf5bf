"""Local maxima of similarity (or probability) maps: the suggestions and detections."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
from scipy.spatial import cKDTree
from skimage.feature import peak_local_max

from simsearch.features.geometry import PatchGeometry


@dataclass(frozen=True)
class Peaks:
    """Local maxima of one map, best first.

    rows, cols: (N,) float64 grid positions, refined below one cell by a parabola
    through each peak and its neighbours; values: (N,) float32 map values at the
    (integer) peaks. Thresholding is a cut of this sorted list (`above`).

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import find_peaks
    >>> heat = np.zeros((8, 8), np.float32)
    >>> heat[1, 1], heat[5, 6] = 0.9, 0.4
    >>> peaks = find_peaks(heat, min_distance=1)
    >>> peaks.rows.tolist(), peaks.cols.tolist(), [round(float(v), 2) for v in peaks.values]
    ([1.0, 5.0], [1.0, 6.0], [0.9, 0.4])
    >>> len(peaks.above(0.5))
    1
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def above(self, threshold: float) -> "Peaks":
        """The peaks whose value is at or above `threshold`, best first: a cut of the sorted list."""
        count = int(np.searchsorted(-self.values, -threshold, side="right"))
        return Peaks(self.rows[:count], self.cols[:count], self.values[:count])

    def __len__(self) -> int:
        return len(self.values)


PEAK_SPACING = 0.4  # x the patch side


def peak_spacing(geometry: PatchGeometry) -> int:
    """skimage min_distance (m keeps peaks m+1 cells apart) for peaks about `PEAK_SPACING`
    x the patch apart, at least two cells. Half a patch kept one peak for two touching
    objects where the map has two maxima: on planted nuclei (patch 32, 6 cells,
    `examples/planted_nuclei.py`) the trained map gave PR-AUC 0.748 at half a patch and 0.791
    at 0.4 and 0.3 (two cells), similarity search 0.79; on BCCD red cells (patch 96) 0.702
    and 0.709, similarity search the same. At 0.3 the bundled sample's 112 px patches, its
    red cells nearly as large, got two suggestions 32 px apart on one cell, and confirming
    by threshold took both (47 positives against 31; 37 at 0.4): benchmarks/results/issue14-crowding.

    Examples
    --------
    >>> from simsearch import PatchGeometry
    >>> peak_spacing(PatchGeometry.for_patch(96)), peak_spacing(PatchGeometry.for_patch(32))
    (1, 1)
    >>> peak_spacing(PatchGeometry.for_patch(320))    # 128 px: 8 cells, peaks 8 cells apart
    7
    """
    cells = PEAK_SPACING * min(geometry.patch_size) / geometry.grid_step
    return max(1, int(round(cells)) - 1)


def _parabola_offset(before: np.ndarray, centre: np.ndarray, after: np.ndarray) -> np.ndarray:
    curvature = before - 2 * centre + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 0.5 * (before - after) / curvature
    offset[~np.isfinite(offset) | (curvature >= 0)] = 0.0
    return np.clip(offset, -0.5, 0.5)


def find_peaks(heat: np.ndarray, *, min_distance: int, threshold: float | None = None) -> Peaks:
    """All local maxima of a (rows, cols) map at least `min_distance` + 1 cells apart
    (above `threshold` when given), best first; an empty map gives empty Peaks.

    Examples
    --------
    >>> import numpy as np
    >>> heat = np.zeros((8, 8), np.float32)
    >>> heat[2, 5], heat[2, 4] = 0.9, 0.6            # a peak leaning towards its left neighbour
    >>> peaks = find_peaks(heat, min_distance=1, threshold=0.5)
    >>> len(peaks), round(float(peaks.values[0]), 2), float(peaks.rows[0]), round(float(peaks.cols[0]), 2)
    (1, 0.9, 2.0, 4.75)
    """
    if heat.size == 0:
        empty = np.zeros(0)
        return Peaks(empty, empty.copy(), np.zeros(0, np.float32))
    heat = np.asarray(heat, np.float32)
    coords = peak_local_max(heat, min_distance=min_distance, threshold_abs=threshold, exclude_border=False)
    values = heat[coords[:, 0], coords[:, 1]] if len(coords) else np.zeros(0, np.float32)
    order = np.argsort(-values, kind="stable")
    coords, values = coords[order], values[order]
    # mirrored at the border, so a peak on the first or last row or column is not refined
    # outward (edge padding made its outer neighbour equal to it: half a cell off the map)
    padded = np.pad(heat, 1, mode="reflect")
    r, c = coords[:, 0] + 1, coords[:, 1] + 1
    rows = coords[:, 0] + _parabola_offset(padded[r - 1, c], padded[r, c], padded[r + 1, c])
    cols = coords[:, 1] + _parabola_offset(padded[r, c - 1], padded[r, c], padded[r, c + 1])
    return Peaks(rows.astype(np.float64), cols.astype(np.float64), values.astype(np.float32))


@dataclass(frozen=True)
class SizedPeaks:
    """Local maxima of one image's maps at one or more levels of a scale pyramid, best
    first: centres (ys, xs) in pixels, values, sizes (N, 2), the (h, w) patch of the level
    each was found at (the box of the suggestion or detection), levels (N,), that level's
    scale (object size relative to the patch), and rows, cols (N,), the refined grid position
    in that level's map.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchGeometry, peaks_across_scales
    >>> geometry = PatchGeometry.for_patch(32, min_cells=4)          # grid cells 8 px apart
    >>> heat = np.zeros((10, 10), np.float32)
    >>> heat[2, 3], heat[7, 7] = 0.8, 0.6
    >>> peaks = peaks_across_scales([(1.0, geometry, heat)])       # one level: the patch size
    >>> peaks.ys.tolist(), peaks.xs.tolist(), peaks.sizes.tolist(), peaks.levels.tolist()
    ([32.0, 72.0], [40.0, 72.0], [[32, 32], [32, 32]], [1.0, 1.0])
    >>> len(peaks.above(0.7))
    1
    """

    ys: np.ndarray
    xs: np.ndarray
    values: np.ndarray
    sizes: np.ndarray
    levels: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def above(self, threshold: float) -> "SizedPeaks":
        """The peaks whose value is at or above `threshold`, best first, every column cut alike."""
        count = int(np.searchsorted(-self.values, -threshold, side="right"))
        return SizedPeaks(*(getattr(self, column.name)[:count] for column in fields(self)))

    def __len__(self) -> int:
        return len(self.values)


def peaks_across_scales(levels: Sequence[tuple[float, PatchGeometry, np.ndarray]], *,
                        threshold: float | None = None) -> SizedPeaks:
    """The peaks (above `threshold` when given) of each level's (rows, cols) map, given as
    (scale, geometry, map) (`find_peaks` at that level's spacing), merged best first; across
    levels one object gives one peak (`same_object_distance`): a peak is dropped when a
    stronger one kept from another level lies within that distance. With one level these are
    exactly that level's peaks.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch.features.geometry import PatchGeometry
    >>> base = PatchGeometry.for_patch(32, min_cells=4)
    >>> small, large = np.zeros((20, 20), np.float32), np.zeros((10, 10), np.float32)
    >>> small[11, 10], large[4, 4] = 0.5, 0.75   # one object, centred at (104, 96) and (96, 96)
    >>> peaks = peaks_across_scales([(1.0, base, small), (2.0, base.at_scale(2), large)])
    >>> len(peaks), float(peaks.values[0]), peaks.sizes[0].tolist(), float(peaks.levels[0])
    (1, 0.75, [64, 64], 2.0)
    """
    if not levels:
        raise ValueError("peaks_across_scales: no level given")
    columns = []
    for scale, geometry, heat in levels:
        peaks = find_peaks(heat, min_distance=peak_spacing(geometry), threshold=threshold)
        ys, xs = geometry.centre(peaks.rows, peaks.cols)
        columns.append((np.asarray(ys, np.float64), np.asarray(xs, np.float64), peaks.values.astype(np.float32),
                        np.tile(np.array(geometry.patch_size, np.int64), (len(peaks), 1)), np.full(len(peaks), float(scale)),
                        peaks.rows, peaks.cols))
    merged = [np.concatenate(column) for column in zip(*columns)]
    ys, xs, values, sizes, scales = merged[:5]
    keep = np.argsort(-values, kind="stable")
    if len(levels) > 1 and len(values):
        keep = keep[_one_per_object(ys[keep], xs[keep], sizes[keep].min(axis=1), scales[keep])]
    return SizedPeaks(*(column[keep] for column in merged))


def same_object_distance(stronger_side, weaker_side):
    """How close (px) a weaker peak of another pyramid level must lie to a stronger one, given
    their patch sides, to be taken for the same object and dropped.

    - A stronger smaller patch takes the larger ones around it, to half the larger side: the
      same object seen with more context.
    - A stronger larger patch takes smaller ones only nearer its middle: to half the geometric
      mean of the two sides weighted 3:1 towards the larger (0.42 x the larger side one level
      down, 0.35 x two levels down). A larger level's box is often larger than what it found
      (levels are a factor 2 apart) or holds several small objects, and a small object beside
      it is another object. Half the larger side here too lost trained detections of planted
      particles (`examples/planted_particles.py`) to a stronger larger box 40-80 px away, each
      particle found at its own level (12 of 250 in one trial). Measured on the same maps
      (`benchmarks/bench_suppression.py`): up to +0.025 PR-AUC on the particles, similarity
      search +0.018 on BCCD white cells over two levels, and no strategy lower on either;
      the plain geometric mean cost trained white cells 0.017.

    Examples
    --------
    >>> from simsearch.search.peaks import same_object_distance
    >>> float(same_object_distance(40, 160)), round(float(same_object_distance(160, 40)), 1)
    (80.0, 56.6)
    """
    stronger_side, weaker_side = np.asarray(stronger_side, np.float64), np.asarray(weaker_side, np.float64)
    return np.where(stronger_side <= weaker_side, 0.5 * weaker_side, 0.5 * stronger_side ** 0.75 * weaker_side ** 0.25)


def _one_per_object(ys: np.ndarray, xs: np.ndarray, sides: np.ndarray, level: np.ndarray) -> np.ndarray:
    """(N,) bool, the peaks kept of peaks sorted best first: a peak goes when a better one kept
    from another level lies within `same_object_distance` of it."""
    if not len(ys):
        return np.zeros(0, bool)
    points = np.stack([ys, xs], axis=1)
    neighbours = cKDTree(points).query_ball_point(points, r=0.5 * float(sides.max()))
    keep = np.ones(len(ys), bool)
    for index in range(len(ys)):
        if not keep[index]:
            continue
        near = np.asarray(neighbours[index], np.int64)
        near = near[(near > index) & (level[near] != level[index])]
        distance = np.hypot(ys[near] - ys[index], xs[near] - xs[index])
        keep[near[distance < same_object_distance(sides[index], sides[near])]] = False
    return keep
