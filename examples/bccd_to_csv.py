"""Turn BCCD (Pascal VOC, 8-bit RGB JPEG) into the layout `simsearch eval` expects from other
microscopy: single-channel 16-bit TIFFs, a canonical CSV of boxes and train/test lists.

It checks the evaluation on an input unlike BCCD's own (no stain colour, 16 bit, CSV truth).
BCCD_FOLDER is the full dataset (JPEGImages/, Annotations/, ImageSets/Main/{train,test}.txt)
or the bundled sample (images/, annotations/; no lists: use --test-fraction).

    python examples/bccd_to_csv.py ../shared/data/bccd /tmp/bccd-grey
    simsearch eval --images /tmp/bccd-grey/images --truth /tmp/bccd-grey/truth.csv \
        --train-list /tmp/bccd-grey/train.txt --test-list /tmp/bccd-grey/test.txt \
        --classes WBC,Platelets --patch-size WBC=192,Platelets=48 --out /tmp/bccd-grey/eval
"""
import sys
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from simsearch.io.truth import read_voc_folder


def convert(bccd: Path, out: Path) -> int:
    full = (bccd / "JPEGImages").is_dir()
    images, annotations = (bccd / "JPEGImages", bccd / "Annotations") if full else (bccd / "images", bccd / "annotations")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = ["image,class,x0,y0,x1,y1"]
    names = set()
    for annotation in read_voc_folder(annotations):
        name = Path(annotation.image).with_suffix(".tif").name
        if name not in names:
            rgb = np.asarray(Image.open(images / annotation.image).convert("RGB"), dtype=np.float32)
            grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # luminance: the stain colour is gone
            tifffile.imwrite(out / "images" / name, np.round(grey * 257).astype(np.uint16))
            names.add(name)
        rows.append(f"{name},{annotation.label},{annotation.x0},{annotation.y0},{annotation.x1},{annotation.y1}")
    (out / "truth.csv").write_text("\n".join(rows) + "\n")
    for part in ("train", "test") if full else ():
        stems = (bccd / "ImageSets" / "Main" / f"{part}.txt").read_text().split()
        (out / f"{part}.txt").write_text("\n".join(f"{s}.tif" for s in stems if f"{s}.tif" in names) + "\n")
    return len(names)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python examples/bccd_to_csv.py BCCD_FOLDER OUT_FOLDER")
    print(f"{convert(Path(sys.argv[1]), Path(sys.argv[2]))} images written to {sys.argv[2]}")
