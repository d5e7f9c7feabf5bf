"""Local maxima of similarity (or probability) maps: the suggestions and detections."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.feature import peak_local_max

from ..features.geometry import PatchGeometry


@dataclass(frozen=True)
class Peaks:
    """Local maxima of one map, best first.

    rows, cols: (N,) float64 grid positions, refined below one cell by a parabola
    through each peak and its neighbours; values: (N,) float32 map values at the
    (integer) peaks. Thresholding is a cut of this sorted list (`above`).
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def above(self, threshold: float) -> "Peaks":
        count = int(np.searchsorted(-self.values, -threshold, side="right"))
        return Peaks(self.rows[:count], self.cols[:count], self.values[:count])

    def __len__(self) -> int:
        return len(self.values)


def peak_spacing(geometry: PatchGeometry) -> int:
    """skimage min_distance for peaks about half a patch apart: m keeps peaks m+1 cells apart."""
    half_patch_cells = 0.5 * min(geometry.patch_size) / geometry.grid_step
    return max(1, int(round(half_patch_cells)) - 1)


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
