"""Training and inference benchmark on the bundled sample (examples/sample_run.yaml).

1. Training throughput (patches/s) per stage: one epoch of each stage on the curated sample.
2. Inference vs embedding: Predictor.probability_maps against DenseEmbedder.embed on the same
   12 images (goal: at most 1.2x), for the model alone and with a probe trained beside it
   (`TrainSettings.probe_share`: both networks in one pass, sharing their frozen layers).
3. Dense inference against the per-patch sliding window at the paper's stride (0.1 x patch
   width): time per image and agreement of the detections (same class within 3 x stride),
   goal at least 50x faster.
Writes benchmarks/results/training[-DEVICE].json and .md.

    SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_training.py [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import yaml

import simsearch
from simsearch.inference.predict import detections_from_maps
from simsearch.cli.runner import run
from simsearch.training.loop import StageSettings, TrainSettings, iter_train

REPO = Path(__file__).resolve().parents[1]


def clock(device) -> float:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def sliding_maps(predictor, image, stride_px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The paper's way: every window at `stride_px` (scaled px) run alone, then classified."""
    geometry = predictor.embedder.geometry
    height, width = geometry.scaled_size(*image.shape[:2])
    size_h, size_w = (k * 16 for k in geometry.kernel)
    tops = np.arange(0, height - size_h + 1, stride_px)
    lefts = np.arange(0, width - size_w + 1, stride_px)
    corners = np.stack(np.meshgrid(tops, lefts, indexing="ij"), -1).reshape(-1, 2)
    vectors = predictor.embedder.embed_windows(image, corners, context_cells=0, batch_size=128)
    with torch.inference_mode():
        logits = predictor.classifier(torch.from_numpy(vectors).to(predictor.embedder.device))
        probabilities = torch.softmax(logits, -1).cpu().numpy()
    return probabilities.reshape(len(tops), len(lefts), -1), tops, lefts


def inference_seconds(project, images, device) -> tuple[float, float]:
    """Seconds to embed the images with the pretrained network and to run the saved model's
    Predictor over them, each image in turn (after two images of warm-up)."""
    predictor = simsearch.Predictor(project, device=str(device))
    for image in images[:2]:  # warm-up
        predictor.probability_maps(image)
        project.embedder.embed(image)
    embed_s = infer_s = 0.0
    for image in images:
        t0 = clock(device); project.embedder.embed(image); t1 = clock(device)
        predictor.probability_maps(image); t2 = clock(device)
        embed_s += t1 - t0
        infer_s += t2 - t1
    return embed_s, infer_s


