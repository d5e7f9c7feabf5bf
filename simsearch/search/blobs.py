"""Likely objects in an image before any example exists: blob detection (scale-normalised
Laplacian of Gaussian, Lindeberg 1998) in both polarities, for placing a first prototype by
eye instead of by arithmetic (the terminal UI's hint mode labels them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import blob_log
from skimage.transform import resize

from simsearch.util.errors import ConfigError


@dataclass(frozen=True)
class Blobs:
    """Blob centres (y, x) and diameters in image pixels, strongest first: (N,) float arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import find_blobs
    >>> image = np.zeros((64, 64), np.float32)
    >>> image[10:20, 10:20], image[40:50, 40:50] = 1.0, 0.5       # a bright and a dimmer square
    >>> blobs = find_blobs(image, count=2)
    >>> len(blobs), blobs.ys.tolist(), blobs.xs.tolist()           # the brighter one first
    (2, [15.0, 45.0], [15.0, 45.0])
    >>> bool(blobs.strengths[0] > blobs.strengths[1]), bool((blobs.sizes > 8).all())
    (True, True)
    """

    ys: np.ndarray
    xs: np.ndarray
    sizes: np.ndarray
    strengths: np.ndarray

    def __len__(self) -> int:
        return len(self.ys)


def find_blobs(image: np.ndarray, *, count: int = 40, min_size: float = 8.0, max_size: float | None = None,
               work_side: int = 384) -> Blobs:
    """The `count` strongest blobs of an (H, W) or (H, W, C) image, bright on dark and dark on
    bright alike (fluorescence and brightfield), their diameters between `min_size` and
    `max_size` px (default: a quarter of the shorter side). The image is first shrunk so that
    its longer side is at most `work_side` px (about 0.1 s on a CPU); overlapping blobs keep the
    stronger one. None is centred on the image's edge: there the filter's mirrored border made
    half an object cut by the edge look like a whole one.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((64, 64), np.float32)
    >>> image[20:30, 40:50] = 1.0                    # one bright square, 10 px across
    >>> blobs = find_blobs(image, count=1)
    >>> float(blobs.ys[0]), float(blobs.xs[0])       # the strongest: its centre in px (and blobs.sizes)
    (25.0, 45.0)
    """
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 4:
        raise ConfigError(f"find_blobs: expected an (H, W) or (H, W, C) image of at least 4x4 px, got shape {image.shape}")
    grey = np.asarray(image, np.float64)
    grey = grey.mean(axis=2) if grey.ndim == 3 else grey
    low, high = np.percentile(grey, (1, 99))
    grey = np.clip((grey - low) / max(high - low, 1e-12), 0.0, 1.0)
    scale = min(1.0, work_side / max(grey.shape))
    small = resize(grey, (max(4, round(grey.shape[0] * scale)), max(4, round(grey.shape[1] * scale))), anti_aliasing=True)
    max_size = max_size if max_size is not None else min(grey.shape) / 4
    # a blob of diameter d has sigma d / (2 sqrt 2) (LoG); in the shrunk image, times `scale`
    sigmas = np.array([min_size, max(min_size, max_size)]) * scale / (2 * np.sqrt(2))
    sigmas = np.maximum(sigmas, 1.0)
    found = []
    for polarity in (small, 1.0 - small):
        for y, x, sigma in blob_log(polarity, min_sigma=sigmas[0], max_sigma=sigmas[1], num_sigma=8, threshold=0.05, overlap=0.5,
                                   exclude_border=1):
            response = -ndimage.gaussian_laplace(polarity, sigma)[int(y), int(x)] * sigma**2
            found.append((float(response), y / scale, x / scale, 2 * np.sqrt(2) * sigma / scale))
    found.sort(reverse=True)
    kept: list[tuple[float, float, float, float]] = []
    for strength, y, x, size in found:  # strongest first; a weaker blob inside a kept one goes
        if all(np.hypot(y - ky, x - kx) > 0.5 * max(size, ksize) for _, ky, kx, ksize in kept):
            kept.append((strength, y, x, size))
        if len(kept) == count:
            break
    columns = np.array(kept, np.float64).reshape(-1, 4)
    return Blobs(columns[:, 1], columns[:, 2], columns[:, 3], columns[:, 0])
