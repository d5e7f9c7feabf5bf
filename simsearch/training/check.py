"""The user's own evidence of whether training helped: curated examples held out of training
(`TrainSettings.holdout`), ranked by the trained model, by similarity search (the highest
cosine similarity to the class's prototypes, as the search ranks) and by a linear probe (a
logistic regression on the pretrained features of the training examples)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from simsearch.project.project import Project
from simsearch.curation.session import prototype_record
from simsearch.search.similarity import gate_by_similarity
from simsearch.training.crops import patch_crops
from simsearch.training.model import PatchModel


@dataclass(frozen=True)
class ClassCheck:
    """One class's held-out ranking: the ROC-AUC of each ranker, the chance that a held-out
    positive of the class scores above a held-out example that is not the class (background,
    the class's negatives, other classes' positives); NaN where either side is empty, and for
    similarity search where the class has no prototype left (its positives train it).

    Examples
    --------
    >>> check = ClassCheck("RBC", positives=4, others=9, model=0.97, similarity=0.88, probe=0.91)
    >>> check.helps, check.best_other
    (True, ('probe', 0.91))
    >>> ClassCheck("WBC", positives=2, others=9, model=1.0, similarity=1.0, probe=1.0).alike
    True
    >>> nan = float("nan")
    >>> ClassCheck("WBC", positives=0, others=9, model=nan, similarity=nan, probe=nan, to_check=3).verdict()
    "WBC: not checked (no positive held out); confirm 3 more example(s) besides the prototypes' own objects to have training checked"
    """

    name: str
    positives: int
    others: int
    model: float
    similarity: float
    probe: float
    # with no positive held out: how many more confirmed examples (not on a prototype's own object) hold one out
    to_check: int = 0
    strategy: str = ""  # the strategy the model was trained with ('' in models saved before it was kept here)

    @property
    def checked(self) -> bool:
        """Whether the model's ROC-AUC could be measured (it is not NaN: a positive and an
        example that is not the class were held out)."""
        return not math.isnan(self.model)

    @property
    def best_other(self) -> tuple[str, float]:
        """The better of similarity search and the probe: (name, ROC-AUC); a NaN one is not
        better."""
        others = [(name, value) for name, value in (("similarity search", self.similarity), ("probe", self.probe))
                  if not math.isnan(value)]
        return max(others, key=lambda item: item[1]) if others else ("probe", self.probe)

    @property
    def helps(self) -> bool:
        """Training ranks the held-out examples at least as well as similarity search and the
        probe (True where nothing could be checked)."""
        return not self.checked or self.model >= self.best_other[1]

    @property
    def alike(self) -> bool:
        """The three rankers score the held-out examples alike (to the two decimals shown),
        most often all 1.00: the examples are too few or too easy to tell whether training
        helped."""
        return self.checked and round(self.model, 2) == round(self.similarity, 2) == round(self.probe, 2)

    def to_dict(self) -> dict:
        """Every field as a plain dict, as model.yaml and evaluation reports keep it (`from_dict`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ClassCheck":
        """The ClassCheck that `to_dict` gave `data` (a TypeError for a key it does not know)."""
        return cls(**data)

    def verdict(self) -> str:
        """One line for the user."""
        if not self.checked:
            if not self.positives and self.to_check:
                return (f"{self.name}: not checked (no positive held out); confirm {self.to_check} more example(s) besides "
                        "the prototypes' own objects to have training checked")
            if not self.others:
                return (f"{self.name}: not checked (nothing but the class held out); confirm more background to have "
                        "training checked")
            return (f"{self.name}: not checked ({self.positives} held-out positive(s), {self.others} other(s)); "
                    "curate more examples to have training checked")
        other, value = self.best_other
        similarity = "- (no prototype)" if math.isnan(self.similarity) else f"{self.similarity:.2f}"
        line = (f"{self.name}: held-out ROC-AUC model {self.model:.2f}, similarity {similarity}, "
                f"probe {self.probe:.2f} ({self.positives} positive(s), {self.others} other(s))")
        if self.alike:
            return (f"{line}; all three alike, so these examples cannot tell whether training helped: "
                    "review its detections")
        if self.helps:
            return line
        return f"{line}. WARNING: training does not beat {other} on your held-out examples; {self.advice(other)}"

    def advice(self, beaten_by: str) -> str:
        """What to try when the model is below `beaten_by`: never the strategy it was trained with."""
        advice = "add prototypes and negatives where the model errs"
        if self.strategy == "probe":
            return advice + ", or train the whole pipeline (`--strategy pos+neg+selflearn`)"
        if beaten_by == "probe":
            return advice + ", or try `--strategy probe`"
        return advice


def roc_auc(positives: np.ndarray, others: np.ndarray) -> float:
    """The chance that a positive scores above an other, ties counting half; NaN if either is empty."""
    positives, others = np.asarray(positives, np.float64), np.asarray(others, np.float64)
    if not len(positives) or not len(others):
        return float("nan")
    difference = positives[:, None] - others[None, :]
    return float(((difference > 0).sum() + 0.5 * (difference == 0).sum()) / difference.size)


@torch.no_grad()
def _embed(model: PatchModel, crops: torch.Tensor, device: torch.device) -> torch.Tensor:
    model.eval()
    parts = [model.embed(crops[start : start + 64].float().to(device)).float().cpu() for start in range(0, len(crops), 64)]
    return torch.cat(parts) if parts else torch.zeros(0, model.dim)


def _rotations(crops: torch.Tensor) -> torch.Tensor:
    """The crops turned as similarity search turns its prototypes (90-degree steps; 180 only
    for non-square crops)."""
    turns = (1, 2, 3) if crops.shape[-1] == crops.shape[-2] else (2,)
    return torch.cat([crops, *[torch.rot90(crops, k, dims=(2, 3)) for k in turns]])


def fit_probe(vectors: torch.Tensor, labels: torch.Tensor, classes: int, *, seed: int = 0, steps: int = 300) -> torch.nn.Linear:
    """A multinomial logistic regression on fixed vectors, each class weighted equally."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        linear = torch.nn.Linear(vectors.shape[1], classes)
    counts = torch.bincount(labels, minlength=classes).clamp(min=1).float()
    weight = counts.sum() / (classes * counts)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.05, weight_decay=1e-4)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(linear(vectors), labels, weight=weight).backward()
        optimizer.step()
    return linear


def check_held_out(project: Project, model: PatchModel, names: list[str], train_crops: torch.Tensor, train_labels: torch.Tensor,
                   held_out, held_out_negatives, *, context_cells: int, seed: int, device: torch.device,
                   probe_beside: tuple[torch.nn.Linear, float] | None = None,
                   gate: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[ClassCheck]:
    """Rank the held-out examples of every class with the trained `model`, similarity search
    and a probe fitted on the training crops (those training used, with their labels); the
    held-out pairs are (PatchRecord, label index into `names`, background last). With
    `probe_beside` (the classifier of the probe trained beside the model, on the pretrained
    features, and its share) the model's ranking is the average detection uses, and with a
    `gate` (prototype vectors and their classes, `gate_by_similarity`) it is gated as there."""
    if not held_out:
        return []
    pretrained = PatchModel(project.backbone, project.geometry, len(names), context_cells=context_cells).to(device)
    groups = {"held": held_out, "negatives": held_out_negatives}
    crops = {key: patch_crops(project, [p for p, _ in pairs], context_cells) for key, pairs in groups.items() if pairs}
    probe = fit_probe(_embed(pretrained, train_crops, device), train_labels, len(names), seed=seed)
    with torch.no_grad():
        trained = {key: F.softmax(model.classifier(_embed(model, batch, device).to(device)).float(), 1).cpu()
                   for key, batch in crops.items()}
        plain = {key: _embed(pretrained, batch, device) for key, batch in crops.items()}
        probed = {key: F.softmax(probe(vectors), 1) for key, vectors in plain.items()}
        if probe_beside is not None:
            beside, share = probe_beside
            trained = {key: (1 - share) * trained[key] + share * F.softmax(beside(plain[key].to(device)).float(), 1).cpu()
                       for key in trained}
        if gate is not None:
            rows, classes = (part.numpy() for part in gate)
            trained = {key: torch.from_numpy(gate_by_similarity(maps.numpy(), plain[key].numpy(), rows, classes,
                                                                device=device))
                       for key, maps in trained.items()}
    held_labels = np.array([label for _, label in held_out])
    negative_labels = np.array([label for _, label in held_out_negatives])
    checks = []
    for label, name in enumerate(names[:-1]):
        prototypes = [prototype_record(project, p) for p in project.store.prototypes(name)]
        if prototypes:
            reference = _embed(pretrained, _rotations(patch_crops(project, prototypes, context_cells)), device)
            similar = {key: (vectors @ reference.T).amax(dim=1) for key, vectors in plain.items()}
        else:  # its positives train it, but similarity search has nothing to rank by
            similar = {key: torch.full((len(vectors),), float("nan")) for key, vectors in plain.items()}
        mine, negatives = held_labels == label, negative_labels == label

        def split(scores: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
            held = scores["held"].numpy()
            others = held[~mine]
            if "negatives" in scores:
                others = np.concatenate([others, scores["negatives"].numpy()[negatives]])
            return held[mine], others

        rankers = {"model": {k: v[:, label] for k, v in trained.items()}, "similarity": similar,
                   "probe": {k: v[:, label] for k, v in probed.items()}}
        aucs = {key: roc_auc(*split(scores)) if prototypes or key != "similarity" else float("nan")
                for key, scores in rankers.items()}
        positives, others = split(similar)
        checks.append(ClassCheck(name, len(positives), len(others), **aucs))
    return checks
