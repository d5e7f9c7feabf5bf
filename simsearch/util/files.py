"""Files written whole or not at all: an interrupted write never leaves half a file, and the
temporary files of processes that died are removed the next time the project is opened."""
from __future__ import annotations

import hashlib
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

# .NAME.PID.THREAD.tmp[.SUFFIX]: the temporary files of `atomic_path`
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.\d+\.tmp(\.[A-Za-z0-9]+)?$")


@contextmanager
def atomic_path(path: Path, *, exclusive: bool = False) -> Iterator[Path]:
    """A temporary path beside `path`, named for this process and thread and ending in the same
    suffix (numpy, tifffile and Pillow choose a format by it), to write the file to; renamed
    over `path` when the block succeeds, removed when it fails. Creates the folder if needed.
    With `exclusive`, an existing `path` is never replaced: FileExistsError instead (of two
    processes creating the same file, one wins).

    Examples
    --------
    >>> with atomic_path(folder / "maps.npy") as tmp:   # doctest: +SKIP
    ...     np.save(tmp, maps)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        if exclusive:
            os.link(tmp, path)  # atomic, and refused when `path` exists
        else:
            tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def file_name(text: str) -> str:
    """`text` made safe as a file name (class names may hold '/', ':' or spaces); a short hash
    keeps two names that differ only in unsafe characters apart.

    Examples
    --------
    >>> file_name("RBC"), file_name("cells/dividing")
    ('RBC', 'cells_dividing-dc8723')
    """
    safe = re.sub(r"[^A-Za-z0-9._+=-]", "_", text)
    if safe == text:
        return text
    return f"{safe}-{hashlib.blake2b(text.encode(), digest_size=3).hexdigest()}"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (`atomic_path`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> write_text_atomic(path, "counted 12 cells")
    >>> path.read_text()
    'counted 12 cells'
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def remove_orphaned_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of `atomic_path` under `folder` whose process is gone (a
    killed writer leaves one behind); those of live processes stay. Returns the removed."""
    removed = []
    for path in Path(folder).rglob(".*.tmp*"):
        match = _TEMPORARY.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def save_npy_rows(path: Path, shape: tuple[int, ...], dtype, bands: Iterable) -> None:
    """Write a .npy file of `shape` and `dtype` from `bands`, arrays of consecutive rows (first
    axis) in order, whole or not at all (`atomic_path`): the same bytes as `np.save` of their
    concatenation, without ever holding it.

    `bands` may be a generator that computes each band: the first is drawn before the file is
    created (a file of one band, the usual case, exists only for the moment of its writing, so
    a process killed while computing leaves no temporary behind), and only one band is held at
    a time (each written band is let go before the next is computed).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vectors.npy"
    >>> save_npy_rows(path, (3, 2), np.float16, (np.ones((2, 2)), np.zeros((1, 2))))
    >>> np.load(path).tolist()
    [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    """
    import numpy as np

    dtype = np.dtype(dtype)
    bands = iter(bands)
    band = next(bands, None)
    written = 0
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.lib.format.write_array_header_1_0(
                handle, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)})
            while band is not None:
                band = np.ascontiguousarray(band, dtype=dtype)
                if band.shape[1:] != tuple(shape[1:]):
                    raise ValueError(f"save_npy_rows: a band of shape {band.shape} in an array of shape {shape}")
                handle.write(memoryview(band.reshape(-1)))  # no copy of the band
                written += len(band)
                del band  # let it go before the next band is computed
                band = next(bands, None)
        if written != shape[0]:
            raise ValueError(f"save_npy_rows: {written} rows written, the array has {shape[0]}")
