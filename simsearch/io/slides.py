"""Whole-slide and other very large images, read region by region and never whole.

A tiled TIFF (pyramidal OME-TIFF, QPTIFF, SVS-like BigTIFF) larger than `lazy_image_pixels`
is opened as a `LazyImage`: an ``(H, W, C)`` array-like whose slices decode only the tiles they
touch (tifffile's zarr store), and whose pyramid levels, when the file has them, give overviews
without reading the full resolution. The engine only ever slices images (the resampler that feeds
the network, the crops of training), so a slide flows through embedding and processing with
memory bounded by a band of the image, not by its size.
"""
from __future__ import annotations

import hashlib
import math
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import tifffile

from simsearch.util.errors import DatasetError, ImageReadError

# images above this many pixels (height x width) are read region by region when their file allows
DEFAULT_LAZY_IMAGE_PIXELS = 64_000_000
_MAX_STRIP_ROWS = 1024  # a stripped (untiled) TIFF is read lazily only when a strip is at most this tall
OVERVIEW_PIXELS = 16_000_000  # the largest overview `overview` returns


def lazy_image_pixels() -> int:
    """Images (height x width) above this are read region by region when their file is tiled:
    SIMSEARCH_LAZY_IMAGE_PIXELS, else 64 MP.

    Examples
    --------
    >>> lazy_image_pixels() > 0
    True
    """
    value = os.environ.get("SIMSEARCH_LAZY_IMAGE_PIXELS", "")
    try:
        return int(value) if value.strip() else DEFAULT_LAZY_IMAGE_PIXELS
    except ValueError:
        raise DatasetError(f"SIMSEARCH_LAZY_IMAGE_PIXELS: {value!r} is not a whole number of pixels") from None


def readable_by_region(page, height: int, width: int, frames: int) -> bool:
    """Whether an image whose first page is `page` is large enough to be read lazily and laid
    out so that a region costs only its tiles (or short strips)."""
    if frames != 1 or height * width <= lazy_image_pixels():
        return False
    return bool(page.is_tiled) or 0 < int(page.rowsperstrip or 0) <= _MAX_STRIP_ROWS


