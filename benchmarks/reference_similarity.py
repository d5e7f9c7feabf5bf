"""An independent reference for similarity search, to check `simsearch eval`'s similarity
strategy against on any annotated set (issue 14 reported it 10x below such a reference on an
electron-microscopy set kept outside the project).

The reference is deliberately plain: frozen ImageNet EfficientNet-Lite0 truncated at stride 16
run on the whole image (optionally resampled by --upscale), a k x k Gaussian-pooled vector per
cell, the max cosine similarity to the prototypes (each the vector of the cell nearest its
centre, no rotations, no context handling), local maxima at least `--spacing` + 1 cells apart,
scored with the project's own matching and PR-AUC. It takes the prototypes of an evaluation
trial (its work folder), so both see the same examples:

    simsearch eval ... --strategies similarity --out E
    python benchmarks/reference_similarity.py --images DIR --truth truth.csv --test-list test.txt \\
        --class particle --patch 40 --trial E/work/particle_P5_N0_similarity_r0 [--upscale 1] [--cells 2]

Measured on planted EM-like particles (examples/planted_particles.py, patch 40, P 5, the same
prototypes, 3 repeats), PR-AUC: 512 px images, simsearch 0.383 ± 0.098, reference 0.436 (no
upsampling, 2x2 cells) and 0.302 (x1.6, 4x4 cells); 1024 px images, simsearch 0.680, reference
0.537 and 0.601. The tenfold gap was not reproduced there.
"""
from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from skimage.feature import peak_local_max

from simsearch import Dataset, load_backbone, read_truth
from simsearch.evaluate.metrics import Scored, matching_radius, score_class
from simsearch.features.geometry import gaussian_window


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True)
    parser.add_argument("--truth", required=True)
    parser.add_argument("--test-list", required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--patch", type=int, required=True)
    parser.add_argument("--trial", type=Path, required=True, help="an eval trial's project folder (its prototypes)")
    parser.add_argument("--upscale", type=float, default=1.0)
    parser.add_argument("--cells", type=int, default=0, help="pooling window in cells (default: patch x upscale / 16)")
    parser.add_argument("--spacing", type=int, default=1, help="skimage min_distance between peaks, in cells")
    args = parser.parse_args(argv)
    cells = args.cells or max(1, round(args.patch * args.upscale / 16))
    step = 16 / args.upscale
    dataset = Dataset.open(args.images)
    backbone = load_backbone("efficientnet-lite0")
    # the paper's normalisation, from the images: 0.5th percentile of the 5th, 99.5th of the 95th
    lows, highs = zip(*(np.percentile(dataset.read(r), [5, 95]) for r in dataset))
    low, high = np.percentile(lows, 0.5), np.percentile(highs, 99.5)
    window = torch.tensor(gaussian_window((cells, cells)), dtype=torch.float32)

    @torch.inference_mode()
    def vectors(image_id: str) -> np.ndarray:
        pixels = dataset.read(image_id).astype(np.float32)
        grey = np.clip((pixels.mean(axis=2) - low) / (high - low), 0, 1).astype(np.float32)
        x = torch.from_numpy(grey)[None, None].expand(1, 3, -1, -1).contiguous()
        if args.upscale != 1:
            x = F.interpolate(x, scale_factor=args.upscale, mode="bilinear", align_corners=False)
        features = backbone.network(backbone.normalize_input(x))[0]
        pooled = F.conv2d(features[None], window.expand(features.shape[0], 1, cells, cells), groups=features.shape[0])[0]
        return F.normalize(pooled, dim=0).numpy()

    with sqlite3.connect(args.trial / "store.sqlite") as db:
        boxes = db.execute("SELECT image_id, x0, y0, x1, y1 FROM prototypes").fetchall()
    prototypes = []
    for image_id, x0, y0, x1, y1 in boxes:
        grid = vectors(image_id)
        row = int(np.clip(round((y0 + y1) / 2 / step - cells / 2), 0, grid.shape[1] - 1))
        col = int(np.clip(round((x0 + x1) / 2 / step - cells / 2), 0, grid.shape[2] - 1))
        prototypes.append(grid[:, row, col])
    prototypes = np.stack(prototypes)
    test = set(Path(args.test_list).read_text().split())
    truth = [a for a in read_truth(args.truth) if a.image in test]
    found = []
    for record in dataset:
        if record.relpath not in test and record.path.name not in test:
            continue
        grid = vectors(record.id)
        heat = (prototypes @ grid.reshape(grid.shape[0], -1)).max(axis=0).reshape(grid.shape[1:])
        for row, col in peak_local_max(heat, min_distance=args.spacing, exclude_border=False):
            found.append(Scored(record.path.name, args.label, (row + cells / 2) * step, (col + cells / 2) * step, float(heat[row, col])))
    score = score_class(found, truth, args.label, matching_radius(args.patch))
    print(f"reference (upscale {args.upscale:g}, {cells}x{cells} cells, spacing {args.spacing}): "
          f"PR-AUC {score.pr_auc:.3f}, AP {score.average_precision:.3f}, {score.true_positives}/{score.true_objects} found "
          f"in {score.detections} detections")


if __name__ == "__main__":
    main()
