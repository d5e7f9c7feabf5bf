"""Peak memory and time of a whole slide: a generated SIDE x SIDE pyramidal OME-TIFF (grey uint8,
zlib tiles, levels down to about 1,000 px) embedded and processed with a trained model, each
step a fresh process whose peak resident memory is read from the kernel (`wait4`).

The slide holds bright discs (about 180 px across) on a noisy background on a jittered lattice;
a model is first trained on a small project of 1,024 px crops drawn by the same generator
(one prototype, the suggestions above a similarity, proposed background, the fast CPU
settings). Then, each in its own process:

1. `Project.create` on the slide (normalisation from its overview) and `iter_embed`: the
   slide's embeddings cached band by band;
2. `iter_process` with the trained model and `write_results` (detections, QuPath GeoJSON,
   overview PNG): detections in full-resolution pixels, checked against the planted discs.

Target (issue 15): peak RSS under 2 GB for a 40,000 x 40,000 slide on the CPU. Writes
<out>/<name>.json and .md.

    .venv/bin/python benchmarks/bench_slide.py --side 40000 --patch 256 --name slide-cpu
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
SPACING, RADIUS, TILE = 600, 90, 512


def centres(side: int) -> np.ndarray:
    """(N, 2) disc centres (y, x) in full-resolution pixels: a lattice with seeded jitter."""
    nodes = np.arange(SPACING // 2, side - SPACING // 2 + 1, SPACING)
    yy, xx = np.meshgrid(nodes, nodes, indexing="ij")
    jitter = np.random.default_rng(7).integers(-120, 121, (yy.size, 2))
    return np.stack([yy.ravel(), xx.ravel()], axis=1) + jitter


def render(top: int, left: int, height: int, width: int, factor: int, discs: np.ndarray) -> np.ndarray:
    """Pixels [top:top+height, left:left+width] of the slide's level `factor` (1: full resolution)."""
    ys = (np.arange(top, top + height) * factor)[:, None]
    xs = (np.arange(left, left + width) * factor)[None, :]
    rng = np.random.default_rng(top * 100_003 + left * 7 + factor)
    image = rng.normal(40, 8, (height, width))
    near = discs[(discs[:, 0] > ys.min() - 2 * RADIUS) & (discs[:, 0] < ys.max() + 2 * RADIUS)
                 & (discs[:, 1] > xs.min() - 2 * RADIUS) & (discs[:, 1] < xs.max() + 2 * RADIUS)]
    for cy, cx in near:
        image[(ys - cy) ** 2 + (xs - cx) ** 2 <= RADIUS**2] = 180
    return np.clip(image, 0, 255).astype(np.uint8)


