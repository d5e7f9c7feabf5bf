"""Ground-truth annotations: canonical CSV (centres or boxes), Pascal VOC, COCO JSON and
instance-label images. Malformed input is an error naming the file (and line)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from skimage.measure import label as measure_label
from skimage.measure import regionprops

from simsearch.util.errors import DatasetError
from simsearch.io.images import SUPPORTED_SUFFIXES, read_image
from simsearch.io.tables import read_csv_rows

CENTRE_COLUMNS = ["image", "class", "x", "y"]
BOX_COLUMNS = ["image", "class", "x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class Annotation:
    """One object: its image (path relative to the images folder, or file name), class and
    box (x0, y0, x1, y1) in pixels; objects given as centres have a zero-size box.

    Examples
    --------
    >>> from simsearch import Annotation
    >>> cell = Annotation("slide1.png", "RBC", x0=10, y0=20, x1=50, y1=60)
    >>> cell.centre                                 # (y, x)
    (40.0, 30.0)
    >>> cell.contains(40, 30), cell.contains(40, 55)    # (y, x) inside the box or not
    (True, False)
    """

    image: str
    label: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def centre(self) -> tuple[float, float]:
        """(y, x)"""
        return (self.y0 + self.y1) / 2, (self.x0 + self.x1) / 2

    def contains(self, y: float, x: float) -> bool:
        return self.y0 <= y <= self.y1 and self.x0 <= x <= self.x1


def read_truth(path: str | Path, *, label: str = "object") -> list[Annotation]:
    """Any supported ground truth, by what `path` is: a .csv file, a .json (COCO) file, a
    folder of VOC .xml files, or a folder of instance-label images (class `label`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from simsearch import read_truth
    >>> tmp = tempfile.TemporaryDirectory()
    >>> centres = pathlib.Path(tmp.name, "truth.csv")           # or x0,y0,x1,y1 columns for boxes
    >>> _ = centres.write_text("image,class,x,y\\nslide1.png,RBC,30.5,40\\n")
    >>> read_truth(centres)
    [Annotation(image='slide1.png', label='RBC', x0=30.5, y0=40.0, x1=30.5, y1=40.0)]
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"ground truth '{path}' does not exist")
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_csv(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return read_coco(path)
    if path.is_dir() and any(path.glob("*.xml")):
        return read_voc_folder(path)
    if path.is_dir():
        return read_instance_labels(path, label=label)
    raise DatasetError(f"ground truth '{path}': expected a .csv, a COCO .json, a folder of VOC .xml or of label images")


def read_csv(path: str | Path) -> list[Annotation]:
    """Header image,class,x,y (centres) or image,class,x0,y0,x1,y1 (boxes)."""
    path = Path(path)
    header, rows = read_csv_rows(path)
    if header not in (CENTRE_COLUMNS, BOX_COLUMNS):
        raise DatasetError(f"{path}: header must be {','.join(CENTRE_COLUMNS)} or {','.join(BOX_COLUMNS)}, got {','.join(header)}")
    annotations = []
    for line, row in rows:
        image, label = row[0].strip(), row[1].strip()
        try:
            numbers = [float(v) for v in row[2:]]
        except ValueError:
            raise DatasetError(f"{path} line {line}: coordinates must be numbers, got {row[2:]}") from None
        if not image or not label or not all(np.isfinite(numbers)):
            raise DatasetError(f"{path} line {line}: empty image or class, or a non-finite coordinate")
        if len(numbers) == 2:
            x, y = numbers
            annotations.append(Annotation(image, label, x, y, x, y))
        else:
            x0, y0, x1, y1 = numbers
            if x1 < x0 or y1 < y0:
                raise DatasetError(f"{path} line {line}: box has x1 < x0 or y1 < y0")
            annotations.append(Annotation(image, label, x0, y0, x1, y1))
    return annotations


def read_voc_folder(folder: str | Path) -> list[Annotation]:
    """Every object of every Pascal VOC .xml file in a folder; errors name the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from simsearch import read_voc_folder
    >>> voc = ("<annotation><filename>BloodImage_00001.jpg</filename><object><name>WBC</name><bndbox>"
    ...        "<xmin>68</xmin><ymin>315</ymin><xmax>286</xmax><ymax>480</ymax></bndbox></object></annotation>")
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = pathlib.Path(tmp.name, "BloodImage_00001.xml").write_text(voc)
    >>> read_voc_folder(tmp.name)
    [Annotation(image='BloodImage_00001.jpg', label='WBC', x0=68.0, y0=315.0, x1=286.0, y1=480.0)]
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"annotation folder '{folder}' does not exist")
    annotations = []
    for path in sorted(folder.glob("*.xml")):
        try:
            root = ElementTree.parse(path).getroot()
            image = root.findtext("filename") or path.with_suffix(".jpg").name
            for obj in root.iter("object"):
                box = obj.find("bndbox")
                coords = [float(box.findtext(tag)) for tag in ("xmin", "ymin", "xmax", "ymax")]
                annotations.append(Annotation(image, obj.findtext("name").strip(), *coords))
        except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed Pascal VOC file '{path}': {exc}") from exc
    return annotations


def read_coco(path: str | Path) -> list[Annotation]:
    """COCO detection JSON: images (id, file_name), categories (id, name), annotations (bbox x, y, w, h)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        images = {image["id"]: image["file_name"] for image in data["images"]}
        categories = {category["id"]: category["name"] for category in data["categories"]}
        annotations = []
        for index, item in enumerate(data["annotations"]):
            x, y, w, h = (float(v) for v in item["bbox"])
            if item["image_id"] not in images or item["category_id"] not in categories:
                raise DatasetError(f"{path}: annotation {index} refers to an unknown image or category")
            annotations.append(Annotation(images[item["image_id"]], categories[item["category_id"]], x, y, x + w, y + h))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"malformed COCO file '{path}': {exc!r}") from exc
    return annotations


