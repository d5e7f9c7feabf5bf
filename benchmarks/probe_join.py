"""How to join the trained model and the probe beside it: scores an evaluation's saved pipeline
models (`simsearch eval --out EVAL`, its `work/<class>_P*_N*_pos+neg+selflearn_r*` folders: the
training seed 0's model of each trial) on the evaluation's test images under several joins
of the two models' class probabilities, before the similarity gate:

- `mean S`: the engine's own join (`Predictor` at `TrainSettings.probe_share` S), the arithmetic
  mean, S of the probe's; 0 is the trained model alone, 1 the probe alone, the same PR-AUC as the
  probe strategy's model of that seed;
- `logit S`: the normalised geometric mean (softmax of the weighted log-probabilities; for a
  class against background, the weighted mean of the two models' log-odds).

Training is not repeated: each join is the detection the evaluation would have scored with the
same models. The network runs once per test image and model; the joins reuse its vectors.

    python benchmarks/probe_join.py EVAL [EVAL ...] --out results.json   # then a markdown table

`--truth` scores the same models against another truth of the same images (the evaluation's
split and curated data stay): e.g. with the test images' annotations thinned as the training
images' were (`drop_annotations.py`), to see what gaps in a test truth do to a ranking.

(benchmarks/results/issue17-probe-join/ quotes its output.)
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

import simsearch.features.embed as embed
from simsearch import Project, read_truth
from simsearch.evaluate.metrics import Scored, score_class
from simsearch.evaluate.report import EvalPlan, split
from simsearch.evaluate.simulate import SimulatedUser
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.search.similarity import gate_by_similarity
from simsearch.training.loop import TrainSettings

JOINS = (("mean", 0.0), ("mean", 0.25), ("mean", 0.5), ("mean", 0.75), ("mean", 1.0), ("logit", 0.5))


def logit_mean(trained: np.ndarray, probe: np.ndarray, share: float) -> np.ndarray:
    """Class probabilities (..., classes) of the two models' weighted log-odds mean, `share` of
    the probe's: the softmax of their weighted log-probabilities."""
    logits = (1 - share) * np.log(np.clip(trained, 1e-12, 1)) + share * np.log(np.clip(probe, 1e-12, 1))
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def keep_network_rows() -> None:
    """DenseEmbedder.iter_rows remembers the rows of the last image of each embedder, so that
    the joins of one image run the network once."""
    kept, original = {}, embed.DenseEmbedder.iter_rows

    def iter_rows(self, image, **options):
        pixels = np.asarray(image)
        key = (pixels.shape, hashlib.sha1(pixels.tobytes()).hexdigest())
        if kept.get(id(self), (None,))[0] != key:
            kept[id(self)] = (key, list(original(self, image, **options)))
        return iter(kept[id(self)][1])

    embed.DenseEmbedder.iter_rows = iter_rows


