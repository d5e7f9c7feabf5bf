"""A copy of a ground truth with a share of one class's annotations left out of the training
images, the test images untouched: an exhaustively annotated set (planted data) made to miss
objects the way BCCD misses red cells, so that what annotation gaps do to training can be
measured where the truth is known.

    python benchmarks/drop_annotations.py /tmp/nuc/truth.csv /tmp/nuc/train.txt nucleus 0.4 \\
        /tmp/nuc/truth-gaps.csv [--seed 0]

Then `simsearch eval --truth /tmp/nuc/truth-gaps.csv ...` with the same images and lists.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def drop_annotations(rows: list[dict], train_images: set[str], label: str, share: float, seed: int = 0) -> list[dict]:
    """`rows` (CSV truth rows: image, class, ...) without `share` of the `label` rows whose image
    is in `train_images`, drawn at random; every other row kept, in order.

    Examples
    --------
    >>> rows = [{"image": "a", "class": "n"}, {"image": "a", "class": "n"}, {"image": "b", "class": "n"}]
    >>> [row["image"] for row in drop_annotations(rows, {"a"}, "n", 0.5)]
    ['a', 'b']
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share: {share} is not between 0 and 1")
    candidates = [i for i, row in enumerate(rows) if row["class"] == label and row["image"] in train_images]
    rng = np.random.default_rng(seed)
    dropped = set(rng.choice(candidates, round(share * len(candidates)), replace=False).tolist()) if candidates else set()
    return [row for i, row in enumerate(rows) if i not in dropped]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("truth", type=Path, help="CSV ground truth (image,class,...)")
    parser.add_argument("train_list", type=Path, help="the training images, one per line")
    parser.add_argument("label", help="the class to thin out")
    parser.add_argument("share", type=float, help="the share of its training annotations to leave out (0-1)")
    parser.add_argument("out", type=Path, help="the CSV to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.truth, newline="") as handle:
        reader = csv.DictReader(handle)
        fieldnames, rows = reader.fieldnames, list(reader)
    train_images = {line.strip() for line in args.train_list.read_text().splitlines() if line.strip()}
    kept = drop_annotations(rows, train_images, args.label, args.share, args.seed)
    with open(args.out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames)
        writer.writeheader()
        writer.writerows(kept)
    print(f"wrote {args.out}: {len(rows) - len(kept)} of the {args.label} annotations in the training images left out")


if __name__ == "__main__":
    main()
