"""Turn BCCD (Pascal VOC, 8-bit RGB JPEG) into the layout `simsearch eval` expects from other
microscopy: single-channel 16-bit TIFFs, a canonical CSV of boxes and train/test lists.

It checks the evaluation on an input unlike BCCD's own (no stain colour, 16 bit, CSV truth).
BCCD_FOLDER is the full dataset (JPEGImages/, Annotations/, ImageSets/Main/{train,test}.txt)
or the bundled sample (images/, annotations/; no lists: use --test-fraction).

    python examples/bccd_to_csv.py ../shared/data/bccd /tmp/bccd-grey
    simsearch eval --images /tmp/bccd-grey/images --truth /tmp/bccd-grey/truth.csv \
        --train-list /tmp/bccd-grey/train.txt --test-list /tmp/bccd-grey/test.txt \
        --classes WBC,Platelets --patch-size WBC=192,Platelets=48 --out /tmp/bccd-grey/eval

With --scales 0.5,1 the images are rescaled by each factor in turn (in file-name order) and
their boxes with them: one cell type at two sizes 2x apart, what a scale pyramid
(`--scales auto`) must serve without losing to one level where the sizes do not differ.

    python examples/bccd_to_csv.py ../shared/data/bccd /tmp/bccd-mixed --scales 0.5,1
"""
import argparse
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from simsearch.io.truth import read_voc_folder


def convert(bccd: Path, out: Path, scales: tuple[float, ...] = (1.0,)) -> int:
    """Write BCCD_FOLDER's images and boxes to `out`; each image (in file-name order) is
    rescaled by the next factor of `scales`. Returns the number of images."""
    full = (bccd / "JPEGImages").is_dir()
    images, annotations = (bccd / "JPEGImages", bccd / "Annotations") if full else (bccd / "images", bccd / "annotations")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = ["image,class,x0,y0,x1,y1"]
    names = set()
    truth = read_voc_folder(annotations)
    factor = {image: scales[i % len(scales)] for i, image in enumerate(sorted({a.image for a in truth}))}
    for annotation in truth:
        name = Path(annotation.image).with_suffix(".tif").name
        scale = factor[annotation.image]
        if name not in names:
            rgb = Image.open(images / annotation.image).convert("RGB")
            if scale != 1.0:
                rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
            grey = np.asarray(rgb, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # luminance: no stain colour
            tifffile.imwrite(out / "images" / name, np.round(grey * 257).astype(np.uint16))
            names.add(name)
        box = [round(v * scale, 1) for v in (annotation.x0, annotation.y0, annotation.x1, annotation.y1)]
        rows.append(",".join([name, annotation.label, *[f"{v:g}" for v in box]]))
    (out / "truth.csv").write_text("\n".join(rows) + "\n")
    for part in ("train", "test") if full else ():
        stems = (bccd / "ImageSets" / "Main" / f"{part}.txt").read_text().split()
        (out / f"{part}.txt").write_text("\n".join(f"{s}.tif" for s in stems if f"{s}.tif" in names) + "\n")
    return len(names)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="BCCD as single-channel 16-bit TIFFs with a CSV of boxes")
    parser.add_argument("bccd", type=Path, help="BCCD_FOLDER: the full dataset or the bundled sample")
    parser.add_argument("out", type=Path, help="OUT_FOLDER: images/, truth.csv and, for the full dataset, train.txt and test.txt")
    parser.add_argument("--scales", default="1", help="rescale the images by these factors in turn, e.g. 0.5,1 (default 1)")
    args = parser.parse_args()
    factors = tuple(float(v) for v in args.scales.split(","))
    print(f"{convert(args.bccd, args.out, factors)} images written to {args.out}")
