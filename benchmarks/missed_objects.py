"""Which objects a trained model never finds: predicts test images with a trained project (an
evaluation trial's `work/<trial>` folder, or any project) and reports the fraction of a class's
objects with no detection within the matching radius (0.3 x the patch), by the distance to the
object's nearest neighbour, its distance to the image border and its box side (each in
patches). A recall that
stops short of 1 at every threshold shows here as misses: crowding (neighbours closer than the
peak spacing), the border (patch centres lie half a patch inside the image), or small objects.

    python benchmarks/missed_objects.py EVAL/work/nucleus_P0_N0_supervised_r0 \
        --images /tmp/nuclei/images --truth /tmp/nuclei/truth.csv --test-list /tmp/nuclei/test.txt \
        --class nucleus [--limit 8]

(benchmarks/results/issue17-off-centre/README.md quotes its output on planted nuclei.)
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from simsearch import Project, object_side, read_truth
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.io.images import read_image


def bands(values: np.ndarray, missed: np.ndarray, edges: tuple[float, ...]) -> list[str]:
    lines, low = [], -np.inf
    for high in (*edges, np.inf):
        inside = (values >= low) & (values < high)
        if inside.any():
            lines.append(f"  [{low:g}, {high:g}): {inside.sum()} objects, {missed[inside].mean():.2f} missed")
        low = high
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--test-list", type=Path, required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--limit", type=int, default=8, help="test images predicted (the first N of the list)")
    args = parser.parse_args(argv)
    objects = defaultdict(list)
    for annotation in read_truth(args.truth):
        if annotation.label == args.label:
            side = object_side(annotation.y1 - annotation.y0, annotation.x1 - annotation.x0)
            objects[Path(annotation.image).stem].append((*annotation.centre, side))
    names = [line.strip() for line in args.test_list.read_text().splitlines() if line.strip()][: args.limit]
    with Project.open(args.project, read_only=True) as project:
        predictor = Predictor(project, device="cpu")
        classes = predictor.class_names[:-1]
        radius = 0.3 * project.geometry.patch_size[1]
        rows = []
        for name in names:
            path = args.images / name
            image = read_image(path if path.exists() else next(args.images.glob(f"{name}.*")))  # VOC lists omit the suffix
            found = [d for d in detections_from_levels(predictor.level_maps(image), classes, dict.fromkeys(classes, 0.0), name)
                     if d.class_name == args.label]
            truth = np.asarray(objects[Path(name).stem], np.float64).reshape(-1, 3)
            if not len(truth):
                continue
            nearest_detection = cKDTree([(d.y, d.x) for d in found]).query(truth[:, :2])[0] if found else np.full(len(truth), np.inf)
            neighbour = cKDTree(truth[:, :2]).query(truth[:, :2], 2)[0][:, 1] if len(truth) > 1 else np.full(len(truth), np.inf)
            height, width = image.shape[:2]
            border = np.minimum.reduce([truth[:, 0], truth[:, 1], height - truth[:, 0], width - truth[:, 1]])
            rows += list(zip(nearest_detection, neighbour, border, truth[:, 2]))
            print(f"{name}: {len(found)} detections, {len(truth)} objects, {(nearest_detection < radius).sum()} found")
    table = np.asarray(rows)
    missed = table[:, 0] >= radius
    print(f"missed {missed.mean():.3f} of {len(table)} objects (radius {radius:g} px)")
    patch = project.geometry.patch_size[1]
    for title, column, edges in (("nearest neighbour", 1, (0.45, 0.55, 0.7, 0.95)), ("distance to the border", 2, (0.25, 0.5, 0.75)),
                                 ("box side", 3, (0.4, 0.5, 0.65, 1.0, 1.5))):
        print(f"{title} (x the {patch} px patch)")
        print("\n".join(bands(table[:, column] / patch, missed, edges)))


if __name__ == "__main__":
    main()
