"""Write a planted data set of look-alike cells: six round shapes of the same size and
brightness, told apart only by their inner structure, crowded on a noisy background, every
object annotated with its shape. One shape is the class to find, the others its look-alikes
(as in red-cell morphology, where a class is one shape among many similar ones).

The shapes (radius r, random orientation, +-10 % size, +-15 % brightness):
  disc      filled disc
  ring      annulus (a pale centre)
  target    annulus with a central dot (a bullseye)
  ellipse   filled ellipse, axes 1.25 r and 0.8 r
  slit      disc with a dark slit across its centre
  spiky     disc whose edge carries 8 short spikes

    python examples/planted_lookalikes.py /tmp/lookalikes [--images 60] [--bits 16] [--seed 0] [--rare ring=0.02]
    simsearch eval --images /tmp/lookalikes/images --truth /tmp/lookalikes/truth.csv \
        --train-list /tmp/lookalikes/train.txt --test-list /tmp/lookalikes/test.txt \
        --classes ring,ellipse,slit --patch-size 32 --prototypes 5,10 --negatives 5 \
        --strategies similarity,probe,pos+neg+selflearn,supervised --out /tmp/lookalikes/eval

(the run in benchmarks/results/planted-lookalikes-eval/; `target` and `spiky` are easy for
similarity search alone). `--rare ring=0.02` makes one shape rare, as a parasite stage among
red cells: each object is that shape with probability 0.02, the other shapes in turn otherwise
(about one in two images holds one).

Writes OUT/images/*.tif (single channel, 8 or 16 bit), OUT/truth.csv (image,class,x0,y0,x1,y1),
OUT/train.txt and OUT/test.txt (two thirds / one third of the images).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

SHAPES = ("disc", "ring", "target", "ellipse", "slit", "spiky")
SIZE = (384, 384)
RADIUS = 13.0


def _coverage(distance: np.ndarray) -> np.ndarray:
    """Anti-aliased inside-ness of a signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(distance / 0.6, -30, 30)))


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Coverage (0..1) of `shape` of radius `r` at local coordinates (u, v) around its centre."""
    rho = np.hypot(u, v)
    if shape == "disc":
        return _coverage(rho - r)
    if shape == "ring":
        return _coverage(np.abs(rho - 0.68 * r) - 0.32 * r)
    if shape == "target":
        return np.maximum(_coverage(np.abs(rho - 0.72 * r) - 0.28 * r), _coverage(rho - 0.26 * r))
    if shape == "ellipse":
        return _coverage((np.hypot(u / (1.25 * r), v / (0.8 * r)) - 1.0) * r)
    if shape == "slit":
        return _coverage(rho - r) * (1.0 - _coverage(np.maximum(np.abs(v) - 0.12 * r, np.abs(u) - 0.65 * r)))
    if shape == "spiky":
        theta = np.arctan2(v, u)
        return _coverage(rho - r * (0.92 + 0.16 * np.maximum(np.cos(8 * theta), 0) ** 3))
    raise ValueError(f"shape: {shape!r} is not one of {', '.join(SHAPES)}")


def planted_image(seed: int, size=SIZE, objects: int = 28,
                  rare: tuple[str, float] | None = None) -> tuple[np.ndarray, list[tuple[str, float, float, float]]]:
    """One image (float, about 0..1) and its objects as (shape, y, x, radius); `rare`
    (shape, probability): each object is that shape with the probability, the others in turn."""
    rng = np.random.default_rng(seed)
    draws = np.random.default_rng([seed, 1])  # its own stream: the places do not move with `rare`
    others = [shape for shape in SHAPES if rare is None or shape != rare[0]]
    height, width = size
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    image = 0.12 + 0.05 * (yy / height) + 0.03 * (xx / width)  # a gentle illumination gradient
    placed: list[tuple[str, float, float, float]] = []
    for _ in range(objects * 40):
        if len(placed) == objects:
            break
        r = RADIUS * rng.uniform(0.9, 1.1)
        y, x = rng.uniform(r + 2, height - r - 2), rng.uniform(r + 2, width - r - 2)
        if any(np.hypot(y - py, x - px) < r + pr + 4 for _, py, px, pr in placed):
            continue
        common = others[len(placed) % len(others)]
        placed.append((rare[0] if rare is not None and draws.random() < rare[1] else common, y, x, r))
    for shape, y, x, r in placed:
        angle = rng.uniform(0, np.pi)
        y0, y1, x0, x1 = int(y - 2 * r), int(y + 2 * r) + 1, int(x - 2 * r), int(x + 2 * r) + 1
        y0, x0 = max(y0, 0), max(x0, 0)
        dy, dx = yy[y0:y1, x0:x1] - y, xx[y0:y1, x0:x1] - x
        u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
        image[y0:y1, x0:x1] += 0.6 * rng.uniform(0.85, 1.15) * shape_mask(shape, u, v, r)
    image = gaussian_filter(image, 1.0) + rng.normal(0, 0.03, size)
    return np.clip(image, 0, 1), placed


def write(out: Path, images: int = 60, bits: int = 8, seed: int = 0, rare: tuple[str, float] | None = None) -> int:
    """Write the data set into `out`; returns the number of objects."""
    if rare is not None and (rare[0] not in SHAPES or not 0 < rare[1] < 1):
        raise ValueError(f"rare: {rare[0]!r}={rare[1]} is not one of {', '.join(SHAPES)} with a probability in (0, 1)")
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows, names, count = ["image,class,x0,y0,x1,y1"], [], 0
    scale = 255 if bits == 8 else 65535
    for index in range(images):
        image, placed = planted_image(seed * 100_000 + index, rare=rare)
        name = f"cells{index:03d}.tif"
        tifffile.imwrite(out / "images" / name, np.round(image * scale).astype(np.uint8 if bits == 8 else np.uint16))
        names.append(name)
        rows += [f"{name},{shape},{x - r:.1f},{y - r:.1f},{x + r:.1f},{y + r:.1f}" for shape, y, x, r in placed]
        count += len(placed)
    (out / "truth.csv").write_text("\n".join(rows) + "\n")
    cut = 2 * images // 3
    (out / "train.txt").write_text("\n".join(names[:cut]) + "\n")
    (out / "test.txt").write_text("\n".join(names[cut:]) + "\n")
    return count


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--bits", type=int, choices=(8, 16), default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rare", metavar="SHAPE=P", help="one shape rare: each object is it with probability P")
    args = parser.parse_args()
    rare = None
    if args.rare:
        shape, _, share = args.rare.partition("=")
        rare = (shape, float(share))
    print(f"{write(args.out, args.images, args.bits, args.seed, rare)} objects in {args.images} images written to {args.out}")
