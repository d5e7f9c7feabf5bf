"""Ground-truth annotations (boxes per image and class). Pascal VOC for now."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError


@dataclass(frozen=True)
class Annotation:
    """One object: the image file name, its class and its box (x0, y0, x1, y1) in pixels."""

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


def read_voc_folder(folder: str | Path) -> list[Annotation]:
    """Every object of every Pascal VOC .xml file in a folder; errors name the file."""
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
