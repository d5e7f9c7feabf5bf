"""Ground-truth annotations: canonical CSV (centres or boxes), Pascal VOC, COCO JSON, the
image/objects JSON of the Broad's BBBC041 malaria set, YOLO label files, GeoJSON (QuPath),
instance-label images and folders of one mask per object (the Data Science Bowl 2018 layout). Malformed input is an
error naming the file (and line)."""
from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from skimage.measure import label as measure_label
from skimage.measure import regionprops

import yaml

from simsearch.util.errors import DatasetError
from simsearch.io.images import SUPPORTED_SUFFIXES, read_image
from simsearch.io.tables import read_csv_rows

log = logging.getLogger(__name__)

CENTRE_COLUMNS = ["image", "class", "x", "y"]
BOX_COLUMNS = ["image", "class", "x0", "y0", "x1", "y1"]


@dataclass(frozen=True)
class Annotation:
    """One object: its image (path relative to the images folder, or file name), class and
    box (x0, y0, x1, y1) in pixels; objects given as centres have a zero-size box. `source`:
    where it was read, for messages ('truth.csv line 5', or a VOC folder's file; '' where
    unknown); it takes no part in comparisons.

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
    source: str = field(default="", compare=False, repr=False)

    @property
    def centre(self) -> tuple[float, float]:
        """(y, x)"""
        return (self.y0 + self.y1) / 2, (self.x0 + self.x1) / 2

    def contains(self, y: float, x: float) -> bool:
        """Whether the point (y, x) px lies inside the box, its edges included."""
        return self.y0 <= y <= self.y1 and self.x0 <= x <= self.x1


def read_truth(path: str | Path, *, label: str = "object", images=None) -> list[Annotation]:
    """Any supported ground truth, by what `path` is: a .csv file; a .json file (COCO, or a list
    of image/objects entries as BBBC041 ships); a folder of VOC .xml files; a folder of YOLO
    .txt label files (`read_yolo`: needs `images`, the `Dataset`, for the image sizes); a
    folder of GeoJSON files, one per image (`read_geojson_folder`, as QuPath exports them); or a
    folder of instance-label images or of one mask per object (`read_instance_labels`; their
    objects are of class `label`).

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
        return read_json(path)
    if path.is_dir() and any(path.glob("*.xml")):
        return read_voc_folder(path)
    if path.is_dir() and _yolo_label_files(path):
        return read_yolo(path, images)
    if path.is_dir() and any(path.rglob("*.geojson")):
        return read_geojson_folder(path, label=label)
    if path.is_dir():
        return read_instance_labels(path, label=label, images=images)
    raise DatasetError(f"ground truth '{path}': expected a .csv, a .json (COCO or BBBC041), a folder of VOC .xml, "
                       f"of YOLO .txt labels, of GeoJSON or of label images")


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
            annotations.append(Annotation(image, label, x, y, x, y, f"{path} line {line}"))
        else:
            x0, y0, x1, y1 = numbers
            if x1 < x0 or y1 < y0:
                raise DatasetError(f"{path} line {line}: box has x1 < x0 or y1 < y0")
            annotations.append(Annotation(image, label, x0, y0, x1, y1, f"{path} line {line}"))
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
                annotations.append(Annotation(image, obj.findtext("name").strip(), *coords, str(path)))
        except (ElementTree.ParseError, AttributeError, TypeError, ValueError) as exc:
            raise DatasetError(f"malformed Pascal VOC file '{path}': {exc}") from exc
    return annotations


def read_json(path: str | Path) -> list[Annotation]:
    """A JSON ground truth: COCO detection (an object with images, categories and annotations)
    or a list of image/objects entries (`read_image_objects`, as BBBC041 ships)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"malformed JSON file '{path}': {exc}") from exc
    return read_image_objects(path, data) if isinstance(data, list) else read_coco(path, data)


def read_coco(path: str | Path, data: dict | None = None) -> list[Annotation]:
    """COCO detection JSON: images (id, file_name), categories (id, name), annotations (bbox x, y, w, h)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text()) if data is None else data
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


