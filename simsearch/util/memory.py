"""CPU training without page faults.

glibc's malloc serves every block over 32 MB with its own mmap and gives it back to the
system when freed. A training step allocates activations of hundreds of MB (a batch of 64
crops of 160 px), so every step faults in and zeroes them again: a third of the time of a
CPU training step went to the kernel (benchmarks/results/malloc.md). Asking malloc to keep
freed memory for reuse removes that cost; the peak memory stays the same.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
OPT_OUT = "SIMSEARCH_SYSTEM_MALLOC"


def keep_freed_memory() -> bool:
    """Make glibc malloc reuse freed blocks instead of returning them to the system (it then
    trims only above 2 GB of free memory). Process-wide, so the `simsearch` command and the
    terminal UI call it, and library users may. Returns whether it applied: not off Linux or
    glibc, nor when the environment variable SIMSEARCH_SYSTEM_MALLOC=1.

    Examples
    --------
    Once, at the start of a script that trains or embeds on the CPU (it changes the whole
    process, so it is not run here):

    >>> import simsearch
    >>> simsearch.keep_freed_memory()          # doctest: +SKIP
    True
    """
    if os.environ.get(OPT_OUT) == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    log.debug("malloc keeps freed memory: %s", applied)
    global _trim
    _trim = libc.malloc_trim if applied else None
    return applied


_trim = None  # glibc's malloc_trim once keep_freed_memory applied


def release_freed_memory() -> None:
    """Give the memory malloc keeps for reuse back to the system, once keep_freed_memory
    applied (else there is nothing kept). Called where hundreds of MB were just freed and other
    hundreds are about to be allocated: before an image is decoded (a heap that kept the last
    image besides decoding the next grows by an image each time), after an image is embedded,
    and after the tiles of a large image (benchmarks/results/large-image.md)."""
    if _trim is not None:
        _trim(0)


def drop_mapped_pages(array) -> None:
    """Drop the pages of a memory-mapped array (`np.load(..., mmap_mode="r")`, or a slice of
    one) from this process's resident memory; they stay in the page cache and are read back
    from it when touched again. Without it, reading a slide's cached vectors band by band
    leaves every band read resident: the process grows to the file's size (1.4 GB for a
    40,000 px slide). Anything else is left alone.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vectors.npy"
    >>> np.save(path, np.arange(12.0).reshape(3, 4))
    >>> vectors = np.load(path, mmap_mode="r")
    >>> first = float(vectors[0].sum()); drop_mapped_pages(vectors)
    >>> float(vectors[2].sum())                    # still readable: the pages come back from the cache
    38.0
    """
    mapping = getattr(array, "_mmap", None)  # numpy keeps the mmap of a memmap (and of its slices) there
    if isinstance(mapping, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)