class JoinedPredictor(Predictor):
    """A saved pipeline model whose detection joins its two halves by `join` (set before each
    pass): a `mean` is the engine's own join at that probe share, a `logit` mean replaces it."""

    join: tuple[str, float] = ("mean", 0.5)

    def _vectors_and_maps(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kind, share = self.join
        if kind == "mean":
            self.probe_share = share
            return super()._vectors_and_maps(vectors)
        pretrained = vectors[..., self.dim :]
        maps = logit_mean(self._softmax(self.classifier, vectors[..., : self.dim]),
                          self._softmax(self.probe_classifier, pretrained), share).astype(np.float32)
        if self.gate is not None:
            maps = gate_by_similarity(maps, pretrained, *self.gate, device=self.embedder.device)
        return np.ascontiguousarray(vectors[..., : self.dim]), maps


def trial_scores(trial: Path, base: Project, user: SimulatedUser, test_ids: list[str], label: str) -> dict[str, float]:
    """{join: PR-AUC} of one saved pipeline model on the test images."""
    found = {join: [] for join in JOINS}
    with Project.open(trial, read_only=True) as project:
        predictor = JoinedPredictor(project, device="cpu")
        names = predictor.class_names[:-1]
        for image_id in test_ids:  # every join of an image while the network's rows are kept
            for join in JOINS:
                predictor.join = join
                levels = predictor.level_maps_of(image_id, base)
                detections = detections_from_levels(levels, names, dict.fromkeys(names, 0.0), image_id)
                found[join] += [Scored(user.test_names[image_id], d.class_name, d.y, d.x, d.confidence)
                                for d in detections if d.class_name == label]
    test_truth = [a for i in test_ids for a in user.truth_of[i]]
    rule = user.rules[user.matching]
    return {f"{kind} {share:.2f}": score_class(found[(kind, share)], test_truth, label, rule).pr_auc
            for kind, share in JOINS}


def evaluation_user(folder: Path, base: Project, label: str, truth: list) -> tuple[SimulatedUser, list[str]]:
    """The simulated user of one class of an evaluation (`simsearch eval --out FOLDER`) on its
    base project, with the evaluation's split, displayed images and matching rule, judging and
    scoring by `truth`; and the test image ids."""
    plan = json.loads((folder / "results.json").read_text())["plan"]
    split_fields = {key: plan[key] for key in ("images", "truth", "train_list", "test_list", "test_fraction", "seed")}
    eval_plan = EvalPlan(**split_fields, out=folder, classes=[label], patch_sizes={}, prototypes=[],
                         negatives=[], strategies=[])
    train_ids, test_ids = split(base.dataset, eval_plan)
    user = SimulatedUser(base, truth, train_ids, test_ids, label=label, displayed=plan["displayed"],
                         workdir=folder / "work", settings=TrainSettings.cpu(), device="cpu", matching=plan["matching"])
    return user, test_ids


def sweep(folder: Path, score_truth: Path | None = None, say=print) -> dict[str, dict[str, float]]:
    """{trial folder: {join: PR-AUC}} for every saved pipeline model of one evaluation, scored
    against the evaluation's truth or `score_truth` (the split stays the evaluation's)."""
    plan = json.loads((folder / "results.json").read_text())["plan"]
    truth = read_truth(score_truth or plan["truth"])
    out = {}
    for base_folder in sorted(p for p in (folder / "base").iterdir() if p.is_dir()):
        label = base_folder.name.rsplit("-", 1)[0]
        with Project.open(base_folder, read_only=True) as base:
            user, test_ids = evaluation_user(folder, base, label, truth)
            for trial in sorted((folder / "work").glob(f"{label}_P*_N*_pos+neg+selflearn_r*")):
                scores = out[f"{folder.name}/{trial.name}"] = trial_scores(trial, base, user, test_ids, label)
                say(f"{folder.name}/{trial.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    return out


def table(results: dict[str, dict[str, float]]) -> str:
    """A markdown table of every trial's PR-AUC per join, then each join's mean and how often it
    is at least the current join's (`mean 0.50`)."""
    joins = list(next(iter(results.values())))
    lines = ["| trial | " + " | ".join(joins) + " |", "|---" * (len(joins) + 1) + "|"]
    for trial, scores in results.items():
        lines.append(f"| {trial} | " + " | ".join(f"{scores[j]:.4f}" for j in joins) + " |")
    means = {j: float(np.mean([scores[j] for scores in results.values()])) for j in joins}
    at_least = {j: sum(scores[j] >= scores["mean 0.50"] for scores in results.values()) for j in joins}
    lines.append(f"| mean of {len(results)} | " + " | ".join(f"{means[j]:.4f}" for j in joins) + " |")
    lines.append("| at least `mean 0.50` | " + " | ".join(f"{at_least[j]}" for j in joins) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluations", type=Path, nargs="*",
                        help="folders of `simsearch eval --out` (none: the table of --out)")
    parser.add_argument("--out", type=Path, required=True, help="JSON of every trial's PR-AUC per join, added to")
    parser.add_argument("--truth", type=Path, help="score against this truth of the same images instead of each "
                        "evaluation's own (e.g. the test images' annotations thinned, or completed)")
    args = parser.parse_args(argv)
    keep_network_rows()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for folder in args.evaluations:
        results.update(sweep(folder, args.truth))
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