def read_image_objects(path: str | Path, data: list | None = None) -> list[Annotation]:
    """A JSON list of images with their objects, as the Broad Bioimage Benchmark Collection's
    malaria set (BBBC041) ships it: each entry ``{"image": {"pathname": "/images/a.png", ...},
    "objects": [{"category": "trophozoite", "bounding_box": {"minimum": {"r": 10, "c": 20},
    "maximum": {"r": 40, "c": 60}}}, ...]}`` (r rows, c columns). Images are named by their
    file name.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from simsearch.io.truth import read_image_objects
    >>> entry = {"image": {"pathname": "/images/a.png"}, "objects": [{"category": "ring",
    ...          "bounding_box": {"minimum": {"r": 10, "c": 20}, "maximum": {"r": 40, "c": 60}}}]}
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = pathlib.Path(tmp.name, "training.json").write_text(json.dumps([entry]))
    >>> read_image_objects(pathlib.Path(tmp.name, "training.json"))
    [Annotation(image='a.png', label='ring', x0=20.0, y0=10.0, x1=60.0, y1=40.0)]
    >>> tmp.cleanup()
    """
    path = Path(path)
    data = json.loads(path.read_text()) if data is None else data
    annotations = []
    for index, entry in enumerate(data):
        try:
            image = PurePosixPath(str(entry["image"]["pathname"]).replace("\\", "/")).name
            for item in entry["objects"]:
                low, high = item["bounding_box"]["minimum"], item["bounding_box"]["maximum"]
                y0, x0, y1, x1 = (float(v) for v in (low["r"], low["c"], high["r"], high["c"]))
                if not (np.isfinite([x0, y0, x1, y1]).all() and x1 >= x0 and y1 >= y0):
                    raise ValueError(f"box {(x0, y0, x1, y1)} is not finite or has its maximum below its minimum")
                annotations.append(Annotation(image, str(item["category"]).strip(), x0, y0, x1, y1))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"malformed image/objects JSON file '{path}', entry {index}: {exc!r}",
                               hint="expected a list of {\"image\": {\"pathname\": ...}, \"objects\": [{\"category\": ..., "
                                    "\"bounding_box\": {\"minimum\": {\"r\", \"c\"}, \"maximum\": {\"r\", \"c\"}}}]}") from exc
    return annotations


YOLO_CLASS_FILES = ("classes.txt", "obj.names", "data.yaml", "dataset.yaml")  # where YOLO sets name their classes


def _yolo_label_files(folder: Path) -> list[Path]:
    """The folder's YOLO label files (.txt at any depth, but the class lists and the image
    lists such as train.txt, whose lines hold one field), or none when no file's first line
    is a class number and at least four numbers."""
    files, looks_so = [], False
    for file in sorted(p for p in folder.rglob("*.txt") if p.name not in YOLO_CLASS_FILES):
        try:
            first = next((line.split() for line in file.read_text().splitlines() if line.strip()), [])
        except (OSError, UnicodeDecodeError):
            continue
        if len(first) != 1:
            files.append(file)
            looks_so = looks_so or (len(first) >= 5 and first[0].isdigit() and _numbers(first[1:]))
    return files if looks_so else []


def _numbers(fields: list[str]) -> bool:
    try:
        return all(np.isfinite(float(field)) for field in fields)
    except ValueError:
        return False


