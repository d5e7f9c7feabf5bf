"""Cross-scale suppression rules compared on a finished `simsearch eval` over a scale pyramid:
every trial's per-level maps on the test images (similarity to its prototypes, or its trained
model's probabilities) are computed once (cached in EVAL/levels.pkl), then the peaks are merged
under each rule and scored with both matching rules.

    python benchmarks/bench_suppression.py --eval E --truth truth.csv --test-list test.txt \\
        --class particle --patch 40 --out benchmarks/results/issue14-scales/suppression

Rules: `same_object_distance` (the project's: a stronger larger box takes smaller peaks only
nearer its middle), `half the larger side` (the rule before it, in either direction), and
`none` (no cross-scale suppression); then each level's peaks alone, to see which level's
maps a merged result loses to.
"""
from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np

import simsearch.search.peaks as peaks_module
from simsearch import Project, Predictor, read_truth
from simsearch.curation.session import Curation
from simsearch.evaluate.metrics import MATCHING_RULES, Matching, Scored, score_class
from simsearch.evaluate.simulate import STRATEGIES
from simsearch.io.truth import annotations_by_image

RULES = {
    "same_object_distance": peaks_module.same_object_distance,
    "half the larger side": lambda stronger, weaker: 0.5 * np.maximum(stronger, weaker),
    "none": lambda stronger, weaker: np.zeros(np.shape(weaker)),
}


def trial_levels(project: Project, label: str, test: set[str]) -> dict[str, list]:
    """image id -> [(scale, geometry, (rows, cols) map)] on the trial's test images."""
    images = [r for r in project.dataset if r.path.name in test or r.path.stem in test]
    if "similarity" in project.folder.name:
        curation = Curation(project)
        return {r.id: [(s, project.geometry_at(s), curation.class_similarity(label, project.embeddings(r.id, s).vectors))
                       for s in project.scales] for r in images}
    predictor = Predictor(project, device="cpu")
    return {r.id: [(s, g, maps[..., 0]) for s, g, maps in predictor.level_maps(project.dataset.read(r.id))]
            for r in images}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval", type=Path, required=True, help="a finished simsearch eval --out folder")
    parser.add_argument("--truth", required=True)
    parser.add_argument("--test-list", required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--patch", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="results: OUT.json and OUT.md")
    args = parser.parse_args(argv)
    truth = read_truth(args.truth)
    test = set(Path(args.test_list).read_text().split())
    cache = args.eval / "levels.pkl"
    levels = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for trial in sorted((args.eval / "work").iterdir()):
        project = Project.open(trial, read_only=True)
        if trial.name not in levels:
            levels[trial.name] = trial_levels(project, args.label, test)
            cache.write_bytes(pickle.dumps(levels))
        by_image = annotations_by_image(truth, project.dataset)
        objects = [a for image_id in levels[trial.name] for a in by_image[image_id] if a.label == args.label]

        def pr_aucs(pick=lambda level: True) -> dict[str, float]:
            """PR-AUC under each matching rule of the peaks merged over the picked levels."""
            found = []
            for image_id, image_levels in levels[trial.name].items():
                peaks = peaks_module.peaks_across_scales([level for level in image_levels if pick(level)])
                name = by_image[image_id][0].image
                found += [Scored(name, args.label, y, x, v) for y, x, v in zip(peaks.ys, peaks.xs, peaks.values)]
            return {m: score_class(found, objects, args.label, Matching.rule(m, args.patch)).pr_auc for m in MATCHING_RULES}

        scores[trial.name] = {}
        for rule, distance in RULES.items():
            peaks_module.same_object_distance = distance
            scores[trial.name][rule] = pr_aucs()
        peaks_module.same_object_distance = RULES["same_object_distance"]
        for scale in sorted({level[0] for image_levels in levels[trial.name].values() for level in image_levels}):
            scores[trial.name][f"level {scale:g} alone"] = pr_aucs(lambda level: level[0] == scale)
        project.close()
        print(trial.name, scores[trial.name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"eval": str(args.eval), "scores": scores}, indent=1))
    columns = list(next(iter(scores.values())))  # the rules, then each level's peaks alone
    lines = ["| strategy (trials) | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for strategy in STRATEGIES:
        trials = [t for t in scores if t.rsplit("_", 2)[1] == strategy]
        if trials:
            cells = [" / ".join(f"{np.mean([scores[t][rule][m] for t in trials]):.3f}" for m in MATCHING_RULES) for rule in columns]
            lines.append(f"| {strategy} ({len(trials)}) | " + " | ".join(cells) + " |")
    lines.append(f"\nPR-AUC, mean over the trials, scored with `--matching {' / '.join(MATCHING_RULES)}`; maps of {args.eval}.")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
