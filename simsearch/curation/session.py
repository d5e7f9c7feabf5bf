"""Iterative patch selection (paper Sec. II-C, Fig. 2, Algorithm 1).

A `Curation` drives one project: classes and their prototypes, similarity
suggestions on the displayed images, negative flags, confirmation, background
curation and noisy extraction from the undisplayed images. Every user action
goes straight into the project store; similarity maps and their peaks are cached
in memory, so a threshold change only cuts sorted peak lists and a new prototype
only adds one similarity per cached patch (max with the old map).
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from simsearch.util.errors import ConfigError, ProjectError
from simsearch.util.files import file_name, write_text_atomic
from simsearch.project.project import Project
from simsearch.features.geometry import box_around, object_side
from simsearch.search.index import SimilarPatch
from simsearch.search.peaks import SizedPeaks, peaks_across_scales
from simsearch.search.similarity import SECOND_PROTOTYPE_WEIGHT, similarity_map
from simsearch.curation.results import (BackgroundCandidate, BackgroundCounts, ClassCounts, NoisyProgress, Suggestion,
                                         SuggestionList)
from simsearch.project.store import ClassInfo, PatchRecord, Prototype, ReviewItem, check_threshold

log = logging.getLogger(__name__)

ROTATIONS = (0, 1, 2, 3)  # the prototype and its 90, 180, 270 degree rotations
ANYWHERE_CANDIDATES = 3  # x k: how many patches FAISS proposes to most_similar_anywhere
_PAIRS_AT_ONCE = 1 << 22  # (candidate, patch) pairs judged at once for overlap: a few tens of MB


class Curation:
    """The interactive loop on one open (writable) project.

    Examples
    --------
    The paper's loop on an embedded project (boxes are (x0, y0, x1, y1) px):

    >>> from simsearch import Curation, Project
    >>> curation = Curation(Project.open("screen1/project"))                   # doctest: +SKIP
    >>> _ = curation.add_class("WBC", similarity_threshold=0.6)               # doctest: +SKIP
    >>> _ = curation.add_prototype("WBC", "BloodImage_00001.jpg", (68, 315, 286, 480))   # doctest: +SKIP
    >>> suggestions = curation.suggestions("WBC")                             # doctest: +SKIP
    >>> curation.flag_negative(suggestions[4])                                # doctest: +SKIP
    >>> positives = curation.confirm_class("WBC")                             # doctest: +SKIP
    >>> _ = curation.propose_background(count=20)                             # doctest: +SKIP
    >>> background = curation.confirm_background()                            # doctest: +SKIP
    >>> for event in curation.iter_noisy():                                   # doctest: +SKIP
    ...     pass
    """

    def __init__(self, project: Project):
        self.project = project
        self.store = project.store
        self._maps: dict[str, dict[str, np.ndarray]] = {}
        self._peaks: dict[str, dict[str, SizedPeaks]] = {}
        self._map_prototypes: dict[str, tuple] = {}  # class -> what its maps were made from
        self._scales: tuple[float, ...] = ()  # the pyramid the cached maps were made for

    # -- classes ----------------------------------------------------------------------------

    def classes(self) -> list[ClassInfo]:
        """Every class of the project, oldest first, as ClassInfo records (name, thresholds,
        whether it is confirmed); one class by name: `class_info`.

        Examples
        --------
        >>> [c.name for c in curation.classes()]                        # doctest: +SKIP
        ['WBC', 'RBC']
        >>> "WBC" in [c.name for c in curation.classes()]               # doctest: +SKIP
        True
        """
        return self.store.classes()

    def add_class(self, name: str, *, similarity_threshold: float = 0.5) -> ClassInfo:
        """Add a class (its name stripped of surrounding spaces) with the similarity threshold
        in [-1, 1] its suggestions are cut at; returns its ClassInfo, not confirmed.

        Raises ConfigError when the name is empty, taken or 'background' (in any case: the
        classifier's last class), or the threshold is not a number in [-1, 1]; nothing changes then.

        Examples
        --------
        >>> curation.add_class("WBC", similarity_threshold=0.6)         # doctest: +SKIP
        ClassInfo(id=1, name='WBC', similarity_threshold=0.6, confidence_threshold=0.5, confirmed=False)
        """
        return self.store.add_class(name, similarity_threshold=similarity_threshold)

    def rename_class(self, old: str, new: str) -> None:
        """Rename a class (the new name stripped of surrounding spaces); everything curated for
        it, its thresholds and its confirmation stay as they are.

        Raises ConfigError when there is no class `old`, or `new` is empty, another class's name
        or 'background' (in any case); nothing changes then.

        Examples
        --------
        >>> curation.rename_class("WBC", "Leukocyte")                    # doctest: +SKIP
        >>> [c.name for c in curation.classes()]                        # doctest: +SKIP
        ['Leukocyte', 'RBC']
        """
        self.store.rename_class(old, new)
        for cache in (self._maps, self._peaks, self._map_prototypes):
            if old in cache:
                cache[new] = cache.pop(old)

    def delete_class(self, name: str) -> Path:
        """Delete a class with everything curated for it (prototypes, flags, positives, noisy
        patches, review answers). All of it is first saved to a file in the project's
        deleted-classes/ folder, returned, which `restore_class` brings back: a deletion
        never loses curated work.

        Examples
        --------
        >>> saved = curation.delete_class("RBC")          # doctest: +SKIP
        >>> curation.restore_class(saved).name            # doctest: +SKIP
        'RBC'
        """
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        saved = self.project.layout.deleted_classes / f"{file_name(name)}.{stamp}.json"
        self.store.delete_class(name, keep=lambda rows: write_text_atomic(saved, json.dumps(rows)))
        self._forget(name)
        return saved

    def restore_class(self, saved: str | Path) -> ClassInfo:
        """Bring back a class deleted by `delete_class` from the file it saved, as it was (its
        file is then removed). A ConfigError naming the file when it cannot be read, or when a
        class of that name exists again; nothing changes then.

        Examples
        --------
        >>> curation.restore_class("project/deleted-classes/RBC.20261201T101500000000.json").name   # doctest: +SKIP
        'RBC'
        """
        saved = Path(saved)
        try:
            rows = json.loads(saved.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"restore class: cannot read {saved}: {error}") from None
        try:
            info = self.store.restore_class(rows)
        except ConfigError as error:
            raise ConfigError(f"{saved}: {error.message}", hint=error.hint) from None
        saved.unlink(missing_ok=True)
        return info

    def _forget(self, name: str) -> None:
        for cache in (self._maps, self._peaks, self._map_prototypes):
            cache.pop(name, None)

    def class_info(self, class_name: str) -> ClassInfo:
        """One class: its thresholds and whether it is confirmed.

        Raises ConfigError naming the known classes when there is no such class.

        Examples
        --------
        >>> curation.class_info("WBC").similarity_threshold           # doctest: +SKIP
        0.55
        """
        return self.store.class_info(class_name)

    def class_counts(self, class_name: str) -> ClassCounts:
        """How many prototypes, clean positives, negatives, noisy positives and review
        answers the class has (see `ClassCounts`).

        Examples
        --------
        >>> counts = curation.class_counts("WBC")                     # doctest: +SKIP
        >>> counts.prototypes, counts.positives, counts.negatives      # doctest: +SKIP
        (2, 12, 1)
        """
        answers = [item.answer for item in self.store.review_items(class_name, current_only=False)]
        return ClassCounts(
            class_name,
            prototypes=len(self.store.prototypes(class_name)),
            positives=len(self.store.patches(class_name, "positive")),
            negatives=len(self.store.patches(class_name, "negative")),
            noisy=self.store.noisy_count(class_name),
            accepted=answers.count("accepted"),
            rejected=answers.count("rejected"),
        )

    def set_confidence_threshold(self, class_name: str, value: float) -> None:
        """The model's probability in [0, 1] at or above which a detection of the class counts
        (`Predictor`, `iter_process` and the review round read it); unlike the similarity
        threshold (`set_threshold`) it leaves the class's confirmation as it is.

        Examples
        --------
        >>> curation.set_confidence_threshold("WBC", 0.7)              # doctest: +SKIP
        >>> curation.class_info("WBC").confidence_threshold            # doctest: +SKIP
        0.7
        """
        self.store.set_confidence_threshold(class_name, value)

    # -- prototypes -------------------------------------------------------------------------

    def add_prototype(self, class_name: str, image: str, box: tuple[float, float, float, float]) -> Prototype:
        """box: (x0, y0, x1, y1) px. The first prototype of the project fixes the patch
        size; a later box of another size is re-centred to that size, with a warning (in a
        project with a scale pyramid, to the patch of the level nearest the box's size). Where
        it is stored: `prototype_box`."""
        self.store.class_info(class_name)
        record = self.project.dataset.find(image)
        x0, y0, x1, y1 = validate_box(box, record, self._reach(box))
        if self.project.geometry is None:
            self.project.set_patch_size((max(4, round(y1 - y0)), max(4, round(x1 - x0))))
        placed = self.prototype_box(record.id, (x0, y0, x1, y1))
        if abs((placed[3] - placed[1]) - (y1 - y0)) > 1 or abs((placed[2] - placed[0]) - (x1 - x0)) > 1:
            (log.warning if len(self.project.scales) == 1 else log.info)(  # a pyramid's levels are the sizes to choose from
                "prototype box %.0fx%.0f px differs from the project's patch size %.0fx%.0f px; re-centred on (%.0f, %.0f)",
                y1 - y0, x1 - x0, placed[3] - placed[1], placed[2] - placed[0],
                (placed[1] + placed[3]) / 2, (placed[0] + placed[2]) / 2,
            )
        return self.store.add_prototype(class_name, record.id, placed)

    def prototype_box(self, image: str, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """The box `add_prototype` stores for `box` (x0, y0, x1, y1) on `image`: in a project
        whose pyramid follows the boxes, or before the patch size is fixed, the box itself;
        else the patch of the level nearest the box's size, centred on the box, moved only as
        far as needed for its centre to lie on the patch grid's reach (inside the image, or up
        to the grid's margin beyond the edge with the border grid, `PatchGeometry.margin`).

        Examples
        --------
        >>> curation.prototype_box("img0.tif", (0, 0, 10, 10))         # doctest: +SKIP
        (-8.0, -8.0, 24.0, 24.0)
        """
        record = self.project.dataset.find(image)
        x0, y0, x1, y1 = (float(v) for v in box)
        geometry = self._stored_at((x0, y0, x1, y1))
        if geometry is None:
            return (x0, y0, x1, y1)
        patch_h, patch_w = geometry.patch_size
        if patch_h > record.height or patch_w > record.width:
            raise ConfigError(f"image {record.relpath} ({record.width}x{record.height} px) is smaller than the "
                              f"project's patch ({patch_w}x{patch_h} px)")
        reach_y, reach_x = (margin / geometry.scale for margin in geometry.margin)
        cy = min(max((y0 + y1) / 2, patch_h / 2 - reach_y), record.height - patch_h / 2 + reach_y)
        cx = min(max((x0 + x1) / 2, patch_w / 2 - reach_x), record.width - patch_w / 2 + reach_x)
        if abs(y1 - y0 - patch_h) <= 1 and abs(x1 - x0 - patch_w) <= 1 and (cy, cx) == ((y0 + y1) / 2, (x0 + x1) / 2):
            return (x0, y0, x1, y1)  # the patch, as drawn
        return (cx - patch_w / 2, cy - patch_h / 2, cx + patch_w / 2, cy + patch_h / 2)

    def _stored_at(self, box: tuple[float, float, float, float]):
        """The patch geometry of the level a prototype of `box` is stored at (the level nearest
        its size); None where the box is stored as it is (no patch size yet, or a pyramid that
        follows the boxes)."""
        if self.project.geometry is None or self.project.automatic_scales:
            return None
        x0, y0, x1, y1 = box
        return self.project.geometry_at(self.project.nearest_level(object_side(abs(y1 - y0), abs(x1 - x0)) or 1.0))

    def _reach(self, box) -> tuple[float, float]:
        """(y, x) px a box may reach beyond the image: a stored prototype's patch on the
        border grid does, by up to the margin of its level (`prototype_box`)."""
        try:
            geometry = self._stored_at(tuple(float(v) for v in box))
        except (TypeError, ValueError):
            return (0.0, 0.0)  # validate_box says what is wrong
        return (0.0, 0.0) if geometry is None else tuple(margin / geometry.scale for margin in geometry.margin)

    def remove_prototype(self, prototype_id: int) -> None:
        """Remove a prototype by its id (`Prototype.id`); its class is no longer confirmed.

        Raises ConfigError when no prototype has that id.

        Examples
        --------
        >>> prototype = curation.prototypes("WBC")[-1]                   # doctest: +SKIP
        >>> curation.remove_prototype(prototype.id)                      # doctest: +SKIP
        """
        self.store.delete_prototype(prototype_id)

    def prototypes(self, class_name: str | None = None) -> list[Prototype]:
        """The class's prototypes (None: every class's), oldest first.

        Examples
        --------
        >>> [p.box for p in curation.prototypes("WBC")]                # doctest: +SKIP
        [(84.0, 40.0, 116.0, 72.0)]
        """
        return self.store.prototypes(class_name)

    def prototype_vectors(self, class_name: str) -> np.ndarray:
        """(P * 4, D) float32: every prototype of the class and its three rotations."""
        prototypes = self.store.prototypes(class_name)
        if not prototypes:
            return np.zeros((0, self.project.embedder.dim), np.float32)
        self._follow_the_pyramid()
        return np.concatenate([self._vectors_of(p) for p in prototypes])

    def class_similarity(self, class_name: str, vectors: np.ndarray) -> np.ndarray:
        """(rows, cols) float32: the class's similarity for each of (rows, cols, D) patch
        embeddings, as similarity search scores it everywhere (suggestions, noisy extraction,
        `simsearch eval`): `similarity_map` over the class's prototype vectors and their
        rotations, the best prototype weighted with the second best; -1 without prototypes.

        Examples
        --------
        >>> vectors = curation.project.embeddings(curation.project.displayed[0]).vectors   # doctest: +SKIP
        >>> curation.class_similarity("WBC", vectors).shape                              # doctest: +SKIP
        (30, 40)
        """
        return self._similarity(vectors, self.prototype_vectors(class_name))

    def _similarity(self, vectors: np.ndarray, prototype_vectors: np.ndarray) -> np.ndarray:
        """`class_similarity` with the class's `prototype_vectors` already fetched (once per loop)."""
        return similarity_map(vectors, prototype_vectors, per_prototype=len(ROTATIONS), device=self.project.embedder.device)

    def _follow_the_pyramid(self) -> None:
        """When the scale pyramid changed (set_scales, or 'auto' after a new box), every cached
        map is stale."""
        if self._scales != self.project.scales:
            self._scales = self.project.scales
            for name in list(self._maps):
                self._forget(name)

    def _vectors_of(self, prototype: Prototype) -> np.ndarray:
        """Its vectors at its own level: comparable with every level's (`PatchGeometry.at_scale`)."""
        level = prototype_record(self.project, prototype).level
        return self.project.vectors_at(prototype.image_id, prototype.centre, level, ROTATIONS)

    # -- similarity maps and suggestions ---------------------------------------------------

    def _displayed(self) -> list[str]:
        displayed = self.project.displayed
        if not displayed:
            raise ConfigError(
                "no displayed images chosen",
                hint="choose them first: project.choose_displayed(n) (CLI: simsearch displayed N --project P)",
            )
        return displayed

    def similarity_maps(self, class_name: str) -> dict[str, np.ndarray]:
        """image id -> (rows, cols) max cosine similarity to the class's prototype vectors,
        for every displayed image, at the patch size (`level_maps` has every pyramid level)."""
        return {image_id: levels[1.0] for image_id, levels in self.level_maps(class_name).items()}

    def level_maps(self, class_name: str) -> dict[str, dict[float, np.ndarray]]:
        """image id -> pyramid level -> (rows, cols) similarity map, for every displayed image:
        the class's similarity (`similarity_map` over its prototypes and their rotations: the
        best prototype weighted with the second best); -1 everywhere for a class without
        prototypes. Made again when the prototypes or the displayed images change."""
        prototypes = self.store.prototypes(class_name)
        self._follow_the_pyramid()
        # the prototypes themselves, not their ids: the store gives a deleted newest prototype's id to the next
        made_from = (tuple(prototypes), tuple(self._displayed()))
        if self._map_prototypes.get(class_name) != made_from:
            self._forget(class_name)
            scales = self.project.scales  # with 'auto', read from the store: once
            vectors = self.prototype_vectors(class_name)
            maps = {image_id: {scale: self._similarity(self.project.embeddings(image_id, scale).vectors, vectors)
                               for scale in scales}
                    for image_id in made_from[1]}
            self._maps[class_name], self._map_prototypes[class_name] = maps, made_from
        return self._maps[class_name]

    def similarity_at(self, class_name: str, places: "list[PatchRecord]") -> np.ndarray:
        """(n,) float32: the similarity search's score of each place (the class's similarity
        to its prototypes, as `level_maps` scores it) at the grid patch nearest its centre, at
        its pyramid level; its image is embedded first if it is not cached.

        Examples
        --------
        >>> place = curation.suggestions("WBC")[0].record()                  # doctest: +SKIP
        >>> curation.similarity_at("WBC", [place])                          # doctest: +SKIP
        array([0.93], dtype=float32)
        """
        if not places:
            return np.zeros(0, np.float32)
        patches = np.stack([self.project.patch_vector(p.image_id, p.y, p.x, p.level) for p in places])
        return self.class_similarity(class_name, patches[None])[0]

    def _class_peaks(self, class_name: str) -> dict[str, SizedPeaks]:
        maps = self.level_maps(class_name)
        if class_name not in self._peaks:
            self._peaks[class_name] = {
                image_id: peaks_across_scales([(scale, self.project.geometry_at(scale), heat) for scale, heat in levels.items()])
                for image_id, levels in maps.items()
            }
        return self._peaks[class_name]

    def suggestions(self, class_name: str, threshold: float | None = None) -> "SuggestionList":
        """Local maxima above the threshold (default: the class's stored one) on the
        displayed images, most similar first; flagged ones are included and marked."""
        info = self.store.class_info(class_name)
        threshold = info.similarity_threshold if threshold is None else check_threshold(threshold, "similarity threshold")
        if not self.store.prototypes(class_name):
            return SuggestionList.empty(class_name)
        negatives = _by_image(self.store.patches(class_name, "negative"))
        tolerance = self.project.geometry.grid_step / 2
        image_ids, columns = [], []
        for number, (image_id, peaks) in enumerate(self._class_peaks(class_name).items()):
            kept = peaks.above(threshold)
            flagged = _near(negatives.get(image_id), kept.ys, kept.xs, tolerance)
            image_ids.append(image_id)
            columns.append((np.full(len(kept), number), kept.ys, kept.xs, kept.values, flagged, kept.sizes, kept.levels))
        return SuggestionList(class_name, image_ids, *map(np.concatenate, zip(*columns)))

    def similarity_histogram(self, class_name: str, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of the similarity of every local maximum, to help pick a threshold."""
        values = np.concatenate([p.values for p in self._class_peaks(class_name).values()] or [np.zeros(0)])
        return np.histogram(values, bins=bins, range=(-1.0, 1.0))

    def set_threshold(self, class_name: str, value: float) -> None:
        """Set the class's similarity threshold in [-1, 1], the one `suggestions` cuts at by
        default; a new value makes the class no longer confirmed (the same value changes nothing).
        The model's threshold is `set_confidence_threshold`.

        Raises ConfigError when the value is not a number in [-1, 1] or there is no such class.

        Examples
        --------
        >>> curation.set_threshold("WBC", 0.55)                          # doctest: +SKIP
        >>> curation.class_info("WBC").similarity_threshold             # doctest: +SKIP
        0.55
        """
        self.store.set_similarity_threshold(class_name, value)

    def flag_negative(self, suggestion: Suggestion, flagged: bool = True) -> None:
        """Mark a suggestion as not-this-class (kept as the class's negative), or unmark it."""
        self.set_negative(suggestion.class_name, suggestion.record(), flagged)

    def set_negative(self, class_name: str, patch: PatchRecord, flagged: bool = True) -> None:
        """`flag_negative` for a patch given as a record (e.g. one kept from an earlier
        suggestion, to take a flag back): flag it as not-this-class, or with flagged=False
        clear the flag. Either way the class is no longer confirmed.

        Examples
        --------
        >>> patch = curation.suggestions("WBC")[3].record()             # doctest: +SKIP
        >>> curation.set_negative("WBC", patch)                        # doctest: +SKIP
        >>> curation.set_negative("WBC", patch, flagged=False)         # doctest: +SKIP
        """
        self.store.set_negative(class_name, patch, flagged)

    def positives(self, class_name: str) -> list[PatchRecord]:
        """The clean positives of the class's last confirmation (`confirm_class`), oldest first.

        Examples
        --------
        >>> len(curation.positives("WBC"))                             # doctest: +SKIP
        12
        """
        return self.store.patches(class_name, "positive")

    def negatives(self, class_name: str) -> list[PatchRecord]:
        """The patches flagged as not-this-class (`flag_negative`), oldest first.

        Examples
        --------
        >>> [(p.image_id, p.y, p.x) for p in curation.negatives("WBC")]  # doctest: +SKIP
        [('img3', 120.0, 64.0)]
        """
        return self.store.patches(class_name, "negative")

    def restore_confirmation(self, class_name: str, threshold: float | None, positives: list[PatchRecord], *,
                             confirmed: bool) -> None:
        """Put the class back as it was before a `confirm_class`: its similarity threshold, its
        clean positives and whether it was confirmed (how an undo takes a confirmation back).
        threshold None keeps the current one: after the undo of a threshold, flag or prototype,
        the positives of the confirmation that change took away, confirmed=True.

        Examples
        --------
        >>> before = curation.class_info("WBC")                         # doctest: +SKIP
        >>> earlier = curation.positives("WBC")                         # doctest: +SKIP
        >>> curation.confirm_class("WBC", 0.6)                          # doctest: +SKIP
        >>> curation.restore_confirmation("WBC", before.similarity_threshold, earlier,
        ...                               confirmed=before.confirmed)  # doctest: +SKIP
        >>> confirmed = curation.positives("WBC")                       # doctest: +SKIP
        >>> curation.flag_negative(curation.suggestions("WBC")[0])      # doctest: +SKIP
        >>> curation.flag_negative(curation.suggestions("WBC")[0], flagged=False)  # doctest: +SKIP
        >>> curation.restore_confirmation("WBC", None, confirmed, confirmed=True)  # doctest: +SKIP
        """
        if threshold is None:
            threshold = self.store.class_info(class_name).similarity_threshold
        self.store.confirm_class(class_name, threshold, list(positives), confirmed=confirmed)

    def confirm_class(self, class_name: str, threshold: float | None = None, *, allow_empty: bool = False) -> list[Suggestion]:
        """The unflagged suggestions above the threshold become the class's clean positives.
        None at all is refused (the threshold is likely above every suggestion) unless
        `allow_empty`: the class then trains on its prototypes alone."""
        info = self.store.class_info(class_name)
        threshold = info.similarity_threshold if threshold is None else check_threshold(threshold, "similarity threshold")
        if not self.store.prototypes(class_name):
            raise ConfigError(f"class {class_name!r} has no prototype yet", hint="add at least one prototype first")
        positives = [s for s in self.suggestions(class_name, threshold) if not s.flagged]
        if not positives and not allow_empty:
            raise ConfigError(f"confirming {class_name!r} at similarity {threshold:.2f}: no unflagged suggestion above it",
                              hint="lower the threshold (the class would train on its prototypes alone)")
        self.store.confirm_class(class_name, threshold, [s.record() for s in positives])
        return positives

    def most_similar_anywhere(self, class_name: str, k: int = 20) -> list[SimilarPatch]:
        """The k patches most similar to the class's prototypes in the whole dataset, at every
        level of the scale pyramid (each answer's `level`): FAISS's `ANYWHERE_CANDIDATES` x k
        closest to any one prototype vector, each scored as the displayed images are
        (`similarity_at`), best first."""
        vectors = self.prototype_vectors(class_name)
        if not len(vectors):
            return []
        try:
            index = self.project.load_index()
        except ProjectError:  # not built yet for these settings: embed what is missing, then index
            for _ in self.project.iter_embed():
                pass
            index = self.project.build_index()
        found = index.most_similar(vectors, k=ANYWHERE_CANDIDATES * k, min_distance=min(self.project.geometry.patch_size) / 2)
        scores = self.similarity_at(class_name, [PatchRecord(p.image_id, p.y, p.x, level=p.level) for p in found])
        rescored = [replace(p, score=float(score)) for p, score in zip(found, scores)]
        return sorted(rescored, key=lambda p: -p.score)[:k]

    # -- background (Algorithm 1) -----------------------------------------------------------

    def _mean_prototype(self) -> np.ndarray:
        vectors = [self.prototype_vectors(c.name) for c in self.store.classes()]
        vectors = [v for v in vectors if len(v)]
        if not vectors:
            raise ConfigError("background: no prototypes yet", hint="curate the classes first")
        mean = np.concatenate(vectors).mean(axis=0)
        return mean / max(np.linalg.norm(mean), 1e-12)

    def _extremes(self, image_id: str, mean: np.ndarray, count: int, occupied: list[PatchRecord],
                  vectors: dict[float, np.ndarray] | None = None) -> list[BackgroundCandidate]:
        """Up to `count` patches most and `count` least similar to `mean` in one image, over
        every level of the scale pyramid (one place, one candidate; a level-s candidate is s
        times the patch), none overlapping an occupied patch. `vectors`: the image's
        embeddings per level, when already loaded."""
        device = self.project.embedder.device
        levels = []
        for scale in self.project.scales:
            level_vectors = vectors[scale] if vectors is not None else self.project.embeddings(image_id, scale).vectors
            levels.append((scale, self.project.geometry_at(scale), similarity_map(level_vectors, mean, device=device)))
        found = []
        for extreme, sign in (("high", 1.0), ("low", -1.0)):
            peaks = peaks_across_scales([(scale, geometry, sign * heat) for scale, geometry, heat in levels])
            for i in _first_free(occupied, peaks.ys, peaks.xs, peaks.sizes, self.project.geometry.patch_size, count):
                y, x = float(peaks.ys[i]), float(peaks.xs[i])
                found.append(BackgroundCandidate(image_id, y, x, box_around(y, x, tuple(peaks.sizes[i])),
                                                 float(sign * peaks.values[i]), extreme, level=float(peaks.levels[i])))
        return found

    def propose_background(self, count: int = 20) -> list[BackgroundCandidate]:
        """Algorithm 1 on the displayed images: the `count` unlabelled patches most and the
        `count` least similar to the mean of all prototype vectors, excluding patches that
        overlap accepted positives or prototypes. Stored as candidates (earlier flags on
        the same patches are kept)."""
        mean = self._mean_prototype()
        occupied = _by_image(self._occupied())
        per_image = []
        for image_id in self._displayed():
            per_image += self._extremes(image_id, mean, count, occupied.get(image_id, []))
        high = sorted((c for c in per_image if c.extreme == "high"), key=lambda c: -c.similarity)[:count]
        low = sorted((c for c in per_image if c.extreme == "low"), key=lambda c: c.similarity)[:count]
        self.store.set_background_candidates([(c.record(), c.extreme) for c in high + low])
        return self.background_candidates()

    def _occupied(self) -> list[PatchRecord]:
        occupied = []
        for info in self.store.classes():
            occupied += self.store.patches(info.name, "positive")
            occupied += [prototype_record(self.project, p) for p in self.store.prototypes(info.name)]
        return occupied

    def background_candidates(self) -> list[BackgroundCandidate]:
        """The candidates proposed (confirmed or not), each with the box of its pyramid level."""
        return [
            BackgroundCandidate(p.image_id, p.y, p.x, box_around(p.y, p.x, self.project.geometry_at(p.level).patch_size),
                                p.similarity, extreme, flag, p.level)
            for p, extreme, flag in self.store.background()
        ]

    def flag_not_background(self, candidate: BackgroundCandidate, flagged: bool = True) -> None:
        """Mark a background candidate as not background (it holds an object), or with
        flagged=False unmark it; `confirm_background` leaves flagged candidates out of the clean
        background. ConfigError when it is no stored candidate.

        Examples
        --------
        >>> candidates = curation.propose_background(count=20)          # doctest: +SKIP
        >>> curation.flag_not_background(candidates[0])                 # doctest: +SKIP
        >>> curation.flag_not_background(candidates[0], flagged=False)  # doctest: +SKIP
        """
        self.set_not_background(candidate.record(), flagged)

    def set_not_background(self, patch: PatchRecord, flagged: bool = True) -> None:
        """`flag_not_background` for a candidate given as a record: flag it as not background,
        or with flagged=False clear the flag; ConfigError when it is no candidate.

        Examples
        --------
        >>> patch = curation.background_candidates()[0].record()       # doctest: +SKIP
        >>> curation.set_not_background(patch)                         # doctest: +SKIP
        >>> curation.set_not_background(patch, flagged=False)          # doctest: +SKIP
        """
        self.store.set_not_background(patch, flagged)

    def confirm_background(self) -> list[BackgroundCandidate]:
        """The unflagged candidates become clean background."""
        self.store.confirm_background()
        return [c for c in self.background_candidates() if c.is_background]

    def unconfirmed_background(self) -> list[PatchRecord]:
        """The candidates not confirmed yet, flagged or not: what the next `confirm_background`
        confirms (keep them to take it back with `unconfirm_background`).

        Examples
        --------
        >>> newly = curation.unconfirmed_background()                   # doctest: +SKIP
        >>> curation.confirm_background()                               # doctest: +SKIP
        >>> curation.unconfirm_background(newly)                        # doctest: +SKIP
        """
        confirmed = {(p.image_id, p.y, p.x) for p, _, _ in self.store.background(confirmed_only=True)}
        return [p for p, _, _ in self.store.background() if (p.image_id, p.y, p.x) not in confirmed]

    def unconfirm_background(self, patches: list[PatchRecord]) -> None:
        """Take the confirmation of these background candidates back: they are candidates
        again (a later `propose_background` replaces them), their flags as they were.

        Examples
        --------
        >>> newly = curation.unconfirmed_background()                   # doctest: +SKIP
        >>> curation.confirm_background()                               # doctest: +SKIP
        >>> curation.unconfirm_background(newly)                        # doctest: +SKIP
        """
        self.store.confirm_background(list(patches), confirmed=False)

    def clean_background(self) -> list[PatchRecord]:
        """The confirmed candidates not flagged: the clean background that training learns from.

        Examples
        --------
        >>> len(curation.clean_background())                           # doctest: +SKIP
        37
        """
        return self.store.clean_background()

    def background_counts(self) -> BackgroundCounts:
        """How many background candidates, flags, clean and noisy background patches there
        are (see `BackgroundCounts`).

        Examples
        --------
        >>> curation.background_counts()                               # doctest: +SKIP
        BackgroundCounts(candidates=40, flagged=3, clean=37, noisy=120)
        """
        every = self.store.background()
        return BackgroundCounts(
            candidates=len(every),
            flagged=sum(not is_background for _, _, is_background in every),
            clean=len(self.store.clean_background()),
            noisy=self.store.noisy_count(None),
        )

    # -- review answers (the review round's items; `Review` proposes them) -----------------

    def review_items(self, class_name: str, *, current_only: bool = True) -> list[ReviewItem]:
        """The class's current review batch in listed order, with the answers given so far;
        current_only=False: every item ever listed or answered (answered ones outlive their
        batch, unnumbered). Needs no model: `Review.propose` makes the batches.

        Examples
        --------
        >>> items = curation.review_items("WBC")                        # doctest: +SKIP
        >>> [i.answer for i in curation.review_items("WBC", current_only=False)]  # doctest: +SKIP
        ['accepted', 'rejected', None]
        """
        return self.store.review_items(class_name, current_only=current_only)

    def answer_review(self, class_name: str, numbers: list[int], answer: str | None) -> None:
        """Answer items of the class's current review batch by number: 'accepted' (a clean
        positive of the class), 'rejected' (a negative) or None (take the answer back); all or
        none, an unknown number raises ConfigError and changes nothing (as `Review.answer`,
        without needing the model).

        Examples
        --------
        >>> curation.answer_review("WBC", [1, 2], "accepted")           # doctest: +SKIP
        >>> curation.answer_review("WBC", [2], None)                    # doctest: +SKIP
        """
        self.store.answer_review(class_name, list(numbers), answer)

    def restore_review_answers(self, class_name: str, items: list, answer: str | None) -> None:
        """Give review items (anything with `image_id`, `y` and `x`: `ReviewItem`s as they were
        listed) this answer, found by their place, not their number: a later batch renumbers,
        and an answered item outlives its batch. How an undo takes answers back. All or none.

        Examples
        --------
        >>> item = curation.review_items("WBC")[0]                     # doctest: +SKIP
        >>> curation.answer_review("WBC", [item.number], "accepted")    # doctest: +SKIP
        >>> curation.restore_review_answers("WBC", [item], item.answer)  # doctest: +SKIP
        """
        self.store.answer_review_at(class_name, [(item.image_id, item.y, item.x) for item in items], answer)

    def last_reviewed_class(self) -> str | None:
        """The class whose review batch was listed last (where answers without a class go), or None.

        Examples
        --------
        >>> curation.last_reviewed_class()                              # doctest: +SKIP
        'WBC'
        """
        return self.store.last_reviewed_class()

    def clear_noisy(self) -> None:
        """Discard every noisy patch extracted so far (`iter_noisy` then starts again).

        Examples
        --------
        >>> curation.clear_noisy()                                      # doctest: +SKIP
        >>> curation.background_counts().noisy                          # doctest: +SKIP
        0
        """
        self.store.clear_noisy()

    # -- noisy training data ----------------------------------------------------------------

    def iter_noisy(
        self,
        *,
        cap_per_class: int | None = None,
        background_per_image: int = 4,
        seed: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[NoisyProgress]:
        """Noisy positives (local maxima above each class's threshold) and noisy background
        (Algorithm 1, `background_per_image` most and least similar) from every undisplayed
        image, one image at a time (memory bounded). Images already done are skipped, so an
        interrupted run resumes; images are visited in a seeded random order so that caps
        sample the whole dataset.

        The stored patches belong to the prototypes, similarity thresholds, displayed images
        and options they were extracted with: when any of these changed since, they are
        discarded and extracted again, so training never learns from a stale curation."""
        if cap_per_class is not None and cap_per_class < 0:
            raise ConfigError(f"cap_per_class: must be >= 0, got {cap_per_class}")
        classes = [c for c in self.store.classes() if self.store.prototypes(c.name)]
        if not classes:
            raise ConfigError("noisy extraction: no class has prototypes yet")
        source = _noisy_source(self.store, classes, self.project.displayed, cap_per_class, background_per_image, seed,
                               self.project.scales)
        if self.store.noisy_source() != source:
            if self.store.noisy_done():
                log.info("prototypes, thresholds or options changed since the noisy patches were extracted: extracting again")
            self.store.clear_noisy(source)
        vectors = {c.name: self.prototype_vectors(c.name) for c in classes}
        mean = self._mean_prototype()
        scales = self.project.scales
        images = self.project.undisplayed
        if not images:
            log.warning("noisy extraction: every image is displayed, so there is none to extract noisy patches from; "
                        "display fewer images for self-learning")
        order = [images[i] for i in np.random.default_rng(seed).permutation(len(images))]
        done = self.store.noisy_done()
        counts = {c.name: self.store.noisy_count(c.name) for c in classes}
        for position, image_id in enumerate(order, start=1):
            if cancel is not None and cancel.is_set():
                return
            if image_id in done:
                continue
            embedded = {scale: self.project.embeddings(image_id, scale).vectors for scale in scales}
            per_class: dict = {}
            for info in classes:
                room = None if cap_per_class is None else max(0, cap_per_class - counts[info.name])
                peaks = peaks_across_scales([
                    (scale, self.project.geometry_at(scale), self._similarity(embedded[scale], vectors[info.name]))
                    for scale in scales
                ], threshold=info.similarity_threshold)
                patches = [PatchRecord(image_id, float(y), float(x), float(v), float(level))
                           for y, x, v, level in zip(peaks.ys, peaks.xs, peaks.values, peaks.levels)]
                per_class[info.name] = patches[:room] if room is not None else patches
                counts[info.name] += len(per_class[info.name])
            occupied = [p for patches in per_class.values() for p in patches]
            background = self._extremes(image_id, mean, background_per_image, occupied, embedded)
            per_class[None] = [c.record() for c in background]
            self.store.add_noisy(image_id, per_class)
            yield NoisyProgress(position, len(order), image_id, {k: len(v) for k, v in per_class.items()})


def prototype_record(project: Project, prototype: Prototype) -> PatchRecord:
    """A prototype as a patch record (a training example, an occupied place): its centre, at the
    pyramid level nearest its box."""
    return PatchRecord(prototype.image_id, *prototype.centre, level=project.nearest_level(prototype.side))


def _noisy_source(store, classes: list[ClassInfo], displayed: list[str], cap, background_per_image: int, seed: int,
                  scales: tuple[float, ...] = (1.0,)) -> str:
    """A hash of everything noisy extraction depends on (the scale pyramid only when it has
    several levels, so that stores from before pyramids keep their patches; the class's
    similarity, `similarity_map`: stores made when it was the best prototype's alone extract
    again)."""
    content = [
        [(c.name, c.similarity_threshold, [(p.image_id, p.box) for p in store.prototypes(c.name)]) for c in classes],
        sorted(displayed), cap, background_per_image, seed, ["second prototype", SECOND_PROTOTYPE_WEIGHT],
    ] + ([list(scales)] if len(scales) > 1 else [])
    return hashlib.blake2b(json.dumps(content).encode(), digest_size=12).hexdigest()


def validate_box(box, record, reach: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) numbers of non-zero size inside the image of `record` (grown by
    `reach` (y, x) px on every side), or ConfigError."""
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ConfigError(f"box: expected (x0, y0, x1, y1) numbers, got {box!r}") from None
    if not (x1 > x0 and y1 > y0):
        raise ConfigError(f"box {box!r}: zero or negative size (need x1 > x0 and y1 > y0)")
    reach_y, reach_x = reach
    if x0 < -reach_x or y0 < -reach_y or x1 > record.width + reach_x or y1 > record.height + reach_y:
        raise ConfigError(
            f"box {box!r} lies outside image {record.relpath} ({record.width}x{record.height} px)"
        )
    return x0, y0, x1, y1


def _by_image(patches: list[PatchRecord]) -> dict[str, list[PatchRecord]]:
    grouped: dict[str, list[PatchRecord]] = {}
    for patch in patches:
        grouped.setdefault(patch.image_id, []).append(patch)
    return grouped


def _near(patches: list[PatchRecord] | None, ys: np.ndarray, xs: np.ndarray, tolerance: float) -> np.ndarray:
    """(N,) bool: which (y, x) lie within `tolerance` px of one of the patches."""
    if not patches or not len(ys):
        return np.zeros(len(ys), bool)
    points = np.array([(p.y, p.x) for p in patches])
    distance = np.hypot(ys[:, None] - points[None, :, 0], xs[:, None] - points[None, :, 1])
    return (distance <= tolerance).any(axis=1)


def _first_free(patches: list[PatchRecord], ys: np.ndarray, xs: np.ndarray, sizes: np.ndarray,
                patch_size: tuple[int, int], count: int) -> np.ndarray:
    """Indices of the first `count` candidates (in the order given) centred at (y, x), of sizes
    (N, 2) (h, w), that overlap none of `patches`, each of `patch_size` times its pyramid level
    (an object twice the patch's size covers twice as much). Judged a block of candidates at a
    time, stopping once `count` are found: a slide has hundreds of thousands of candidates and
    thousands of patches, whose pairs would not fit in memory at once."""
    if not patches or not len(ys):
        return np.arange(min(count, len(ys)))
    points = np.array([(p.y, p.x) for p in patches])
    levels = np.array([p.level for p in patches])
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    free = []
    block = max(1, _PAIRS_AT_ONCE // len(points))
    for start in range(0, len(ys), block):
        part = slice(start, start + block)
        half_h = 0.5 * (sizes[part, :1] + patch_size[0] * levels[None, :])  # half of each side, summed
        half_w = 0.5 * (sizes[part, 1:] + patch_size[1] * levels[None, :])
        overlap = ((np.abs(ys[part, None] - points[None, :, 0]) < half_h)
                   & (np.abs(xs[part, None] - points[None, :, 1]) < half_w)).any(axis=1)
        free += (np.flatnonzero(~overlap) + start).tolist()
        if len(free) >= count:
            break
    return np.array(free[:count], np.int64)