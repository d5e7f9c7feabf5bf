"""FAISS index of every patch embedding of a dataset: exact inner product on
L2-normalised vectors (= cosine similarity), on the GPU when FAISS sees one. Images too large to
hold (whole slides) are searched from their cached vectors on disk, a few rows at a time, and
their answers merged with FAISS's: memory does not grow with an image's size."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from simsearch.io.images import NamedImage
from simsearch.features.geometry import PatchGeometry
from simsearch.search.similarity import _BAND_VALUES
from simsearch.util.errors import ConfigError, ProjectError
from simsearch.util.files import atomic_path
from simsearch.util.memory import drop_mapped_pages

log = logging.getLogger(__name__)

INDEX_FILE = "patches.faiss"
META_FILE = "patches.npz"


@dataclass(frozen=True)
class SearchHits:
    """Top-k answers for Q queries, best first. Missing answers (fewer than k
    vectors) have image index -1 and score -inf.

    scores: (Q, k) float32 cosine similarity; image_ids: (Q, k) object (str or "");
    rows, cols: (Q, k) int32 grid positions; centres: (Q, k, 2) float32 (y, x) px;
    levels: (Q, k) float32, the scale-pyramid level each patch was indexed at (1: the patch).

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchIndex
    >>> index = PatchIndex(2, use_gpu=False)
    >>> index.add("slide1.png@0123456789ab", np.array([[1.0, 0.0]], np.float32), np.array([[40.0, 56.0]]))
    >>> hits = index.search(np.array([[2.0, 0.0]]), k=2)           # Q = 1 query, k = 2 answers
    >>> hits.scores.tolist(), hits.image_ids.tolist()              # one vector only: the second is missing
    ([[1.0, -inf]], [['slide1.png@0123456789ab', '']])
    >>> hits.centres[0, 0].tolist(), float(hits.levels[0, 0])      # (y, x) px, pyramid level
    ([40.0, 56.0], 1.0)
    """

    scores: np.ndarray
    image_ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    centres: np.ndarray
    levels: np.ndarray


def gpu_count() -> int:
    """GPUs FAISS can use; 0 for CPU-only builds (which lack the call)."""
    try:
        return int(faiss.get_num_gpus())
    except AttributeError:
        return 0


@dataclass(frozen=True)
class SimilarPatch(NamedImage):
    """One distinct answer of `PatchIndex.most_similar`: a patch centre (y, x) px in an image,
    at a level of the scale pyramid (its patch is `level` x the project's).

    Examples
    --------
    Two neighbouring patches of one object and a second object: one answer each.

    >>> import numpy as np
    >>> from simsearch import PatchIndex
    >>> index = PatchIndex(2, use_gpu=False)
    >>> vectors = np.array([[1.0, 0.0], [0.9, 0.43589], [0.8, 0.6]], np.float32)
    >>> index.add("slide1.png@0123456789ab", vectors, np.array([[40.0, 40.0], [40.0, 48.0], [100.0, 100.0]]))
    >>> found = index.most_similar(np.array([1.0, 0.0]), k=2, min_distance=16)
    >>> [(patch.y, patch.x, round(patch.score, 2), patch.level) for patch in found]
    [(40.0, 40.0, 1.0, 1.0), (100.0, 100.0, 0.8, 1.0)]
    """

    image_id: str
    y: float
    x: float
    score: float
    level: float = 1.0


@dataclass(frozen=True)
class _OnDisk:
    """An image searched from its cached (rows, cols, D) vectors file, a few rows at a time."""

    image: int  # into PatchIndex.image_ids
    path: Path
    geometry: PatchGeometry
    level: float
    grid: tuple[int, int]

    def vectors(self) -> np.ndarray:
        vectors = _mapped_vectors(self.path)
        if tuple(vectors.shape[:2]) != self.grid:
            raise ProjectError(f"patch index: '{self.path}' holds a {vectors.shape[:2]} grid, the index recorded {self.grid}",
                               hint="delete the project's index folder and run `simsearch embed` again")
        return vectors


def _mapped_vectors(path: Path) -> np.ndarray:
    """A cached vectors file (`.npy`), memory-mapped: nothing is read until it is indexed."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ProjectError(f"patch index: cannot read the cached vectors '{path}': {exc}",
                           hint="delete the project's index folder and run `simsearch embed` again") from exc


