"""Real fluorescence nuclei for `simsearch eval`, offline: the 2D nuclei image and its instance
mask that the StarDist wheel ships (`stardist/data/images/img2d.tif`, `mask2d.tif`: one 512 x 512
field from the 2018 Data Science Bowl, Caicedo et al., Nature Methods 16, 2019; the stage-1
images are CC0), cut into TILE x TILE tiles with a CSV of each tile's nucleus boxes and a
train/test split (alternate tiles in a checkerboard).

Nothing is downloaded at run time: fetch the wheel once with pip (it is not installed, only
read as a zip).

    pip download stardist==0.9.2 --no-deps -d /tmp/pkgs
    python benchmarks/dsb_nuclei.py /tmp/pkgs/stardist-0.9.2-*.whl /tmp/dsb
    simsearch eval --images /tmp/dsb/images --truth /tmp/dsb/truth.csv \
        --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt \
        --classes nucleus --patch-size nucleus=32 --out /tmp/dsb/eval

`--invert` stores the images inverted (dark nuclei on a light ground), to measure what the
polarity costs the pretrained features.
"""
import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from skimage.measure import regionprops


def read_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image, instance labels) from the StarDist wheel."""
    with zipfile.ZipFile(wheel) as archive:
        image, mask = (tifffile.imread(io.BytesIO(archive.read(f"stardist/data/images/{name}.tif")))
                       for name in ("img2d", "mask2d"))
    if image.shape != mask.shape:
        raise SystemExit(f"{wheel}: image {image.shape} and mask {mask.shape} differ")
    return image, mask


def write_tiles(image: np.ndarray, mask: np.ndarray, out: Path, tile: int, invert: bool) -> int:
    """Tiles, truth.csv (a box per nucleus part of at least 20 pixels in the tile) and the
    checkerboard split; returns the number of boxes."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, parts, boxes = ["image,class,x0,y0,x1,y1"], {"train": [], "test": []}, 0
    top = int(image.max())
    for i in range(image.shape[0] // tile):
        for j in range(image.shape[1] // tile):
            name = f"dsb_{i}_{j}.tif"
            window = (slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile))
            pixels = image[window]
            tifffile.imwrite(out / "images" / name, (top - pixels if invert else pixels).astype(image.dtype))
            for region in regionprops(mask[window]):
                if region.area >= 20:
                    y0, x0, y1, x1 = region.bbox
                    rows.append(f"{name},nucleus,{x0},{y0},{x1},{y1}")
                    boxes += 1
            parts["train" if (i + j) % 2 == 0 else "test"].append(name)
    (out / "truth.csv").write_text("\n".join(rows) + "\n")
    for part, names in parts.items():
        (out / f"{part}.txt").write_text("\n".join(names) + "\n")
    return boxes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="StarDist's DSB 2018 nuclei image as tiles with a CSV of boxes")
    parser.add_argument("wheel", type=Path, help="the stardist wheel (pip download stardist --no-deps)")
    parser.add_argument("out", type=Path, help="OUT_FOLDER: images/, truth.csv, train.txt, test.txt")
    parser.add_argument("--tile", type=int, default=128, help="tile side in pixels (default 128)")
    parser.add_argument("--invert", action="store_true", help="store the tiles inverted (dark nuclei on light)")
    args = parser.parse_args()
    count = write_tiles(*read_wheel(args.wheel), args.out, args.tile, args.invert)
    print(f"{count} nucleus boxes in {(512 // args.tile) ** 2} tiles written to {args.out}")
