"""Listed items as small pictures, for a user who judges them outside the terminal UI:
`simsearch suggest|review|background ... --tiles DIR` writes DIR/N.png for item N as listed,
so that "flag 7" or "review --reject 3" can be decided by looking (over SSH: copy the folder,
or open it in any image viewer)."""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from simsearch.features.embed import display_rgb
from simsearch.project.project import Project
from simsearch.util.files import atomic_path

TILE_SIDE = 160  # px of a written tile
TILE_COLOUR = (230, 159, 0)  # the box: the UI's first class colour, with a black edge
MAX_TILES = 500  # a list longer than this (a low threshold) has its first ones written
_TILE_NAME = re.compile(r"^\d+\.png$")


def write_tiles(project: Project, items: Sequence, folder: str | Path, *, numbers: Sequence[int] | None = None,
                context: float = 0.5, side: int = TILE_SIDE) -> list[Path]:
    """Each item (anything with `image_id`, `y`, `x` and, in a scale pyramid, `level`:
    suggestions, review items, background candidates) as `folder/N.png`, N its number as
    listed (`numbers`, else 1, 2, ...): its patch with `context` x the patch of surroundings on
    each side, as the UI shows the image (normalised, the channels as RGB), `side` px square,
    the patch drawn as a box. Tiles of an earlier list in the folder (digits.png) are removed
    first; at most `MAX_TILES` are written. Returns the files written, in the items' order.

    Examples
    --------
    >>> suggestions = curation.suggestions("WBC")                                # doctest: +SKIP
    >>> write_tiles(project, suggestions, "wbc-tiles")[:2]                        # doctest: +SKIP
    [PosixPath('wbc-tiles/1.png'), PosixPath('wbc-tiles/2.png')]
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        if _TILE_NAME.match(old.name):
            old.unlink()
    numbered = list(zip(numbers if numbers is not None else range(1, len(items) + 1), items))[:MAX_TILES]
    by_image: dict[str, list] = defaultdict(list)
    for number, item in numbered:
        by_image[item.image_id].append((number, item))
    written: dict[int, Path] = {}
    for image_id, mine in by_image.items():
        image = project.dataset.read(image_id)  # a slide is read region by region, at full resolution
        for number, item in mine:
            height, width = project.geometry_at(getattr(item, "level", 1.0)).patch_size
            tile = _tile(image, project, (item.y, item.x), (height, width), context, side)
            path = folder / f"{number}.png"
            with atomic_path(path) as tmp:
                tile.save(tmp, format="PNG")
            written[number] = path
    return [written[number] for number, _ in numbered]


def _tile(image, project: Project, centre: tuple[float, float], patch: tuple[float, float], context: float,
          side: int) -> Image.Image:
    """The patch around `centre` (y, x) with `context` x its size around it, as the UI shows the
    image, black beyond the image, scaled to `side` px square, the patch's box drawn."""
    (cy, cx), (height, width) = centre, patch
    half = max(height, width) * (0.5 + context)
    top, left = int(np.floor(cy - half)), int(np.floor(cx - half))
    extent = max(1, int(np.ceil(2 * half)))
    rgb = display_rgb(image, project.normalization, project.channels, region=(top, top + extent, left, left + extent))
    crop = (rgb * 255).astype(np.uint8)
    scale = side / extent
    tile = Image.fromarray(crop).resize((side, side), Image.Resampling.NEAREST if scale >= 2 else Image.Resampling.BILINEAR)
    box = [(cx - width / 2 - left) * scale, (cy - height / 2 - top) * scale,
           (cx + width / 2 - left) * scale - 1, (cy + height / 2 - top) * scale - 1]
    draw = ImageDraw.Draw(tile)
    draw.rectangle([box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1], outline=(0, 0, 0), width=1)
    draw.rectangle(box, outline=TILE_COLOUR, width=2)
    return tile
