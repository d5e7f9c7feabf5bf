"""How far the held-out check's warning can be trusted: over every evaluation's results.json
under a folder, each trained trial's check on its held-out curated examples set against its
test result. A trial "lost" where its PR-AUC on the test images is below similarity search's
or the probe's on the same curation (the probe of the same training seed). The check "warned"
where `ClassCheck.verdict` warns (the model's held-out ROC-AUC below the better of the other
two, not all three alike); "alike" where all three agree to two decimals; "above" the rest.

Besides the rule the check applies, a stricter one is measured: warn only where the gap
exceeds z standard errors of the model's ROC-AUC (Hanley and McNeil's, from the held-out
counts), which asks more evidence of a check with few held-out examples.

    python benchmarks/check_warnings.py [benchmarks/results] [--out benchmarks/results/check-warnings.md]
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
from collections import Counter
from pathlib import Path

from simsearch.training.check import ClassCheck

BASELINES = ("similarity", "probe", "supervised", "supervised-probe")


def auc_standard_error(auc: float, positives: int, others: int) -> float:
    """Hanley and McNeil (1982): the standard error of a ROC-AUC from the two sides' counts."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (others - 1) * (q2 - auc * auc)) / (positives * others)
    return math.sqrt(max(variance, 0.0))


def checked_trials(folder: Path) -> list[tuple[str, dict, ClassCheck, bool]]:
    """(results file, trial, its check, lost) of every trained trial with a checked class and both baselines."""
    found = []
    for path in sorted(glob.glob(str(folder / "**" / "results.json"), recursive=True)):
        try:
            trials = json.loads(Path(path).read_text())["trials"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        trials = [t for t in (trials.values() if isinstance(trials, dict) else trials)
                  if not t.get("review_round", 0) and not t.get("joint")]
        similarity = {(t["class"], t["prototypes"], t["repeat"]): t["pr_auc"] for t in trials if t["strategy"] == "similarity"}
        probe = {(t["class"], t["prototypes"], t["negatives"], t["repeat"], t.get("seed", 0)): t["pr_auc"]
                 for t in trials if t["strategy"] == "probe"}
        for trial in trials:
            if trial["strategy"] in BASELINES or not trial.get("check"):
                continue
            check = ClassCheck.from_dict(trial["check"])
            s = similarity.get((trial["class"], trial["prototypes"], trial["repeat"]))
            p = probe.get((trial["class"], trial["prototypes"], trial["negatives"], trial["repeat"], trial.get("seed", 0)))
            if check.checked and check.positives and check.others and s is not None and p is not None:
                found.append((path, trial, check, trial["pr_auc"] < max(s, p)))
    return found


def strict_warning(check: ClassCheck, z: float) -> bool:
    return not check.helps and not check.alike and \
        check.best_other[1] - check.model > z * auc_standard_error(check.model, check.positives, check.others)


def table(rows, label: str) -> list[str]:
    kinds = Counter()
    for _, _, check, lost in rows:
        kind = "alike" if check.alike else ("above" if check.helps else "warned")
        kinds[kind, lost] += 1
    lines = [f"**{label}**: {len(rows)} trained trials, {sum(lost for *_, lost in rows)} of them lost on the test images", "",
             "| the check | trials | lost on the test images | share lost |", "|---|---|---|---|"]
    for kind in ("warned", "above", "alike"):
        total = kinds[kind, True] + kinds[kind, False]
        lines.append(f"| {kind} | {total} | {kinds[kind, True]} | {kinds[kind, True] / max(1, total):.2f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default="benchmarks/results")
    parser.add_argument("--out", default="benchmarks/results/check-warnings.md")
    args = parser.parse_args()
    rows = checked_trials(Path(args.folder))
    seed0 = [row for row in rows if row[1].get("seed", 0) == 0]
    lines = [f"# The held-out check's warning against the test images ({datetime.date.today()}, "
             f"benchmarks/check_warnings.py over {args.folder})", ""]
    lines += table(seed0, "Training seed 0 (one run per curation)")
    lines += table(rows, "Every training seed (--retrain: several runs per curation)")
    lines += ["Stricter rules (seed 0): warn only where the gap exceeds z standard errors of the model's ROC-AUC", "",
              "| rule | warned | lost among them | losses not warned of |", "|---|---|---|---|"]
    losses = sum(lost for *_, lost in seed0)
    for z in (0.0, 0.5, 1.0, 2.0):
        warned = [lost for _, _, check, lost in seed0 if strict_warning(check, z)]
        lines.append(f"| z = {z:g} | {len(warned)} | {sum(warned)} | {losses - sum(warned)} of {losses} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
