"""How similarity search turns a class's prototypes into one score per patch, compared on the
similarity trials of a finished `simsearch eval` (same prototypes, same test images, same peaks
and scoring as `simsearch eval`'s similarity strategy):

- `max`: the largest cosine similarity to any prototype vector (SimSearch before 2026-12-05);
- `second W`: each prototype's max over its rotations, then (best + W x second best) / (1 + W)
  (`simsearch.search.similarity.SECOND_PROTOTYPE_WEIGHT` is the W similarity search uses);
- `reach S x W` (tried, not kept): `max` after taking W x (reach - the class's mean reach) off
  each prototype vector's similarities, its reach the mean of its closest S of the patches of
  the trial's displayed images at every level (the hubness correction of cross-domain
  similarity local scaling, CSLS, on the prototypes' side).

Each trial's own score (`Curation.class_similarity`) is computed too and must equal the
`second` rule at the product's weight.

    python benchmarks/bench_class_similarity.py --eval E --truth truth.csv --test-list test.txt \\
        --class particle [--matching object] --out benchmarks/results/issue14-class-similarity/particles

(benchmarks/results/issue14-class-similarity/README.md has what it found.)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from simsearch import Curation, Project, peaks_across_scales, read_truth
from simsearch.curation.session import ROTATIONS
from simsearch.evaluate.metrics import Matching, Scored, score_class
from simsearch.io.truth import annotations_by_image
from simsearch.search.similarity import SECOND_PROTOTYPE_WEIGHT

SECOND_WEIGHTS = (0.25, 0.5, 1.0)
REACHES = ((0.003, 0.5), (0.003, 0.25), (0.01, 0.5))  # (share, weight)


def cosines(vectors: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """(rows, cols, K) cosine similarity of L2-normalised `vectors` to each prototype row."""
    rows = prototypes / np.linalg.norm(prototypes, axis=1, keepdims=True)
    return np.asarray(vectors, np.float32) @ rows.T


def second_rule(weight: float):
    def combine(similarities: np.ndarray) -> np.ndarray:
        per_prototype = similarities.reshape(*similarities.shape[:-1], -1, len(ROTATIONS)).max(axis=-1)
        if per_prototype.shape[-1] == 1:
            return per_prototype[..., 0]
        ordered = np.sort(per_prototype, axis=-1)
        return (ordered[..., -1] + weight * ordered[..., -2]) / (1 + weight)
    return combine


def trial_scores(base: Project, trial: Path, label: str, test: set[str], truth, rule: Matching) -> dict[str, float]:
    with Project.open(trial, read_only=True) as project:
        curation = Curation(project)
        prototypes = curation.prototype_vectors(label)
        displayed = list(project.displayed)
        scales, geometries = base.scales, {s: base.geometry_at(s) for s in base.scales}
        reference = np.concatenate([cosines(base.embeddings(i, s).vectors, prototypes).reshape(-1, len(prototypes))
                                    for i in displayed for s in scales])
        reference = -np.sort(-reference, axis=0)
        by_image = annotations_by_image(truth, base.dataset)
        images = [r for r in base.dataset if r.path.name in test or r.path.stem in test]
        maps = {r.id: {s: cosines(base.embeddings(r.id, s).vectors, prototypes) for s in scales} for r in images}
        product = {r.id: {s: curation.class_similarity(label, base.embeddings(r.id, s).vectors) for s in scales} for r in images}
    objects = [a for r in images for a in by_image[r.id] if a.label == label]
    rules = {"max": lambda similarities: similarities.max(axis=-1)}
    rules.update({f"second {w:g}": second_rule(w) for w in SECOND_WEIGHTS})
    for share, weight in REACHES:
        reach = reference[: max(1, int(round(share * len(reference))))].mean(axis=0)
        offsets = weight * (reach - reach.mean())
        rules[f"reach {share:g} x {weight:g}"] = (lambda o: lambda similarities: (similarities - o).max(axis=-1))(offsets)
    ours = second_rule(SECOND_PROTOTYPE_WEIGHT)
    for r in images:
        for s in scales:
            np.testing.assert_allclose(product[r.id][s], ours(maps[r.id][s]), atol=2e-5, err_msg="class_similarity")
    scores = {}
    for name, combine in rules.items():
        found = []
        for r in images:
            peaks = peaks_across_scales([(s, geometries[s], combine(maps[r.id][s]).astype(np.float32)) for s in scales])
            image = by_image[r.id][0].image if by_image[r.id] else r.path.name
            found += [Scored(image, label, y, x, v) for y, x, v in zip(peaks.ys, peaks.xs, peaks.values)]
        scores[name] = round(score_class(found, objects, label, rule).pr_auc, 4)
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", type=Path, required=True, help="a finished simsearch eval --out folder")
    parser.add_argument("--truth", required=True)
    parser.add_argument("--test-list", required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--matching", choices=("patch", "object"), default="patch")
    parser.add_argument("--out", type=Path, required=True, help="results: OUT.json")
    args = parser.parse_args(argv)
    truth = read_truth(args.truth)
    test = set(Path(args.test_list).read_text().split())
    base_folder = next((args.eval / "base").iterdir())
    results = {}
    with Project.open(base_folder, read_only=True) as base:
        rule = Matching.rule(args.matching, base.geometry.patch_size[1])
        for trial in sorted((args.eval / "work").glob("*_similarity_r*")):
            results[trial.name] = trial_scores(base, trial, args.label, test, truth, rule)
            print(trial.name, results[trial.name], flush=True)
    means = {key: round(float(np.mean([r[key] for r in results.values()])), 4) for key in next(iter(results.values()))}
    print("mean", means)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"eval": str(args.eval), "matching": args.matching,
                                                         "trials": results, "mean": means}, indent=1))


if __name__ == "__main__":
    main()
