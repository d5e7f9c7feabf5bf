"""Write a planted data set of a stained thin blood smear in brightfield, as malaria smears show
it: crowded pink red cells with a central pallor, a few infected by a small ring-stage parasite
(a dark chromatin dot and a thin blue ring, anywhere inside the cell, in several forms), rare
crescent gametocytes, a few leukocytes, and unannotated platelets that lie between the cells or
on top of one (the classic look-alike of an infected cell). The class differs from its
look-alikes by colour and inner texture, not by outline; its members vary more than the cells
around them; the stain and the light vary from image to image. RGB, 8-bit JPEG.

Rendered in optical density: each object adds its stain's absorbance, the light passes through
(Beer-Lambert), then vignetting, a blur, noise and JPEG compression.

    python examples/planted_smear.py /tmp/smear [--images 60] [--seed 0]
    simsearch eval --images /tmp/smear/images --truth /tmp/smear/truth.csv \
        --train-list /tmp/smear/train.txt --test-list /tmp/smear/test.txt \
        --classes infected,gametocyte --prototypes 5 --negatives 5 \
        --strategies similarity,probe,pos+neg+selflearn,supervised --out /tmp/smear/eval

Classes in OUT/truth.csv (image,class,x0,y0,x1,y1): `rbc` (uninfected red cells), `infected`
(the box of the infected red cell, as malaria sets box a trophozoite's host cell), `gametocyte`
and `leukocyte`. Writes OUT/images/*.jpg, OUT/train.txt and OUT/test.txt (two thirds / one
third of the images).
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from simsearch.io.tables import write_csv

SIZE = (384, 384)
RADIUS = 13.0  # median red-cell radius in px
# absorbance per unit thickness in (R, G, B): what each stained structure takes out of the light
RED_CELL = np.array([0.10, 0.42, 0.28])  # eosin-pink haemoglobin
CHROMATIN = np.array([0.95, 1.40, 0.55])  # dark purple-red
CYTOPLASM = np.array([0.55, 0.60, 0.18])  # Giemsa blue
PIGMENT = np.array([0.70, 0.80, 0.95])  # brown-black haemozoin
PLATELET = np.array([0.55, 0.85, 0.30])  # purple granules
NUCLEUS = np.array([0.85, 1.10, 0.35])  # leukocyte nucleus
PLASMA = np.array([0.015, 0.04, 0.03])


def _inside(distance: np.ndarray, soft: float = 0.7) -> np.ndarray:
    """Anti-aliased inside-ness of a signed distance (negative inside)."""
    return 1.0 / (1.0 + np.exp(np.clip(distance / soft, -30, 30)))


def _blob(dy: np.ndarray, dx: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-(dy**2 + dx**2) / (2 * radius**2))


def place_cells(rng: np.random.Generator, count: int, shape=SIZE) -> list[dict]:
    """Red cells over the whole image, touching or overlapping a neighbour by at most a tenth of
    their radii; each a dict with y, x, semi-axes a >= b and angle."""
    placed: list[dict] = []
    for _ in range(count * 40):
        if len(placed) == count:
            break
        a = RADIUS * np.exp(rng.normal(0, 0.08))
        b = a * rng.uniform(0.88, 1.0)
        y, x = rng.uniform(-0.5 * b, shape[0] + 0.5 * b), rng.uniform(-0.5 * b, shape[1] + 0.5 * b)
        if any(np.hypot(y - c["y"], x - c["x"]) < 0.9 * (b + c["b"]) for c in placed):
            continue
        placed.append(dict(y=float(y), x=float(x), a=float(a), b=float(b), angle=float(rng.uniform(0, np.pi))))
    return placed


def _local(cell: dict, yy: np.ndarray, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cos, sin = np.cos(cell["angle"]), np.sin(cell["angle"])
    return (xx - cell["x"]) * cos + (yy - cell["y"]) * sin, -(xx - cell["x"]) * sin + (yy - cell["y"]) * cos


def red_cell(cell: dict, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) absorbance of a biconcave red cell: thinner in its pale centre."""
    u, v = _local(cell, yy, xx)
    rho = np.hypot(u / cell["a"], v / cell["b"])
    thickness = _inside((rho - 1.0) * cell["b"]) * (1.0 - 0.5 * np.exp(-((rho / 0.45) ** 2)))
    return thickness[..., None] * RED_CELL * rng.uniform(0.85, 1.15)


