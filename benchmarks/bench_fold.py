"""Batch norm folded into the convolutions (features/fold.py) against the network as loaded:
dense embedding time and the difference in the vectors, measured in one run.

The same generated images (textured RGB, 1-4 MP, as bench_pipeline.py) are embedded by one
`DenseEmbedder` whose network is swapped between the folded copy (the default) and the
network as loaded, alternately, `--repeats` times each; the best time per variant counts
(the machine may be shared). Reported: MP/s of image pixels for each, their ratio, and the
smallest cosine between the two variants' vectors of the same patch.

Writes <out>/<name>.json and .md. Run:
`.venv/bin/python benchmarks/bench_fold.py --images 6 --device cpu --name fold-cpu`
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from bench_pipeline import write_images
from simsearch import Dataset, DenseEmbedder, PatchGeometry, compute_dataset_statistics, load_backbone

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="fold-cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pixels = write_images(Path(tmp) / "images", args.images)
        dataset = Dataset.open(Path(tmp) / "images")
        images = [dataset.read(record) for record in dataset]
        normalization = compute_dataset_statistics(dataset).normalization
    backbone = load_backbone("efficientnet-lite0")
    embedder = DenseEmbedder(backbone, normalization, PatchGeometry.for_patch(args.patch), channels=(0, 1, 2), device=args.device)
    variants = {"folded": embedder._network, "as loaded": backbone.network}
    best = {name: float("inf") for name in variants}
    vectors = {}
    for _ in range(args.repeats):
        for name, network in variants.items():
            embedder._network = network
            if args.device != "cpu":
                torch.cuda.synchronize()
            started = time.perf_counter()
            vectors[name] = [embedder.embed(image).vectors for image in images]
            if args.device != "cpu":
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - started)
    cosine = min(float((a * b).sum(axis=-1).min()) for a, b in zip(vectors["folded"], vectors["as loaded"]))
    megapixels = pixels / 1e6
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
              "device": args.device, "torch_threads": torch.get_num_threads(), "patch": args.patch, "images": args.images,
              "megapixels": megapixels, "seconds": best, "mp_per_s": {k: megapixels / v for k, v in best.items()},
              "speedup": best["as loaded"] / best["folded"], "min_cosine": cosine}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    text = (f"Batch norm folded into the convolutions, dense embedding of {args.images} generated images "
            f"({megapixels:.1f} MP, patch {args.patch}), {args.device} ({result['torch_threads']} torch threads), "
            f"{result['date'][:10]} (benchmarks/bench_fold.py, best of {args.repeats}, alternating)\n\n"
            "| network | seconds | MP/s |\n|---|---|---|\n"
            + "".join(f"| {name} | {best[name]:.1f} | {megapixels / best[name]:.2f} |\n" for name in variants)
            + f"\nFolded: {result['speedup']:.2f}x faster; the smallest cosine between the two variants' vectors of the "
            f"same patch is {cosine:.6f}.\n")
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
