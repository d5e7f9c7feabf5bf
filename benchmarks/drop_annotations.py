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
from pathlib import Path

import numpy as np

from simsearch.io.tables import read_csv_rows, write_csv


def drop_annotations(rows: list[dict], train_images: set[str], label: str, share: float, seed: int = 0) -> list[dict]:
    """`rows` (CSV truth rows: image, class, ...) without `share` of the `label` rows whose image
    is in `train_images` (by relative path, file name or stem, as `simsearch eval` reads its
    lists), drawn at random; every other row kept, in order.

    Examples
    --------
    >>> rows = [{"image": "a.tif", "class": "n"}, {"image": "a.tif", "class": "n"}, {"image": "b.tif", "class": "n"}]
    >>> [row["image"] for row in drop_annotations(rows, {"a"}, "n", 0.5)]
    ['a.tif', 'b.tif']
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share: {share} is not between 0 and 1")
    candidates = [i for i, row in enumerate(rows) if row["class"] == label
                  and not train_images.isdisjoint((row["image"], Path(row["image"]).name, Path(row["image"]).stem))]
    if not candidates:
        raise ValueError(f"no {label!r} annotation lies in an image of the training list")
    rng = np.random.default_rng(seed)
    dropped = set(rng.choice(candidates, round(share * len(candidates)), replace=False).tolist())
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
    header, body = read_csv_rows(args.truth)
    rows = [dict(zip(header, fields)) for _, fields in body]
    train_images = {line.strip() for line in args.train_list.read_text().splitlines() if line.strip() and not line.startswith("#")}
    kept = drop_annotations(rows, train_images, args.label, args.share, args.seed)
    write_csv(args.out, header, [[row[name] for name in header] for row in kept])
    print(f"wrote {args.out}: {len(rows) - len(kept)} of the {args.label} annotations in the training images left out")


if __name__ == "__main__":
    main()
