"""table.py FILE.jsonl ...: one line per (row, strategy, copies, draws per epoch) of ablate.py's
lines: each trial's PR-AUC per training seed, the mean over trials of the trials' seed means,
the std of those seed means over trials, the mean over trials of the std over seeds, and the
largest range over seeds in one trial."""
import collections
import json
import statistics
import sys

runs = collections.defaultdict(lambda: collections.defaultdict(dict))
for path in sys.argv[1:]:
    for line in open(path):
        if line.startswith("{"):
            run = json.loads(line)
            arm = (run.get("row", "rbc"), run["strategy"], run["classifier_copies"], run["epoch_views"])
            runs[arm][run["trial"][-2:]][run["seed"]] = run["pr_auc"]
for arm, trials in runs.items():
    seeds = [list(trials[t].values()) for t in sorted(trials)]
    means = [statistics.mean(s) for s in seeds]
    cells = " | ".join(f"{t}: " + ", ".join(f"{trials[t][s]:.3f}" for s in sorted(trials[t])) for t in sorted(trials))
    print(" ".join(map(str, arm)), "|", cells, f"| mean {statistics.mean(means):.3f}",
          f"trials' std {statistics.pstdev(means):.3f}",
          f"std over seeds {statistics.mean(statistics.pstdev(s) for s in seeds):.3f}",
          f"largest range {max(max(s) - min(s) for s in seeds):.3f}")
