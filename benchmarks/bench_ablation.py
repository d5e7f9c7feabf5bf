"""Ablations of the training: the simulated-user evaluation run once per variant of the
training settings, on the same trials, written side by side.

    python benchmarks/bench_ablation.py --out benchmarks/results/bccd-ablation-pooling \\
        --variant learn_pooling=true [--variant negatives_in_classifier=false ...] -- \\
        --images ../shared/data/bccd/JPEGImages --truth ../shared/data/bccd/Annotations \\
        --train-list ../shared/data/bccd/ImageSets/Main/train.txt \\
        --test-list ../shared/data/bccd/ImageSets/Main/test.txt \\
        --classes WBC,RBC,Platelets --patch-size WBC=192,RBC=96,Platelets=48 \\
        --prototypes 10 --negatives 5 --strategies pos+neg+selflearn --repeats 3

Everything after `--` is `simsearch eval`'s arguments (without --out). The default settings
always run too ('default'); each variant's results go to OUT/<variant>/ and the comparison to
OUT/ablation.md. Variants of boolean, integer and float TrainSettings fields only.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from simsearch.cli import build_parser
from simsearch.cli_model import plan_from_args
from simsearch.evaluate.report import evaluate
from simsearch.memory import keep_freed_memory
from simsearch.train.loop import TrainSettings


def parse_variant(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    names = {f.name for f in fields(TrainSettings)}
    if key not in names:
        raise SystemExit(f"--variant {text}: {key!r} is not a training setting ({', '.join(sorted(names))})")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, int(value)
    except ValueError:
        return key, float(value)


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    own = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    own.add_argument("--out", required=True)
    own.add_argument("--variant", action="append", default=[], help="SETTING=VALUE (repeatable)")
    args = own.parse_args(argv[:split])
    out = Path(args.out)
    eval_args = build_parser().parse_args(["eval", *argv[split + 1 :], "--out", str(out / "default")])
    keep_freed_memory()
    base = plan_from_args(eval_args)
    variants = {"default": {}} | {text: dict([parse_variant(text)]) for text in args.variant}
    summary: dict[str, dict[str, list[float]]] = {}
    for name, change in variants.items():
        folder = out / name.replace("=", "-")
        plan = replace(base, out=folder, training=replace(base.training, **change))
        results = evaluate(plan, say=lambda line: print(f"[{name}] {line}", flush=True))
        for row in results["trials"].values():
            if row.get("seed", 0) == 0 and row["strategy"] not in ("similarity", "supervised"):
                key = f"{row['class']} | {row['strategy']} | P{row['prototypes']} N{row['negatives']} | round {row.get('review_round', 0)}"
                summary.setdefault(key, {}).setdefault(name, []).append(row["pr_auc"])
    lines = ["| class | strategy | P N | review round | " + " | ".join(variants) + " |", "|---|---|---|---|" + "---|" * len(variants)]
    for key in sorted(summary):
        cells = [f"{np.mean(v):.3f} ± {np.std(v):.3f}" if (v := summary[key].get(name)) else "" for name in variants]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps({"variants": {k: {a: b for a, b in v.items()} for k, v in variants.items()},
                                                    "pr_auc": summary}, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
