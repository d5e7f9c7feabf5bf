"""Shared fixtures. Tests never download: SIMSEARCH_OFFLINE=1 and an empty torch hub
folder make `auto` resolve to the packaged EfficientNet-Lite0 weights."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

os.environ["SIMSEARCH_OFFLINE"] = "1"
os.environ["TORCH_HOME"] = tempfile.mkdtemp(prefix="simsearch-torch-home-")

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "data" / "bccd"


@pytest.fixture(scope="session")
def lite0():
    from simsearch import load_backbone

    return load_backbone("efficientnet-lite0")


@pytest.fixture(scope="session")
def bccd() -> Path:
    if not (BCCD / "JPEGImages").is_dir():
        pytest.skip("../shared/data/bccd is not present")
    return BCCD


def blob_image(shape=(160, 200), centres=(), radius=8, *, seed=0, dtype=np.uint8, channels=3) -> np.ndarray:
    """Dark noisy background with bright discs at the given (y, x) centres: (H, W, C)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(30, 5, shape)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200
    image = np.clip(image, 0, 255)
    if np.dtype(dtype) == np.uint16:
        image = image * 257
    return np.repeat(image[..., None], channels, axis=-1).astype(dtype)
