"""The paper's metric: a detection is a true positive if its centre lies within `radius`
(3 x stride, stride = 0.1 x patch width unless set) of a not-yet-matched ground-truth
centre of the same class in the same image; detections are matched greedily by
descending confidence. Beyond the paper, the radius may grow with the object (`Matching`):
objects several times the patch are found off their centre. Per class: precision-recall
curve, PR-AUC (trapezoid, from recall 0 at precision 1, as scikit-learn's
precision_recall_curve + auc) and VOC all-point average precision."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from simsearch.util.errors import ConfigError
from simsearch.io.truth import Annotation


@dataclass(frozen=True)
class Scored:
    """A detection to score: image name (as in the ground truth), class, centre, confidence."""

    image: str
    label: str
    y: float
    x: float
    confidence: float


@dataclass(frozen=True)
class ClassScore:
    """precision, recall, confidences: (N,) along the detections sorted by confidence."""

    label: str
    true_objects: int
    detections: int
    true_positives: int
    precision: np.ndarray
    recall: np.ndarray
    confidences: np.ndarray
    pr_auc: float
    average_precision: float


def matching_radius(patch_width: float, stride: float | None = None) -> float:
    """3 x stride, with the paper's stride 0.1 x patch width by default."""
    return 3.0 * (stride if stride is not None else 0.1 * patch_width)


MATCHING_RULES = ("patch", "object")


@dataclass(frozen=True)
class Matching:
    """When a detection finds an object: its centre lies within the object's radius of the
    object's centre. An object's radius is max(`radius`, `fraction` x its longer box side):
    with `fraction` 0 the paper's, one radius for every object; with 0.3 an object larger than
    the patch is found as far off its centre as a patch-sized one is relative to the patch.
    Objects given as centres (zero-size boxes) take `radius`.

    Examples
    --------
    >>> from simsearch import Annotation
    >>> from simsearch.evaluate.metrics import Matching
    >>> small, big = Annotation("a.png", "particle", 0, 0, 20, 20), Annotation("a.png", "particle", 0, 0, 150, 150)
    >>> Matching.rule("patch", 40).radii([small, big]).tolist(), Matching.rule("object", 40).radii([small, big]).tolist()
    ([12.0, 12.0], [12.0, 45.0])
    """

    radius: float
    fraction: float = 0.0

    @classmethod
    def rule(cls, name: str, patch_width: float) -> "Matching":
        """'patch': the paper's 3 x stride = 0.3 x the patch width for every object;
        'object': 0.3 x the larger of the patch width and the object's longer box side."""
        if name not in MATCHING_RULES:
            raise ConfigError(f"matching: unknown rule {name!r}; choose from {', '.join(MATCHING_RULES)}")
        return cls(matching_radius(patch_width), 0.3 if name == "object" else 0.0)

    def radii(self, objects: Sequence[Annotation]) -> np.ndarray:
        """(N,) each object's radius, px."""
        sides = np.array([max(a.x1 - a.x0, a.y1 - a.y0) for a in objects], dtype=np.float64)
        return np.maximum(self.radius, self.fraction * sides)


def match(detections: list[Scored], truth: list[Annotation], radius: float | Matching) -> np.ndarray:
    """(N,) bool true-positive flags for detections of ONE class, in descending confidence
    order; `radius` in px for every object, or a `Matching`."""
    matching = radius if isinstance(radius, Matching) else Matching(radius)
    objects: dict[str, list[Annotation]] = {}
    for annotation in truth:
        objects.setdefault(annotation.image, []).append(annotation)
    centres = {image: np.array([a.centre for a in mine], dtype=np.float64) for image, mine in objects.items()}
    radii = {image: matching.radii(mine) for image, mine in objects.items()}
    used = {image: np.zeros(len(points), bool) for image, points in centres.items()}
    flags = np.zeros(len(detections), bool)
    for index, detection in enumerate(detections):
        points = centres.get(detection.image)
        if points is None:
            continue
        # the nearest free object that the detection lies within the radius of
        distance = np.hypot(points[:, 0] - detection.y, points[:, 1] - detection.x)
        distance[used[detection.image] | (distance > radii[detection.image])] = np.inf
        nearest = int(np.argmin(distance))
        if np.isfinite(distance[nearest]):
            used[detection.image][nearest] = True
            flags[index] = True
    return flags


def away_from_edge(detections: list[Scored], truth: list[Annotation], sizes: dict[str, tuple[int, int]],
                   margin: float) -> tuple[list[Scored], list[Annotation]]:
    """The detections and objects whose centres lie `margin` px or more inside their image
    ((height, width) in `sizes`, by image name as in the truth): the image's interior, where
    a truth that leaves out objects cut by the image edge (BCCD holds 0.41 as many red cells
    per area within half a patch of the edge as inside) is complete.

    Examples
    --------
    >>> from simsearch import Annotation
    >>> from simsearch.evaluate.metrics import Scored, away_from_edge
    >>> found = [Scored("a.png", "cell", 50, 50, 0.9), Scored("a.png", "cell", 5, 50, 0.8)]
    >>> inner, objects = away_from_edge(found, [Annotation("a.png", "cell", 0, 40, 20, 60)], {"a.png": (100, 100)}, 16)
    >>> [(d.y, d.x) for d in inner], objects
    ([(50, 50)], [])
    """
    def inside(image: str, y: float, x: float) -> bool:
        height, width = sizes[image]
        return min(y, x, height - y, width - x) >= margin
    return ([d for d in detections if inside(d.image, d.y, d.x)],
            [a for a in truth if inside(a.image, *a.centre)])


def pr_auc(precision: np.ndarray, recall: np.ndarray) -> float:
    """Trapezoid area under the curve through (recall 0, precision 1) and the given points."""
    if len(recall) == 0:
        return 0.0
    r = np.concatenate([[0.0], recall])
    p = np.concatenate([[1.0], precision])
    return float(np.sum(np.diff(r) * (p[1:] + p[:-1]) / 2))


def average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC all-point interpolated AP: area under the precision envelope."""
    if len(recall) == 0:
        return 0.0
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[changes + 1] - r[changes]) * p[changes + 1]))


def score_class(detections: Iterable[Scored], truth: Iterable[Annotation], label: str, radius: float | Matching) -> ClassScore:
    """The class's precision-recall curve; `radius` in px for every object, or a `Matching`."""
    if (radius.radius if isinstance(radius, Matching) else radius) <= 0:
        raise ConfigError(f"matching radius must be positive, got {radius}")
    mine = sorted((d for d in detections if d.label == label), key=lambda d: -d.confidence)
    objects = [a for a in truth if a.label == label]
    flags = match(mine, objects, radius)
    true_positives = np.cumsum(flags)
    ranks = np.arange(1, len(mine) + 1)
    precision = true_positives / ranks if len(mine) else np.zeros(0)
    recall = true_positives / len(objects) if objects else np.zeros(len(mine))
    return ClassScore(
        label, len(objects), len(mine), int(flags.sum()), precision.astype(np.float64), recall.astype(np.float64),
        np.array([d.confidence for d in mine]), pr_auc(precision, recall) if objects else 0.0,
        average_precision(precision, recall) if objects else 0.0,
    )


def score(detections: list[Scored], truth: list[Annotation], radius: float | Matching, labels: list[str] | None = None) -> dict[str, ClassScore]:
    labels = labels or sorted({a.label for a in truth})
    return {label: score_class(detections, truth, label, radius) for label in labels}
