"""The review round (beyond the paper): the model's own detections on images the user has not
curated, most informative first, for the user to accept or reject. Accepted items become clean
positives of the class, rejected ones its negatives, and the next training learns from them.

Candidates are the local maxima of each class's probability map on the undisplayed images (a
seeded sample of at most `max_images`), cached per model under ``project/review/``. Orders:

- ``uncertain`` (default): nearest the class's confidence threshold first, the items the
  model is least sure of;
- ``confident``: the most confident detections above the threshold first;
- ``diverse``: above the threshold, one item per cluster of the model's embedding space, the
  largest clusters first: the kinds of things the model detects.

So that a batch is not twenty copies of one mistake, the best-ranked candidates (five times
the batch) are grouped into as many clusters as the batch has items, by FAISS k-means in the
model's embedding space, and each cluster gives its best-ranked member (the selection of
Cluster-Margin, Citovsky et al., NeurIPS 2021). Candidates near an item already listed or
answered for the class are left out.

Examples
--------
``REVIEW_ORDERS``: the orders `Review.propose` accepts, the default first:

>>> from simsearch import REVIEW_ORDERS
>>> REVIEW_ORDERS
('uncertain', 'confident', 'diverse')
>>> items = Review(project).propose("WBC", count=20, order=REVIEW_ORDERS[2])   # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass
from typing import Iterator

import faiss
import numpy as np

from simsearch.io.images import NamedImage
from simsearch.project.store import PatchRecord, ReviewItem
from simsearch.util.errors import ConfigError, ImageReadError
from simsearch.features.geometry import PatchGeometry
from simsearch.util.files import atomic_path, save_npy_rows
from simsearch.inference.predict import Predictor
from simsearch.project.project import Project
from simsearch.search.peaks import peaks_across_scales
from simsearch.training.loop import trained_model_config

REVIEW_ORDERS = ("uncertain", "confident", "diverse")
MIN_CONFIDENCE = 0.02  # local maxima below this are never put to the user
POOL_FACTOR = 5  # candidates clustered per item listed


@dataclass(frozen=True)
class ReviewProgress(NamedImage):
    """One review image done: status 'computed', 'cached' or 'failed'.

    Examples
    --------
    `Review.iter_prepare` yields one per review image (`Review.propose` runs it silently):

    >>> review = Review(project, max_images=50)                    # doctest: +SKIP
    >>> for event in review.iter_prepare():                        # doctest: +SKIP
    ...     print(f"{event.done}/{event.total} {event.status}")
    1/50 computed
    2/50 computed
    ...
    """

    done: int
    total: int
    image_id: str
    status: str


@dataclass(frozen=True)
class _Candidates:
    image_ids: np.ndarray  # (N,) object
    ys: np.ndarray
    xs: np.ndarray
    confidences: np.ndarray  # (N,) float32
    vectors: np.ndarray  # (N, D) float32, the model's embedding at each candidate
    levels: np.ndarray  # (N,) the level of the scale pyramid each was found at


class Review:
    """The review round on one open (writable) project with a trained model.

    Examples
    --------
    >>> review = Review(project)                                   # doctest: +SKIP
    >>> items = review.propose("WBC", count=20)                    # doctest: +SKIP
    >>> review.answer("WBC", [items[0].number], "accepted")        # doctest: +SKIP
    >>> review.answer("WBC", [items[1].number], "rejected")        # doctest: +SKIP
    >>> simsearch.train(project)                                   # doctest: +SKIP

    `propose` lists the items nearest the threshold first; accepted items become clean
    positives of the class, rejected ones its negatives, and training learns from both.
    """

    def __init__(self, project: Project, *, device: str = "auto", max_images: int = 200, seed: int = 0):
        config = trained_model_config(project)
        if max_images < 1:
            raise ConfigError(f"review images: at least 1, got {max_images}")
        self.project = project
        self.device = device
        self.class_names: list[str] = list(config["classes"][:-1])
        self.folder = project.layout.review_folder(str(config.get("identity", "model")))
        undisplayed = project.undisplayed
        order = np.random.default_rng(seed).permutation(len(undisplayed))[:max_images]
        self.image_ids = [undisplayed[i] for i in sorted(order)]
        self._predictor: Predictor | None = None

    # -- candidates ------------------------------------------------------------------------

    def _cache_path(self, image_id: str):
        return self.folder / f"{hashlib.blake2b(image_id.encode(), digest_size=10).hexdigest()}.npz"

    def iter_prepare(self, *, cancel: threading.Event | None = None) -> Iterator[ReviewProgress]:
        """Run the model on the review images not yet done (cached per model; images that
        fail to read are skipped and reported); yields one event per image."""
        if self.folder.parent.is_dir():
            for other in self.folder.parent.iterdir():  # candidates of earlier models
                if other != self.folder:
                    shutil.rmtree(other, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        total = len(self.image_ids)
        for done, image_id in enumerate(self.image_ids, start=1):
            if cancel is not None and cancel.is_set():
                return
            path = self._cache_path(image_id)
            if path.is_file():
                yield ReviewProgress(done, total, image_id, "cached")
                continue
            try:
                arrays = self._image_candidates(image_id)
            except (ImageReadError, OSError):
                yield ReviewProgress(done, total, image_id, "failed")
                continue
            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
            yield ReviewProgress(done, total, image_id, "computed")

    def prepare(self) -> None:
        """`iter_prepare` as one blocking call."""
        for _ in self.iter_prepare():
            pass

    def _image_candidates(self, image_id: str) -> dict[str, np.ndarray]:
        if self._predictor is None:
            self._predictor = Predictor(self.project, device=self.device)
        cached = self._predictor.cached_levels(image_id)  # the probe: no image read, no network pass
        if cached is not None:
            return candidate_arrays([(scale, geometry, vectors, maps[..., : len(self.class_names)])
                                     for scale, geometry, vectors, maps in cached])
        image = self.project.dataset.read(image_id)
        pretrained = self._predictor.cached_pretrained(image_id) or {}  # a twin's pretrained half: from the cache
        levels, scratch = [], []
        try:
            for scale in self._predictor.scales:
                embedder = self._predictor.embedders[scale]
                rows, cols = embedder.geometry.grid_shape(*image.shape[:2])
                if embedder.band_rows(*image.shape[:2]) >= rows:
                    vectors, maps = self._predictor.vectors_and_maps(image, scale, pretrained.get(scale))
                else:  # a slide: its vectors go to a scratch file band by band, only the candidates' are read back
                    scratch.append(self.folder / f".scratch-{scale:g}.npy")
                    band_maps, bands = [], self._predictor.iter_bands(image, scale, pretrained.get(scale))
                    save_npy_rows(scratch[-1], (rows, cols, self._predictor.dim), np.float16, _keeping_maps(bands, band_maps))
                    vectors, maps = np.load(scratch[-1], mmap_mode="r"), np.concatenate(band_maps)
                levels.append((scale, embedder.geometry, vectors, maps[..., : len(self.class_names)]))
            return candidate_arrays(levels)
        finally:
            for path in scratch:
                path.unlink(missing_ok=True)

    def _candidates(self, class_name: str) -> _Candidates:
        index = self.class_names.index(class_name)
        ids, places, vectors = [], [], []
        for image_id in self.image_ids:
            path = self._cache_path(image_id)
            if not path.is_file():
                continue
            with np.load(path) as cached:
                found = cached[f"places{index}"]
                if found.shape[1] == 3:  # cached before scale pyramids: the patch level
                    found = np.concatenate([found, np.ones((len(found), 1), found.dtype)], axis=1)
                places.append(found)
                vectors.append(cached[f"vectors{index}"].astype(np.float32))
            ids += [image_id] * len(places[-1])
        if not ids:
            return _Candidates(np.zeros(0, object), np.zeros(0), np.zeros(0), np.zeros(0, np.float32), np.zeros((0, 1), np.float32),
                               np.zeros(0))
        places, vectors = np.concatenate(places), np.concatenate(vectors)
        return _Candidates(np.array(ids, object), places[:, 0], places[:, 1], places[:, 2], vectors, places[:, 3].astype(np.float64))

    # -- batches and answers ---------------------------------------------------------------

    def propose(self, class_name: str, *, count: int = 20, order: str = "uncertain", seed: int = 0) -> list[ReviewItem]:
        """Choose `count` items of the class (see the module's orders), store them as the
        class's current batch (numbered from 1) and return them; computes what is missing
        first (`iter_prepare` shows progress)."""
        if class_name not in self.class_names:
            raise ConfigError(f"review: the model has no class {class_name!r} (classes: {', '.join(self.class_names)})",
                              hint="train again after adding the class")
        if order not in REVIEW_ORDERS:
            raise ConfigError(f"review order: {order!r} is not one of {', '.join(REVIEW_ORDERS)}")
        if count < 1:
            raise ConfigError(f"review count: at least 1, got {count}")
        self.prepare()
        store = self.project.store
        candidates = self._candidates(class_name)
        seen = store.review_items(class_name, current_only=False) + [
            ReviewItem(None, class_name, p.image_id, p.y, p.x, 0.0) for kind in ("positive", "negative")
            for p in store.patches(class_name, kind)
        ]
        fresh = ~_near_seen(candidates, seen, 0.5 * min(self.project.geometry.patch_size))
        threshold = store.class_info(class_name).confidence_threshold
        kept = np.flatnonzero(fresh)
        picks = kept[select_for_review(candidates.confidences[kept], candidates.vectors[kept], threshold=threshold,
                                       count=count, order=order, seed=seed)]
        records = [PatchRecord(str(candidates.image_ids[i]), float(candidates.ys[i]), float(candidates.xs[i]),
                               float(candidates.confidences[i]), float(candidates.levels[i])) for i in picks]
        return store.set_review_batch(class_name, records)

    def items(self, class_name: str) -> list[ReviewItem]:
        """The class's current batch, with the answers given so far."""
        return self.project.store.review_items(class_name)

    def answer(self, class_name: str, numbers: list[int], answer: str | None) -> None:
        """'accepted' (a clean positive of the class), 'rejected' (a negative of the class), or
        None (take the answer back); by item number in the current batch."""
        self.project.store.answer_review(class_name, list(numbers), answer)


def _keeping_maps(bands: Iterator[tuple[np.ndarray, np.ndarray]], maps: list[np.ndarray]) -> Iterator[np.ndarray]:
    """The vectors of `Predictor.iter_bands`, each let go once the next is asked for; the maps
    are appended to `maps`."""
    for vectors, band_maps in bands:
        maps.append(band_maps)
        yield vectors
        del vectors


def candidate_arrays(levels: list[tuple[float, PatchGeometry, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """One image's candidates per class k: `places{k}` (N, 4) float32 (y, x, confidence, level)
    of the local maxima of its probability maps at or above MIN_CONFIDENCE, one per object
    across the levels of the scale pyramid (`peaks_across_scales`), best first, and
    `vectors{k}` (N, D) float16, the model's embedding there. levels: (scale, geometry, vectors
    (rows, cols, D), maps (rows, cols, classes)) per level."""
    vectors_at = {scale: vectors for scale, _, vectors, _ in levels}
    arrays = {}
    for index in range(levels[0][3].shape[-1]):
        peaks = peaks_across_scales([(scale, geometry, maps[..., index]) for scale, geometry, _, maps in levels],
                                    threshold=MIN_CONFIDENCE)
        found = []
        for level, row, col in zip(peaks.levels.tolist(), peaks.rows, peaks.cols):
            vectors = vectors_at[level]
            found.append(vectors[min(max(round(row), 0), vectors.shape[0] - 1), min(max(round(col), 0), vectors.shape[1] - 1)])
        dim = levels[0][2].shape[-1]
        arrays[f"places{index}"] = np.stack([peaks.ys, peaks.xs, peaks.values, peaks.levels], axis=1).astype(np.float32).reshape(-1, 4)
        arrays[f"vectors{index}"] = np.asarray(found, np.float16).reshape(len(found), dim)
    return arrays


def select_for_review(confidences: np.ndarray, vectors: np.ndarray, *, threshold: float, count: int,
                      order: str = "uncertain", seed: int = 0) -> np.ndarray:
    """Indices of at most `count` candidates to list, in listing order (see the module doc).

    confidences: (N,) the model's probability of the class at each candidate; vectors: (N, D)
    its embeddings there (L2-normalised)."""
    confidences = np.asarray(confidences, np.float32)
    if order == "uncertain":
        ranked = np.argsort(np.abs(confidences - threshold), kind="stable")
    else:
        above = np.flatnonzero(confidences >= threshold)
        ranked = above[np.argsort(-confidences[above], kind="stable")]
    pool = ranked[: POOL_FACTOR * count * (10 if order == "diverse" else 1)]
    if len(pool) <= count:
        return pool
    points = np.ascontiguousarray(vectors[pool], np.float32)
    kmeans = faiss.Kmeans(points.shape[1], count, niter=20, seed=seed, spherical=True, min_points_per_centroid=1)
    kmeans.train(points)
    distances, clusters = kmeans.index.search(points, 1)
    clusters, distances = clusters[:, 0], distances[:, 0]
    picks = []
    for cluster in np.unique(clusters):
        members = np.flatnonzero(clusters == cluster)
        if order == "diverse":  # the member most like its cluster's centre (inner product: largest)
            picks.append((-len(members), int(members[np.argmax(distances[members])])))
        else:  # the best-ranked member (the pool is in rank order)
            picks.append((int(members[0]), int(members[0])))
    return pool[[member for _, member in sorted(picks)]]


def _near_seen(candidates: _Candidates, seen: list[ReviewItem], radius: float) -> np.ndarray:
    """(N,) bool: candidates within `radius` px of an item already listed, answered or curated."""
    near = np.zeros(len(candidates.ys), bool)
    by_image: dict[str, list[tuple[float, float]]] = {}
    for item in seen:
        by_image.setdefault(item.image_id, []).append((item.y, item.x))
    for image_id, points in by_image.items():
        mine = np.flatnonzero(candidates.image_ids == image_id)
        if len(mine):
            points_array = np.array(points)
            distance = np.hypot(candidates.ys[mine, None] - points_array[None, :, 0], candidates.xs[mine, None] - points_array[None, :, 1])
            near[mine] = (distance <= radius).any(axis=1)
    return near
