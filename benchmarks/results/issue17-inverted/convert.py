"""Grey 16-bit BCCD (examples/bccd_to_csv.py) stored as a 12-bit camera would with a dark offset
of 100 (values 100..3786 in uint16), inverted with --invert (bright cells on a dark ground).
    python convert.py /tmp/bccd16 /tmp/bccd12inv --invert"""
import argparse
from pathlib import Path

import numpy as np
import tifffile

parser = argparse.ArgumentParser()
parser.add_argument("source", type=Path)
parser.add_argument("out", type=Path)
parser.add_argument("--invert", action="store_true")
args = parser.parse_args()
(args.out / "images").mkdir(parents=True, exist_ok=True)
for path in sorted((args.source / "images").glob("*.tif")):
    grey = tifffile.imread(path).astype(np.float32)
    if args.invert:
        grey = 65535 - grey
    tifffile.imwrite(args.out / "images" / path.name, (100 + np.round(grey / 16 * 0.9)).astype(np.uint16))
for name in ("truth.csv", "train.txt", "test.txt"):
    (args.out / name).write_text((args.source / name).read_text())
