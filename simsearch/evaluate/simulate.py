"""The paper's simulated user (Sec. III-C), through the engine's public workflow.

For one class and one (prototypes P, negatives N, strategy, repeat):
1. choose the displayed training images (seeded), drawn from those that contain the
   class, enough of them that P whole objects exist (`choose_displayed`);
2. take P of their ground-truth objects at random as prototypes (a patch of the project
   size centred on each), among the objects whose centred patch fits inside the image;
3. lower the similarity threshold until exactly N suggestions on the displayed images are
   false (not on a true object of the class, judged by `judged_on_object`): those become
   negatives, the true ones clean positives;
4. background: candidates on a true object of the trial's classes are flagged; objects of
   other classes stay background, as for a user who looks for one class (before, they were
   flagged too, and the classifier never saw a look-alike);
5. noisy extraction from the undisplayed training images (a trial's project holds only the
   training images: the test images never reach training); train with the strategy;
6. predict on the test images and score (matching rule `matching`: the paper's 'patch', or
   'object');
7. review rounds (beyond the paper, `review_rounds` R): the user answers `review_size` items of
   the model's own detections on the undisplayed training images, nearest the confidence
   threshold first (an item is correct if it lies on an object of the class); train again and
   score after each round;
8. retraining (`retrain` N, the paper's inter-measurement protocol): steps 5-7 train N times
   on the same curated data with training seeds 0..N-1; the reviews follow the seed-0 model.
'similarity' skips training and scores the similarity peaks of the test images;
'supervised' trains (Pos) on every training annotation of the class, with background from
annotation-free places and other classes' objects; 'supervised-probe' trains the linear
classifier alone on the frozen features from the same data (the probe at equal data).
'supervised' trains as the training strategies do, with the probe beside the model at the
settings' `TrainSettings.probe_share` (the CPU preset's 0.5): what the pipeline reaches with
every annotation, its probe being the 'supervised-probe' model to the bit; `probe_share` 0
measures the training alone.
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from simsearch.util.files import file_name
from simsearch.curation.session import Curation
from simsearch.project.store import PatchRecord
from simsearch.io.truth import Annotation, annotations_by_image
from simsearch.features.geometry import object_side
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.project.project import Project
from simsearch.inference.review import Review
from simsearch.search.peaks import peaks_across_scales
from simsearch.training.check import ClassCheck
from simsearch.training.loop import TRAINING_STRATEGIES, TrainSettings, crops_within, train
from simsearch.evaluate.metrics import MATCHING_RULES, ClassScore, Matching, Scored, away_from_edge, matching_radius, score_class

log = logging.getLogger(__name__)

# the baselines on every training annotation, each by the training strategy it runs: the
# paper's training (Pos), and the linear classifier alone on the frozen features (the probe)
BASELINES = {"supervised": "pos", "supervised-probe": "probe"}
STRATEGIES = ("similarity", *TRAINING_STRATEGIES, *BASELINES)  # what an evaluation compares
# How the simulated user curates, recorded in results.json so that an evaluation never mixes
# trials of two users: 2 (2026-12-05) shows more images where the first hold too few whole
# objects (`choose_displayed`); 1 took objects cut by the edge as prototypes then.
USER_VERSION = 2


@dataclass(frozen=True)
class Trial:
    """One simulated curation: a class (or, joint, the classes joined by '+'), P, N, strategy
    and repeat."""

    label: str
    prototypes: int
    negatives: int
    strategy: str
    repeat: int
    joint: bool = False

    @property
    def key(self) -> str:
        return f"{self.label}|P{self.prototypes}|N{self.negatives}|{self.strategy}|r{self.repeat}"


@dataclass(frozen=True)
class TrialResult:
    """prototypes_used: fewer than trial.prototypes when the training images hold fewer
    objects of the class; the supervised baseline reports its positives instead.
    review_round: 0 before any review; seed: the training seed (retraining protocol);
    reviewed: review items answered so far, of which accepted."""

    trial: Trial
    score: ClassScore
    negatives_found: int
    seconds: float
    prototypes_used: int
    review_round: int = 0
    seed: int = 0
    reviewed: int = 0
    accepted: int = 0
    class_name: str = ""  # the class scored (a joint trial scores each of its classes)
    check: ClassCheck | None = None  # the trained model's check on held-out curated examples
    pr_auc_by_rule: dict[str, float] = field(default_factory=dict)  # the same detections under each matching rule
    pr_auc_away_from_edge: float | None = None  # the same, half a patch or more inside the image (`away_from_edge`)

    @property
    def key(self) -> str:
        return result_key(self.trial, self.class_name or self.trial.label, self.review_round, self.seed)


def result_key(trial: Trial, class_name: str | None = None, review_round: int = 0, seed: int = 0) -> str:
    """The results.json key of one measurement: the trial's key with the class scored, then
    'joint' for a joint trial and the review round and training seed when not 0 (so results
    written before these existed keep their keys)."""
    key = replace(trial, label=class_name).key if class_name is not None else trial.key
    return (key + ("|joint" if trial.joint else "") + (f"|review{review_round}" if review_round else "")
            + (f"|seed{seed}" if seed else ""))


def fits_inside(centre: tuple[float, float], size: tuple[int, int], patch: tuple[int, int]) -> bool:
    """Whether the patch centred at `centre` (y, x) lies inside an image of `size` (height,
    width): an object the simulated user marks as a whole cell, not one cut by the image's edge."""
    (y, x), (height, width), (patch_h, patch_w) = centre, size, patch
    return patch_h / 2 <= y <= height - patch_h / 2 and patch_w / 2 <= x <= width - patch_w / 2


