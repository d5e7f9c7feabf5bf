"""Similarity maps: cosine similarity of every patch of an image to a few prototype vectors."""
from __future__ import annotations

import numpy as np
import torch

from simsearch.util.errors import ConfigError
from simsearch.util.memory import drop_mapped_pages
from simsearch.util.tensors import from_numpy

_BAND_VALUES = 1 << 24  # vector components compared at a time (64 MB as float32)


SECOND_PROTOTYPE_WEIGHT = 0.5  # a class's similarity: (best + this x second best prototype) / (1 + this)


def similarity_map(vectors: np.ndarray, prototypes: np.ndarray, *, per_prototype: int | None = None,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Max cosine similarity over prototypes for every patch; with `per_prototype` (rows of
    `prototypes` per prototype: a prototype and its rotations, consecutive) a class's
    similarity: each prototype's max over its rows, then the best prototype's weighted with the
    second best's (`SECOND_PROTOTYPE_WEIGHT`; one prototype: its max).

    One example that also resembles something frequent (a small particle on the rim of a large
    one, which resembles every rim) cannot lift that everywhere on its own: the second
    prototype must agree. Measured with `simsearch eval` (similarity search, P 10, 3 trials;
    README, "A class's similarity"): planted particles 0.750 -> 0.902 (the trial whose
    prototype sat on a rim 0.353 -> 0.829), 10 of the other 11 data sets within 0.002 or
    higher (up to +0.044), planted look-alike shapes 0.815 -> 0.792.

    vectors: (rows, cols, D) L2-normalised patch embeddings (float16 or float32);
    prototypes: (P, D) or (D,), normalised here. Returns (rows, cols) float32.
    A matrix product in torch, on the GPU when `device` is one.

    Examples
    --------
    >>> import numpy as np
    >>> vectors = np.zeros((2, 3, 4), np.float32)
    >>> vectors[..., 0] = 1.0                          # every patch points along the first axis
    >>> vectors[1, 2] = [0.0, 1.0, 0.0, 0.0]          # but one
    >>> similarity_map(vectors, np.array([0.0, 2.0, 0.0, 0.0])).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    >>> two = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])   # two prototypes of one row each
    >>> similarity_map(vectors, two, per_prototype=1).astype(float).round(2).tolist()   # (1 + 0.5 x 0) / 1.5
    [[0.67, 0.67, 0.67], [0.67, 0.67, 0.67]]
    """
    prototypes = np.atleast_2d(np.asarray(prototypes, dtype=np.float32))
    if vectors.ndim != 3 or prototypes.shape[1] != vectors.shape[-1]:
        raise ConfigError(
            f"similarity_map: vectors {vectors.shape} and prototypes {prototypes.shape} do not match"
        )
    rows, cols, dim = vectors.shape
    if len(prototypes) == 0 or rows * cols == 0:
        return np.full((rows, cols), -1.0 if len(prototypes) == 0 else 0.0, np.float32)[: rows, : cols]
    if per_prototype is not None and (per_prototype < 1 or len(prototypes) % per_prototype):
        raise ConfigError(f"similarity_map: {len(prototypes)} prototype rows are not groups of {per_prototype}")
    queries = torch.nn.functional.normalize(torch.from_numpy(prototypes).to(device), dim=1)
    out = np.empty((rows, cols), np.float32)
    band = max(1, _BAND_VALUES // (cols * dim))  # rows at a time: a slide's (memory-mapped) vectors never all in memory
    for top in range(0, rows, band):
        patches = from_numpy(np.ascontiguousarray(vectors[top : top + band]).reshape(-1, dim)).to(device, torch.float32)
        out[top : top + band] = _class_similarity(patches @ queries.T, per_prototype).reshape(-1, cols).cpu().numpy()
        drop_mapped_pages(vectors)  # a slide's cache file read band by band does not stay resident
    return out


def _class_similarity(similarities: torch.Tensor, per_prototype: int | None) -> torch.Tensor:
    """(N,) from (N, rows) cosine similarities: the max over rows, or (`per_prototype`) the best
    prototype's max weighted with the second best's."""
    if per_prototype is None or similarities.shape[1] <= per_prototype:
        return similarities.amax(dim=1)
    best = similarities.reshape(len(similarities), -1, per_prototype).amax(dim=2).topk(2, dim=1).values
    return (best[:, 0] + SECOND_PROTOTYPE_WEIGHT * best[:, 1]) / (1 + SECOND_PROTOTYPE_WEIGHT)


def gate_by_similarity(maps: np.ndarray, vectors: np.ndarray, prototypes: np.ndarray, classes: np.ndarray, *,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """Class probabilities gated by similarity to the class's prototypes: `maps` (..., C + 1),
    the last channel background; `vectors` (..., D) the same patches' L2-normalised pretrained
    embeddings; `prototypes` (K, D) and `classes` (K,), each prototype vector's class index.
    Channel c becomes the geometric mean of its probability and the patch's largest cosine
    similarity to the rows of class c (`similarity_map`; 0 where that is below 0): ranked as
    their product, on the scale of a probability, so confidence thresholds keep their range.
    Background and classes without rows are left as they are. Returns a new array.

    Examples
    --------
    >>> maps = np.array([[0.9, 0.1], [0.8, 0.2]], np.float32)          # two patches, one class
    >>> vectors = np.array([[1.0, 0.0], [0.0, -1.0]], np.float32)
    >>> prototypes, classes = np.array([[0.6, -0.8]], np.float32), np.array([0])
    >>> gate_by_similarity(maps, vectors, prototypes, classes).astype(float).round(2).tolist()
    [[0.73, 0.1], [0.8, 0.2]]
    """
    gated = np.array(maps, np.float32, copy=True)
    patches = np.asarray(vectors).reshape(1, -1, np.shape(vectors)[-1])  # one row of every patch
    flat_maps = gated.reshape(-1, gated.shape[-1])
    for index in np.unique(classes):
        nearest = np.clip(similarity_map(patches, prototypes[classes == index], device=device)[0], 0.0, None)
        flat_maps[:, index] = np.sqrt(flat_maps[:, index] * nearest)
    return gated
