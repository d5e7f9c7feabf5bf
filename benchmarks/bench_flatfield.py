"""What the flat-field correction costs: embedding with and without it, and computing it.

The same images are embedded by two `DenseEmbedder`s that differ only in the normalisation's
flat field, image by image, interleaved, in --repeats rounds; the best time per image counts
(timeit's convention: the machine may be shared). The ratio of the sums is reported, with the
time `compute_flat_field` takes over the dataset. Written to <out>/flatfield.json.

Run: SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_flatfield.py IMAGES [--patch 40] [--images 12]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from simsearch import Dataset, DenseEmbedder, PatchGeometry, compute_dataset_statistics, compute_flat_field, load_backbone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", help="a folder of images of one size (e.g. grey BCCD: examples/bccd_to_csv.py)")
    parser.add_argument("--patch", type=int, default=40)
    parser.add_argument("--images", dest="count", type=int, default=12, help="images embedded per round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", default="divide", choices=("divide", "subtract"))
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    dataset = Dataset.open(args.images)
    started = time.perf_counter()
    flat = compute_flat_field(dataset, args.mode)
    flat_seconds = time.perf_counter() - started
    plain = compute_dataset_statistics(dataset).normalization
    backbone = load_backbone("efficientnet-lite0")
    geometry = PatchGeometry.for_patch(args.patch, border=True, fill="background")
    channels = tuple(range(min(3, dataset.channels)))
    embedders = {"plain": DenseEmbedder(backbone, plain, geometry, channels=channels, device="cpu"),
                 "flat": DenseEmbedder(backbone, replace(plain, flat_field=flat), geometry, channels=channels, device="cpu")}
    images = [dataset.read(record) for record in dataset.images[:args.count]]
    best = {name: [float("inf")] * len(images) for name in embedders}
    for _ in range(args.repeats):
        for index, image in enumerate(images):
            for name, embedder in embedders.items():
                start = time.perf_counter()
                embedder.embed(image)
                best[name][index] = min(best[name][index], time.perf_counter() - start)
    plain_s, flat_s = sum(best["plain"]), sum(best["flat"])
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "dataset": str(Path(args.images).resolve()),
        "images": len(images), "image_shape": list(images[0].shape), "patch": args.patch, "mode": args.mode,
        "repeats": args.repeats, "embed_plain_s": plain_s, "embed_flat_s": flat_s, "flat_over_plain": flat_s / plain_s,
        "compute_flat_field_s": flat_seconds, "flat_field_images": flat.images, "dataset_images": len(dataset),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "flatfield.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
