"""Paired check of what the curation's wrong labels cost: each Pos+Neg+Selflearn trial of an
evaluation run with a thinned truth, copied and trained again on the same curated data with
the labels that lie on an object of the complete truth (as the simulated user judges:
`judged_on_object`) taken out, then scored on the evaluation's test images as the evaluation
scores (`probe_join.trial_scores`: the trained model alone, the pipeline, the probe).

    python oracle.py EVAL COMPLETE_TRUTH CLASS OUT [--seeds 3] [--variants as-is,background,both]
                     [--keep-positives K]

Variants: `as-is` (the curation unchanged: each seed gives the evaluation's own PR-AUC),
`background` (the background patches on an object are no longer background), `negatives`
(the negatives on an object are unflagged), `both`; and `positives` (only the K confirmed
positives most similar to the class are kept, as if the user had read fewer suggestions).
Results: OUT/results.json, a table on stdout.
"""
import argparse
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from simsearch import Project, read_truth
from simsearch.evaluate.simulate import judged_on_object
from simsearch.io.truth import annotations_by_image
from simsearch.training.loop import TrainSettings, train

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from probe_join import evaluation_user, keep_network_rows, trial_scores  # noqa: E402

SHOWN = {"trained": "mean 0.00", "pipeline": "mean 0.50", "probe": "mean 1.00"}


def clean(project: Project, label: str, variant: str, on_object, keep_positives: int) -> dict[str, int]:
    """Take the curation's labels on an object out, or its least similar positives, as
    `variant` says; how many were taken."""
    store, taken = project.store, {"background": 0, "negatives": 0, "positives": 0}
    if variant == "positives":
        positives = sorted(store.patches(label, "positive"), key=lambda p: -p.similarity)
        store.confirm_class(label, store.class_info(label).similarity_threshold, positives[:keep_positives])
        taken["positives"] = len(positives[keep_positives:])
    if variant in ("background", "both"):
        for patch, _, kept in store.background(confirmed_only=True):
            if kept and on_object(patch):
                store.set_not_background(patch)
                taken["background"] += 1
    if variant in ("negatives", "both"):
        info, positives = store.class_info(label), store.patches(label, "positive")
        for patch in store.patches(label, "negative"):
            if on_object(patch):
                store.set_negative(label, patch, flagged=False)
                taken["negatives"] += 1
        store.confirm_class(label, info.similarity_threshold, positives)  # unflagging took the confirmation
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("evaluation", type=Path)
    parser.add_argument("complete_truth", type=Path)
    parser.add_argument("label")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--variants", default="as-is,background,both")
    parser.add_argument("--keep-positives", type=int, default=20, help="the positives variant's")
    args = parser.parse_args()
    keep_network_rows()
    plan = json.loads((args.evaluation / "results.json").read_text())["plan"]
    base_folder = next(p for p in (args.evaluation / "base").iterdir() if p.is_dir() and p.name.startswith(args.label))
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with Project.open(base_folder, read_only=True) as base:
        user, test_ids = evaluation_user(args.evaluation, base, args.label, read_truth(plan["truth"]))
        complete = annotations_by_image(read_truth(args.complete_truth), base.dataset)
        width = base.geometry.patch_size[1]

        def on_object(patch) -> bool:
            objects = [a for a in complete.get(patch.image_id, []) if a.label == args.label]
            return judged_on_object(patch.y, patch.x, patch.level, objects, width)

        for variant in args.variants.split(","):
            for trial in sorted((args.evaluation / "work").glob(f"{args.label}_P*_N*_pos+neg+selflearn_r*")):
                copy = args.out / variant / trial.name
                for seed in range(args.seeds):
                    key = f"{variant}|{trial.name}|seed{seed}"
                    if key in results:
                        continue
                    if seed == 0:
                        shutil.rmtree(copy, ignore_errors=True)
                        shutil.copytree(trial, copy, ignore=shutil.ignore_patterns("store.lock"))
                    with Project.open(copy) as project:
                        taken = clean(project, args.label, variant, on_object, args.keep_positives) if seed == 0 else {}
                        train(project, replace(TrainSettings.cpu(), seed=seed), device="cpu")
                    scores = trial_scores(copy, base, user, test_ids, args.label)
                    results[key] = {**{name: scores[join] for name, join in SHOWN.items()}, "taken": taken}
                    print(key, results[key], flush=True)
                    results_path.parent.mkdir(parents=True, exist_ok=True)
                    results_path.write_text(json.dumps(results, indent=1))
    print(table(results))


def table(results: dict) -> str:
    """Per variant and trial: the seed mean of the trained model alone, the pipeline and the probe."""
    lines = ["| variant | trial | seeds | trained alone | pipeline | probe |", "|---|---|---|---|---|---|"]
    groups = {}
    for key, row in results.items():
        variant, trial, _ = key.split("|")
        groups.setdefault((variant, trial), []).append(row)
    for (variant, trial), rows in groups.items():
        means = [float(np.mean([r[name] for r in rows])) for name in SHOWN]
        lines.append(f"| {variant} | {trial.rsplit('_', 1)[-1]} | {len(rows)} | " + " | ".join(f"{m:.4f}" for m in means) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
