"""Scale pyramid benchmark: what searching at several object sizes costs.

For one patch size and a few pyramid scale sets (object sizes relative to the patch), embeds the
same images at every level of the set through `Project.embeddings(image_id, scale)` (the path
the similarity search and noisy extraction use) and reports, per set: seconds per image, the
embedding cache's bytes per image, and both as ratios to the most expensive single level of the
set alone (goal: a 3-level pyramid costs < 1.5x its largest level: the levels of larger objects
see reduced images and are cheap). Each image is embedded --repeats times in fresh projects; the
best time counts (the machine may be shared).

Writes <out>/scales.json (raw numbers + machine info) and <out>/scales.md (a Markdown table).

Run: `SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_scales.py [--images DIR] [--count 8]
[--patch 48] [--device cpu]` (default images: BCCD from ../shared, else a planted set).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from simsearch import Dataset, Project

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "data" / "bccd" / "JPEGImages"
SETS = ((1.0,), (0.5,), (2.0,), (0.5, 1.0, 2.0), (0.25, 0.5, 1.0, 2.0, 4.0))  # single levels, then pyramids


def _images(folder: Path | None, count: int, scratch: Path) -> Path:
    """A folder of `count` images: the first of `folder` (or BCCD), else planted particles."""
    source = folder or (BCCD if BCCD.is_dir() else None)
    target = scratch / "images"
    target.mkdir()
    if source is None:
        import subprocess
        import sys

        subprocess.run([sys.executable, str(REPO / "examples" / "planted_particles.py"), str(scratch / "planted"),
                        "--images", str(count)], check=True, capture_output=True)
        source = scratch / "planted" / "images"
    for path in sorted(p for p in source.iterdir() if p.is_file())[:count]:
        shutil.copy(path, target / path.name)
    return target


def _time_set(images: Path, scratch: Path, patch: int, scales: tuple[float, ...], device: str, repeats: int,
              border: bool = True) -> dict:
    """Best seconds per image and cache bytes per image of every level, embedding afresh (with
    the grid reaching the image's edge, or inside it)."""
    dataset = Dataset.open(images)
    per_level = {scale: {"seconds": float("inf"), "bytes": 0} for scale in scales}
    for repeat in range(repeats):
        folder = scratch / f"p{len(list(scratch.iterdir()))}"
        with Project.create(folder, dataset, patch_size=patch, backbone="efficientnet-lite0", scales=list(scales),
                            border=border) as project:
            project.set_device(device)
            for scale in scales:
                seconds, size = 0.0, 0
                for record in dataset:
                    started = time.perf_counter()
                    project.embeddings(record.id, scale)
                    if device == "cuda":
                        torch.cuda.synchronize()
                    seconds += time.perf_counter() - started
                    size += project._cache_path(record.id, scale).stat().st_size
                per_level[scale]["seconds"] = min(per_level[scale]["seconds"], seconds / len(dataset))
                per_level[scale]["bytes"] = size / len(dataset)
                per_level[scale]["geometry"] = project.geometry_at(scale).to_dict()
        shutil.rmtree(folder)
    return per_level


def machine(device: str) -> dict:
    """When and where a benchmark ran: the start of its results file."""
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
            "device": device if device != "cuda" else torch.cuda.get_device_name(0)}


def write_results(out: Path, name: str, result: dict, lines: list[str]) -> None:
    """<out>/<name>.json (the numbers) and <out>/<name>.md (the table), which is printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="scales", help="results file stem (e.g. scales-h200)")
    args = parser.parse_args(argv)
    levels = sorted({scale for scales in SETS for scale in scales})
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        images = _images(args.images, args.count, scratch)
        (scratch / "projects").mkdir()
        measured = _time_set(images, scratch / "projects", args.patch, tuple(levels), args.device, args.repeats)
        size = next(iter(Dataset.open(images)))
    rows = []
    for scales in SETS:
        seconds = sum(measured[s]["seconds"] for s in scales)
        size_bytes = sum(measured[s]["bytes"] for s in scales)
        largest = max(scales, key=lambda s: measured[s]["seconds"])
        rows.append({"scales": list(scales), "seconds_per_image": seconds, "cache_bytes_per_image": size_bytes,
                     "largest_level": largest, "time_vs_largest_level": seconds / measured[largest]["seconds"],
                     "time_vs_patch_level": seconds / measured[1.0]["seconds"]})
    result = {
        **machine(args.device), "patch": args.patch, "images": args.count, "image_size": [size.height, size.width],
        "levels": {str(k): v for k, v in measured.items()}, "sets": rows,
    }
    lines = [f"Scale pyramid cost: patch {args.patch} px, {args.count} images of {size.width}x{size.height} px, "
             f"{result['device']}, {result['date'][:10]} (benchmarks/bench_scales.py)", "",
             "| scales (x the patch) | s per image | cache per image | time vs its largest level | time vs the patch level alone |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {', '.join(f'{v:g}' for v in row['scales'])} | {row['seconds_per_image']:.3f} | "
                     f"{row['cache_bytes_per_image'] / 1e6:.2f} MB | {row['time_vs_largest_level']:.2f}x | "
                     f"{row['time_vs_patch_level']:.2f}x |")
    write_results(args.out, args.name, result, lines)


if __name__ == "__main__":
    main()
