"""Find cells similar to a few examples in the bundled BCCD sample, with the public API only.

For each class (white blood cells, red blood cells, platelets) this creates a
project with a patch size that fits the class, embeds every image once (dense,
cached), builds the FAISS index, takes the annotated objects of the first images
as prototypes and asks the index for the most similar distinct patches in the
whole dataset. It prints how many of them fall inside a true box of the class
and writes, per class, a CSV of the hits and a PNG overview:
blue = prototypes, green = hit inside a true box, red = hit outside.

    python examples/find_similar.py --out out/sample
"""
from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import simsearch


HERE = Path(__file__).resolve().parent
# class, patch size (px, about the median object size), prototypes taken from this many images
CLASSES = (("WBC", 192, 2), ("RBC", 96, 1), ("Platelets", 48, 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=HERE / "data" / "bccd" / "images", type=Path)
    parser.add_argument("--annotations", default=HERE / "data" / "bccd" / "annotations", type=Path)
    parser.add_argument("--out", default=Path("out/sample"), type=Path)
    parser.add_argument("--backbone", default="auto")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    truth = simsearch.read_voc_folder(args.annotations)
    rows = []
    for label, patch, prototype_images in CLASSES:
        rows.append(find_class(label, patch, prototype_images, truth, args))
    print(f"\n{'class':<10} {'patch':>5} {'prototypes':>10} {'hits':>5} {'in a true box':>14}")
    for label, patch, n_proto, n_hits, n_true in rows:
        print(f"{label:<10} {patch:>5} {n_proto:>10} {n_hits:>5} {n_true:>7} ({n_true / max(n_hits, 1):.0%})")
    print(f"\nresults in {args.out.resolve()} (CSV and PNG per class; projects in {args.out.resolve() / 'projects'})")


def find_class(label, patch, prototype_images, truth, args):
    folder = args.out / "projects" / f"{label}-{patch}px"
    if (folder / "project.yaml").is_file():
        project = simsearch.Project.open(folder, dataset=args.images)
    else:
        project = simsearch.Project.create(folder, args.images, patch_size=patch, backbone=args.backbone)
    for event in project.iter_embed():
        if event.status == "failed":
            print(f"  could not embed {event.image_id}: {event.message}")
    index = project.build_index()

    objects = [a for a in truth if a.label == label]
    by_name = {record.path.name: record for record in project.dataset}
    first_images = sorted({a.image for a in objects})[:prototype_images]
    prototypes = [a for a in objects if a.image in first_images][:3]
    queries = np.stack([project.patch_vector(by_name[a.image].id, *a.centre) for a in prototypes])
    hits = index.most_similar(queries, k=len(objects), min_distance=patch / 2)

    names = {record.id: record.path.name for record in project.dataset}
    correct = [any(a.image == names[h.image_id] and a.contains(h.y, h.x) for a in objects) for h in hits]
    with open(args.out / f"{label}_hits.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "image", "y", "x", "similarity", "inside_true_box"])
        for rank, (hit, ok) in enumerate(zip(hits, correct), start=1):
            writer.writerow([rank, names[hit.image_id], f"{hit.y:.1f}", f"{hit.x:.1f}", f"{hit.score:.4f}", int(ok)])
    draw_overview(project, hits, correct, prototypes, patch, args.out / f"{label}_hits.png")
    print(f"{label}: {sum(correct)}/{len(hits)} of the most similar patches lie inside a true {label} box")
    return label, patch, len(prototypes), len(hits), sum(correct)


def draw_overview(project, hits, correct, prototypes, patch, path, columns=4, scale=0.5):
    records = list(project.dataset)
    tile_w, tile_h = int(records[0].width * scale), int(records[0].height * scale)
    sheet = Image.new("RGB", (columns * tile_w, -(-len(records) // columns) * tile_h))
    half = patch * scale / 2
    for i, record in enumerate(records):
        pixels = project.dataset.read(record)
        rgb = simsearch.display_rgb(pixels, project.normalization, project.channels)
        thumb = Image.fromarray(np.asarray(rgb * 255, np.uint8))
        thumb = thumb.resize((tile_w, tile_h))
        draw = ImageDraw.Draw(thumb)
        for proto in prototypes:
            if proto.image == record.path.name:
                cy, cx = (v * scale for v in proto.centre)
                draw.rectangle([cx - half, cy - half, cx + half, cy + half], outline=(40, 90, 255), width=3)
        for hit, ok in zip(hits, correct):
            if hit.image_id == record.id:
                cy, cx = hit.y * scale, hit.x * scale
                draw.rectangle([cx - half, cy - half, cx + half, cy + half], outline=(0, 200, 0) if ok else (230, 0, 0), width=2)
        sheet.paste(thumb, ((i % columns) * tile_w, (i // columns) * tile_h))
    sheet.save(path)


if __name__ == "__main__":
    main()