def yolo_class_names(folder: str | Path) -> dict[int, str]:
    """Class number -> name from the YOLO set's class list beside its labels (in the label
    folder or up to two folders above it): `classes.txt` or `obj.names` (one name per line) or
    `data.yaml` / `dataset.yaml` (``names:`` a list or a mapping); {} when there is none, and
    the classes are then named by their numbers.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from simsearch.io.truth import yolo_class_names
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = pathlib.Path(tmp.name, "data.yaml").write_text("names: [nucleus, mitosis]\\n")
    >>> yolo_class_names(tmp.name)
    {0: 'nucleus', 1: 'mitosis'}
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    for place in (folder, folder.parent, folder.parent.parent):
        for name in YOLO_CLASS_FILES:
            file = place / name
            if not file.is_file():
                continue
            if file.suffix == ".yaml":
                try:
                    names = (yaml.safe_load(file.read_text()) or {}).get("names")
                except (yaml.YAMLError, AttributeError) as exc:
                    raise DatasetError(f"malformed YOLO data file '{file}': {exc}") from exc
                if isinstance(names, dict):
                    return {int(number): str(value) for number, value in names.items()}
                if isinstance(names, list):
                    return dict(enumerate(str(value) for value in names))
                raise DatasetError(f"YOLO data file '{file}' has no 'names:' list or mapping")
            return dict(enumerate(line.strip() for line in file.read_text().splitlines() if line.strip()))
    return {}


def read_yolo(folder: str | Path, images) -> list[Annotation]:
    """A folder of YOLO label files, one `.txt` per image named after it (`a.txt` for `a.png`,
    at any depth): a line per object, its class number and its box's centre, width and height
    as fractions of the image's (``0 0.5 0.4 0.1 0.2``), or a polygon of fractions
    (``0 x1 y1 x2 y2 x3 y3 ...``, the segmentation format), whose bounding box is taken. Class
    names come from `yolo_class_names`. `images`: the `Dataset`, whose image sizes turn the
    fractions into pixels; label files of images it lacks are left out, with a warning.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> import tempfile, pathlib
    >>> from simsearch.io.truth import read_yolo
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = pathlib.Path(tmp.name, "a.txt").write_text("0 0.5 0.25 0.1 0.1\\n")
    >>> images = [SimpleNamespace(relpath="a.png", path=pathlib.Path("a.png"), height=200, width=400)]
    >>> read_yolo(tmp.name, images)
    [Annotation(image='a.png', label='0', x0=180.0, y0=40.0, x1=220.0, y1=60.0)]
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    if images is None:
        raise DatasetError(f"YOLO labels in '{folder}' give boxes as fractions of the image size: the images are needed",
                           hint="read_truth(path, images=Dataset.open(images_folder))")
    by_rel, by_stem = {}, {}
    for record in images:
        by_rel[_without_suffix(record.relpath)] = record
        by_stem.setdefault(record.path.stem, []).append(record)
    names = yolo_class_names(folder)
    annotations, orphans = [], []
    for file in _yolo_label_files(folder):
        rel = _without_suffix(file.relative_to(folder).as_posix())
        record = by_rel.get(rel) or (by_stem[file.stem][0] if len(by_stem.get(file.stem, ())) == 1 else None)
        if record is None:
            orphans.append(file.name)
            continue
        for line_number, line in enumerate(file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            if not (fields[0].isdigit() and _numbers(fields[1:]) and (len(fields) == 5 or (len(fields) >= 7 and len(fields) % 2))):
                raise DatasetError(f"{file} line {line_number}: expected a class number and x y width height "
                                   f"(or a polygon's x y pairs) as fractions of the image, got {line.strip()!r}")
            xs, ys = (np.asarray([float(v) for v in fields[1 + axis::2]]) * side for axis, side in ((0, record.width), (1, record.height)))
            if len(fields) == 5:
                (cx, w), (cy, h) = xs, ys
                if w < 0 or h < 0:
                    raise DatasetError(f"{file} line {line_number}: negative width or height")
                x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            else:
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
            number = int(fields[0])
            annotations.append(Annotation(record.relpath, names.get(number, str(number)), float(x0), float(y0), float(x1), float(y1)))
    if orphans:
        log.warning("YOLO labels: %d label file(s) name no image of the dataset, left out, e.g. %s", len(orphans), orphans[:3])
    return annotations


def read_geojson_folder(folder: str | Path, *, label: str = "object") -> list[Annotation]:
    """A folder of GeoJSON files in pixel coordinates, one per image and named after it
    (`a.geojson` or `a.tif.geojson` for `a.tif`; at any depth), as QuPath exports annotations and
    `simsearch process` writes detections: each polygon (or multipolygon) gives its bounding
    box, each point a centre. The class is the feature's classification (QuPath's
    ``classification.name``, or a ``class`` property), else `label`. Other geometries (lines)
    are errors naming the file and feature.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> from simsearch.io.truth import read_geojson_folder
    >>> cell = {"type": "Feature", "properties": {"classification": {"name": "Tumor"}},
    ...         "geometry": {"type": "Polygon", "coordinates": [[[10, 20], [50, 20], [50, 60], [10, 20]]]}}
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = pathlib.Path(tmp.name, "slide1.svs.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [cell]}))
    >>> read_geojson_folder(tmp.name)
    [Annotation(image='slide1.svs', label='Tumor', x0=10.0, y0=20.0, x1=50.0, y1=60.0)]
    >>> tmp.cleanup()
    """
    folder = Path(folder)
    annotations = []
    for path in sorted(folder.rglob("*.geojson")):
        image = path.relative_to(folder).as_posix()[: -len(".geojson")]
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"malformed GeoJSON file '{path}': {exc}") from exc
        features = data.get("features", []) if isinstance(data, dict) and data.get("type") == "FeatureCollection" else (
            [data] if isinstance(data, dict) else data)
        for index, feature in enumerate(features):
            try:
                annotations += _feature_boxes(feature, image, label)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DatasetError(f"GeoJSON file '{path}', feature {index}: {exc}",
                                   hint="expected Point, MultiPoint, Polygon or MultiPolygon geometries in pixels") from exc
    return annotations