class LazyImage:
    """A large image as an ``(H, W, C)`` array-like in the file's dtype: ``image[y0:y1, x0:x1]``
    decodes only that region; `levels` lists the file's pyramid (full resolution first).

    Parameters
    ----------
    path : the file or folder, for messages.
    levels : the pyramid's arrays (zarr arrays, full resolution first), all with the same axes.
    y_axis, x_axis : the positions of Y and X among those axes.
    fixed : the index of every other axis except the channel axes (e.g. the frame of a time
        series), as slices of one.
    to_hwc : turns a region read with those axes into (h, w, C).
    on_close : called once by `close` (e.g. to close the file).

    `Dataset.read` returns one for a large tiled TIFF or OME-Zarr image (see
    `lazy_image_pixels`); a script rarely builds one itself.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> slide = np.arange(1024 * 1536, dtype=np.uint16).reshape(1024, 1536) % 4000
    >>> with tifffile.TiffWriter(pathlib.Path(tmp.name, "slide.ome.tif")) as tif:
    ...     tif.write(slide, tile=(256, 256), subifds=1)                      # full resolution
    ...     tif.write(slide[::4, ::4], tile=(256, 256), subfiletype=1)        # a 4x smaller level
    >>> import os; os.environ["SIMSEARCH_LAZY_IMAGE_PIXELS"] = "1000000"      # a slide above 1 MP
    >>> dataset = Dataset.open(tmp.name)
    >>> image = dataset.read(dataset.images[0])
    >>> type(image).__name__, image.shape, image.levels
    ('LazyImage', (1024, 1536, 1), [(1024, 1536), (256, 384)])
    >>> bool((image[300:310, 700:720, 0] == slide[300:310, 700:720]).all())  # only the tiles touched are read
    True
    >>> del os.environ["SIMSEARCH_LAZY_IMAGE_PIXELS"]; image.close(); tmp.cleanup()
    """

    ndim = 3

    def __init__(self, path, levels, y_axis: int, x_axis: int, fixed: dict[int, slice], to_hwc, on_close=None):
        self.path = path
        self._close = weakref.finalize(self, on_close) if on_close is not None else None
        self._levels, self._y, self._x, self._fixed, self._to_hwc = levels, y_axis, x_axis, fixed, to_hwc
        self._lock = threading.Lock()  # one decoder per file handle at a time
        self.levels = [(int(level.shape[y_axis]), int(level.shape[x_axis])) for level in levels]
        first = self._region(0, slice(0, 1), slice(0, 1))
        self.dtype = first.dtype
        self.shape = (*self.levels[0], first.shape[2])

    def _region(self, level: int, ys: slice, xs: slice) -> np.ndarray:
        try:
            with self._lock:
                index = [self._fixed.get(axis, slice(None)) for axis in range(self._levels[level].ndim)]
                index[self._y], index[self._x] = ys, xs
                block = np.asarray(self._levels[level][tuple(index)])
        except Exception as exc:  # a corrupt or truncated tile
            raise ImageReadError(f"cannot read image '{self.path}': a tile failed to decode: {exc}") from exc
        block = self._to_hwc(block)
        if block.dtype.kind == "f" and not np.isfinite(block).all():
            raise ImageReadError(f"cannot read image '{self.path}': NaN or infinite pixel values in rows "
                                 f"{ys.start}-{ys.stop}, columns {xs.start}-{xs.stop}",
                                 "replace them (e.g. by 0 or the background value) before using the image")
        return np.ascontiguousarray(block.astype(block.dtype.newbyteorder("="), copy=False))

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 3 or any(not isinstance(k, slice) for k in key[:2]):
            raise TypeError("a LazyImage is sliced as image[y0:y1, x0:x1] (optionally [..., channels])")
        ys, xs = (key + (slice(None), slice(None)))[:2]
        height, width = self.shape[:2]
        ys, xs = slice(*ys.indices(height)), slice(*xs.indices(width))
        if ys.step != 1 or xs.step != 1:
            raise TypeError("a LazyImage is read in contiguous regions (no step); see `overview` for a smaller copy")
        block = self._region(0, slice(ys.start, max(ys.start, ys.stop)), slice(xs.start, max(xs.start, xs.stop)))
        return block[:, :, key[2]] if len(key) == 3 else block

    def level(self, index: int) -> np.ndarray:
        """One level of the file's pyramid, whole, as (h, w, C); level 0 is the full resolution."""
        height, width = self.levels[index]
        return self._region(index, slice(0, height), slice(0, width))

    def level_region(self, index: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """Rows [top, bottom) and columns [left, right) of one pyramid level (in that level's
        pixels, clipped to it), as (h, w, C): a view zoomed into part of a slide."""
        height, width = self.levels[index]
        top, left = min(max(0, top), height), min(max(0, left), width)
        return self._region(index, slice(top, min(height, max(top, bottom))), slice(left, min(width, max(left, right))))

    def close(self) -> None:
        """Close the file (also done when the image is garbage-collected)."""
        if self._close is not None:
            self._close()

    def __repr__(self) -> str:
        return f"LazyImage('{self.path}', shape={self.shape}, dtype={self.dtype}, levels={self.levels})"


def open_tiff(path, y_axis: int, x_axis: int, to_hwc) -> LazyImage:
    """The first series of a tiled TIFF (every pyramid level) as a LazyImage."""
    import zarr  # imported here: images read whole never pay for it

    handle = tifffile.TiffFile(path)
    try:
        series = handle.series[0]
        levels = [zarr.open(series.aszarr(level=k), mode="r") for k in range(len(series.levels))]
        return LazyImage(path, levels, y_axis, x_axis, {}, to_hwc, on_close=handle.close)
    except BaseException:
        handle.close()
        raise


def is_zarr_image(path) -> bool:
    """Whether `path` is a folder holding a Zarr image (an OME-Zarr group or a plain array)."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" and path.is_dir() and any(
        (path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def zarr_image(path) -> tuple[list, str]:
    """An OME-Zarr image (NGFF 0.1-0.5: the first multiscale's datasets, axes from the metadata)
    or a plain Zarr array: (level arrays, full resolution first; axes as letters, e.g. 'TCZYX')."""
    import zarr

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        if node.ndim < 2:
            raise ValueError(f"a Zarr array of {node.ndim} dimension(s) is not an image")
        return [node], "CYX"[-node.ndim:] if node.ndim <= 3 else "TCZYX"[-node.ndim:]
    attributes = dict(node.attrs)
    multiscales = attributes.get("ome", attributes).get("multiscales")
    if not multiscales:
        raise ValueError("a Zarr group without OME-Zarr 'multiscales' metadata")
    first = multiscales[0]
    levels = [node[dataset["path"]] for dataset in first["datasets"]]
    axes = first.get("axes") or ["t", "c", "z", "y", "x"][-levels[0].ndim:]
    names = "".join((axis["name"] if isinstance(axis, dict) else axis)[0].upper() for axis in axes)
    if len(names) != levels[0].ndim:
        raise ValueError(f"axes {names!r} do not match the {levels[0].ndim} dimensions of the data")
    return levels, names


def zarr_content_hash(path) -> str:
    """12 hex digits naming a Zarr image's content: its metadata files and every chunk's name
    and size (reading each chunk of a slide would take as long as embedding it)."""
    digest = hashlib.blake2b(digest_size=16)
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder, name)
            relative = full.relative_to(path).as_posix()
            digest.update(relative.encode())
            if name in ("zarr.json", ".zattrs", ".zgroup", ".zarray"):
                digest.update(full.read_bytes())
            else:
                digest.update(str(full.stat().st_size).encode())
    return digest.hexdigest()[:12]


def overview(image, max_pixels: int = OVERVIEW_PIXELS) -> tuple[np.ndarray, float]:
    """A copy of an image (array or `LazyImage`) with at most `max_pixels` pixels, and how many
    times smaller it is (1.0: the image itself): the largest pyramid level that fits, else the
    image read in bands of rows and subsampled, never whole.

    Examples
    --------
    >>> import numpy as np
    >>> small, factor = overview(np.zeros((4000, 3000, 1), np.uint8), max_pixels=1_000_000)
    >>> small.shape, factor
    ((1000, 750, 1), 4.0)
    """
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return (image.level(0) if isinstance(image, LazyImage) else image), 1.0
    if isinstance(image, LazyImage):
        for index, (h, w) in enumerate(image.levels):
            if h * w <= max_pixels:
                return image.level(index), height / h
    step = math.ceil(math.sqrt(height * width / max_pixels))
    band = max(step, (8_000_000 // max(1, width)) // step * step)  # rows per read: about 8 MP
    parts = [np.asarray(image[top:min(height, top + band), :])[::step, ::step] for top in range(0, height, band)]
    return np.concatenate(parts), float(step)
