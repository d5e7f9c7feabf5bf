"""The paper's metric: a detection is a true positive if its centre lies within `radius`
(3 x stride, stride = 0.1 x patch width unless set) of a not-yet-matched ground-truth
centre of the same class in the same image; detections are matched greedily by
descending confidence. Per class: precision-recall curve, PR-AUC (trapezoid, from
recall 0 at precision 1, as scikit-learn's precision_recall_curve + auc) and VOC
all-point average precision."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

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


def match(detections: list[Scored], truth: list[Annotation], radius: float) -> np.ndarray:
    """(N,) bool true-positive flags for detections of ONE class, in descending confidence order."""
    centres: dict[str, np.ndarray] = {}
    for annotation in truth:
        centres.setdefault(annotation.image, []).append(annotation.centre)
    centres = {image: np.array(points, dtype=np.float64) for image, points in centres.items()}
    used = {image: np.zeros(len(points), bool) for image, points in centres.items()}
    flags = np.zeros(len(detections), bool)
    for index, detection in enumerate(detections):
        points = centres.get(detection.image)
        if points is None:
            continue
        distance = np.hypot(points[:, 0] - detection.y, points[:, 1] - detection.x)
        distance[used[detection.image]] = np.inf
        nearest = int(np.argmin(distance))
        if distance[nearest] <= radius:
            used[detection.image][nearest] = True
            flags[index] = True
    return flags


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


def score_class(detections: Iterable[Scored], truth: Iterable[Annotation], label: str, radius: float) -> ClassScore:
    if radius <= 0:
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


def score(detections: list[Scored], truth: list[Annotation], radius: float, labels: list[str] | None = None) -> dict[str, ClassScore]:
    labels = labels or sorted({a.label for a in truth})
    return {label: score_class(detections, truth, label, radius) for label in labels}
