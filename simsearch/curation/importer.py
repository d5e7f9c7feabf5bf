"""Prototypes and negatives from a CSV, for scripted use: header kind,class,image,x0,y0,x1,y1
(kind 'prototype' or 'negative'; a negative is stored at its box centre)."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DatasetError
from ..io.tables import read_csv_rows
from .session import Curation, validate_box
from .store import PatchRecord

IMPORT_COLUMNS = ["kind", "class", "image", "x0", "y0", "x1", "y1"]


def import_annotations(project, curation: Curation, csv_file: str | Path) -> dict[str, int]:
    """Check every line (header, numbers, image, box inside the image) before storing
    anything; classes are created when missing. Returns counts per kind."""
    path = Path(csv_file)
    header, lines = read_csv_rows(path)
    if header != IMPORT_COLUMNS:
        raise ConfigError(f"{path}: header must be {','.join(IMPORT_COLUMNS)}, got {','.join(header)}")
    rows = []
    for line, fields in lines:
        try:
            kind, name = fields[0].strip(), fields[1].strip()
            box = tuple(float(v) for v in fields[3:7])
            record = project.dataset.find(fields[2].strip())
        except (ValueError, DatasetError) as exc:
            raise ConfigError(f"{path} line {line}: {getattr(exc, 'message', exc)}") from None
        if kind not in ("prototype", "negative") or not name:
            raise ConfigError(f"{path} line {line}: kind must be 'prototype' or 'negative' and class non-empty")
        try:
            validate_box(box, record)
        except ConfigError as exc:
            raise ConfigError(f"{path} line {line}: {exc.message}") from None
        rows.append((line, kind, name, record, box))
    known = {c.name for c in curation.classes()}
    counts = {"prototype": 0, "negative": 0}
    with project.store.transaction():  # every line or none: a kill mid-import stores nothing
        _store_rows(project, curation, path, rows, known, counts)
    return counts


def _store_rows(project, curation: Curation, path: Path, rows: list, known: set[str], counts: dict[str, int]) -> None:
    for line, kind, name, record, box in rows:
        if name not in known:
            curation.add_class(name)
            known.add(name)
        try:
            if kind == "prototype":
                curation.add_prototype(name, record.id, box)
            else:
                x0, y0, x1, y1 = box
                project.store.set_negative(name, PatchRecord(record.id, (y0 + y1) / 2, (x0 + x1) / 2))
        except ConfigError as exc:
            raise ConfigError(f"{path} line {line}: {exc.message}", hint=exc.hint) from None
        counts[kind] += 1