class PatchIndex:
    """Exact inner-product index over patch vectors plus where each came from.

    Examples
    --------
    A project indexes every image with `Project.build_index`; by hand, one image's patches:

    >>> import numpy as np
    >>> from simsearch import PatchEmbeddings, PatchGeometry, PatchIndex
    >>> vectors = np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32)
    >>> vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)          # L2-normalised, as embedded
    >>> embedded = PatchEmbeddings(vectors, PatchGeometry.for_patch(64, min_cells=4), (96, 128))
    >>> index = PatchIndex(16, use_gpu=False)
    >>> index.add("slide1.png@0123456789ab", embedded.vectors, embedded.centres())
    >>> hits = index.search(vectors[1, 2], k=3)                    # a patch finds itself first
    >>> len(index), int(hits.rows[0, 0]), int(hits.cols[0, 0]), hits.centres[0, 0].tolist()
    (15, 1, 2, [48.0, 64.0])

    A whole slide's vectors stay in their cache file, searched from disk (`add_on_disk`):

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "slide.npy"
    >>> np.save(path, vectors.astype(np.float16))
    >>> index.add_on_disk("slide.ome.tif@0123456789ab", path, PatchGeometry.for_patch(64, min_cells=4))
    >>> hits = index.search(vectors[1, 2], k=2)                    # the same patch, in memory and on disk
    >>> len(index), sorted(name.split("@")[0] for name in hits.image_ids[0])
    (30, ['slide.ome.tif', 'slide1.png'])
    """

    def __init__(self, dim: int, *, use_gpu: bool | None = None):
        if dim <= 0:
            raise ConfigError(f"dim: must be positive, got {dim}")
        self.dim = dim
        self.image_ids: list[str] = []
        self._image_index: dict[str, int] = {}
        self._owner: list[np.ndarray] = []  # per added block: image indices
        self._positions: list[np.ndarray] = []  # (n, 2) int32 rows, cols
        self._centres: list[np.ndarray] = []  # (n, 2) float32
        self._levels: list[np.ndarray] = []  # (n,) float32 scale-pyramid levels
        self._cpu_index = faiss.IndexFlatIP(dim)
        self._gpu_index = None
        self.use_gpu = gpu_count() > 0 if use_gpu is None else (use_gpu and gpu_count() > 0)
        self._meta_cache = None
        self._on_disk: list[_OnDisk] = []

    def __len__(self) -> int:
        return int(self._cpu_index.ntotal) + sum(image.grid[0] * image.grid[1] for image in self._on_disk)

    def _image_number(self, image_id: str) -> int:
        if image_id not in self._image_index:
            self._image_index[image_id] = len(self.image_ids)
            self.image_ids.append(image_id)
        return self._image_index[image_id]

    def add(self, image_id: str, vectors: np.ndarray, centres: np.ndarray, *, level: float = 1.0) -> None:
        """vectors: (rows, cols, D) or (n, D); centres: matching (..., 2) (y, x) px; level: the
        scale-pyramid level they were embedded at."""
        if vectors.shape[-1] != self.dim:
            raise ConfigError(f"vectors of {image_id}: dimension {vectors.shape[-1]}, index has {self.dim}")
        if vectors.ndim == 3:
            rows, cols = np.meshgrid(np.arange(vectors.shape[0]), np.arange(vectors.shape[1]), indexing="ij")
            positions = np.stack([rows.ravel(), cols.ravel()], axis=1)
        else:
            positions = np.stack([np.arange(len(vectors)), np.zeros(len(vectors), int)], axis=1)
        flat = np.ascontiguousarray(vectors.reshape(-1, self.dim), dtype=np.float32)
        self._owner.append(np.full(len(flat), self._image_number(image_id), np.int32))
        self._positions.append(positions.astype(np.int32))
        self._centres.append(np.asarray(centres, np.float32).reshape(-1, 2))
        self._levels.append(np.full(len(flat), level, np.float32))
        self._cpu_index.add(flat)
        self._gpu_index = None
        self._meta_cache = None

    def add_on_disk(self, image_id: str, path: str | Path, geometry: PatchGeometry, *, level: float = 1.0) -> None:
        """Index an image by its cached (rows, cols, D) vectors file (`.npy`, e.g. float16), on the
        grid of `geometry`, without loading it: each search reads it a few rows at a time, so
        memory does not grow with the image (a whole slide). The file must stay where it is."""
        vectors = _mapped_vectors(Path(path))
        if vectors.ndim != 3 or vectors.shape[-1] != self.dim:
            raise ConfigError(f"vectors of {image_id} in '{path}': shape {vectors.shape}, the index needs (rows, cols, {self.dim})")
        self._on_disk.append(_OnDisk(self._image_number(image_id), Path(path), geometry, float(level), tuple(vectors.shape[:2])))

    def _metadata(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._meta_cache is None:
            if self._owner:
                self._meta_cache = (
                    np.concatenate(self._owner), np.concatenate(self._positions), np.concatenate(self._centres),
                    np.concatenate(self._levels),
                )
            else:
                self._meta_cache = (np.zeros(0, np.int32), np.zeros((0, 2), np.int32), np.zeros((0, 2), np.float32),
                                    np.zeros(0, np.float32))
            self._owner, self._positions, self._centres, self._levels = ([part] for part in self._meta_cache)
        return self._meta_cache

    def _searcher(self):
        if not self.use_gpu:
            return self._cpu_index
        if self._gpu_index is None:
            resources = faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(resources, 0, self._cpu_index)
            self._gpu_resources = resources
        return self._gpu_index

    def search(self, queries: np.ndarray, k: int = 10) -> SearchHits:
        """queries: (Q, D) or (D,), normalised here; returns the k most similar patches each."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ConfigError(f"queries: dimension {queries.shape[1]}, index has {self.dim}")
        if k < 1:
            raise ConfigError(f"k: must be at least 1, got {k}")
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        queries = queries / np.maximum(norms, 1e-12)
        parts = [self._search_memory(queries, k)] + [self._search_on_disk(image, queries, k) for image in self._on_disk]
        scores, image_idx, rows, cols, centres, levels = (np.concatenate(arrays, axis=1) for arrays in zip(*parts))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        pick = lambda values: np.take_along_axis(values, order if values.ndim == 2 else order[..., None], axis=1)  # noqa: E731
        scores, image_idx, rows, cols, centres, levels = (pick(values) for values in (scores, image_idx, rows, cols, centres, levels))
        if scores.shape[1] < k:  # fewer vectors than k: the rest are missing
            pad = k - scores.shape[1]
            fill = lambda values, value: np.pad(values, ((0, 0), (0, pad)) + ((0, 0),) * (values.ndim - 2), constant_values=value)  # noqa: E731
            scores, image_idx, rows, cols = fill(scores, -np.inf), fill(image_idx, -1), fill(rows, -1), fill(cols, -1)
            centres, levels = fill(centres, np.nan), fill(levels, 1.0)
        ids = np.array(self.image_ids + [""], dtype=object)
        return SearchHits(scores=scores.astype(np.float32), image_ids=ids[image_idx], rows=rows.astype(np.int32),
                          cols=cols.astype(np.int32), centres=centres.astype(np.float32), levels=levels.astype(np.float32))

    def _search_memory(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        """FAISS's top k of the vectors held in memory: (scores, image, rows, cols, centres,
        levels), each (Q, <= k, ...)."""
        owner, positions, centres, levels = self._metadata()
        if self._cpu_index.ntotal == 0:
            count = len(queries)
            return (np.zeros((count, 0), np.float32), np.zeros((count, 0), np.int64), np.zeros((count, 0), np.int32),
                    np.zeros((count, 0), np.int32), np.zeros((count, 0, 2), np.float32), np.zeros((count, 0), np.float32))
        scores, labels = self._searcher().search(np.ascontiguousarray(queries), min(k, self._cpu_index.ntotal))
        return scores, owner[labels].astype(np.int64), positions[labels, 0], positions[labels, 1], centres[labels], levels[labels]

    def _search_on_disk(self, image: _OnDisk, queries: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        """The top k of one image's cached vectors, read a few rows at a time (as FAISS's answers)."""
        vectors = image.vectors()
        grid_rows, grid_cols = image.grid
        count = len(queries)
        best_scores, best_flat = np.zeros((count, 0), np.float32), np.zeros((count, 0), np.int64)
        band = max(1, _BAND_VALUES // max(1, grid_cols * self.dim))
        for top in range(0, grid_rows, band):
            patches = np.asarray(vectors[top : top + band], np.float32).reshape(-1, self.dim)
            scores = queries @ patches.T  # (Q, n)
            keep = min(k, scores.shape[1])
            part = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
            best_scores = np.concatenate([best_scores, np.take_along_axis(scores, part, axis=1)], axis=1)
            best_flat = np.concatenate([best_flat, part + top * grid_cols], axis=1)
            if best_scores.shape[1] > k:
                top_k = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
                best_scores, best_flat = np.take_along_axis(best_scores, top_k, axis=1), np.take_along_axis(best_flat, top_k, axis=1)
            del patches, scores
            drop_mapped_pages(vectors)  # the bands read do not stay resident
        rows, cols = best_flat // grid_cols, best_flat % grid_cols
        y, x = image.geometry.centre(rows.astype(np.float64), cols.astype(np.float64))
        return (best_scores, np.full(rows.shape, image.image, np.int64), rows, cols, np.stack([y, x], axis=-1),
                np.full(rows.shape, image.level, np.float32))

    def most_similar(
        self, queries: np.ndarray, k: int = 10, *, min_distance: float, oversample: int = 20
    ) -> list[SimilarPatch]:
        """The k most similar *distinct* patches to any of the queries, best first.

        Neighbouring grid positions of one object are near-duplicates; a patch is kept
        only if no better-scoring kept patch of the same image lies within
        `min_distance` px times the larger of their two pyramid levels (greedy non-maximum
        suppression on the centres: one object, one answer, across levels too).
        """
        queries = np.atleast_2d(queries)
        hits = self.search(queries, k=max(k * oversample, k))
        best: dict[tuple[str, float, int, int], SimilarPatch] = {}
        for q in range(len(queries)):
            for image_id, row, col, centre, score, level in zip(
                hits.image_ids[q], hits.rows[q], hits.cols[q], hits.centres[q], hits.scores[q], hits.levels[q]
            ):
                if not image_id:
                    continue
                key = (image_id, float(level), int(row), int(col))
                if key not in best or best[key].score < score:
                    best[key] = SimilarPatch(image_id, float(centre[0]), float(centre[1]), float(score), float(level))
        kept: list[SimilarPatch] = []
        for candidate in sorted(best.values(), key=lambda p: -p.score):
            if all(
                other.image_id != candidate.image_id
                or (other.y - candidate.y) ** 2 + (other.x - candidate.x) ** 2 >= (min_distance * max(other.level, candidate.level)) ** 2
                for other in kept
            ):
                kept.append(candidate)
                if len(kept) == k:
                    break
        return kept

    def save(self, folder: str | Path) -> None:
        """Write the index to `folder` (created if needed): patches.faiss, the vectors held in
        memory, and patches.npz, where each came from (image ids, grid positions, centres (y, x)
        px, levels) and the cache files of the images searched from disk, by paths relative to
        the folder. Each file is written whole or not at all; `load` reads them back.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from simsearch import PatchIndex
        >>> index = PatchIndex(8, use_gpu=False)
        >>> index.add("slide1.png@0123456789ab", np.eye(2, 8, dtype=np.float32), np.array([[16.0, 16.0], [16.0, 48.0]]))
        >>> folder = tempfile.mkdtemp()
        >>> index.save(folder)
        >>> len(PatchIndex.load(folder, use_gpu=False))
        2
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        owner, positions, centres, levels = self._metadata()
        with atomic_path(folder / INDEX_FILE) as tmp:
            faiss.write_index(self._cpu_index, str(tmp))
        with atomic_path(folder / META_FILE) as tmp:
            on_disk = [{"image": image.image, "path": os.path.relpath(image.path, folder), "geometry": image.geometry.to_dict(),
                        "level": image.level, "grid": list(image.grid)} for image in self._on_disk]  # paths relative: the project may move
            np.savez(tmp, owner=owner, positions=positions, centres=centres, levels=levels,
                     image_ids=np.array(json.dumps(self.image_ids)), on_disk=np.array(json.dumps(on_disk)))

    @classmethod
    def load(cls, folder: str | Path, *, use_gpu: bool | None = None) -> "PatchIndex":
        """The index `save` wrote to `folder`; use_gpu: search on the GPU (None: when FAISS sees
        one). Images searched from disk are found again relative to the folder.

        Raises ProjectError when the folder holds no index, or its files cannot be read or do not
        agree with each other.

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from simsearch import PatchIndex
        >>> folder = tempfile.mkdtemp()
        >>> PatchIndex(8, use_gpu=False).save(folder)
        >>> index = PatchIndex.load(folder, use_gpu=False)
        >>> index.dim, len(index)
        (8, 0)
        >>> index = PatchIndex.load(project.index_folder)                           # doctest: +SKIP
        >>> hits = index.search(curation.prototype_vectors("WBC")[0], k=5)          # doctest: +SKIP
        """
        folder = Path(folder)
        index_path, meta_path = folder / INDEX_FILE, folder / META_FILE
        if not index_path.is_file() or not meta_path.is_file():
            raise ProjectError(f"no patch index in {folder}", hint="run `simsearch embed` first")
        try:
            cpu_index = faiss.read_index(str(index_path))
            with np.load(meta_path, allow_pickle=False) as meta:
                owner, positions, centres = meta["owner"], meta["positions"], meta["centres"]
                levels = meta["levels"] if "levels" in meta.files else np.ones(len(owner), np.float32)  # saved before pyramids
                image_ids = json.loads(str(meta["image_ids"]))
                on_disk = json.loads(str(meta["on_disk"])) if "on_disk" in meta.files else []  # saved before slides
                on_disk = [_OnDisk(int(entry["image"]), folder / entry["path"], PatchGeometry.from_dict(entry["geometry"]),
                                   float(entry["level"]), tuple(entry["grid"])) for entry in on_disk]
        except Exception as exc:
            raise ProjectError(f"patch index in {folder} is unreadable: {exc}", hint="delete it and run `simsearch embed` again") from exc
        if cpu_index.ntotal != len(owner):
            raise ProjectError(f"patch index in {folder} is inconsistent ({cpu_index.ntotal} vectors, {len(owner)} entries)")
        index = cls(cpu_index.d, use_gpu=use_gpu)
        index._cpu_index = cpu_index
        index.image_ids = list(image_ids)
        index._image_index = {image_id: i for i, image_id in enumerate(image_ids)}
        index._owner, index._positions, index._centres, index._levels = [owner], [positions], [centres], [levels]
        index._on_disk = on_disk
        return index