def _feature_boxes(feature: dict, image: str, label: str) -> list[Annotation]:
    """The annotations of one GeoJSON feature (`read_geojson_folder`)."""
    properties = feature.get("properties") or {}
    classification = properties.get("classification")
    name = classification.get("name") if isinstance(classification, dict) else classification
    name = str(name or properties.get("class") or label).strip()
    geometry = feature["geometry"]
    kind, coordinates = geometry["type"], geometry["coordinates"]
    if kind in ("Point", "MultiPoint"):
        points = np.asarray([coordinates] if kind == "Point" else coordinates, dtype=float).reshape(-1, 2)
        return [Annotation(image, name, float(x), float(y), float(x), float(y)) for x, y in points]
    if kind not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"geometry {kind!r} is not a point or a polygon")
    rings = [coordinates[0]] if kind == "Polygon" else [polygon[0] for polygon in coordinates]
    points = np.concatenate([np.asarray(ring, dtype=float).reshape(-1, 2) for ring in rings])
    if not np.isfinite(points).all():
        raise ValueError("a coordinate is not finite")
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    return [Annotation(image, name, float(x0), float(y0), float(x1), float(y1))]


def read_instance_labels(folder: str | Path, *, label: str = "object", images=None) -> list[Annotation]:
    """Label images (0 = background, each other value one object): boxes of the regions,
    image names as the label files' names without a mask suffix (`MASK_SUFFIXES`:
    `a_masks.png` stands for image `a`, whatever its extension; `annotations_by_image`).
    Every object gets class `label`.

    Colour-coded label images (each object its own RGB colour, black the background) are
    read by colour, not by their first channel; a channel constant over the image (an opaque
    alpha) is left out. A binary mask (one value besides 0) is split into its connected
    regions: touching objects then make one region.

    One mask per object: a folder named `masks` beside an `images` folder that holds a single
    image, none of whose masks is named after it (the Data Science Bowl 2018 layout,
    `<id>/images/<id>.png` and `<id>/masks/*.png`), holds one binary mask per object of that
    image; each gives one box around all its pixels, and the image itself is not read as labels.
    A dataset (`images`, where given) that holds such masks as images is refused before any
    mask is read: `--images` named the whole Data Science Bowl folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from simsearch.io.truth import read_instance_labels
    >>> folder = tempfile.TemporaryDirectory()
    >>> tmp = pathlib.Path(folder.name)
    >>> for part in ("cell7/images", "cell7/masks"):
    ...     (tmp / part).mkdir(parents=True)
    >>> Image.new("L", (40, 30)).save(tmp / "cell7/images/cell7.png")
    >>> nucleus = np.zeros((30, 40), np.uint8)
    >>> nucleus[2:6, 3:9] = 255
    >>> Image.fromarray(nucleus).save(tmp / "cell7/masks/a1f3.png")
    >>> read_instance_labels(tmp, label="nucleus")
    [Annotation(image='cell7.png', label='nucleus', x0=3.0, y0=2.0, x1=9.0, y1=6.0)]
    >>> folder.cleanup()
    """
    folder = Path(folder)
    annotations = []
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
    if not files:
        raise DatasetError(f"no label images in '{folder}'")
    owners = _object_mask_folders(files)
    if images is not None:
        _check_masks_are_not_images(folder, owners, images)
    their_images = set(owners.values())
    for path in files:
        if path in their_images:
            continue
        pixels = read_image(path)
        if not np.issubdtype(pixels.dtype, np.integer):
            raise DatasetError(f"label image '{path}' must hold integers, not {pixels.dtype}")
        if path.parent in owners:
            rows, columns = np.nonzero(pixels.any(axis=2))
            if len(rows):
                annotations.append(Annotation(owners[path.parent].name, label, float(columns.min()), float(rows.min()),
                                              float(columns.max() + 1), float(rows.max() + 1)))
            continue
        name = _image_name(path.relative_to(folder).as_posix())
        for region in regionprops(object_labels(pixels)):
            y0, x0, y1, x1 = region.bbox
            annotations.append(Annotation(name, label, float(x0), float(y0), float(x1), float(y1)))
    return annotations