def write_slide(path: Path, side: int, height: int | None = None, smallest: int = 1000) -> None:
    """The pyramidal OME-TIFF (side wide, `height` tall, default square), written tile by tile
    (never whole); levels halve while the smaller side stays at least `smallest` px."""
    height = side if height is None else height
    discs = centres(side)
    factors = [1]
    while min(side, height) // (factors[-1] * 2) >= smallest:
        factors.append(factors[-1] * 2)

    def tiles(factor: int):
        rows, cols = -(-height // factor), -(-side // factor)
        for top in range(0, rows, TILE):
            for left in range(0, cols, TILE):
                tile = np.zeros((TILE, TILE), np.uint8)
                part = render(top, left, min(TILE, rows - top), min(TILE, cols - left), factor, discs)
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile

    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        for index, factor in enumerate(factors):
            options = {"subifds": len(factors) - 1} if index == 0 else {"subfiletype": 1}
            tif.write(tiles(factor), shape=(-(-height // factor), -(-side // factor)), dtype=np.uint8,
                      tile=(TILE, TILE), compression="zlib", **options)


def train_small_project(folder: Path, patch: int) -> None:
    """A model for the slide: trained on 6 crops of 1,024 px from the same generator."""
    from simsearch import Curation, Project, TrainSettings, train

    images = folder / "crops"
    images.mkdir(parents=True)
    discs = centres(4000)
    for index in range(6):
        top, left = divmod(index, 3)
        tifffile.imwrite(images / f"crop{index}.tif", render(top * 1024, left * 1024, 1024, 1024, 1, discs))
    with Project.create(folder / "project", images, patch_size=patch, backbone="efficientnet-lite0", displayed=3) as project:
        project.set_device("cpu")
        curation = Curation(project)
        curation.add_class("disc")
        first = project.displayed[0]
        index = int(first.split("crop")[1].split(".")[0])
        top, left = divmod(index, 3)
        inside = [(y - top * 1024, x - left * 1024) for y, x in discs
                  if RADIUS < y - top * 1024 < 1024 - RADIUS and RADIUS < x - left * 1024 < 1024 - RADIUS]
        y, x = inside[0]
        curation.add_prototype("disc", first, (x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS))
        suggestions = curation.suggestions("disc", threshold=-1.0)
        curation.confirm_class("disc", threshold=suggestions[min(5, len(suggestions) - 1)].similarity)
        curation.propose_background(count=5)
        curation.confirm_background()
        list(curation.iter_noisy(background_per_image=3))
        train(project, TrainSettings.cpu(), device="cpu")


def embed_slide(slides: Path, project: Path, patch: int) -> dict:
    from simsearch import Project

    started = time.perf_counter()
    with Project.create(project, slides, patch_size=patch, backbone="efficientnet-lite0") as slide_project:
        slide_project.set_device("cpu")
        created = time.perf_counter()
        events = list(slide_project.iter_embed())
        vectors = slide_project.embeddings(slide_project.dataset.images[0].id).vectors
    return {"create_s": round(created - started, 1), "embed_s": round(time.perf_counter() - created, 1),
            "status": [e.status for e in events], "grid": list(vectors.shape)}


def process_slide(slides: Path, trained: Path, out: Path, side: int) -> dict:
    from simsearch import Dataset, Project, iter_process, write_results

    started = time.perf_counter()
    with Project.open(trained) as project:
        dataset = Dataset.open(slides)
        events = list(iter_process(project, out, images=dataset, device="cpu"))
        processed = time.perf_counter()
        manifest = write_results(project, out, images=dataset, thresholds={"disc": 0.5})
    found = json.loads((out / "detections.json").read_text())
    discs = centres(side)
    hits = 0
    for detection in found:
        distance = np.hypot(discs[:, 0] - detection["y"], discs[:, 1] - detection["x"]).min()
        hits += distance <= RADIUS
    return {"process_s": round(processed - started, 1), "write_results_s": round(time.perf_counter() - processed, 1),
            "status": [e.status for e in events], "detections": manifest["detections"], "discs": len(discs),
            "detections_on_a_disc": int(hits)}


def run_stage(stage: str, *args: str, script: str = __file__) -> tuple[dict, int, float]:
    """(result, peak RSS bytes, seconds) of one stage of `script` (this benchmark's by default),
    run as `script --stage STAGE ARGS` in a fresh process that prints its result as JSON last."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, script, "--stage", stage, *args], cwd=REPO,
                               env={**os.environ, "SIMSEARCH_OFFLINE": "1"}, stdout=subprocess.PIPE)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {stage} failed")
    return json.loads(output.decode().strip().splitlines()[-1]), usage.ru_maxrss * 1024, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=40_000)
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="slide-cpu")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        import simsearch

        simsearch.keep_freed_memory()  # as the simsearch command does
        paths = [Path(p) for p in args.paths]
        if args.stage == "write":
            write_slide(paths[0], args.side)
            result = {"bytes": paths[0].stat().st_size}
        elif args.stage == "train":
            train_small_project(paths[0], args.patch)
            result = {}
        elif args.stage == "embed":
            result = embed_slide(paths[0], paths[1], args.patch)
        else:
            result = process_slide(paths[0], paths[1], paths[2], args.side)
        print(json.dumps(result))
        return
    common = ["--side", str(args.side), "--patch", str(args.patch)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "slides").mkdir()
        written, write_rss, write_s = run_stage("write", *common, str(tmp / "slides" / "slide.ome.tif"))
        _, train_rss, train_s = run_stage("train", *common, str(tmp / "small"))
        embedded, embed_rss, _ = run_stage("embed", *common, str(tmp / "slides"), str(tmp / "slide-project"))
        processed, process_rss, _ = run_stage("process", *common, str(tmp / "slides"), str(tmp / "small" / "project"), str(tmp / "results"))
    result = {"date": datetime.date.today().isoformat(), "side": args.side, "patch": args.patch,
              "file_bytes": written["bytes"], "write_s": round(write_s, 1), "train_small_s": round(train_s, 1),
              "embed": {**embedded, "peak_rss_bytes": embed_rss}, "process": {**processed, "peak_rss_bytes": process_rss},
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    megapixels = args.side**2 / 1e6
    text = (
        f"# A whole slide on the CPU ({result['date']})\n\n"
        f"A generated {args.side:,} x {args.side:,} pyramidal OME-TIFF ({megapixels:,.0f} MP, grey uint8, zlib tiles, "
        f"{written['bytes'] / 1e9:.2f} GB on disk), patch {args.patch} px, {result['cores']} cores, no GPU; each step a "
        "fresh process, peak resident memory from the kernel:\n\n"
        "| step | seconds | peak RSS |\n|---|---|---|\n"
        f"| create the project (normalisation from the overview) + embed (grid {embedded['grid'][0]} x {embedded['grid'][1]}) "
        f"| {embedded['create_s']} + {embedded['embed_s']} | {embed_rss / 1e9:.2f} GB |\n"
        f"| process with a trained model + write results | {processed['process_s']} + {processed['write_results_s']} "
        f"| {process_rss / 1e9:.2f} GB |\n\n"
        f"Embedding {megapixels / embedded['embed_s']:.1f} MP/s of slide pixels. Target: under 2 GB for both. "
        f"Detections: {processed['detections']} for {processed['discs']} planted discs, "
        f"{processed['detections_on_a_disc']} of them within a disc radius of one (full-resolution coordinates). "
        "About 1.0 GB of each peak is the process with torch (the CUDA build) and the backbone loaded, before any image.\n")
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
