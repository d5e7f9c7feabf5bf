"""What reaching the image border would be worth, before building it: writes a copy of an
annotated dataset with every image mirrored outwards by `--pad` px on each side (numpy's
'reflect') and its boxes shifted to match, so that `simsearch eval` on the copy places patch
centres out to the original border (they lie half a patch inside the image) while detections
stay inside the original image. Compare the two evaluations; the difference bounds what a grid
that reaches the border (with mirrored context) would gain. Images are written as TIFF in
their own dtype and channels; list files are rewritten to the new names.

    python benchmarks/border_padded.py --images /tmp/nuclei/images --truth /tmp/nuclei/truth.csv \
        --lists /tmp/nuclei/train.txt /tmp/nuclei/test.txt --pad 16 --out /tmp/nuclei-padded

(`--pad` half the patch reaches the border; benchmarks/results/issue14-border/README.md has
the planted nuclei's figures.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from simsearch import Dataset, read_truth
from simsearch.io.images import read_image
from simsearch.io.tables import write_csv


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, type=Path)
    parser.add_argument("--truth", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--pad", required=True, type=int, help="px mirrored outwards on each side")
    parser.add_argument("--lists", nargs="*", type=Path, default=[], help="train/test lists to rewrite")
    args = parser.parse_args(argv)
    if args.pad < 1:
        parser.error("--pad: at least 1 px")
    truth = read_truth(args.truth)
    names = sorted({record.relpath for record in Dataset.open(args.images).images} | {a.image for a in truth})
    renamed = {name: str(Path(name).with_suffix(".tif")) for name in names}
    for name in names:
        image = np.asarray(read_image(args.images / name))
        if min(image.shape[:2]) <= args.pad:
            raise SystemExit(f"{name}: {image.shape[1]}x{image.shape[0]} px is too small to mirror {args.pad} px")
        target = args.out / "images" / renamed[name]
        target.parent.mkdir(parents=True, exist_ok=True)
        padded = np.pad(image, ((args.pad, args.pad), (args.pad, args.pad), (0, 0)), mode="reflect")
        tifffile.imwrite(target, padded[..., 0] if padded.shape[2] == 1 else padded)
    write_csv(args.out / "truth.csv", ["image", "class", "x0", "y0", "x1", "y1"],
              [(renamed[a.image], a.label, a.x0 + args.pad, a.y0 + args.pad, a.x1 + args.pad, a.y1 + args.pad) for a in truth])
    by_stem = {str(Path(name).with_suffix("")): renamed[name] for name in names}
    for listed in args.lists:
        lines = [line.strip() for line in listed.read_text().splitlines() if line.strip()]
        rewritten = [renamed.get(line) or by_stem.get(line) or by_stem.get(str(Path(line).with_suffix(""))) for line in lines]
        unknown = [line for line, new in zip(lines, rewritten) if new is None]
        if unknown:
            raise SystemExit(f"{listed}: {len(unknown)} name(s) with no image, e.g. {unknown[0]!r}")
        (args.out / listed.name).write_text("\n".join(rewritten) + "\n")
    print(f"{len(names)} image(s), {len(truth)} object(s), mirrored {args.pad} px: {args.out}")


if __name__ == "__main__":
    main()
