"""Prototypes and negatives from a CSV, for scripted use: header kind,class,image,x0,y0,x1,y1
(kind 'prototype' or 'negative'; a negative is stored at its box centre)."""
from __future__ import annotations

from pathlib import Path

from simsearch.util.errors import ConfigError, DatasetError
from simsearch.io.tables import read_csv_rows
from simsearch.curation.session import Curation, validate_box
from simsearch.project.store import PatchRecord

IMPORT_COLUMNS = ["kind", "class", "image", "x0", "y0", "x1", "y1"]


def import_annotations(project, curation: Curation, csv_file: str | Path) -> dict[str, int]:
    """Check every line (header, numbers, image, box inside the image) before storing
    anything; classes are created when missing; all lines are stored in one transaction.
    Importing a file again adds nothing it already added (a prototype of the same class, image
    and box is there already; a negative is one place). Returns counts per kind, under
    'already' the lines that were there before, and under 'not_in_file' the project's
    prototypes that no line of the file names (added by hand, or from a line since edited:
    they stay, and the caller says so).

    Examples
    --------
    >>> counts = import_annotations(project, Curation(project), "prototypes.csv")    # doctest: +SKIP
    >>> counts                                                                       # doctest: +SKIP
    {'prototype': 2, 'negative': 1, 'already': 0, 'not_in_file': 0}
    """
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
    counts = {"prototype": 0, "negative": 0, "already": 0}
    named: set[tuple] = set()  # the stored places of the file's prototypes
    with project.store.transaction():  # every line or none: a kill mid-import stores nothing
        _store_rows(project, curation, path, rows, known, counts, named)
    counts["not_in_file"] = sum(_key(p.class_name, p.image_id, p.box) not in named for p in project.store.prototypes())
    return counts


def _key(name: str, image_id: str, box) -> tuple:
    """One prototype's identity: the class, the image and the centre of its stored box
    (`Curation.prototype_box`)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return name, image_id, round((y0 + y1) / 2, 2), round((x0 + x1) / 2, 2)


def _store_rows(project, curation: Curation, path: Path, rows: list, known: set[str], counts: dict[str, int],
                named: set[tuple]) -> None:
    there = {_key(p.class_name, p.image_id, p.box) for p in project.store.prototypes()}
    negatives: dict[str, set] = {}  # per class, the places flagged already
    for line, kind, name, record, box in rows:
        if name not in known:
            curation.add_class(name)
            known.add(name)
        try:
            if kind == "prototype":
                place = _key(name, record.id, curation.prototype_box(record.id, box))  # where it is stored
                if place in there:
                    counts["already"] += 1
                    named.add(place)
                    continue
                stored = curation.add_prototype(name, record.id, box)
                there.add(place)
                named.add(_key(name, record.id, stored.box))
            else:
                x0, y0, x1, y1 = box
                patch = PatchRecord(record.id, (y0 + y1) / 2, (x0 + x1) / 2)
                if name not in negatives:
                    negatives[name] = {(n.image_id, n.y, n.x) for n in project.store.patches(name, "negative")}
                if (patch.image_id, patch.y, patch.x) in negatives[name]:
                    counts["already"] += 1  # flagging it again would unconfirm the class for nothing
                    continue
                project.store.set_negative(name, patch)
                negatives[name].add((patch.image_id, patch.y, patch.x))
        except ConfigError as exc:
            raise ConfigError(f"{path} line {line}: {exc.message}", hint=exc.hint) from None
        counts[kind] += 1
