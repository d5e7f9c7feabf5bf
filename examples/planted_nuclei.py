"""Write a planted data set of fluorescent nuclei, as a nuclear stain (DAPI, Hoechst) shows
them: textured bright ellipses on a dark background, crowded in clumps where they touch, their
brightness spread several-fold (DNA content, focus), a few small and very bright (mitotic), a
few dim and blurred (out of focus), unannotated debris specks, shot and read noise, recorded
as 16-bit with most of the range unused. Every nucleus is annotated with its box, so a
simulated user cannot be misled by gaps in the ground truth.

    python examples/planted_nuclei.py /tmp/nuclei [--images 60] [--seed 0]
    simsearch eval --images /tmp/nuclei/images --truth /tmp/nuclei/truth.csv \
        --train-list /tmp/nuclei/train.txt --test-list /tmp/nuclei/test.txt \
        --classes nucleus --patch-size 32 --prototypes 5,10 --negatives 5 \
        --strategies similarity,probe,pos,pos+neg+selflearn,supervised --out /tmp/nuclei/eval

Writes OUT/images/*.tif (single channel, 16 bit), OUT/truth.csv (image,class,x0,y0,x1,y1),
OUT/train.txt and OUT/test.txt (two thirds / one third of the images).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

from simsearch.io.tables import write_csv

SIZE = (320, 320)
RADIUS = 10.0  # median semi-major axis in px: nuclei about 20 px across, a 32 px patch


def nuclei(rng: np.random.Generator, count: int, shape=SIZE) -> list[dict]:
    """Nuclei placed in clumps (a few parents, children scattered around them), overlapping a
    neighbour by at most a quarter of the smaller one's axis; each a dict with y, x, semi-axes
    a >= b, angle, brightness and kind ('interphase', 'mitotic' or 'blurred')."""
    parents = rng.uniform(0, 1, (max(count // 8, 1), 2)) * np.asarray(shape)
    placed: list[dict] = []
    for _ in range(count * 30):
        if len(placed) == count:
            break
        kind = rng.choice(["interphase", "mitotic", "blurred"], p=[0.82, 0.08, 0.10])
        a = RADIUS * np.exp(rng.normal(0, 0.15)) * (0.6 if kind == "mitotic" else 1.0)
        b = a * rng.uniform(0.65, 1.0)
        near = parents[rng.integers(len(parents))] + rng.normal(0, 28, 2) if rng.uniform() < 0.7 else rng.uniform(0, 1, 2) * np.asarray(shape)
        y, x = float(near[0]), float(near[1])
        if not (0 <= y < shape[0] and 0 <= x < shape[1]):
            continue
        if any(np.hypot(y - n["y"], x - n["x"]) < b + n["b"] - 0.25 * min(b, n["b"]) for n in placed):
            continue
        brightness = float(np.exp(rng.normal(0, 0.45))) * (2.5 if kind == "mitotic" else 0.5 if kind == "blurred" else 1.0)
        placed.append(dict(y=y, x=x, a=float(a), b=float(b), angle=float(rng.uniform(0, np.pi)), brightness=brightness, kind=kind))
    return placed


def render(rng: np.random.Generator, placed: list[dict], debris: int, shape=SIZE) -> np.ndarray:
    """Photo-electrons per pixel (float): background, nuclei with chromatin texture, debris."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    light = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 60)
    light = 40 + 15 * (light - light.mean()) / (light.std() + 1e-6)  # uneven illumination, autofluorescence
    chromatin = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 1.5)
    texture = np.clip(1 + 0.3 * chromatin / chromatin.std(), 0.3, 2.0)
    signal = np.zeros(shape, np.float32)
    for n in placed:
        cos, sin = np.cos(n["angle"]), np.sin(n["angle"])
        u = (xx - n["x"]) * cos + (yy - n["y"]) * sin
        v = -(xx - n["x"]) * sin + (yy - n["y"]) * cos
        rho = np.hypot(u / n["a"], v / n["b"])
        body = 1.0 / (1.0 + np.exp(np.clip((rho - 1.0) * n["b"] / 0.9, -30, 30)))
        nucleus = body * texture * (1 + 0.15 * (1 - rho.clip(0, 1) ** 2))
        if n["kind"] == "blurred":
            nucleus = gaussian_filter(nucleus, 2.5)
        signal += 600 * n["brightness"] * nucleus
    for _ in range(debris):
        y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        signal += 900 * rng.uniform(0.3, 1.5) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * rng.uniform(0.8, 1.8) ** 2))
    return gaussian_filter(signal, 0.8) + np.maximum(light, 5)


def box(n: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a nucleus's rotated ellipse, cut at the image border."""
    cos, sin = np.cos(n["angle"]), np.sin(n["angle"])
    half_x, half_y = np.hypot(n["a"] * cos, n["b"] * sin), np.hypot(n["a"] * sin, n["b"] * cos)
    return max(n["x"] - half_x, 0), max(n["y"] - half_y, 0), min(n["x"] + half_x, SIZE[1]), min(n["y"] + half_y, SIZE[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--per-image", type=int, default=45, help="nuclei tried per image")
    parser.add_argument("--debris", type=int, default=6, help="unannotated bright specks per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows, names = [], []
    for index in range(args.images):
        name = f"nuclei_{index:03d}.tif"
        placed = nuclei(rng, args.per_image)
        electrons = render(rng, placed, args.debris)
        counts = 100 + rng.poisson(electrons) + rng.normal(0, 3, SIZE)  # camera offset, shot and read noise
        tifffile.imwrite(args.out / "images" / name, np.clip(np.round(counts), 0, 65535).astype(np.uint16))
        rows += [(name, "nucleus", *(f"{v:.1f}" for v in box(n))) for n in placed]
        names.append(name)
    write_csv(args.out / "truth.csv", ["image", "class", "x0", "y0", "x1", "y1"], rows)
    cut = len(names) * 2 // 3
    for part, members in (("train", names[:cut]), ("test", names[cut:])):
        (args.out / f"{part}.txt").write_text("\n".join(members) + "\n")
    print(f"{len(names)} images, {len(rows)} nuclei -> {args.out}")


if __name__ == "__main__":
    main()
