"""What curation gives back: suggestions (one at a time, or a threshold's whole sorted list),
background candidates, noisy-extraction progress and the counts gathered so far."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from simsearch.features.geometry import box_around
from simsearch.io.images import NamedImage
from simsearch.project.store import PatchRecord


class Suggestion(NamedTuple):
    """A local maximum of a class's similarity map on a displayed image.

    (y, x): patch centre in pixels; box: (x0, y0, x1, y1), of the size of the pyramid level
    it was found at (the patch size in a one-level project); flagged: the user
    marked it as not-this-class (a negative). A NamedTuple: a low threshold can
    give tens of thousands, and these are cheap to make.

    Examples
    --------
    >>> from simsearch import Suggestion
    >>> suggestion = Suggestion("WBC", "slide1.png@0123456789ab", y=56.0, x=100.0,
    ...                         box=(84.0, 40.0, 116.0, 72.0), similarity=0.82)
    >>> suggestion.record()              # as the store keeps it: a positive once confirmed, or a negative
    PatchRecord(image_id='slide1.png@0123456789ab', y=56.0, x=100.0, similarity=0.82, level=1.0)
    >>> [round(s.similarity, 2) for s in curation.suggestions("WBC")[:3]]   # doctest: +SKIP
    [0.91, 0.88, 0.84]
    """

    class_name: str
    image_id: str
    y: float
    x: float
    box: tuple[float, float, float, float]
    similarity: float
    flagged: bool = False
    level: float = 1.0  # of the scale pyramid (the box is its patch)
    image = NamedImage.image  # the image as the user named it

    def record(self) -> PatchRecord:
        """The suggestion as the store keeps it: a PatchRecord of its image id, centre (y, x) px,
        similarity and pyramid level (a positive once confirmed, or a negative when flagged)."""
        return PatchRecord(self.image_id, self.y, self.x, self.similarity, self.level)


class BackgroundCandidate(NamedTuple):
    """An unlabelled patch most ('high') or least ('low') similar to the mean prototype.

    Examples
    --------
    >>> from simsearch import BackgroundCandidate
    >>> candidate = BackgroundCandidate("slide1.png@0123456789ab", y=200.0, x=40.0,
    ...                                 box=(24.0, 184.0, 56.0, 216.0), similarity=-0.12, extreme="low")
    >>> candidate.is_background, candidate.record().similarity     # background unless flagged
    (True, -0.12)
    >>> candidates = curation.propose_background(count=20)         # doctest: +SKIP
    >>> curation.flag_not_background(candidates[0])                # doctest: +SKIP
    >>> len(curation.confirm_background())                         # doctest: +SKIP
    39
    """

    image_id: str
    y: float
    x: float
    box: tuple[float, float, float, float]
    similarity: float
    extreme: str
    is_background: bool = True
    level: float = 1.0  # of the scale pyramid (the box is its patch)
    image = NamedImage.image  # the image as the user named it

    def record(self) -> PatchRecord:
        """The candidate as the store keeps it: a PatchRecord of its image id, centre (y, x) px,
        similarity to the mean prototype and pyramid level (what `Curation.set_not_background` takes)."""
        return PatchRecord(self.image_id, self.y, self.x, self.similarity, self.level)


class SuggestionList(Sequence):
    """Suggestions most similar first, kept as arrays: a low threshold can give tens of
    thousands, and a threshold change must stay fast, so Suggestion objects are made only
    for the items asked for (indexing, slicing, iterating). `Curation.suggestions` makes them.

    Examples
    --------
    Two suggestions on one image, 32 px patches, the more similar one first:

    >>> found = SuggestionList("RBC", ["smear.png@0123456789ab"], image_index=[0, 0], ys=[40, 80], xs=[50, 20],
    ...                        values=[0.61, 0.83], flagged=[False, True], sizes=[(32, 32), (32, 32)], levels=[1, 1])
    >>> [(s.image, s.x, s.y, round(s.similarity, 2), s.flagged) for s in found]
    [('smear.png', 20.0, 80.0, 0.83, True), ('smear.png', 50.0, 40.0, 0.61, False)]
    >>> found.image_counts()
    {'smear.png@0123456789ab': 2}
    """

    def __init__(self, class_name, image_ids, image_index, ys, xs, values, flagged, sizes, levels):
        """sizes: (N, 2) (h, w) of each suggestion's patch, the patch of its pyramid level (N,)."""
        order = np.argsort(-np.asarray(values), kind="stable")
        self.class_name = class_name
        self.image_ids = list(image_ids)
        self.image_index = np.asarray(image_index, np.int64)[order]
        self.ys, self.xs = np.asarray(ys, np.float64)[order], np.asarray(xs, np.float64)[order]
        self.similarities = np.asarray(values, np.float32)[order]
        self.flagged = np.asarray(flagged, bool)[order]
        self.sizes = np.asarray(sizes, np.int64).reshape(-1, 2)[order]
        self.levels = np.asarray(levels, np.float64)[order]

    @classmethod
    def empty(cls, class_name: str) -> "SuggestionList":
        """A list of no suggestions for the class (e.g. a class without prototypes)."""
        nothing = np.zeros(0)
        return cls(class_name, [], nothing, nothing, nothing, nothing, nothing, np.zeros((0, 2)), nothing)

    def __len__(self) -> int:
        return len(self.similarities)

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self[i] for i in range(*item.indices(len(self)))]
        index = range(len(self))[item]
        y, x = float(self.ys[index]), float(self.xs[index])
        return Suggestion(
            self.class_name, self.image_ids[self.image_index[index]], y, x,
            box_around(y, x, tuple(self.sizes[index])), float(self.similarities[index]), bool(self.flagged[index]),
            float(self.levels[index]),
        )

    def image_counts(self) -> dict[str, int]:
        """Suggestions per image id."""
        counts = np.bincount(self.image_index, minlength=len(self.image_ids))
        return {image_id: int(n) for image_id, n in zip(self.image_ids, counts) if n}