def pick_prototypes(objects: dict[str, list[tuple[float, float]]], sizes: dict[str, tuple[int, int]], count: int,
                    patch: tuple[int, int], rng: np.random.Generator) -> list[tuple[str, tuple[float, float]]]:
    """`count` of the objects (image id -> centres (y, x)) at random, among those whose
    centred patch lies inside the image (sizes: image id -> (height, width); `fits_inside`):
    a user marks whole cells, not cells cut by the image's edge. Objects at the border only
    when there are too few others. (Before the border grid, prototypes pushed off such cells
    had cut BCCD RBC similarity-only PR-AUC to 0.1-0.2.)"""
    inside, border = [], []
    for image_id, centres in objects.items():
        for centre in centres:
            (inside if fits_inside(centre, sizes[image_id], patch) else border).append((image_id, tuple(centre)))
    picks = [inside[i] for i in rng.permutation(len(inside))[:count]]
    if len(picks) < count:
        picks += [border[i] for i in rng.permutation(len(border))[: count - len(picks)]]
    return picks


def choose_displayed(objects: dict[str, dict[str, np.ndarray]], sizes: dict[str, tuple[int, int]], displayed: int,
                     prototypes: int, patch: tuple[int, int], rng: np.random.Generator) -> list[str]:
    """The displayed images: those with objects of the classes (objects: image id -> class ->
    centres (y, x); sizes: image id -> (height, width)) in seeded random order, until there are
    `displayed` of them and every class has `prototypes` whole objects on them (`fits_inside`):
    a user who finds too few whole cells on the first images looks at more. Where whole
    objects are rarer, it stops at `prototypes` objects of any kind once half the images with
    the classes are shown (the rest stay undisplayed for the noisy examples), or when none are
    left. (`USER_VERSION` 1 counted every object, cut or whole.)

    Examples
    --------
    >>> import numpy as np
    >>> cut, whole = np.array([[5.0, 50.0]]), np.array([[50.0, 50.0]])   # (y, x) in 100 x 100 px
    >>> objects = {name: {"cell": cut if name in "abc" else whole} for name in "abcdef"}
    >>> sizes = dict.fromkeys(objects, (100, 100))
    >>> choose_displayed(objects, sizes, 1, 1, (32, 32), np.random.default_rng(3))   # c's cell is cut
    ['c', 'f']
    >>> choose_displayed(objects, sizes, 1, 1, (32, 32), np.random.default_rng(4))   # half shown, all cut
    ['b', 'c', 'a']
    """
    labels = sorted({label for by_class in objects.values() for label in by_class})
    with_class = [i for i in objects if any(len(centres) for centres in objects[i].values())]
    counted, whole = dict.fromkeys(labels, 0), dict.fromkeys(labels, 0)
    chosen: list[str] = []
    for index in rng.permutation(len(with_class)):
        if len(chosen) >= displayed and (min(whole.values()) >= prototypes
                                         or (len(chosen) >= len(with_class) / 2 and min(counted.values()) >= prototypes)):
            break
        image_id = with_class[index]
        chosen.append(image_id)
        for label, centres in objects[image_id].items():
            counted[label] += len(centres)
            whole[label] += sum(fits_inside(centre, sizes[image_id], patch) for centre in centres)
    return chosen


