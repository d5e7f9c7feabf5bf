"""CSV files as users make them: UTF-8 (with or without a byte-order mark), every row of the
header's width; anything else is an error naming the file and the line."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from simsearch.util.errors import DatasetError
from simsearch.util.files import write_text_atomic


def write_csv(path: str | Path, header: list[str], rows) -> None:
    """A CSV file (UTF-8, the csv module's quoting), written whole or not at all.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name, "hits.csv")
    >>> write_csv(path, ["image", "x", "y"], [("a, b.png", 3.5, 4)])
    >>> read_csv_rows(path)
    (['image', 'x', 'y'], [(2, ['a, b.png', '3.5', '4'])])
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(Path(path), buffer.getvalue())


def read_csv_rows(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a CSV file, blank lines left out. A file that is not
    UTF-8, or a row with more or fewer fields than the header, is a DatasetError naming the
    file and the line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CSV file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path} line {line}: not UTF-8 text (byte {data[exc.start]:#04x})",
                           hint="save the file as UTF-8 (a spreadsheet's 'CSV UTF-8' format)") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise DatasetError(f"{path} is empty: expected a header line")
    header = [cell.strip() for cell in rows[0]]
    body = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetError(f"{path} line {line}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        body.append((line, row))
    return header, body