def agreement(a, b, radius) -> float:
    """Fraction of detections in `a` with a detection of the same class in `b` within radius."""
    if not a:
        return 1.0
    return float(np.mean([any(d.class_name == e.class_name and np.hypot(d.y - e.y, d.x - e.x) <= radius for e in b) for d in a]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sliding-images", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    device = simsearch.resolve_device(args.device)
    config = yaml.safe_load((REPO / "examples" / "sample_run.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for key in ("dataset", "annotations"):
            config[key] = str(REPO / "examples" / config[key])
        config.update(project=str(tmp / "project"), output=str(tmp / "results"), device=str(device))
        config["training"] = {"preset": "cpu", "selflearn": {"epochs": 1}, "supcon": {"epochs": 1}, "classifier": {"epochs": 5}}
        (tmp / "run.yaml").write_text(yaml.safe_dump(config))
        run(tmp / "run.yaml", say=lambda text: None)
        project = simsearch.Project.open(tmp / "project")
        shutil.rmtree(project.folder / "training")
        settings = TrainSettings.cpu()
        settings = TrainSettings(selflearn=StageSettings(2, 64, 1e-3, 1, 0.5), supcon=StageSettings(2, 32, 1e-3, 1, 0.5),
                                 classifier=settings.classifier, max_noisy=settings.max_noisy)
        rates: dict[str, list[float]] = {}
        for event in iter_train(project, settings, device=str(device)):
            if event.stage != "done" and event.step == event.steps:
                rates.setdefault(event.stage, []).append(event.patches_per_s)
        training = {stage: max(values) for stage, values in rates.items()}

        images = [project.dataset.read(r) for r in project.dataset]
        list(iter_train(project, replace(settings, probe_share=0.5), device=str(device)))
        embed_s, probe_s = inference_seconds(project, images, device)
        list(iter_train(project, settings, device=str(device)))  # the model alone, for the rest
        predictor = simsearch.Predictor(project, device=str(device))
        embed_alone_s, infer_s = inference_seconds(project, images, device)
        embed_s += embed_alone_s

        geometry = project.geometry
        stride = max(1, round(0.1 * geometry.patch_size[1] * geometry.scale))
        radius = 3 * 0.1 * geometry.patch_size[1]
        thresholds = {c.name: c.confidence_threshold for c in simsearch.Curation(project).classes()}
        names = predictor.class_names[:-1]
        dense_s = sliding_s = 0.0
        agree_dense, agree_sliding = [], []
        for record, image in list(zip(project.dataset, images))[: args.sliding_images]:
            t0 = clock(device); dense_maps = predictor.probability_maps(image); t1 = clock(device)
            slide, tops, lefts = sliding_maps(predictor, image, stride); t2 = clock(device)
            dense_s += t1 - t0
            sliding_s += t2 - t1
            dense = detections_from_maps(dense_maps, names, thresholds, geometry, record.id)
            sliding_geometry = simsearch.PatchGeometry(geometry.patch_size, geometry.scale, geometry.kernel, passes=1)
            step = stride / (sliding_geometry.step_scaled)
            spacing = max(1, int(round(0.5 * geometry.patch_size[1] * geometry.scale / stride)) - 1)
            sliding = []
            for index, name in enumerate(names):
                peaks = simsearch.find_peaks(slide[..., index], min_distance=spacing, threshold=thresholds[name])
                ys, xs = sliding_geometry.centre(peaks.rows * step, peaks.cols * step)
                sliding += [simsearch.Detection(record.id, name, y, x, v, (0, 0, 0, 0)) for y, x, v in zip(ys, xs, peaks.values)]
            agree_dense.append(agreement(dense, sliding, radius))
            agree_sliding.append(agreement(sliding, dense, radius))
        project.close()
    result = {
        "device": str(device), "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "training_patches_per_s": training,
        "inference_vs_embedding": 2 * infer_s / embed_s, "embed_s": embed_s / 2, "inference_s": infer_s,
        "inference_with_probe_vs_embedding": 2 * probe_s / embed_s, "inference_with_probe_s": probe_s, "images": len(images),
        "sliding": {"stride_scaled_px": stride, "images": args.sliding_images, "dense_s": dense_s, "sliding_s": sliding_s,
                    "speedup": sliding_s / dense_s, "dense_found_by_sliding": float(np.mean(agree_dense)),
                    "sliding_found_by_dense": float(np.mean(agree_sliding))},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if device.type == "cpu" else "-" + device.type
    (args.out / f"training{suffix}.json").write_text(json.dumps(result, indent=2))
    s = result["sliding"]
    lines = [
        "| Measure | Result | Goal |", "|---|---|---|",
        *(f"| Training throughput, {stage} | {rate:.0f} patches/s | |" for stage, rate in training.items()),
        f"| Inference vs embedding, same {len(images)} images | {result['inference_vs_embedding']:.2f}x | <= 1.2 |",
        f"| Inference with the probe beside the model (probe_share 0.5) vs embedding | "
        f"{result['inference_with_probe_vs_embedding']:.2f}x | |",
        f"| Dense vs per-patch sliding-window inference (stride {s['stride_scaled_px']} px) | {s['speedup']:.0f}x faster; "
        f"{s['dense_found_by_sliding']:.0%} of dense detections matched by sliding, {s['sliding_found_by_dense']:.0%} the other way | >= 50x |",
        f"\nSample data (12 BCCD images, patch 112), EfficientNet-Lite0, {result['device_name']} ({result['threads']} threads).",
    ]
    (args.out / f"training{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