def judged_on_object(y: float, x: float, level: float, objects: list[Annotation], patch_width: float) -> bool:
    """How the simulated user judges a suggestion, review item or background candidate found at
    pyramid level `level` (its box: `level` x the patch): on an object when its centre lies
    within the paper's radius at that level (0.3 x its box side) of the object's centre, but
    no farther than 0.3 x the larger of the patch and the object's box. With one level this is
    the paper's 0.3 x patch. Over a pyramid a large box a few pixels off a large object's
    centre frames it (with the patch's 12 px the user had flagged level-2 and level-4
    suggestions 12-43 px off 86-180 px particles as negatives), while a small box on its rim,
    or a large box beside a small object, does not."""
    if not objects:
        return False
    centres = np.array([a.centre for a in objects], dtype=np.float64)
    radii = np.minimum(Matching.rule("object", patch_width).radii(objects), matching_radius(level * patch_width))
    return bool((np.hypot(centres[:, 0] - y, centres[:, 1] - x) <= radii).any())


def _inside_patch(y: float, x: float, points: np.ndarray, patch_h: float, patch_w: float) -> bool:
    """Whether any of `points` (rows of y, x) lies inside the patch centred at (y, x)."""
    return bool(((np.abs(points[:, 0] - y) < patch_h / 2) & (np.abs(points[:, 1] - x) < patch_w / 2)).any())


