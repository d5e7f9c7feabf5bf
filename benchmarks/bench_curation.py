"""Curation latency: a threshold change and a new prototype on 10 displayed images of 2 MP (CPU).

Goals (issue: iterative patch selection): re-thresholding the cached maps under
50 ms; a new prototype (4 rotated embeddings + map update from cached
embeddings + peaks) under 1 s. The images are BCCD images upscaled x2.55 to
1632 x 1224 (2.0 MP); the embeddings are computed first and not timed.
Writes benchmarks/results/curation.json and curation.md.

    SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_curation.py [--patch 96]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import simsearch

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "data" / "bccd"
SAMPLE = REPO / "examples" / "data" / "bccd"
SCALE = 2.55


def timed(call, *args, **kwargs):
    start = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - start, result


def run(patch: int, images: list[Path], truth, folder: Path) -> dict:
    data = folder / f"images-{patch}"
    data.mkdir()
    for path in images:
        with Image.open(path) as image:
            image.resize((round(image.width * SCALE), round(image.height * SCALE)), Image.BILINEAR).save(data / (path.stem + ".png"))
    with simsearch.Project.create(folder / f"proj-{patch}", data, patch_size=patch, backbone="efficientnet-lite0") as project:
        project.choose_displayed(len(images))
        embed_s, _ = timed(lambda: list(project.iter_embed()))
        curation = simsearch.Curation(project)
        curation.add_class("WBC")
        wbcs = [a for a in truth if a.label == "WBC" and a.image in {p.name for p in images}]
        boxes = []
        for a in wbcs[:2]:
            y, x = (v * SCALE for v in a.centre)
            boxes.append((a.image.replace(".jpg", ".png"), (x - patch / 2, y - patch / 2, x + patch / 2, y + patch / 2)))
        curation.add_prototype("WBC", *boxes[0])
        first_s, _ = timed(curation.suggestions, "WBC", 0.5)
        curation.add_prototype("WBC", *boxes[1])
        second_s, _ = timed(curation.suggestions, "WBC", 0.5)
        thresholds = np.linspace(0.3, 0.9, 25)[::-1]  # from few suggestions to many
        runs = [timed(curation.suggestions, "WBC", float(t)) for t in thresholds]
        threshold_s = [seconds for seconds, _ in runs]
        slowest = int(np.argmax(threshold_s))
        grid = project.embeddings(project.displayed[0]).grid_shape
        return {
            "patch": patch, "images": len(images), "image_size": [round(480 * SCALE), round(640 * SCALE)],
            "grid_per_image": list(grid), "embed_all_s": embed_s,
            "first_prototype_s": first_s, "second_prototype_s": second_s,
            "threshold_change_median_ms": 1000 * statistics.median(threshold_s),
            "threshold_change_max_ms": 1000 * max(threshold_s),
            "slowest_threshold": float(thresholds[slowest]),
            "suggestions_at_slowest": len(runs[slowest][1]),
            "suggestions_per_threshold": {f"{t:.3f}": len(found) for t, (_, found) in zip(thresholds, runs)},
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patches", type=int, nargs="+", default=[96, 40])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    root = BCCD if (BCCD / "JPEGImages").is_dir() else None
    if root:
        images = sorted((root / "JPEGImages").glob("*.jpg"))[:10]
        truth = simsearch.read_voc_folder(root / "Annotations")
    else:
        images = sorted((SAMPLE / "images").glob("*.jpg"))[:10]
        truth = simsearch.read_voc_folder(SAMPLE / "annotations")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for patch in args.patches:
            rows.append(run(patch, images, truth, Path(tmp)))
            print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
    (args.out / "curation.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    lines = ["| patch | grid per image | threshold change, median / max (suggestions at the max) | first prototype | another prototype |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['patch']} px | {r['grid_per_image'][0]} x {r['grid_per_image'][1]} | "
                     f"{r['threshold_change_median_ms']:.1f} / {r['threshold_change_max_ms']:.1f} ms "
                     f"({r['suggestions_at_slowest']} at {r['slowest_threshold']:.2f}) | "
                     f"{r['first_prototype_s']:.2f} s | {r['second_prototype_s']:.2f} s |")
    lines.append(f"\n10 displayed images of {rows[0]['image_size'][1]} x {rows[0]['image_size'][0]} px (2.0 MP), CPU "
                 f"({machine['threads']} threads), EfficientNet-Lite0; goals: < 50 ms and < 1 s.")
    (args.out / "curation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
