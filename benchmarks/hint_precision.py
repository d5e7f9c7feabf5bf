"""How often the terminal UI's hint labels (`f`) land on an annotated object: for each set,
the `top` strongest blobs of each of its first `images` images (as `find_blobs` ranks them for
the hints: 200 found, the strongest labelled first), the share whose centre lies in a truth box.
Annotations that leave objects out (BCCD's red cells) make the share a lower bound.

    python benchmarks/hint_precision.py IMAGES_GLOB:TRUTH_CSV ... [--images 10] [--top 26]
        [--out benchmarks/results/hint-precision.md]

TRUTH_CSV: image,class,x0,y0,x1,y1 (as `examples/bccd_to_csv.py` and the planted sets write).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import glob
from pathlib import Path

import numpy as np

from simsearch import find_blobs, read_image


def share_on_objects(pattern: str, truth_csv: str, images: int, top: int) -> tuple[int, int]:
    """(blobs on an annotated object, blobs) over the first `images` images of `pattern`."""
    boxes: dict[str, list[list[float]]] = {}
    with open(truth_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(Path(row["image"]).name, []).append([float(row[k]) for k in ("x0", "y0", "x1", "y1")])
    hits = total = 0
    for path in sorted(glob.glob(pattern))[:images]:
        image = np.asarray(read_image(path))
        blobs = find_blobs(image, count=200, min_size=8)
        for y, x in list(zip(blobs.ys, blobs.xs))[:top]:
            total += 1
            hits += any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in boxes.get(Path(path).name, []))
    return hits, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", metavar="IMAGES_GLOB:TRUTH_CSV")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--top", type=int, default=26, help="labels a hint screen shows at most (26 letters)")
    parser.add_argument("--out", default="benchmarks/results/hint-precision.md")
    args = parser.parse_args()
    lines = [f"Hint labels on annotated objects: the {args.top} strongest blobs of the first {args.images} images, "
             f"{datetime.date.today()} (benchmarks/hint_precision.py)", "", "| set | on an object | blobs | share |",
             "|---|---|---|---|"]
    for item in args.sets:
        pattern, truth = item.rsplit(":", 1)
        hits, total = share_on_objects(pattern, truth, args.images, args.top)
        lines.append(f"| {pattern} | {hits} | {total} | {hits / max(total, 1):.3f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