class SimulatedUser:
    """Runs trials for one class on one base project (its embeddings shared by every trial);
    with `joint_labels`, trials whose project holds all those classes at once, as a real
    user's project does (each class then sees the others' prototypes, negatives and
    background flags)."""

    def __init__(self, base: Project, truth: list[Annotation], train_ids: list[str], test_ids: list[str],
                 *, label: str, displayed: int, workdir: Path, settings: TrainSettings,
                 background_count: int = 20, noisy_cap: int | None = 500, device: str = "auto", seed: int = 0,
                 supervised_cap: int = 200, supervised_pixels: int = 200 * 160 * 160,
                 review_rounds: int = 0, review_size: int = 20, review_images: int = 100, retrain: int = 1,
                 joint_labels: list[str] | None = None, matching: str = "patch"):
        self.base, self.label, self.displayed_count = base, label, displayed
        self.labels = list(joint_labels) if joint_labels else [label]
        self.review_rounds, self.review_size, self.review_images, self.retrain = review_rounds, review_size, review_images, retrain
        self.train_ids, self.test_ids = train_ids, test_ids
        self.workdir, self.settings, self.device = workdir, settings, device
        self.background_count, self.noisy_cap, self.seed = background_count, noisy_cap, seed
        # at most `supervised_cap` positives (and as many background patches), fewer for large
        # crops: supervised training time grows with the crop area (BCCD WBC, 192 px: 78)
        self.supervised_cap = min(supervised_cap, crops_within(supervised_pixels, base.geometry, settings.context_cells))
        self.names = {r.id: r for r in base.dataset}
        self.train_dataset = base.dataset.subset(train_ids)
        self.truth_of = annotations_by_image(truth, base.dataset)
        self.matching = matching  # the rule of the score; every rule's PR-AUC is reported beside it
        self.rules = {name: Matching.rule(name, base.geometry.patch_size[1]) for name in MATCHING_RULES}
        # each test image by its name in the truth (its file name where it holds no object), and its size
        self.test_names = {i: self.truth_of[i][0].image if self.truth_of[i] else self.names[i].path.name for i in test_ids}
        self.test_sizes = {self.test_names[i]: (self.names[i].height, self.names[i].width) for i in test_ids}

    def _annotations(self, image_id: str, label: str | list[str] | None = None) -> list[Annotation]:
        """The image's objects: all, of one class, or of a list of classes."""
        wanted = [label] if isinstance(label, str) else label
        return [a for a in self.truth_of[image_id] if wanted is None or a.label in wanted]

    def _objects(self, image_id: str, label: str | list[str] | None = None) -> np.ndarray:
        """Centres (y, x) of the image's objects: all, of one class, or of a list of classes."""
        return np.array([a.centre for a in self._annotations(image_id, label)]).reshape(-1, 2)

    def _on_object(self, image_id: str, label: str | list[str], item) -> bool:
        """Whether the user sees an item (its centre y, x and pyramid level) as an object of
        the class(es)."""
        return judged_on_object(item.y, item.x, item.level, self._annotations(image_id, label), self.base.geometry.patch_size[1])

    def trial_folder(self, trial: Trial) -> Path:
        """The folder of the trial's project, which holds its curation and model after the run."""
        return self.workdir / file_name(trial.key.replace("|", "_"))

    def _new_project(self, trial: Trial) -> Project:
        folder = self.trial_folder(trial)
        if folder.exists():
            shutil.rmtree(folder)
        project = Project.create(folder, self.train_dataset, patch_size=self.base.geometry.patch_size,
                                 backbone=self.base.backbone_spec.name, weights=self.base.backbone_spec.weights_path,
                                 channels=list(self.base.channels), embedding_cache=self.base.embedding_folder,
                                 normalization=self.base.normalization, scales=list(self.base.scales),
                                 **{**self.base.embedding_options, "border": self.base.geometry.border})
        project.set_device(self.device)
        return project

    def run(self, trial: Trial) -> list[TrialResult]:
        """Every measurement of the trial: one per class, or per class, review round and
        training seed for the trained strategies."""
        started = time.perf_counter()
        # the same displayed images and prototypes for every strategy and N of a repeat: fair comparisons
        rng = np.random.default_rng([self.seed, trial.repeat, trial.prototypes])
        truth = [a for i in self.test_ids for a in self.truth_of[i]]

        def scored(found: list[Scored], extra=()) -> list[TrialResult]:
            seconds = time.perf_counter() - started
            results = []
            inner = away_from_edge(found, truth, self.test_sizes, self.base.geometry.patch_size[1] / 2)
            for label in self.labels:
                scores = {name: score_class(found, truth, label, rule) for name, rule in self.rules.items()}
                results.append(TrialResult(trial, scores[self.matching], negatives.get(label, 0), seconds, used[label], *extra,
                                           class_name=label, pr_auc_by_rule={n: c.pr_auc for n, c in scores.items()},
                                           pr_auc_away_from_edge=score_class(*inner, label, self.rules[self.matching]).pr_auc))
            return results

        with self._new_project(trial) as project:
            if trial.strategy in BASELINES:
                found = self._supervised(project, BASELINES[trial.strategy], seed=self.settings.seed + trial.repeat)
                negatives, used = {}, {self.label: len(project.store.patches(self.label, "positive"))}
                return scored(found)
            negatives, curation = self._curate(project, trial, rng)
            used = {label: len(project.store.prototypes(label)) for label in self.labels}
            if trial.strategy == "similarity":
                return scored(self._similarity_on_test(project, curation))
            results = []
            reviewed = {label: (0, 0) for label in self.labels}
            for review_round in range(self.review_rounds + 1):
                if review_round:
                    reviewed = self._review(project, trial)
                for seed in reversed(range(self.retrain)):  # seed 0 last: the reviews follow its model
                    settings = replace(self.settings.with_strategy(trial.strategy), seed=self.settings.seed + seed)
                    checks = {check.name: check for check in train(project, settings, device=self.device).check}
                    for result in scored(self._predict_test(project), (review_round, seed)):
                        results.append(replace(result, reviewed=reviewed[result.class_name][0],
                                               accepted=reviewed[result.class_name][1], check=checks.get(result.class_name)))
                    started = time.perf_counter()
            return results

    def _review(self, project: Project, trial: Trial) -> dict[str, tuple[int, int]]:
        """One review round: per class `review_size` items of the current model, nearest the
        threshold first, answered from the ground truth. Per class (answered, accepted) so far."""
        review = Review(project, device=self.device, max_images=self.review_images, seed=trial.repeat)
        counts = {}
        for label in self.labels:
            for item in review.propose(label, count=self.review_size, order="uncertain", seed=trial.repeat):
                correct = self._on_object(item.image_id, label, item)
                review.answer(label, [item.number], "accepted" if correct else "rejected")
            answered = [i for i in project.store.review_items(label, current_only=False) if i.answer]
            counts[label] = (len(answered), sum(i.answer == "accepted" for i in answered))
        return counts

    def _choose_displayed(self, rng, prototypes: int) -> list[str]:
        """The trial's displayed training images (`choose_displayed`)."""
        objects = {i: {label: self._objects(i, label) for label in self.labels} for i in self.train_ids}
        sizes = {i: (self.names[i].height, self.names[i].width) for i in self.train_ids}
        return choose_displayed(objects, sizes, self.displayed_count, prototypes, self.base.geometry.patch_size, rng)

    def _curate(self, project: Project, trial: Trial, rng) -> tuple[dict[str, int], Curation]:
        """Steps 1-5 up to training: returns (negatives found per class, the curation)."""
        displayed = self._choose_displayed(rng, trial.prototypes)
        project.choose_displayed(names=displayed)
        curation = Curation(project)
        patch_h, patch_w = project.geometry.patch_size
        sizes = {i: (self.names[i].height, self.names[i].width) for i in displayed}
        for label in self.labels:
            curation.add_class(label)
            objects = {i: self._objects(i, label) for i in displayed}
            for image_id, (y, x) in pick_prototypes(objects, sizes, trial.prototypes, (patch_h, patch_w), rng):
                record = self.names[image_id]
                box_h, box_w = self._box_size(image_id, y, x) if len(project.scales) > 1 else (patch_h, patch_w)
                y = min(max(y, box_h / 2), record.height - box_h / 2)
                x = min(max(x, box_w / 2), record.width - box_w / 2)
                curation.add_prototype(label, image_id, (x - box_w / 2, y - box_h / 2, x + box_w / 2, y + box_h / 2))
        if trial.strategy == "similarity":
            return {}, curation
        negatives = {label: self._flag_and_confirm(curation, label, trial.negatives) for label in self.labels}
        for candidate in curation.propose_background(self.background_count):
            if self._on_object(candidate.image_id, self.labels, candidate):
                curation.flag_not_background(candidate)
        curation.confirm_background()
        if self.settings.with_strategy(trial.strategy).use_noisy:
            for _ in curation.iter_noisy(cap_per_class=self.noisy_cap, seed=trial.repeat):
                pass
        return negatives, curation

    def _level(self, project: Project, image_id: str, y: float, x: float) -> float:
        """The pyramid level of the annotated object centred at (y, x) (1 without a pyramid)."""
        return project.nearest_level(object_side(*self._box_size(image_id, y, x)))

    def _box_size(self, image_id: str, y: float, x: float) -> tuple[float, float]:
        """(h, w) of the annotated box centred at (y, x): what a user marks over a scale
        pyramid (a box of the object's own size); the patch size for objects given as centres."""
        for annotation in self.truth_of[image_id]:
            if annotation.centre == (y, x) and annotation.y1 - annotation.y0 >= 4 and annotation.x1 - annotation.x0 >= 4:
                return annotation.y1 - annotation.y0, annotation.x1 - annotation.x0
        return self.base.geometry.patch_size

    def _flag_and_confirm(self, curation: Curation, label: str, negatives: int) -> int:
        """Lower the class's threshold until `negatives` suggestions are false (not on an
        object of the class): flag those, confirm the rest. Returns the negatives found."""
        threshold, false = 1.0, []
        for suggestion in curation.suggestions(label, threshold=-1.0):
            if not self._on_object(suggestion.image_id, label, suggestion):
                if len(false) == negatives:
                    break
                false.append(suggestion)
            threshold = suggestion.similarity
        for suggestion in false:
            curation.flag_negative(suggestion)
        curation.confirm_class(label, threshold, allow_empty=True)  # a hard class may have only its prototypes
        return len(false)

    def _similarity_on_test(self, project: Project, curation: Curation) -> list[Scored]:
        found = []
        for label in self.labels:
            for image_id in self.test_ids:
                peaks = peaks_across_scales([
                    (scale, self.base.geometry_at(scale), curation.class_similarity(label, self.base.embeddings(image_id, scale).vectors))
                    for scale in self.base.scales
                ])
                found += [Scored(self.test_names[image_id], label, y, x, v) for y, x, v in zip(peaks.ys, peaks.xs, peaks.values)]
        return found

    def _predict_test(self, project: Project) -> list[Scored]:
        predictor = Predictor(project, device=self.device)
        names = predictor.class_names[:-1]
        found = []
        for image_id in self.test_ids:
            levels = predictor.level_maps_of(image_id, self.base)  # the probe: the test images' cached embeddings
            detections = detections_from_levels(levels, names, dict.fromkeys(names, 0.0), image_id)
            found += [Scored(self.test_names[image_id], d.class_name, d.y, d.x, d.confidence)
                      for d in detections if d.class_name in self.labels]
        return found

    def _supervised(self, project: Project, strategy: str = "pos", seed: int = 0) -> list[Scored]:
        """Training with `strategy` (`BASELINES`) and training seed `seed` on the training
        annotations (at most `supervised_cap`, sampled the same for every seed), with as many
        background patches: half from annotation-free places (4 random tries per image), the
        rest centred on objects of other classes (with full supervision every other annotated
        object is known not to be the class: the look-alikes a few-shot user's background also
        holds). The settings' probe share holds for 'pos' as for every training strategy; the
        similarity gate does not (there are no prototypes to resemble)."""
        store = project.store
        store.add_class(self.label)
        patch_h, patch_w = project.geometry.patch_size
        positives, empty, others = [], [], []
        rng = np.random.default_rng(0)
        for image_id in self.train_ids:
            record = self.names[image_id]
            own = self._objects(image_id, self.label)
            positives += [PatchRecord(image_id, float(y), float(x), level=self._level(project, image_id, y, x)) for y, x in own]
            # an object of another class is background unless the class's own object shares
            # its patch (a platelet on a red cell)
            others += [(PatchRecord(image_id, float(a.centre[0]), float(a.centre[1])), "high")
                       for a in self.truth_of[image_id]
                       if a.label != self.label and not _inside_patch(*a.centre, own, patch_h, patch_w)]
            objects = self._objects(image_id)
            for _ in range(4):
                y = rng.uniform(patch_h / 2, record.height - patch_h / 2)
                x = rng.uniform(patch_w / 2, record.width - patch_w / 2)
                if not _inside_patch(y, x, objects, patch_h, patch_w):  # no annotated centre inside
                    empty.append((PatchRecord(image_id, y, x), "low"))

        def sample(items: list, count: int) -> list:
            return items if len(items) <= count else [items[i] for i in np.sort(rng.choice(len(items), count, replace=False))]

        # keeps CPU runs bounded: at most `supervised_cap` of each, sampled across the images
        positives = sample(positives, self.supervised_cap)
        others = sample(others, self.supervised_cap // 2)
        background = sample(empty, self.supervised_cap - len(others)) + others
        first = positives[0]
        store.add_prototype(self.label, first.image_id, (first.x - patch_w / 2, first.y - patch_h / 2, first.x + patch_w / 2, first.y + patch_h / 2))
        # similarity 1: the search offers nothing (every object is annotated), so no example is
        # taken to sit inside a larger object (`off_centre_views`)
        store.confirm_class(self.label, 1.0, positives)
        store.set_background_candidates(background)
        store.confirm_background()
        # no similarity gate: the one prototype above only stands in for a class given by every annotation
        settings = replace(self.settings.with_strategy(strategy), seed=seed, similarity_gate=False)
        train(project, settings, device=self.device)
        return self._predict_test(project)