def parasite(cell: dict, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) absorbance of a ring-stage parasite somewhere in `cell`: a ring with one
    chromatin dot, a ring with two (a 'headphone'), or a larger amoeboid form with pigment."""
    angle, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.55) * cell["b"]
    cy, cx = cell["y"] + reach * np.sin(angle), cell["x"] + reach * np.cos(angle)
    dy, dx = yy - cy, xx - cx
    form = rng.choice(["ring", "headphone", "amoeboid"], p=[0.5, 0.2, 0.3])
    ring_radius = rng.uniform(2.5, 4.5)
    if form == "amoeboid":
        theta = np.arctan2(dy, dx)
        edge = ring_radius * 1.3 * (1 + 0.25 * np.sin(3 * theta + rng.uniform(0, 6)))
        absorbance = _inside(np.hypot(dy, dx) - edge)[..., None] * CYTOPLASM * 0.8
        for _ in range(rng.integers(1, 4)):
            py, px = rng.normal(0, ring_radius * 0.5, 2)
            absorbance += _blob(dy - py, dx - px, 0.9)[..., None] * PIGMENT * 0.8
    else:
        absorbance = _inside(np.abs(np.hypot(dy, dx) - ring_radius) - 0.6, 0.5)[..., None] * CYTOPLASM
    dots = 2 if form == "headphone" else 1
    start = rng.uniform(0, 2 * np.pi)
    for k in range(dots):
        at = start + k * np.pi
        dot = _blob(dy - ring_radius * np.sin(at), dx - ring_radius * np.cos(at), rng.uniform(1.1, 1.7))
        absorbance += dot[..., None] * CHROMATIN
    return absorbance


def gametocyte(y: float, x: float, angle: float, yy: np.ndarray, xx: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(h, w, 3) absorbance of a crescent gametocyte centred at (y, x), and its half-length."""
    half, width, bend = RADIUS * rng.uniform(1.1, 1.35), RADIUS * rng.uniform(0.32, 0.42), rng.uniform(0.1, 0.3)
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = (xx - x) * cos + (yy - y) * sin, -(xx - x) * sin + (yy - y) * cos
    v = v + bend * half * (1 - (u / half) ** 2)  # a banana: the axis curves
    body = _inside((np.hypot(u / half, v / width) - 1.0) * width)
    absorbance = body[..., None] * CYTOPLASM * rng.uniform(0.9, 1.2)
    for _ in range(rng.integers(3, 8)):  # pigment granules near the middle
        pu, pv = rng.normal(0, 0.25 * half), rng.normal(0, 0.2 * width)
        gy, gx = y + pu * sin + pv * cos, x + pu * cos - pv * sin
        absorbance += _blob(yy - gy, xx - gx, 0.9)[..., None] * PIGMENT * 0.7
    return absorbance, half