def read_instance_labels(folder: str | Path, *, label: str = "object") -> list[Annotation]:
    """Label images (0 = background, each other value one object): boxes of the regions,
    image names as the label files' names without a mask suffix (`MASK_SUFFIXES`:
    `a_masks.png` stands for image `a`, whatever its extension; `annotations_by_image`).
    Every object gets class `label`.

    Colour-coded label images (each object its own RGB colour, black the background) are
    read by colour, not by their first channel; a channel constant over the image (an opaque
    alpha) is left out. A binary mask (one value besides 0) is split into its connected
    regions: touching objects then make one region."""
    folder = Path(folder)
    annotations = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not files:
        raise DatasetError(f"no label images in '{folder}'")
    for path in files:
        name = _image_name(path.relative_to(folder).as_posix())
        pixels = read_image(path)
        if not np.issubdtype(pixels.dtype, np.integer):
            raise DatasetError(f"label image '{path}' must hold integers, not {pixels.dtype}")
        for region in regionprops(object_labels(pixels)):
            y0, x0, y1, x1 = region.bbox
            annotations.append(Annotation(name, label, float(x0), float(y0), float(x1), float(y1)))
    return annotations


def object_labels(pixels: np.ndarray) -> np.ndarray:
    """(H, W) int64 object numbers, 0 the background, of an (H, W, C) integer label image:
    its values, or its colours where the channels differ; a binary mask's connected regions.

    Examples
    --------
    >>> colours = np.zeros((4, 6, 3), np.uint8)
    >>> colours[:2, :2], colours[:2, 4:] = (255, 0, 0), (255, 255, 0)    # the same red, two objects
    >>> np.unique(object_labels(colours)).tolist()
    [0, 1, 2]
    >>> binary = np.zeros((4, 6, 1), np.uint8)
    >>> binary[:2, :2, 0] = binary[:2, 4:, 0] = 255
    >>> np.unique(object_labels(binary)).tolist()
    [0, 1, 2]
    """
    varying = [c for c in range(pixels.shape[2]) if pixels[..., c].min() != pixels[..., c].max()]
    pixels = pixels[..., varying] if varying else pixels[..., :1]
    if pixels.shape[2] == 1 or all(np.array_equal(pixels[..., 0], pixels[..., c]) for c in range(1, pixels.shape[2])):
        labels = pixels[..., 0].astype(np.int64)
    else:  # one colour per object: number the colours, black (the smallest) the background
        colours, labels = np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0, return_inverse=True)
        labels = labels.reshape(pixels.shape[:2]).astype(np.int64) + (1 if colours[0].any() else 0)
    if len(np.unique(labels)) <= 2:  # a binary mask: its connected regions
        labels = measure_label(labels > 0)
    return labels


MASK_SUFFIXES = ("_masks", "_mask", "_labels", "_label", "_seg")  # label files named after their image, e.g. Cellpose's


def _image_name(label_file: str) -> str:
    """The image a label file stands for: its name, without a mask suffix before the extension
    (`img_001_masks.tif` -> `img_001.tif`)."""
    path = PurePosixPath(label_file)
    for suffix in MASK_SUFFIXES:
        if path.stem.endswith(suffix) and len(path.stem) > len(suffix):
            return str(path.with_name(path.stem[: -len(suffix)] + path.suffix))
    return label_file


def annotations_by_image(truth: list[Annotation], dataset) -> dict[str, list[Annotation]]:
    """image id -> its annotations. An annotation names its image by relative path or by file
    name; where neither matches, by either without its extension (a label image `a.png`, or
    `a_masks.png` (`read_instance_labels`), for an image `a.tif`).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from pathlib import Path
    >>> images = [SimpleNamespace(id="a@1", relpath="a.tif", path=Path("a.tif")), SimpleNamespace(id="b@2", relpath="b.tif", path=Path("b.tif"))]
    >>> found = annotations_by_image([Annotation("a.png", "nucleus", 1, 1, 5, 5)], images)
    >>> [(key, len(value)) for key, value in found.items()]
    [('a@1', 1), ('b@2', 0)]
    """
    by_name: dict[str, list[Annotation]] = {}
    for annotation in truth:
        by_name.setdefault(annotation.image, []).append(annotation)
    by_stem: dict[str, list[Annotation]] = {}
    for name, named in by_name.items():
        by_stem.setdefault(_without_suffix(name), []).extend(named)
    found = {}
    for record in dataset:
        keys = ((record.relpath, by_name), (record.path.name, by_name),
                (_without_suffix(record.relpath), by_stem), (record.path.stem, by_stem))
        found[record.id] = next((table[key] for key, table in keys if key in table), [])
    return found


def unmatched_images(annotations: list[Annotation], dataset) -> list[str]:
    """Image names in the annotations that match no image of the dataset (`annotations_by_image`)."""
    matched = {a.image for found in annotations_by_image(annotations, dataset).values() for a in found}
    return sorted({a.image for a in annotations} - matched)


def _without_suffix(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))
