"""Write a planted data set of particles of many sizes, as in electron micrographs of
nanoparticles: dark round particles (a faint bright fringe at their edge) on a grainy
background with slowly varying illumination, every particle annotated with its box.

By default the diameters follow a log-normal law like an EM set's (median 45 px, 5th to 95th
percentile about 12 to 170 px); `--diameters 16,32,64` plants only those sizes instead
(each equally often), for tests of scale.

    python examples/planted_particles.py /tmp/particles [--images 40] [--bits 8] [--seed 0]
    simsearch eval --images /tmp/particles/images --truth /tmp/particles/truth.csv \
        --train-list /tmp/particles/train.txt --test-list /tmp/particles/test.txt \
        --classes particle --patch-size 40 --prototypes 5 --negatives 0 \
        --strategies similarity --repeats 3 --out /tmp/particles/eval

Writes OUT/images/*.tif (single channel, 8 or 16 bit), OUT/truth.csv (image,class,x0,y0,x1,y1),
OUT/train.txt and OUT/test.txt (two thirds / one third of the images).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

def diameters(rng: np.random.Generator, count: int, fixed: list[float] | None) -> np.ndarray:
    """`count` particle diameters in px: from `fixed` (equally often) or log-normal."""
    if fixed:
        return rng.choice(np.asarray(fixed, float), count)
    return np.clip(np.exp(rng.normal(np.log(45.0), 0.8, count)), 10.0, 180.0)


def place(rng: np.random.Generator, sizes: np.ndarray, shape: tuple[int, int], tries: int = 200) -> list[tuple[float, float, float]]:
    """(y, x, diameter) of particles placed at random, largest first, overlapping another by at
    most a fifth of the smaller diameter; a particle with no room after `tries` is dropped."""
    placed: list[tuple[float, float, float]] = []
    for diameter in sorted(sizes, reverse=True):
        radius = diameter / 2
        for _ in range(tries):
            y, x = rng.uniform(radius * 0.6, shape[0] - radius * 0.6), rng.uniform(radius * 0.6, shape[1] - radius * 0.6)
            if all(np.hypot(y - py, x - px) >= radius + pd / 2 - 0.2 * min(diameter, pd) for py, px, pd in placed):
                placed.append((y, x, float(diameter)))
                break
    return placed


def render(rng: np.random.Generator, particles: list[tuple[float, float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Float image in [0, 1]: bright background, dark particles with a bright edge fringe."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    illumination = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 80)
    image = 0.62 + 0.08 * illumination / (np.abs(illumination).max() + 1e-6)
    for y, x, diameter in particles:
        radius = diameter / 2 * rng.uniform(0.9, 1.1)
        aspect = rng.uniform(0.85, 1.15)
        angle = rng.uniform(0, np.pi)
        u = (xx - x) * np.cos(angle) + (yy - y) * np.sin(angle)
        v = (-(xx - x) * np.sin(angle) + (yy - y) * np.cos(angle)) * aspect
        distance = np.hypot(u, v) - radius
        inside = 1.0 / (1.0 + np.exp(np.clip(distance / 0.8, -30, 30)))
        fringe = np.exp(-0.5 * ((distance - 1.5) / 1.2) ** 2)
        image = image * (1 - inside * rng.uniform(0.45, 0.65)) + 0.08 * fringe
    grain = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 1.0)
    return np.clip(image + 0.07 * grain / grain.std(), 0, 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--per-image", type=int, default=25, help="particles tried per image")
    parser.add_argument("--diameters", default="", help="e.g. 16,32,64: only these sizes (default: log-normal)")
    parser.add_argument("--size", type=int, default=512, help="image side in px")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=8)
    parser.add_argument("--exposure-spread", type=float, default=1.0,
                        help="F > 1: each image recorded with its own gain, from 1/F to 1 of the range (log-uniform), "
                             "and its own offset, as micrographs taken at different doses (default 1: all alike)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fixed = [float(v) for v in args.diameters.split(",") if v.strip()]
    rng = np.random.default_rng(args.seed)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows, names = ["image,class,x0,y0,x1,y1"], []
    peak = 255 if args.bits == 8 else 65535
    for index in range(args.images):
        name = f"particles_{index:03d}.tif"
        shape = (args.size, args.size)
        particles = place(rng, diameters(rng, args.per_image, fixed), shape)
        image = render(rng, particles, shape)
        if args.exposure_spread > 1:  # drawn from its own stream: the same particles whatever the spread
            exposure = np.random.default_rng([args.seed, index])
            gain = args.exposure_spread ** -exposure.uniform(0, 1)
            image = exposure.uniform(0, 1 - gain) + gain * image
        tifffile.imwrite(args.out / "images" / name, np.round(image * peak).astype(np.uint8 if args.bits == 8 else np.uint16))
        for y, x, diameter in particles:
            half = diameter / 2
            rows.append(f"{name},particle,{x - half:.1f},{y - half:.1f},{x + half:.1f},{y + half:.1f}")
        names.append(name)
    (args.out / "truth.csv").write_text("\n".join(rows) + "\n")
    cut = len(names) * 2 // 3
    (args.out / "train.txt").write_text("\n".join(names[:cut]) + "\n")
    (args.out / "test.txt").write_text("\n".join(names[cut:]) + "\n")
    print(f"{len(names)} images, {len(rows) - 1} particles -> {args.out}")


if __name__ == "__main__":
    main()
