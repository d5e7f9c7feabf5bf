"""FAISS index of every patch embedding of a dataset: exact inner product on
L2-normalised vectors (= cosine similarity), on the GPU when FAISS sees one."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from simsearch.io.images import NamedImage
from simsearch.util.errors import ConfigError, ProjectError
from simsearch.util.files import atomic_path

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


class PatchIndex:
    """Exact inner-product index over patch vectors plus where each came from.

    Examples
    --------
    A project indexes every image with `Project.build_index`; by hand, one image's patches:

    >>> import numpy as np
    >>> from simsearch import PatchEmbeddings, PatchGeometry, PatchIndex
    >>> vectors = np.random.default_rng(0).normal(size=(3, 5, 16)).astype(np.float32)
    >>> vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)          # L2-normalised, as embedded
    >>> embedded = PatchEmbeddings(vectors, PatchGeometry.for_patch(64), (96, 128))
    >>> index = PatchIndex(16, use_gpu=False)
    >>> index.add("slide1.png@0123456789ab", embedded.vectors, embedded.centres())
    >>> hits = index.search(vectors[1, 2], k=3)                    # a patch finds itself first
    >>> len(index), int(hits.rows[0, 0]), int(hits.cols[0, 0]), hits.centres[0, 0].tolist()
    (15, 1, 2, [48.0, 64.0])
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

    def __len__(self) -> int:
        return int(self._cpu_index.ntotal)

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
        if image_id not in self._image_index:
            self._image_index[image_id] = len(self.image_ids)
            self.image_ids.append(image_id)
        self._owner.append(np.full(len(flat), self._image_index[image_id], np.int32))
        self._positions.append(positions.astype(np.int32))
        self._centres.append(np.asarray(centres, np.float32).reshape(-1, 2))
        self._levels.append(np.full(len(flat), level, np.float32))
        self._cpu_index.add(flat)
        self._gpu_index = None
        self._meta_cache = None

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
        owner, positions, centres, levels = self._metadata()
        count = len(queries)
        if len(self) == 0:
            empty = np.full((count, k), -1, np.int64)
        else:
            scores, empty = self._searcher().search(np.ascontiguousarray(queries), min(k, len(self)))
            if empty.shape[1] < k:
                pad = k - empty.shape[1]
                scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
                empty = np.pad(empty, ((0, 0), (0, pad)), constant_values=-1)
        labels = empty
        valid = labels >= 0
        safe = np.where(valid, labels, 0)
        result_scores = np.where(valid, scores, -np.inf).astype(np.float32) if len(self) else np.full((count, k), -np.inf, np.float32)
        ids = np.array(self.image_ids + [""], dtype=object)
        image_idx = np.where(valid, owner[safe] if len(owner) else -1, -1)
        return SearchHits(
            scores=result_scores,
            image_ids=ids[image_idx],
            rows=np.where(valid, positions[safe, 0] if len(owner) else -1, -1).astype(np.int32),
            cols=np.where(valid, positions[safe, 1] if len(owner) else -1, -1).astype(np.int32),
            centres=np.where(valid[..., None], centres[safe] if len(owner) else 0, np.nan).astype(np.float32),
            levels=np.where(valid, levels[safe] if len(owner) else 1.0, 1.0).astype(np.float32),
        )

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
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        owner, positions, centres, levels = self._metadata()
        with atomic_path(folder / INDEX_FILE) as tmp:
            faiss.write_index(self._cpu_index, str(tmp))
        with atomic_path(folder / META_FILE) as tmp:
            np.savez(tmp, owner=owner, positions=positions, centres=centres, levels=levels,
                     image_ids=np.array(json.dumps(self.image_ids)))

    @classmethod
    def load(cls, folder: str | Path, *, use_gpu: bool | None = None) -> "PatchIndex":
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
        except Exception as exc:
            raise ProjectError(f"patch index in {folder} is unreadable: {exc}", hint="delete it and run `simsearch embed` again") from exc
        if cpu_index.ntotal != len(owner):
            raise ProjectError(f"patch index in {folder} is inconsistent ({cpu_index.ntotal} vectors, {len(owner)} entries)")
        index = cls(cpu_index.d, use_gpu=use_gpu)
        index._cpu_index = cpu_index
        index.image_ids = list(image_ids)
        index._image_index = {image_id: i for i, image_id in enumerate(image_ids)}
        index._owner, index._positions, index._centres, index._levels = [owner], [positions], [centres], [levels]
        return index
