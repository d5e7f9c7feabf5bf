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
run too ('default', unless --no-default); each variant's results go to OUT/<variant>/ and the comparison to
OUT/ablation.md (every variant folder under OUT, so processes run side by side with
--no-default are summarised together). Variants: boolean, integer and float TrainSettings
fields, and fields of its groups (supcon.lr=1e-4, selflearn.epochs=8, augment.brightness=0).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import numpy as np

from simsearch.cli.main import build_parser
from simsearch.cli.model import plan_from_args
from simsearch.evaluate.report import evaluate
from simsearch.util.memory import keep_freed_memory
from simsearch.training.loop import TrainSettings


def parse_variant(text: str) -> dict:
    """'SETTING=VALUE' or 'GROUP.FIELD=VALUE' (GROUP: selflearn, supcon, classifier, augment)
    -> the TrainSettings fields to replace."""
    key, _, value = text.partition("=")
    group, _, name = key.rpartition(".")
    if value.lower() in ("true", "false"):
        parsed = value.lower() == "true"
    else:
        try:
            parsed = int(value)
        except ValueError:
            parsed = float(value)
    top = {f.name: f for f in fields(TrainSettings)}
    if not group:
        if key not in top or not isinstance(getattr(TrainSettings(), key), (bool, int, float, type(None))):
            raise SystemExit(f"--variant {text}: {key!r} is not a training setting ({', '.join(sorted(top))})")
        return {key: parsed}
    nested = getattr(TrainSettings.cpu(), group, None) if group in top else None
    if nested is None or not is_dataclass(nested) or name not in {f.name for f in fields(nested)}:
        raise SystemExit(f"--variant {text}: {key!r} is not a field of a settings group (e.g. supcon.lr, augment.brightness)")
    return {group: {name: parsed}}


def apply_variant(settings: TrainSettings, change: dict) -> TrainSettings:
    return replace(settings, **{key: replace(getattr(settings, key), **value) if isinstance(value, dict) else value
                                for key, value in change.items()})


def summarise(out: Path) -> list[str]:
    """The table of every variant folder under OUT (default first), from their results.json."""
    folders = sorted((f for f in out.iterdir() if (f / "results.json").is_file()), key=lambda f: (f.name != "default", f.name))
    summary: dict[str, dict[str, list[float]]] = {}
    for folder in folders:
        for row in json.loads((folder / "results.json").read_text())["trials"].values():
            if row.get("seed", 0) == 0 and row["strategy"] != "similarity":  # the baselines train too
                key = f"{row['class']} | {row['strategy']} | P{row['prototypes']} N{row['negatives']} | round {row.get('review_round', 0)}"
                summary.setdefault(key, {}).setdefault(folder.name, []).append(row["pr_auc"])
    names = [f.name for f in folders]
    lines = ["| class | strategy | P N | review round | " + " | ".join(names) + " |", "|---|---|---|---|" + "---|" * len(names)]
    for key in sorted(summary):
        cells = [f"{np.mean(v):.3f} ± {np.std(v):.3f}" if (v := summary[key].get(name)) else "" for name in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation.json").write_text(json.dumps({"variants": names, "pr_auc": summary}, indent=1))
    return lines


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    own = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    own.add_argument("--out", required=True)
    own.add_argument("--variant", action="append", default=[], help="SETTING=VALUE or GROUP.FIELD=VALUE (repeatable)")
    own.add_argument("--no-default", action="store_true", help="run only the variants (another process runs the default)")
    args = own.parse_args(argv[:split])
    out = Path(args.out)
    eval_args = build_parser(["eval"]).parse_args(["eval", *argv[split + 1 :], "--out", str(out / "default")])
    keep_freed_memory()
    base = plan_from_args(eval_args)
    variants = {} if args.no_default else {"default": {}}
    variants |= {text: parse_variant(text) for text in args.variant}
    for name, change in variants.items():
        plan = replace(base, out=out / name.replace("=", "-"), training=apply_variant(base.training, change))
        evaluate(plan, say=lambda line: print(f"[{name}] {line}", flush=True))
    print("\n".join(summarise(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
