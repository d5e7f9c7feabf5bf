"""What the simulated user handed to training: one row per evaluation trial (its `work/<trial>`
project, or any project) of the class's negatives, then some of its positives and of its clean
background, each shown at twice its box around its centre, its box in yellow and the class's
annotated boxes in green. A negative with a green box around it is an object the user would have
confirmed but the simulation rejected because the annotation has a gap there.

    python benchmarks/show_curation.py EVAL/work/RBC_P10_N5_pos+neg+selflearn_r{0,1,2} \
        --truth ../shared/data/bccd/Annotations --class RBC --out sheet.jpg [--positives 0 --background 0]

(benchmarks/results/issue17-negative-weight/red-cells/unannotated-negatives.jpg is its output.)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from simsearch import Curation, Project, display_rgb, read_truth
from simsearch.io.truth import annotations_by_image

YELLOW, GREEN = (255, 255, 0), (0, 255, 0)
TILE = 160  # px per shown patch on the sheet


def tile(project: Project, record, truth: list, side: float) -> Image.Image:
    """The patch of `record` (box `side` px) with twice its side around it, scaled to TILE px."""
    pixels = project.dataset.read(record.image_id)
    rgb = Image.fromarray((display_rgb(pixels, project.normalization, project.channels) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(rgb)
    for annotation in truth:
        draw.rectangle([annotation.x0, annotation.y0, annotation.x1, annotation.y1], outline=GREEN, width=2)
    half = side / 2
    draw.rectangle([record.x - half, record.y - half, record.x + half, record.y + half], outline=YELLOW, width=2)
    crop = rgb.crop((int(record.x - side), int(record.y - side), int(record.x + side), int(record.y + side)))
    return crop.resize((TILE, TILE))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trials", type=Path, nargs="+", help="trial projects (EVAL/work/<trial>)")
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the sheet (.jpg or .png)")
    parser.add_argument("--positives", type=int, default=3, help="positives per row (default 3)")
    parser.add_argument("--background", type=int, default=3, help="background patches per row (default 3)")
    args = parser.parse_args(argv)
    rows = []
    for folder in args.trials:
        with Project.open(folder, read_only=True) as project:
            truth = [a for a in read_truth(args.truth, images=project.dataset) if a.label == args.label]
            curation = Curation(project)
            by_image = annotations_by_image(truth, project.dataset)
            patch = max(project.geometry_at(1.0).patch_size)
            shown = (curation.negatives(args.label) + curation.positives(args.label)[: args.positives]
                     + curation.clean_background()[: args.background])
            rows.append([tile(project, record, by_image.get(record.image_id, []), patch * record.level) for record in shown])
            print(f"{folder.name}: {len(curation.negatives(args.label))} negatives")
    sheet = Image.new("RGB", (TILE * max(len(row) for row in rows), TILE * len(rows)), "white")
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            sheet.paste(image, (j * TILE, i * TILE))
    sheet.save(args.out)
    print(f"wrote {args.out}: one row per trial, negatives first")


if __name__ == "__main__":
    main()