def _check_masks_are_not_images(folder: Path, owners: dict[Path, Path], images) -> None:
    """Refuse a dataset `images` that holds as images the masks of the one-mask-per-object
    folders `owners` (`_object_mask_folders`) found in `folder`."""
    masks = {masks.resolve() for masks in owners}
    inside = [record.relpath for record in images if Path(record.path).resolve().parent in masks]
    if inside:
        raise DatasetError(f"the images include {len(inside)} mask file(s) of the ground truth in '{folder}', e.g. {inside[0]}",
                           hint=f"give only the images, e.g. --images '{folder}/*/images/*.png'")


def _object_mask_folders(files: list[Path]) -> dict[Path, Path]:
    """`masks` folder -> the one image whose objects it holds, one mask each (the Data Science
    Bowl layout; `read_instance_labels`), for the folders of `files` that are so."""
    found = {}
    for masks in sorted({path.parent for path in files if path.parent.name.lower() == "masks"}):
        beside = masks.parent / "images"
        images = sorted(p for p in beside.glob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES) if beside.is_dir() else []
        if len(images) == 1 and not any(p.stem == images[0].stem for p in masks.iterdir()):
            found[masks] = images[0]
    return found


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


def outside_their_images(truth: list[Annotation], dataset) -> list[tuple[Annotation, object]]:
    """(annotation, image record) for each annotation whose box (or centre) lies wholly outside
    its image (`annotations_by_image`): a wrong image name or coordinates in other units, an
    object the evaluation could never find. A box partly outside is an object cut by the edge.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from pathlib import Path
    >>> image = SimpleNamespace(id="a@1", relpath="a.tif", path=Path("a.tif"), height=128, width=128)
    >>> boxes = [Annotation("a.tif", "cell", 120, 120, 140, 140), Annotation("a.tif", "cell", 500, 500, 520, 520)]
    >>> [(a.x0, record.id) for a, record in outside_their_images(boxes, [image])]
    [(500, 'a@1')]
    """
    records = {record.id: record for record in dataset}
    return [(a, records[image_id]) for image_id, found in annotations_by_image(truth, dataset).items() for a in found
            if a.x1 < 0 or a.y1 < 0 or a.x0 > records[image_id].width or a.y0 > records[image_id].height]


def _without_suffix(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))