def leukocyte(y: float, x: float, yy: np.ndarray, xx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(h, w, 3) absorbance of a leukocyte: pale cytoplasm, a large lobed purple nucleus."""
    radius = RADIUS * rng.uniform(1.3, 1.6)
    dy, dx = yy - y, xx - x
    absorbance = _inside(np.hypot(dy, dx) - radius)[..., None] * CYTOPLASM * 0.25
    for _ in range(rng.integers(1, 4)):
        ly, lx = rng.normal(0, 0.25 * radius, 2)
        absorbance += _inside(np.hypot(dy - ly, dx - lx) - radius * rng.uniform(0.35, 0.55))[..., None] * NUCLEUS * 0.6
    return absorbance, radius


def _square(cell: dict, half: float) -> tuple[float, float, float, float]:
    return cell["x"] - half, cell["y"] - half, cell["x"] + half, cell["y"] + half


def smear(rng: np.random.Generator, infected: float, gametocytes: float, shape=SIZE) -> tuple[np.ndarray, list[tuple]]:
    """One RGB image (uint8) and its objects as (class, x0, y0, x1, y1)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    absorbance = np.broadcast_to(PLASMA, (*shape, 3)).copy()
    cells = place_cells(rng, 110, shape)
    objects = []
    for cell in cells[: rng.poisson(gametocytes)]:  # a gametocyte takes a cell's place (it lives in one)
        part, half = gametocyte(cell["y"], cell["x"], cell["angle"], yy, xx, rng)
        absorbance += part
        objects.append(("gametocyte", *_square(cell, half)))
        cell["taken"] = True
    for cell in cells:
        if cell.get("taken"):
            continue
        if rng.uniform() < 0.012:
            part, radius = leukocyte(cell["y"], cell["x"], yy, xx, rng)
            absorbance += part
            objects.append(("leukocyte", *_square(cell, radius)))
            continue
        absorbance += red_cell(cell, yy, xx, rng)
        label = "infected" if rng.uniform() < infected else "rbc"
        if label == "infected":
            absorbance += parasite(cell, yy, xx, rng)
        half_x = np.hypot(cell["a"] * np.cos(cell["angle"]), cell["b"] * np.sin(cell["angle"]))
        half_y = np.hypot(cell["a"] * np.sin(cell["angle"]), cell["b"] * np.cos(cell["angle"]))
        objects.append((label, cell["x"] - half_x, cell["y"] - half_y, cell["x"] + half_x, cell["y"] + half_y))
    for _ in range(rng.poisson(6)):  # platelets, unannotated: in a gap or on a cell
        if rng.uniform() < 0.3:
            on = cells[rng.integers(len(cells))]
            y, x = on["y"] + rng.normal(0, 4), on["x"] + rng.normal(0, 4)
        else:
            y, x = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        for _ in range(rng.integers(2, 5)):
            granule = _blob(yy - y - rng.normal(0, 1.5), xx - x - rng.normal(0, 1.5), rng.uniform(0.9, 1.6))
            absorbance += granule[..., None] * PLATELET * 0.7
    stain = rng.uniform(0.8, 1.2) * rng.uniform(0.92, 1.08, 3)  # this slide's stain: strength and hue
    off_centre = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2  # vignetting; and a white balance below
    light = rng.uniform(0.94, 1.0, 3) * (1 - 0.12 * off_centre[..., None] / (shape[0] * shape[1] / 2))
    rgb = light * np.exp(-gaussian_filter(absorbance * stain, (0.7, 0.7, 0)))
    rgb = np.clip(rgb + rng.normal(0, 0.012, rgb.shape), 0, 1)
    inside = [(label, max(x0, 0.0), max(y0, 0.0), min(x1, shape[1]), min(y1, shape[0]))
              for label, x0, y0, x1, y1 in objects]
    return np.round(rgb * 255).astype(np.uint8), [o for o in inside if o[3] - o[1] > 4 and o[4] - o[2] > 4]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--infected", type=float, default=0.03, help="share of red cells infected")
    parser.add_argument("--gametocytes", type=float, default=0.6, help="mean gametocytes per image")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    rows, names = [], []
    for index in range(args.images):
        name = f"smear_{index:03d}.jpg"
        pixels, objects = smear(rng, args.infected, args.gametocytes)
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, format="JPEG", quality=90)
        (args.out / "images" / name).write_bytes(encoded.getvalue())
        rows += [(name, label, *(f"{v:.1f}" for v in box)) for label, *box in objects]
        names.append(name)
    write_csv(args.out / "truth.csv", ["image", "class", "x0", "y0", "x1", "y1"], rows)
    cut = len(names) * 2 // 3
    for part, members in (("train", names[:cut]), ("test", names[cut:])):
        (args.out / f"{part}.txt").write_text("\n".join(members) + "\n")
    counts = {label: sum(row[1] == label for row in rows) for label in ("rbc", "infected", "gametocyte", "leukocyte")}
    print(f"{len(names)} images, {', '.join(f'{n} {label}' for label, n in counts.items())} -> {args.out}")


if __name__ == "__main__":
    main()
