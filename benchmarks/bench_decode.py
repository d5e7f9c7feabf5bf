"""Image decoding in threads: does each decoder SimSearch reads with release the GIL, so that
`Project.read_ahead`'s threads (not processes) keep a GPU fed? Generated 1-4 MP images
(`bench_pipeline.write_images`) as JPEG, PNG, zlib TIFF and LZW TIFF are decoded by
`Dataset.read` in 1 thread and in N threads (default: every core); best of `--repeats`.

Writes <out>/<name>.json and <out>/<name>.md. Run:
`.venv/bin/python benchmarks/bench_decode.py --name decode-threads-cpu`
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from bench_pipeline import REPO, write_images
from simsearch import Dataset

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "TIFF, zlib": "-zlib.tif", "TIFF, LZW": "-lzw.tif"}


def write_formats(generated: Path, folder: Path, count: int) -> None:
    """`count` generated images, in every format of FORMATS into `folder`."""
    write_images(generated, count)
    folder.mkdir()
    for index, path in enumerate(sorted(generated.iterdir())):
        pixels = tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))
        Image.fromarray(pixels).save(folder / f"img{index:03d}.jpg", quality=90)
        Image.fromarray(pixels).save(folder / f"img{index:03d}.png")
        tifffile.imwrite(folder / f"img{index:03d}-zlib.tif", pixels, compression="zlib")
        tifffile.imwrite(folder / f"img{index:03d}-lzw.tif", pixels, compression="lzw")


def seconds_decoding(dataset: Dataset, records: list, threads: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(dataset.read, records))
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="generated images per format (default 8)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="decode-threads-cpu")
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        write_formats(Path(tmp) / "generated", folder, args.images)
        dataset = Dataset.open(folder)
        for name, ending in FORMATS.items():
            records = [record for record in dataset if record.relpath.endswith(ending)]
            megapixels = sum(record.height * record.width for record in records) / 1e6
            one, many = (seconds_decoding(dataset, records, threads, args.repeats) for threads in (1, args.threads))
            rows[name] = {"megapixels": megapixels, "mp_per_s_1": megapixels / one, "mp_per_s_n": megapixels / many,
                          "speedup": one / many}
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "cores": os.cpu_count(), "threads": args.threads, "images_per_format": args.images, "formats": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    lines = [f"Decoding by `Dataset.read` in threads: {args.images} generated 1-4 MP RGB images per format, "
             f"{result['cores']} cores, {result['date'][:10]} (benchmarks/bench_decode.py, best of {args.repeats})", "",
             f"| format | 1 thread, MP/s | {args.threads} threads, MP/s | speed-up |", "|---|---|---|---|",
             *[f"| {name} | {row['mp_per_s_1']:.0f} | {row['mp_per_s_n']:.0f} | {row['speedup']:.2f}x |" for name, row in rows.items()]]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
