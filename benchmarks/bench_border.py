"""What the border grid costs: embedding time and cache size per image with the patch grid
reaching a quarter patch beyond the image (the default, `PatchGeometry(border=True)`) against
the grid inside the image (`--no-border`), for a few patch sizes. The margin adds positions on
every side, more for large patches on small images, which the network sees too.

Writes <out>/<name>.json (raw numbers + machine info) and <out>/<name>.md (a Markdown table).

Run: `SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_border.py [--images DIR] [--count 8]
[--patches 32,48,96,192] [--device cpu]` (default images: BCCD from ../shared, else planted particles).
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from bench_scales import REPO, _images, _time_set, machine, write_results
from simsearch import Dataset, PatchGeometry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--patches", default="32,48,96,192")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="border", help="results file stem (e.g. border-h200)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        images = _images(args.images, args.count, scratch)
        (scratch / "projects").mkdir()
        size = next(iter(Dataset.open(images)))
        for patch in (int(v) for v in args.patches.split(",")):
            measured = {border: _time_set(images, scratch / "projects", patch, (1.0,), args.device, args.repeats, border)[1.0]
                        for border in (False, True)}
            positions = {border: math.prod(PatchGeometry.for_patch(patch, border=border).grid_shape(size.height, size.width))
                         for border in (False, True)}
            rows.append({"patch": patch, "inside": measured[False], "border": measured[True], "positions": positions,
                         "time_ratio": measured[True]["seconds"] / measured[False]["seconds"],
                         "cache_ratio": measured[True]["bytes"] / measured[False]["bytes"]})
    result = {
        **machine(args.device), "images": args.count, "image_size": [size.height, size.width],
        "rows": [{**row, "positions": {str(k): v for k, v in row["positions"].items()}} for row in rows],
    }
    lines = [f"Border grid cost: {args.count} images of {size.width}x{size.height} px, {result['device']}, "
             f"{result['date'][:10]} (benchmarks/bench_border.py)", "",
             "| patch | positions inside / border | s per image inside / border | time ratio | cache ratio |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['patch']} | {row['positions'][False]} / {row['positions'][True]} | "
                     f"{row['inside']['seconds']:.3f} / {row['border']['seconds']:.3f} | {row['time_ratio']:.2f}x | "
                     f"{row['cache_ratio']:.2f}x |")
    write_results(args.out, args.name, result, lines)


if __name__ == "__main__":
    main()
