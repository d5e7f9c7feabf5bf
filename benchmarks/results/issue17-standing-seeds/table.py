"""The README's "Where it stands" rows from evaluations run with `--retrain N`.

    python benchmarks/results/issue17-standing-seeds/table.py ROW/results.json [...]

Per class: similarity search, the probe and Pos+Neg+Selflearn as the mean ± standard deviation
over the trials of each trial's mean over training seeds, and the goal: in every trial the
pipeline's seed mean at least the larger of similarity search and the probe's seed mean, and
the pipeline's spread over trials under 0.05 (`training_goal`, the rule of `simsearch eval`'s
report). "single runs below" counts the pipeline's single training runs under that bar, so a
reader sees how often one run would have missed it.
"""
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from simsearch.evaluate.report import GOAL_SPREAD, training_goal

PIPELINE, PROBE, SIMILARITY = "pos+neg+selflearn", "probe", "similarity"


def digits(a: float, b: float) -> int:
    """3 decimals, or 4 where 3 would show two different values as one."""
    return 3 if f"{a:.3f}" != f"{b:.3f}" else 4


def rows(path: Path) -> list[str]:
    scores = defaultdict(lambda: defaultdict(dict))  # (class, P) -> strategy -> repeat -> {seed: PR-AUC}
    trials = list(json.loads(path.read_text())["trials"].values())
    for trial in trials:
        if trial.get("review_round", 0) == 0:
            by_repeat = scores[(trial["class"], trial["prototypes"])][trial["strategy"]]
            by_repeat.setdefault(trial["repeat"], {})[trial.get("seed", 0)] = trial["pr_auc"]
    lines = []
    for (label, prototypes), by_strategy in sorted(scores.items()):
        if not {PIPELINE, PROBE, SIMILARITY} <= set(by_strategy):
            continue
        repeats = sorted(set.intersection(*(set(by_strategy[s]) for s in (PIPELINE, PROBE, SIMILARITY))))
        mean = {s: np.array([np.mean(list(by_strategy[s][r].values())) for r in repeats])
                for s in (PIPELINE, PROBE, SIMILARITY)}
        bar = np.maximum(mean[SIMILARITY], mean[PROBE])
        below = [(r, pipeline, b) for r, pipeline, b in zip(repeats, mean[PIPELINE], bar) if pipeline < b]
        runs_below = sum(score < b for r, b in zip(repeats, bar) for score in by_strategy[PIPELINE][r].values())
        runs = sum(len(by_strategy[PIPELINE][r]) for r in repeats)
        spread = mean[PIPELINE].std()
        met = next(goal["met"] for goal in training_goal(trials)  # the rule `simsearch eval`'s report applies
                   if (goal["class"], goal["strategy"], goal["prototypes"]) == (label, PIPELINE, prototypes))
        goal = "met" if met else "**not met**: " + "; ".join(
            ([f"spread {spread:.3f}"] if spread >= GOAL_SPREAD else [])
            + [f"r{r} {pipeline:.{digits(pipeline, b)}f} against {b:.{digits(pipeline, b)}f}" for r, pipeline, b in below])
        cells = " | ".join(f"{mean[s].mean():.3f} ± {mean[s].std():.3f}" for s in (SIMILARITY, PROBE, PIPELINE))
        lines.append(f"| {path.parent.name}: {label} P{prototypes} | {cells} | {goal} | {runs_below} of {runs} |")
    return lines


if __name__ == "__main__":
    print("| row | similarity | probe (seed mean) | **Pos+Neg+Selflearn** (seed mean) | goal | single runs below |")
    print("|---|---|---|---|---|---|")
    for argument in sys.argv[1:]:
        print("\n".join(rows(Path(argument))))
