"""What a training run learns from, as store records (no pixels): the clean examples of every
class and the background, the negatives, the noisy patches, and the examples held out of
training to check the model."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from simsearch.curation.session import prototype_record
from simsearch.features.geometry import NETWORK_STRIDE, PatchGeometry
from simsearch.project.project import Project
from simsearch.project.store import PatchRecord
from simsearch.training.sampling import balanced_subset, stream
from simsearch.util.errors import ConfigError

if TYPE_CHECKING:
    from simsearch.training.loop import TrainSettings

BACKGROUND = "background"


@dataclass(frozen=True)
class TrainingRecords:
    """What a run learns from, as store records (no pixels). Each list holds (patch, label)
    pairs, the label an index into `names`: the ROI classes in creation order, then background.
    Clean: positives, prototypes and accepted review items of each class, then clean
    background, then over a scale pyramid each class example seen as background at the levels
    an octave or more from its size (`off_level_views`; at most as many as the user's clean
    background, spread over the levels). Negatives (flagged suggestions and rejected review
    items) carry the class they are not. Noisy patches are already capped. Held out: clean examples and negatives kept out
    of training to check the model (`TrainSettings.holdout`).

    Examples
    --------
    >>> from simsearch import PatchRecord, TrainingRecords
    >>> records = TrainingRecords(("WBC", "background"), clean=((PatchRecord("a.png@0123456789ab", 40.0, 52.0), 0),))
    >>> records.names[records.clean[0][1]], len(records.digest())
    ('WBC', 32)
    """

    names: tuple[str, ...]
    clean: tuple[tuple[PatchRecord, int], ...]
    negatives: tuple[tuple[PatchRecord, int], ...] = ()
    noisy: tuple[tuple[PatchRecord, int], ...] = ()
    held_out: tuple[tuple[PatchRecord, int], ...] = ()
    held_out_negatives: tuple[tuple[PatchRecord, int], ...] = ()

    def digest(self) -> str:
        parts = (self.clean, self.negatives, self.noisy, self.held_out, self.held_out_negatives)
        content = json.dumps([list(self.names), *[[_place(p) + (label,) for p, label in part] for part in parts]])
        return hashlib.blake2b(content.encode(), digest_size=16).hexdigest()


def class_names(project: Project) -> list[str]:
    """Output order of the classifier: the ROI classes in creation order, then background."""
    return [c.name for c in project.store.classes()] + [BACKGROUND]


def training_records(project: Project, settings: TrainSettings) -> TrainingRecords:
    """The records a run with `settings` learns from; ConfigError when a part is missing."""
    store = project.store
    names = class_names(project)
    prototypes: list[tuple[PatchRecord, int, float]] = []  # with the object's size relative to the patch
    confirmed: list[tuple[PatchRecord, int]] = []
    negatives: list[tuple[PatchRecord, int]] = []
    for label, name in enumerate(names[:-1]):
        own_prototypes = store.prototypes(name)
        own_confirmed = store.patches(name, "positive") + store.review_answers(name, "accepted")
        if not own_prototypes and not own_confirmed:
            raise ConfigError(f"training: class {name!r} has no clean positives", hint="confirm the class first")
        prototypes += [(prototype_record(project, p), label, p.side / min(project.geometry.patch_size)) for p in own_prototypes]
        confirmed += [(_position(p), label) for p in own_confirmed]
        if settings.use_negatives:
            negatives += [(_position(p), label) for p in store.patches(name, "negative") + store.review_answers(name, "rejected")]
    background = store.clean_background()
    if not background:
        raise ConfigError("training: no clean background", hint="propose and confirm background first")
    confirmed += [(_position(p), len(names) - 1) for p in background]
    confirmed, held_out = hold_out(confirmed, settings.holdout, settings.seed)
    negatives, held_out_negatives = hold_out(negatives, settings.holdout, settings.seed)
    sized = prototypes + [(record, label, record.level) for record, label in confirmed if label != len(names) - 1]
    views = off_level_views(sized, project.scales, len(names) - 1)
    user_background = sum(1 for _, label in confirmed if label == len(names) - 1)
    if len(views) > user_background:  # a supplement to the user's background, never most of it
        keep = balanced_subset(torch.tensor([project.scales.index(v.level) for v, _ in views]), user_background,
                               stream(settings.seed, "off-level views"))
        views = [views[i] for i in keep.tolist()]
    clean = [(record, label) for record, label, _ in prototypes] + confirmed + views
    noisy: list[tuple[PatchRecord, int]] = []
    if settings.use_noisy:
        for label, name in enumerate(names):
            noisy += [(_position(p), label) for p in store.noisy(None if name == BACKGROUND else name)]
        if not noisy:
            raise ConfigError("training: no noisy patches for self-learning", hint="run noisy extraction first, or train without self-learning")
        cap = noisy_cap(settings, project.geometry)
        if cap is not None and len(noisy) > cap:
            keep = balanced_subset(torch.tensor([label for _, label in noisy]), cap, stream(settings.seed, "noisy cap"))
            noisy = [noisy[i] for i in keep.tolist()]
    return TrainingRecords(tuple(names), tuple(clean), tuple(negatives), tuple(noisy), tuple(held_out), tuple(held_out_negatives))


def off_level_views(examples: list[tuple[PatchRecord, int, float]], scales: tuple[float, ...], background: int) -> list[tuple[PatchRecord, int]]:
    """Each example of a class (record, label, its object's size relative to the patch) seen at
    every pyramid level a full octave or more from that size, labelled `background`: at level s
    a class means an object of about s x the patch centred there (the level assignment of
    feature-pyramid detectors), so a white cell's middle seen one level down, or a small
    particle among its neighbours seen two levels up, is not the class. Without them the
    half-size level of BCCD white cells fired at 0.99 on whole cells, and training over levels
    0.5 and 1 gave PR-AUC 0.87 against 0.97 with them.

    Examples
    --------
    >>> views = off_level_views([(PatchRecord("a.png@0123456789ab", 40.0, 52.0, level=1.0), 0, 1.0)], (0.5, 1.0, 2.0), 1)
    >>> [(view.level, label) for view, label in views]
    [(0.5, 1), (2.0, 1)]
    """
    return [(PatchRecord(record.image_id, float(record.y), float(record.x), level=level), background)
            for record, _, size in examples for level in scales if abs(math.log2(level / size)) >= 1 - 1e-6]


def hold_out(pairs: list[tuple[PatchRecord, int]], fraction: float, seed: int) -> tuple[list, list]:
    """(kept, held out): of each label, the `fraction` (rounded down) of the pairs whose place
    hashes lowest, so the same curation always holds out the same examples and one more
    example moves at most one. Both lists keep the input order."""
    by_label: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(pairs):
        by_label.setdefault(label, []).append(index)
    held: set[int] = set()
    for members in by_label.values():
        ranked = sorted(members, key=lambda i: hashlib.blake2b(
            json.dumps([seed, pairs[i][0].image_id, pairs[i][0].y, pairs[i][0].x]).encode(), digest_size=8).digest())
        held.update(ranked[: int(fraction * len(members))])
    return [pair for i, pair in enumerate(pairs) if i not in held], [pair for i, pair in enumerate(pairs) if i in held]


def _position(patch: PatchRecord) -> PatchRecord:
    """The patch without its similarity: only the place (and its pyramid level) is learnt from."""
    return PatchRecord(patch.image_id, float(patch.y), float(patch.x), level=float(patch.level))


def _place(patch: PatchRecord) -> tuple:
    """What identifies a training example: image, centre and, off the patch size, its level
    (so that records from before scale pyramids keep their digests)."""
    return (patch.image_id, patch.y, patch.x) if patch.level == 1.0 else (patch.image_id, patch.y, patch.x, patch.level)


def crop_pixels(geometry: PatchGeometry, context_cells: int) -> int:
    """Pixels of one training crop as the network sees it: the scaled patch and its context."""
    margin = 2 * context_cells * NETWORK_STRIDE
    kh, kw = geometry.kernel
    return (kh * NETWORK_STRIDE + margin) * (kw * NETWORK_STRIDE + margin)


def crops_within(pixels: int, geometry: PatchGeometry, context_cells: int) -> int:
    """How many training crops fit in a budget of `pixels` network-input pixels, at least one."""
    return max(1, pixels // crop_pixels(geometry, context_cells))


def noisy_cap(settings: TrainSettings, geometry: PatchGeometry) -> int | None:
    """How many noisy patches self-learning uses at most (None: all of them), at least one."""
    caps = [settings.max_noisy] if settings.max_noisy is not None else []
    if settings.max_noisy_pixels is not None:
        caps.append(crops_within(settings.max_noisy_pixels, geometry, settings.context_cells))
    return min(caps) if caps else None
