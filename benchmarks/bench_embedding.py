"""Embedding benchmark: the dense path against its floor, the paper's sliding window, and memory.

Three measurements, written to <out>/embedding.json (raw numbers + machine info)
and <out>/embedding.md (a Markdown table to paste in a README):

1. Throughput vs the floor. For N images already in memory, the floor is one
   forward pass of the truncated backbone (`DenseEmbedder._run_network`) per
   image on a prepared (1, 3, H', W') tensor (normalised, resampled to the
   patch's scale, padded to a multiple of 16). The dense path is the full
   `DenseEmbedder.embed(image)`. Both are timed image by image, interleaved, in
   --repeats rounds; the best time per image counts (timeit's convention, as the
   machine may be shared). We report megapixels/s of original pixels
   and embed_time / floor_time (goal <= 1.3) for the chosen patch (scale 1) and
   for a 40 px patch (upsampled x1.6; its floor runs at the upsampled size).
2. Speed-up over the paper's per-patch sliding window (stride 0.1 x patch width,
   context_cells=0, batch 128) against `embed` on the same images (goal >= 100x).
   Each batch of windows is followed by a dense `embed` of its image; the best
   per-window and per-image times count.
   If the windows would take more than ~90 s, a random subset (>= 512) is timed
   and the time extrapolated linearly ("extrapolated": true).
3. Peak memory (ru_maxrss) of a fresh CPU process that reads and embeds one
   synthetic 4096 x 4096 16-bit 3-channel TIFF (goal < 2 GB); the TIFF is
   written by another fresh process, and both start from a tiny launcher so
   that the peak is not inherited from this (larger) process.

Run: `make bench`, i.e. `SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_embedding.py`
(options: --help). Absolute speeds depend on the machine; the ratios are what we report.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simsearch import Dataset, DenseEmbedder, Normalization, PatchGeometry, compute_statistics, load_backbone
from simsearch import read_image, resolve_channels
from simsearch.util.errors import WeightsError
from simsearch.features.embed import _Resampler

REPO = Path(__file__).resolve().parents[1]
SLIDING_BUDGET_S = 90.0


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def floor_tensor(embedder: DenseEmbedder, image: np.ndarray) -> torch.Tensor:
    """The network input the dense path builds: normalised, scaled, padded to 16 (edge replicated)."""
    h, w = embedder.geometry.scaled_size(*image.shape[:2])
    pad = lambda v: math.ceil(v / 16) * 16  # noqa: E731
    region = _Resampler(image, embedder.normalization, embedder.channels, embedder.geometry.scale,
                        embedder.device).region(0, pad(h), 0, pad(w))
    return region[None].to(embedder.device)  # on the device already: the floor is the forward pass alone


def timed(device: torch.device, call, *args) -> float:
    t0 = clock(device)
    call(*args)
    return clock(device) - t0


def bench_throughput(embedder: DenseEmbedder, images: list[np.ndarray], repeats: int) -> dict:
    tensors, dev = [floor_tensor(embedder, im) for im in images], embedder.device
    floor = np.zeros((repeats, len(images)))
    dense = np.zeros_like(floor)
    with torch.inference_mode():
        for image, tensor in zip(images[:2], tensors[:2]):  # warm-up
            embedder._run_network(tensor), embedder.embed(image)
        for r in range(repeats):  # rounds over all images: a burst of load rarely hits every round
            for i, (image, tensor) in enumerate(zip(images, tensors)):
                floor[r, i] = timed(dev, embedder._run_network, tensor)
                dense[r, i] = timed(dev, embedder.embed, image)
    mpix = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    floor_s, dense_s = floor.min(0).sum(), dense.min(0).sum()  # best of the rounds, per image
    g = embedder.geometry
    return {"patch_size": g.patch_size[0], "scale": g.scale, "kernel": list(g.kernel), "images": len(images),
            "repeats": repeats, "megapixels": mpix, "network_input": list(tensors[0].shape[2:]),
            "floor_s": floor_s, "embed_s": dense_s, "floor_mpix_s": mpix / floor_s, "embed_mpix_s": mpix / dense_s,
            "ratio": dense_s / floor_s, "ratio_all_rounds": dense.sum() / floor.sum()}


def window_corners(embedder: DenseEmbedder, image: np.ndarray, stride: int) -> np.ndarray:
    h, w = embedder.geometry.scaled_size(*image.shape[:2])
    kh, kw = (k * 16 for k in embedder.geometry.kernel)
    tops, lefts = np.arange(0, h - kh + 1, stride), np.arange(0, w - kw + 1, stride)
    return np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)


def bench_sliding(embedder: DenseEmbedder, images: list[np.ndarray], batch: int = 128, seed: int = 0) -> dict:
    """Windows go through embed_windows one batch at a time, each batch followed by a dense
    `embed` of the same image, so both see the same load; the best batch and embed times count."""
    g, dev = embedder.geometry, embedder.device
    stride = max(1, round(0.1 * g.patch_size[1] * g.scale))  # paper: 0.1 x patch width (scaled px)
    corners = [window_corners(embedder, im, stride) for im in images]
    total = sum(len(c) for c in corners)
    run = lambda im, tl: embedder.embed_windows(im, tl, context_cells=0, batch_size=batch)  # noqa: E731
    run(images[0], corners[0][:batch])  # warm-up
    pilot = timed(dev, run, images[0], corners[0][:batch]) / min(batch, len(corners[0]))
    subset = pilot * total > SLIDING_BUDGET_S
    rng = np.random.default_rng(seed)
    per_window, dense, timed_windows = [], [], 0
    for image, tl in zip(images, corners):
        if subset:  # about 2/3 of the budget in all, at least 512 windows
            n = min(len(tl), max(math.ceil(512 / len(images)), int(len(tl) * SLIDING_BUDGET_S * 2 / 3 / (pilot * total))))
            tl = tl[rng.choice(len(tl), n, replace=False)]
        image_dense = []
        for start in range(0, len(tl), batch):
            chunk = tl[start : start + batch]
            per_window.append(timed(dev, run, image, chunk) / len(chunk))
            timed_windows += len(chunk)
            image_dense.append(timed(dev, embedder.embed, image))
        dense.append(image_dense)
    sliding_s = min(per_window) * total
    dense_s = sum(min(d) for d in dense)
    window_px = total * g.kernel[0] * g.kernel[1] * 256
    image_px = sum(math.prod(g.scaled_size(*im.shape[:2])) for im in images)
    return {"patch_size": g.patch_size[0], "images": len(images), "stride_px": stride, "batch_size": batch,
            "windows_per_image": total / len(images), "windows_timed": timed_windows, "extrapolated": timed_windows < total,
            "dense_positions_per_image": sum(math.prod(g.grid_shape(*im.shape[:2])) for im in images) / len(images),
            "dense_step_px": g.grid_step, "window_pixels_over_image_pixels": window_px / image_px,
            "sliding_s": sliding_s, "embed_s": dense_s, "speedup": sliding_s / dense_s,
            "sliding_s_median_batch": float(np.median(per_window)) * total,
            "embed_s_median": sum(float(np.median(d)) for d in dense)}


# -- peak memory, in fresh processes ------------------------------------------------------------

def _write_tiff(path: str, size: int = 4096, seed: int = 0) -> dict:
    import tifffile
    import torch.nn.functional as F
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, size // 64, size // 64), dtype=np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    pixels = np.clip(smooth * 40000 + 4000 + rng.normal(0, 800, smooth.shape), 0, 65535).astype(np.uint16)
    tifffile.imwrite(path, pixels)
    lo, hi = np.percentile(pixels[::8, ::8].reshape(-1, 3), [0.5, 99.5], axis=0)
    return {"low": lo.tolist(), "high": hi.tolist()}


def _embed_tiff(path: str, normalization: dict, backbone: str, patch: int) -> dict:
    import resource
    gb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # noqa: E731  (KiB on Linux)
    embedder = DenseEmbedder(load_backbone(backbone), Normalization.from_dict(normalization),
                             PatchGeometry.for_patch(patch), channels=(0, 1, 2), device="cpu")
    baseline = gb()
    t0 = time.perf_counter()
    result = embedder.embed(read_image(path))
    seconds = time.perf_counter() - t0
    peak = gb()
    status = Path("/proc/self/status")  # VmHWM: the same peak from the kernel, as a cross-check
    hwm = next((int(l.split()[1]) / 2**20 for l in status.read_text().splitlines() if l.startswith("VmHWM")), None) \
        if status.is_file() else None
    return {"image": "4096x4096x3 uint16 TIFF", "baseline_gb": baseline, "peak_gb": peak, "increase_gb": peak - baseline,
            "vmhwm_gb": hwm, "units": "GiB (2**30 bytes)", "embed_s": seconds, "grid": list(result.vectors.shape)}


def _in_fresh_python(function: str, *args) -> dict:
    """Run benchmarks/bench_embedding.<function>(*args) in a new interpreter; returns its JSON result.

    Linux carries a parent's peak RSS into ru_maxrss of a process it forks and execs, so the
    child is started by a tiny launcher interpreter: its ru_maxrss then is its own.
    """
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_embedding as b; "
            f"print(json.dumps(b.{function}(*json.loads(sys.argv[1]))))")
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", launcher, sys.executable, "-c", code, json.dumps(args)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{function} failed in its subprocess:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(backbone: str, patch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.tif")
        normalization = _in_fresh_python("_write_tiff", path)
        return _in_fresh_python("_embed_tiff", path, normalization, backbone, patch)


# -- driver ---------------------------------------------------------------------------------

def machine(device: torch.device) -> dict:
    cpu = platform.processor()
    if Path("/proc/cpuinfo").is_file():
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), cpu)
    return {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def markdown(r: dict) -> str:
    m, lines = r["machine"], ["| Measure | Result | Goal |", "|---|---|---|"]
    for t in r["throughput"]:
        lines.append(f"| Dense embed vs backbone floor, patch {t['patch_size']} px (x{t['scale']:g}) | "
                     f"{t['ratio']:.2f}x the floor ({t['embed_mpix_s']:.1f} vs {t['floor_mpix_s']:.1f} MP/s) | <= 1.3 |")
    s = r["sliding"]
    lines.append(f"| Speed-up over per-patch sliding window, patch {s['patch_size']} px, stride {s['stride_px']} px | "
                 f"{s['speedup']:.0f}x ({s['sliding_s'] / s['images']:.1f} s vs {s['embed_s'] / s['images']:.3f} s per image, "
                 f"{s['windows_per_image']:.0f} windows{', extrapolated' if s['extrapolated'] else ''}) | >= 100x |")
    if r.get("memory"):
        k = r["memory"]
        lines.append(f"| Peak memory, one 4096x4096 16-bit RGB TIFF (CPU) | {k['peak_gb']:.2f} GiB "
                     f"(+{k['increase_gb']:.2f} GiB over {k['baseline_gb']:.2f} GiB baseline; {k['embed_s']:.1f} s) | < 2 GB |")
    where = "/".join(Path(r["images_dir"]).parts[-3:])
    lines.append(f"\n{r['backbone']}, {r['throughput'][0]['images']} images from {where}, best of "
                 f"{r['throughput'][0]['repeats']} rounds; {m['device_name']} "
                 f"({m['device']}, {m['torch_threads']} torch threads), torch {m['torch']}, {m['date'][:10]}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    default_images = REPO.parent / "shared/data/bccd/JPEGImages"
    if not default_images.is_dir():
        default_images = REPO / "examples/data/bccd/images"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=default_images)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--backbone", default="efficientnet-lite0", choices=["efficientnet-lite0", "resnet18"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--patch-size", type=int, default=96)
    ap.add_argument("--sliding-images", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the throughput test (best counts)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results")
    args = ap.parse_args()
    os.environ.setdefault("SIMSEARCH_OFFLINE", "1")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU here (use --device cpu or auto)")
    try:
        backbone = load_backbone(args.backbone)
    except WeightsError as exc:
        print(f"SKIP: backbone {args.backbone} is not available here: {exc}")
        return
    dataset = Dataset.open(args.images, verify=False)
    images = [dataset.read(rec) for rec in dataset.images[: args.count]]
    print(f"{len(images)} images from {args.images}, backbone {args.backbone}")
    normalization = compute_statistics(images).normalization
    channels = resolve_channels(dataset.channels)
    make = lambda patch: DenseEmbedder(backbone, normalization, PatchGeometry.for_patch(patch),  # noqa: E731
                                       channels=channels, device=args.device)
    results = {"backbone": args.backbone, "images_dir": str(args.images), "normalization": normalization.to_dict()}
    results["machine"] = machine(make(args.patch_size).device)
    results["throughput"] = []
    for patch in dict.fromkeys([args.patch_size, 40]):
        results["throughput"].append(row := bench_throughput(make(patch), images, args.repeats))
        print(f"throughput patch {patch}: ratio {row['ratio']:.2f} ({row['embed_mpix_s']:.1f} vs {row['floor_mpix_s']:.1f} MP/s)")
    results["sliding"] = s = bench_sliding(make(args.patch_size), images[: args.sliding_images])
    print(f"sliding window: {s['speedup']:.0f}x ({s['windows_per_image']:.0f} windows/image, extrapolated={s['extrapolated']})")
    if not args.skip_memory:
        results["memory"] = k = bench_memory(args.backbone, args.patch_size)
        print(f"memory: peak {k['peak_gb']:.2f} GiB (baseline {k['baseline_gb']:.2f} GiB), {k['embed_s']:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedding.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "embedding.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
