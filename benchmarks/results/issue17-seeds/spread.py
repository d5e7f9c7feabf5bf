"""The spread between training seeds and between trials of evaluations run with `--retrain N`.

    python benchmarks/results/issue17-seeds/spread.py RUN/results.json [...]

Per class, strategy and P: each trial's PR-AUC per seed and its range, the mean range and the
mean standard deviation over seeds (the training's noise on fixed curated data), and the
standard deviation of the trials' seed means (what the curated data add).
"""
import json
import sys
from collections import defaultdict

import numpy as np

for path in sys.argv[1:]:
    trials = json.load(open(path))["trials"].values()
    groups = defaultdict(lambda: defaultdict(list))
    for trial in trials:
        groups[(trial["class"], trial["strategy"], trial["prototypes"])][trial["repeat"]].append((trial["seed"], trial["pr_auc"]))
    print(path)
    for (label, strategy, prototypes), by_repeat in sorted(groups.items()):
        rows = {repeat: np.array([score for _, score in sorted(seeds)]) for repeat, seeds in sorted(by_repeat.items())}
        ranges = [scores.max() - scores.min() for scores in rows.values()]
        within = [scores.std() for scores in rows.values()]
        means = [scores.mean() for scores in rows.values()]
        print(f"  {label} {strategy} P{prototypes}: " + "; ".join(
            f"r{repeat} " + ", ".join(f"{s:.3f}" for s in scores) + f" (range {scores.max() - scores.min():.3f})"
            for repeat, scores in rows.items()))
        print(f"    mean {np.mean(means):.3f}; seed 0 alone {np.mean([s[0] for s in rows.values()]):.3f} ± "
              f"{np.std([s[0] for s in rows.values()]):.3f}; mean range over seeds {np.mean(ranges):.3f}, "
              f"mean std over seeds {np.mean(within):.3f}; std of the trials' seed means {np.std(means):.3f}")