@dataclass(frozen=True)
class NoisyProgress(NamedImage):
    """One undisplayed image done: counts of noisy patches it added per class (None: background).

    Examples
    --------
    `Curation.iter_noisy` yields one per undisplayed image:

    >>> for event in curation.iter_noisy(cap_per_class=500):       # doctest: +SKIP
    ...     print(f"{event.done}/{event.total}", event.added)
    1/40 {'WBC': 3, 'RBC': 41, None: 8}
    2/40 {'WBC': 1, 'RBC': 37, None: 8}
    """

    done: int
    total: int
    image_id: str
    added: dict


@dataclass(frozen=True)
class ClassCounts:
    """What one class holds so far (`Curation.class_counts`).

    prototypes: its prototypes; positives: the clean positives of its last confirmation (kept,
    while it is no longer confirmed, until the next one); negatives: suggestions flagged as
    not-this-class; noisy: noisy positives extracted from the undisplayed images; accepted and
    rejected: the review answers given on the model's detections, current batch and earlier.

    Examples
    --------
    >>> counts = ClassCounts("WBC", prototypes=2, positives=12, negatives=1, noisy=300, accepted=4, rejected=1)
    >>> counts.accepted + counts.rejected
    5
    """

    name: str
    prototypes: int
    positives: int
    negatives: int
    noisy: int
    accepted: int
    rejected: int


@dataclass(frozen=True)
class BackgroundCounts:
    """The background so far (`Curation.background_counts`).

    candidates: proposed patches, confirmed or not (as `Curation.background_candidates` lists
    them); flagged: those flagged as not background; clean: the confirmed, unflagged ones that
    training learns from (`Curation.clean_background`); noisy: noisy background patches
    extracted from the undisplayed images.

    Examples
    --------
    >>> BackgroundCounts(candidates=40, flagged=3, clean=37, noisy=120).clean
    37
    """

    candidates: int
    flagged: int
    clean: int
    noisy: int
