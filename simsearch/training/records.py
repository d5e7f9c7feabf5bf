"""What a training run learns from, as store records (no pixels): the clean examples of every
class and the background, the negatives, the noisy patches, and the examples held out of
training to check the model."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from simsearch.curation.session import Curation, prototype_record
from simsearch.features.geometry import NETWORK_STRIDE, PatchGeometry
from simsearch.project.project import Project
from simsearch.project.store import BACKGROUND, PatchRecord, check_class_name
from simsearch.training.sampling import balanced_subset, stream
from simsearch.util.errors import ConfigError

if TYPE_CHECKING:
    from simsearch.training.loop import TrainSettings

# a place within this share of the patch (at its level) of an example is on that example's object
# (the paper's matching radius, the user's "on the object")
ON_OBJECT = 0.3
# how hold_out chooses the examples training checks on, recorded by `simsearch eval` so that
# trials held out otherwise (before 2026-12-05 the training seed chose them) are not resumed
HOLD_OUT_RULE = "by place"


@dataclass(frozen=True)
class TrainingRecords:
    """What a run learns from, as store records (no pixels). Each list holds (patch, label)
    pairs, the label an index into `names`: the ROI classes in creation order, then background.
    Clean: positives, prototypes and accepted review items of each class, then clean
    background, then over a scale pyramid each class example seen as background at the levels
    an octave or more from its size (`off_level_views`; at most as many as the user's clean
    background, spread over the levels), then each class example seen half a patch off its
    centre as background (`off_centre_views`; at most as many as the user's clean background).
    Negatives (flagged suggestions and rejected review items) carry the class they are not.
    Noisy patches are already capped. Held out: clean examples and negatives kept out of
    training to check the model (`TrainSettings.holdout`).

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
    # per class (in `names` order, background left out): its confirmed examples that may be held out (not on a
    # prototype's own object), which the held-out check tells a user with too few (not part of the digest)
    holdable: tuple[int, ...] = ()

    def digest(self) -> str:
        """32 hex digits (BLAKE2b) identifying the records: the names and each list's (image,
        centre, level, label), in order (`holdable` left out); part of `training_identity`."""
        parts = (self.clean, self.negatives, self.noisy, self.held_out, self.held_out_negatives)
        content = json.dumps([list(self.names), *[[_place(p) + (label,) for p, label in part] for part in parts]])
        return hashlib.blake2b(content.encode(), digest_size=16).hexdigest()


def class_names(project: Project) -> list[str]:
    """Output order of the classifier: the ROI classes in creation order, then background.
    ConfigError for a class that a project of before 2026-12-07 let take the background's name."""
    names = [c.name for c in project.store.classes()]
    for name in names:
        try:
            check_class_name(name)
        except ConfigError as error:
            raise ConfigError(error.message, hint=f"rename it: simsearch class rename {name} NEW_NAME --project "
                                               f"{project.folder}") from None
    return names + [BACKGROUND]


def training_records(project: Project, settings: TrainSettings) -> TrainingRecords:
    """The records a run with `settings` learns from; ConfigError when a part is missing."""
    store = project.store
    names = class_names(project)
    prototypes: list[tuple[PatchRecord, int, float]] = []  # with the object's size relative to the patch
    confirmed: list[tuple[PatchRecord, int]] = []
    twins: list[bool] = []  # a confirmed positive on a prototype's own object
    negatives: list[tuple[PatchRecord, int]] = []
    for label, name in enumerate(names[:-1]):
        own_prototypes = store.prototypes(name)
        own_confirmed = store.patches(name, "positive") + store.review_answers(name, "accepted")
        if not own_prototypes and not own_confirmed:
            raise ConfigError(f"training: class {name!r} has no clean positives", hint="confirm the class first")
        own_records = [prototype_record(project, p) for p in own_prototypes]
        prototypes += [(record, label, p.side / min(project.geometry.patch_size)) for record, p in zip(own_records, own_prototypes)]
        own_places = [_position(p) for p in own_confirmed]
        confirmed += [(place, label) for place in own_places]
        twins += on_an_example(own_places, own_records, project.geometry.patch_size).tolist()
        if settings.use_negatives:
            negatives += [(_position(p), label) for p in store.patches(name, "negative") + store.review_answers(name, "rejected")]
    background = store.clean_background()
    if not background:
        raise ConfigError("training: no clean background", hint="propose and confirm background first")
    confirmed += [(_position(p), len(names) - 1) for p in background]
    # a prototype's own object comes back among its suggestions, a few pixels off the box's centre: it trains
    # (left out of training, DSB's pipeline lost 0.020) but is never held out, as training learns its prototype
    holdable = tuple(sum(1 for (_, label), twin in zip(confirmed, twins) if label == index and not twin)
                     for index in range(len(names) - 1))
    confirmed, held_out = hold_out(confirmed, settings.holdout, always_train=twins + [False] * len(background))
    negatives, held_out_negatives = hold_out(negatives, settings.holdout)
    sized = prototypes + [(record, label, record.level) for record, label in confirmed if label != len(names) - 1]
    user_background = sum(1 for _, label in confirmed if label == len(names) - 1)
    levelled = off_level_views(sized, project.scales, len(names) - 1)
    views = _at_most(levelled, user_background, [project.scales.index(v.level) for v, _ in levelled],
                     stream(settings.seed, "off-level views"))
    if settings.off_centre_views:
        images = {record.image_id: project.dataset.by_id(record.image_id) for record, _, _ in sized}
        shifted = off_centre_views(sized, project.geometry.patch_size, {i: (r.height, r.width) for i, r in images.items()},
                                   len(names) - 1, settings.seed, suggested=_suggested_by(project, names[:-1]),
                                   avoid=[record for record, label in held_out if label != len(names) - 1])
        views += _at_most(shifted, user_background, [0] * len(shifted), stream(settings.seed, "off-centre views"))
    clean = [(record, label) for record, label, _ in prototypes] + confirmed + views
    noisy: list[tuple[PatchRecord, int]] = []
    if settings.use_noisy:
        for label, name in enumerate(names):
            noisy += [(_position(p), label) for p in store.noisy(None if name == BACKGROUND else name)]
        if not noisy and not project.undisplayed:  # extraction had nothing to read
            raise ConfigError(
                f"training: no noisy patches for self-learning: every image of the dataset ({len(project.displayed)}) "
                "is displayed, and noisy patches come from the undisplayed ones",
                hint="display fewer images (simsearch displayed N, or D on the terminal UI's Dataset screen) and "
                     "extract them (simsearch noisy), or train without self-learning (--strategy pos+neg)")
        if not noisy:
            raise ConfigError("training: no noisy patches for self-learning", hint="run noisy extraction first, or train without self-learning")
        cap = noisy_cap(settings, project.geometry)
        if cap is not None and len(noisy) > cap:
            keep = balanced_subset(torch.tensor([label for _, label in noisy]), cap, stream(settings.seed, "noisy cap"))
            noisy = [noisy[i] for i in keep.tolist()]
    return TrainingRecords(tuple(names), tuple(clean), tuple(negatives), tuple(noisy), tuple(held_out), tuple(held_out_negatives),
                           holdable)


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


def off_centre_views(examples: list[tuple[PatchRecord, int, float]], patch_size: tuple[int, int],
                     image_sizes: dict[str, tuple[int, int]], background: int, seed: int,
                     suggested: "Callable[[list[PatchRecord], list[int]], np.ndarray] | None" = None,
                     avoid: "list[PatchRecord] | tuple" = ()) -> list[tuple[PatchRecord, int]]:
    """Each example of a class (record, label, size) seen half its level's patch off its
    centre (`patch_size` at level 1), in four directions a quarter turn apart (the first
    turned at random, from `seed`), labelled `background`: a class means an object centred in
    the patch, so a patch that holds half a cell, or the gap between two touching cells, is not
    the class. A view that falls outside its image ((height, width) in `image_sizes`), or within
    0.3 x the patch (the user's "on the object") of another example of the same image and
    level, or of a place in `avoid` (the class examples held out of training: they are the
    class too), is left out. Without them the model's map stays high across a clump of touching
    objects and gives one peak for the clump: on planted nuclei (`examples/planted_nuclei.py`,
    patch 32) the supervised baseline found at most 0.63 of the nuclei (PR-AUC 0.587) and 0.74
    (0.733) with them; Pos+Neg+Selflearn (P 10, N 5) went from 0.650 to 0.727 there and from
    0.620 to 0.702 on BCCD red cells, where similarity search gives 0.703 and 0.669.

    An object larger than the patch holds its example's views. `suggested(places, labels)`
    says (a bool per place) whether the similarity search scores a place at or above the
    threshold of the class `labels` names; an example three or more of whose views it
    suggests sits on a plateau wider than the patch, and a class with half or more of its
    examples so is larger than the patch and gets no views. The bundled sample frames its
    ~200 px white cells with its 112 px patch: 4 of its 5 white-cell examples sit on plateaus
    (2 of 32 red-cell examples; 2 of 184 and 6 of 214 planted nuclei, whose views stay: left
    out one by one they cost 0.04-0.07 PR-AUC).

    Examples
    --------
    >>> import math
    >>> cell, beside = PatchRecord("a.png@0123456789ab", 64.0, 64.0), PatchRecord("a.png@0123456789ab", 64.0, 80.0)
    >>> views = off_centre_views([(cell, 0, 1.0)], (32, 32), {cell.image_id: (128, 128)}, 1, seed=0)
    >>> [(round(math.hypot(v.y - 64, v.x - 64)), label) for v, label in views]     # 16 px off, background
    [(16, 1), (16, 1), (16, 1), (16, 1)]
    >>> views = off_centre_views([(cell, 0, 1.0), (beside, 0, 1.0)], (32, 32), {cell.image_id: (128, 128)}, 1, seed=0)
    >>> min(math.hypot(v.y - c.y, v.x - c.x) for v, _ in views for c in (cell, beside)) >= 0.3 * 32   # none on a cell
    True
    >>> off_centre_views([(cell, 0, 1.0)], (32, 32), {cell.image_id: (128, 128)}, 1, seed=0,
    ...                  suggested=lambda places, labels: np.ones(len(places), bool))   # a class larger than the patch
    []
    """
    turns = torch.rand(len(examples), generator=stream(seed, "off-centre turns")).tolist()
    candidates: list[tuple[int, PatchRecord]] = []  # (example, view) for every view inside its image
    for index, ((record, _, _), turn) in enumerate(zip(examples, turns)):
        patch_h, patch_w = (side * record.level for side in patch_size)
        height, width = image_sizes[record.image_id]
        for quarter in range(4):
            angle = (turn + quarter) * math.pi / 2
            y, x = record.y + 0.5 * patch_h * math.sin(angle), record.x + 0.5 * patch_w * math.cos(angle)
            if 0 <= y < height and 0 <= x < width:
                candidates.append((index, PatchRecord(record.image_id, float(y), float(x), level=record.level)))
    larger: set[int] = set()  # labels of classes larger than the patch
    if suggested is not None and candidates:
        high = suggested([view for _, view in candidates], [examples[index][1] for index, _ in candidates])
        plateau = np.bincount([index for (index, _), h in zip(candidates, high) if h], minlength=len(examples)) >= 3
        labels = np.array([label for _, label, _ in examples])
        larger = {int(label) for label in np.unique(labels) if plateau[labels == label].mean() >= 0.5}
    on_one = on_an_example([view for _, view in candidates], [record for record, _, _ in examples] + list(avoid), patch_size)
    return [(view, background) for (index, view), on in zip(candidates, on_one) if examples[index][1] not in larger and not on]


def on_an_example(places: list[PatchRecord], examples: list[PatchRecord], patch_size: tuple[int, int]) -> np.ndarray:
    """For each place, whether it lies on one of `examples` of its image and pyramid level:
    within ON_OBJECT x the patch at that level (`patch_size` at level 1), each axis scaled by
    its side.

    Examples
    --------
    >>> cell = PatchRecord("a.png@0123456789ab", 64.0, 64.0)
    >>> near, far = PatchRecord(cell.image_id, 64.0, 72.0), PatchRecord(cell.image_id, 64.0, 80.0)
    >>> on_an_example([near, far, PatchRecord(cell.image_id, 64.0, 72.0, level=2.0)], [cell], (32, 32)).tolist()
    [True, False, False]
    """
    centres: dict[tuple[str, float], list[tuple[float, float]]] = {}
    for record in examples:
        centres.setdefault((record.image_id, float(record.level)), []).append((record.y, record.x))
    found = np.zeros(len(places), bool)
    for index, place in enumerate(places):
        others = centres.get((place.image_id, float(place.level)))
        if others:
            others = np.asarray(others)
            patch_h, patch_w = (side * place.level for side in patch_size)
            found[index] = np.hypot((others[:, 0] - place.y) / patch_h, (others[:, 1] - place.x) / patch_w).min() < ON_OBJECT
    return found


def _suggested_by(project: Project, classes: list[str]) -> "Callable[[list[PatchRecord], list[int]], np.ndarray]":
    """`off_centre_views`'s `suggested`: whether the project's similarity search scores each
    place at or above the threshold of its class (index into `classes`). A class confirmed at
    similarity 1 (the search offers nothing: every object annotated) has no place suggested."""
    def suggested(places: list[PatchRecord], labels: list[int]) -> np.ndarray:
        curation = Curation(project)
        thresholds = {c.name: c.similarity_threshold for c in project.store.classes()}
        high = np.zeros(len(places), bool)
        for label, name in enumerate(classes):
            own = [i for i, origin in enumerate(labels) if origin == label]
            if own and thresholds[name] < 1:
                high[own] = curation.similarity_at(name, [places[i] for i in own]) >= thresholds[name]
        return high
    return suggested


def _at_most(views: list[tuple[PatchRecord, int]], count: int, groups: list[int], generator) -> list:
    """The views, or `count` of them spread over `groups` (`balanced_subset`) when there are
    more: views supplement the user's background, never make most of it."""
    if len(views) <= count:
        return views
    return [views[i] for i in balanced_subset(torch.tensor(groups, dtype=torch.int64), count, generator).tolist()]


def examples_to_hold_one_out(fraction: float) -> int:
    """How many examples of a label `hold_out` needs before it holds one out (0 < fraction < 1).

    Examples
    --------
    >>> examples_to_hold_one_out(0.2)
    5
    """
    if fraction <= 0:
        raise ValueError(f"holdout {fraction}: nothing is held out")
    count = 1
    while int(fraction * count) < 1:
        count += 1
    return count


def hold_out(pairs: list[tuple[PatchRecord, int]], fraction: float,
             always_train: "list[bool] | None" = None) -> tuple[list, list]:
    """(kept, held out): of each label, the `fraction` (rounded down) of the pairs whose place
    hashes lowest, so the same curation always holds out the same examples, whatever the
    training seed (retraining with another seed then varies the training alone), and one more
    example moves at most one. Pairs marked in `always_train` are never held out nor counted.
    Both lists keep the input order. The hash's 0 keeps the fifth that seed 0 held out when the
    seed chose it (before 2026-12-05)."""
    by_label: dict[int, list[int]] = {}
    for index, (_, label) in enumerate(pairs):
        if not (always_train and always_train[index]):
            by_label.setdefault(label, []).append(index)
    held: set[int] = set()
    for members in by_label.values():
        ranked = sorted(members, key=lambda i: hashlib.blake2b(
            json.dumps([0, pairs[i][0].image_id, pairs[i][0].y, pairs[i][0].x]).encode(), digest_size=8).digest())
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
