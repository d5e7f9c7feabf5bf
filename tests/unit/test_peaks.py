"""Peaks of similarity and probability maps, against simple reference implementations."""
import numpy as np
import pytest
from scipy.ndimage import maximum_filter

from simsearch.features.geometry import PatchGeometry
from simsearch.search.peaks import find_peaks, peak_spacing


def reference_peaks(heat: np.ndarray, min_distance: int, threshold: float | None) -> set[tuple[int, int]]:
    """Cells that hold the maximum of their (2m+1)^2 window (maps without ties), above the threshold."""
    local_max = heat == maximum_filter(heat, size=2 * min_distance + 1, mode="nearest")
    if threshold is not None:
        local_max &= heat >= threshold
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(local_max))}


@pytest.mark.parametrize("min_distance", [1, 2, 4])
@pytest.mark.parametrize("threshold", [None, 0.7])
def test_peaks_are_the_window_maxima_best_first(min_distance, threshold):
    rng = np.random.default_rng(min_distance)
    heat = rng.random((37, 53)).astype(np.float32)  # continuous values: no ties
    peaks = find_peaks(heat, min_distance=min_distance, threshold=threshold)
    cells = {(int(round(r)), int(round(c))) for r, c in zip(peaks.rows, peaks.cols)}
    assert cells == reference_peaks(heat, min_distance, threshold)
    assert np.all(np.diff(peaks.values) <= 0)  # best first
    np.testing.assert_array_equal(peaks.values, heat[np.round(peaks.rows).astype(int), np.round(peaks.cols).astype(int)])
    assert np.all(np.abs(peaks.rows - np.round(peaks.rows)) <= 0.5) and np.all(np.abs(peaks.cols - np.round(peaks.cols)) <= 0.5)


def test_parabola_refinement_recovers_the_sub_cell_centre_of_quadratic_peaks():
    rows, cols = np.mgrid[0:40, 0:60].astype(np.float64)
    centres = [(8.3, 10.8), (20.0, 30.0), (31.6, 49.45), (12.2, 47.0)]
    heat = np.max([5.0 - (rows - r) ** 2 - 0.5 * (cols - c) ** 2 for r, c in centres], axis=0)
    peaks = find_peaks(heat.astype(np.float32), min_distance=3)
    found = sorted(zip(peaks.rows, peaks.cols))
    np.testing.assert_allclose(found, sorted(centres), atol=1e-4)  # a parabola through 3 samples of a parabola is exact


def test_peaks_at_the_border_and_of_gaussian_bumps_are_refined_within_a_tenth_of_a_cell():
    rows, cols = np.mgrid[0:30, 0:30].astype(np.float64)
    centres = [(0.2, 14.6), (15.4, 15.3), (29.0, 3.7)]
    heat = np.max([np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 2.0**2)) for r, c in centres], axis=0)
    peaks = find_peaks(heat.astype(np.float32), min_distance=2)
    found = sorted(zip(peaks.rows, peaks.cols))
    np.testing.assert_allclose(found[1], (15.4, 15.3), atol=0.1)
    # on the first and last rows: not refined across the edge (it was pushed half a cell off the map)
    np.testing.assert_allclose(found[2], (29.0, 3.7), atol=0.1)
    assert found[0][0] == 0.0 and abs(found[0][1] - 14.6) <= 0.1
    assert len(find_peaks(np.ones((1, 1), np.float32), min_distance=1)) <= 1  # a one-cell map


def test_above_is_a_cut_of_the_sorted_list_and_empty_maps_give_nothing():
    heat = np.zeros((9, 9), np.float32)
    for value, (r, c) in zip((0.9, 0.5, 0.5, 0.2), ((1, 1), (1, 7), (7, 1), (7, 7))):
        heat[r, c] = value
    peaks = find_peaks(heat, min_distance=1, threshold=0.1)
    assert list(peaks.values) == pytest.approx([0.9, 0.5, 0.5, 0.2])
    assert len(peaks.above(0.5)) == 3 and len(peaks.above(0.51)) == 1 and len(peaks.above(1.0)) == 0
    empty = find_peaks(np.zeros((0, 5), np.float32), min_distance=1)
    assert len(empty) == 0 and empty.rows.shape == (0,)


@pytest.mark.parametrize("patch, expected_cells", [(96, 2), (112, 3), (192, 5), (320, 8), (48, 2), (32, 2)])
def test_peak_spacing_keeps_peaks_about_0_4_patch_apart(patch, expected_cells):
    geometry = PatchGeometry.for_patch(patch)
    spacing = peak_spacing(geometry)
    assert spacing + 1 == expected_cells  # m keeps peaks m + 1 cells apart
    assert abs((spacing + 1) * geometry.grid_step - 0.4 * patch) <= geometry.grid_step
