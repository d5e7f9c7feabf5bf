"""Writers for detections and segmentations: CSV, JSON, GeoJSON (QuPath), napari points,
label TIFFs, per-image summaries and overview PNGs. Every file is written atomically."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import tifffile
from PIL import Image, ImageDraw

from simsearch.io.images import image_name
from simsearch.io.tables import write_csv
from simsearch.util.files import atomic_path, write_text_atomic
from simsearch.inference.predict import Detection

DETECTION_COLUMNS = ["image", "class", "x", "y", "confidence", "x0", "y0", "x1", "y1"]
LABEL_TILE = 256  # rows per band and tile side of a slide's label image
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula: a leading =, +, -, @, tab or carriage
    return gets a ' before it (OWASP's advice against CSV injection; class names are the
    user's and image names the file system's)."""
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def safe_name(image_id: str) -> str:
    """A file stem from an image id: the relative path with '/' -> '__', frame N > 0 as
    '_frameN', hash dropped; a '#' of the file's own name stays.

    Examples
    --------
    >>> safe_name("plate1/A01.tif@3f2a9c0d1b2e"), safe_name("stack.tif#2@3f2a9c0d1b2e")
    ('plate1__A01.tif', 'stack.tif_frame2')
    >>> safe_name("cell #3, well B.tif@3f2a9c0d1b2e")
    'cell #3, well B.tif'
    """
    return re.sub(r"#(\d+)$", r"_frame\1", image_name(image_id).replace("/", "__"))


def detections_csv(path: Path, detections: list[Detection], names: dict[str, str]) -> None:
    write_csv(path, DETECTION_COLUMNS, (
        [spreadsheet_safe(names[d.image_id]), spreadsheet_safe(d.class_name), f"{d.x:.2f}", f"{d.y:.2f}",
         f"{d.confidence:.5f}", *(f"{v:.2f}" for v in d.box)] for d in detections))


def detections_json(path: Path, detections: list[Detection], names: dict[str, str]) -> None:
    rows = [{"image": names[d.image_id], "image_id": d.image_id, "class": d.class_name, "x": d.x, "y": d.y,
             "confidence": d.confidence, "box": list(d.box)} for d in detections]
    write_text_atomic(path, json.dumps(rows, indent=1))


def geojson(path: Path, detections: list[Detection], *, boxes: bool = True) -> None:
    """A FeatureCollection in pixel coordinates that QuPath imports as annotations:
    one polygon (box) or point per detection, classification = class name."""
    features = []
    for d in detections:
        if boxes:
            x0, y0, x1, y1 = d.box
            geometry = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
        else:
            geometry = {"type": "Point", "coordinates": [d.x, d.y]}
        features.append({
            "type": "Feature",
            "geometry": geometry,
            "properties": {"objectType": "annotation", "classification": {"name": d.class_name},
                           "name": d.class_name, "measurements": {"confidence": d.confidence}},
        })
    write_text_atomic(path, json.dumps({"type": "FeatureCollection", "features": features}))


def napari_points(path: Path, detections: list[Detection]) -> None:
    """napari's points CSV (index, axis-0 = y, axis-1 = x); class and confidence become features."""
    write_csv(path, ["index", "axis-0", "axis-1", "class", "confidence"], (
        [index, f"{d.y:.2f}", f"{d.x:.2f}", spreadsheet_safe(d.class_name), f"{d.confidence:.5f}"]
        for index, d in enumerate(detections)))


def _label_description(class_names: list[str]) -> str:
    return json.dumps({"labels": {str(i + 1): name for i, name in enumerate(class_names)}, "0": "background"})


def label_tiff(path: Path, labels: np.ndarray, class_names: list[str]) -> None:
    """uint8/uint16 label image: 0 background, i the i-th class (names in the description)."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, labels, description=_label_description(class_names), compression="zlib")


def label_tiff_in_bands(path: Path, shape: tuple[int, int], bands: Iterable[np.ndarray], class_names: list[str]) -> None:
    """A slide's label image (as `label_tiff`) from `bands` of LABEL_TILE rows, top to bottom,
    written as a tiled BigTIFF without ever holding the whole image."""
    height, width = shape
    dtype = np.uint8 if len(class_names) < 255 else np.uint16

    def tiles():
        for band in bands:
            for left in range(0, width, LABEL_TILE):
                tile = np.zeros((LABEL_TILE, LABEL_TILE), dtype)
                part = band[:, left:left + LABEL_TILE]
                tile[: part.shape[0], : part.shape[1]] = part
                yield tile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, tiles(), shape=(height, width), dtype=dtype, tile=(LABEL_TILE, LABEL_TILE),
                         bigtiff=True, description=_label_description(class_names), compression="zlib")


def overview_png(path: Path, rgb01: np.ndarray, detections: list[Detection], class_names: list[str], *,
                 max_side: int = 1024, smaller: float = 1.0) -> None:
    """The (normalised) image with detection boxes drawn in one colour per class; `smaller`:
    how many times smaller `rgb01` is than the image the boxes are given in (a slide's overview)."""
    shrink = min(1.0, max_side / max(rgb01.shape[:2]))  # of rgb01 to the PNG
    scale = shrink / smaller  # of the image the boxes are given in to the PNG
    image = Image.fromarray(np.asarray(np.clip(rgb01, 0, 1) * 255, np.uint8))
    if shrink < 1:
        image = image.resize((round(image.width * shrink), round(image.height * shrink)))
    draw = ImageDraw.Draw(image)
    for d in detections:
        colour = PALETTE[class_names.index(d.class_name) % len(PALETTE)] if d.class_name in class_names else (255, 255, 255)
        draw.rectangle([v * scale for v in d.box], outline=colour, width=2)
    with atomic_path(path) as tmp:
        image.save(tmp)


def summary_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        write_text_atomic(path, "")
        return
    write_csv(path, [spreadsheet_safe(str(key)) for key in rows[0]],  # headers hold class names
              ([spreadsheet_safe(value) if isinstance(value, str) else value for value in row.values()] for row in rows))


def manifest_json(path: Path, manifest: dict) -> None:
    write_text_atomic(path, json.dumps(manifest, indent=2, default=str))
