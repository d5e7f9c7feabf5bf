"""Finding, probing and decoding microscopy images.

Every image is returned as an ``(H, W, C)`` array in the file's native dtype
(``C >= 1``).  TIFF files are read with tifffile; every axis other than Y, X
and the channel axis (T, Z, Q, I, ...) is flattened in C order into *frames*,
and each frame is its own :class:`ImageRecord`.  PNG/JPEG/BMP are read with
Pillow; alpha channels are dropped (RGBA -> 3 channels, LA -> 1 channel),
palette images become RGB and bilevel images become uint8 0/255. OME-Zarr images (folders
named *.zarr) are read with zarr, their axes as TIFF's. A large tiled TIFF or Zarr image (a
slide, above `lazy_image_pixels`) comes as a `LazyImage` that decodes only the regions sliced
from it (see slides.py).
"""
from __future__ import annotations

import difflib
import glob
import hashlib
import itertools
import math
import os
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Iterator
from xml.etree import ElementTree

import numpy as np
import tifffile
from PIL import Image, ImageFile

from simsearch.io.slides import (LazyImage, is_zarr_image, lazy_image_pixels, open_tiff, overview, readable_by_region,
                                 zarr_content_hash, zarr_image)
from simsearch.util.errors import DatasetError, ImageReadError
from simsearch.util.memory import release_freed_memory

SUPPORTED_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".zarr")  # .zarr: a folder (OME-Zarr)
_FORMAT_NAMES = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".zarr": "Zarr"}
_LIST_SUFFIXES = ("", ".txt", ".lst", ".list")
_PIXEL_TYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
# decoders read an image whole: a header claiming more pixels than this is refused before any
# memory is taken (a decompression bomb, a mislabelled file); SIMSEARCH_MAX_IMAGE_PIXELS raises it
DEFAULT_MAX_IMAGE_PIXELS = 400_000_000


def max_image_pixels() -> int:
    """The largest image (height x width) the readers decode: SIMSEARCH_MAX_IMAGE_PIXELS, else 400 MP."""
    value = os.environ.get("SIMSEARCH_MAX_IMAGE_PIXELS", "")
    try:
        return int(value) if value.strip() else DEFAULT_MAX_IMAGE_PIXELS
    except ValueError:
        raise DatasetError(f"SIMSEARCH_MAX_IMAGE_PIXELS: {value!r} is not a whole number of pixels") from None


def _check_size(path, height: int, width: int) -> None:
    limit = max_image_pixels()
    if height * width > limit:
        raise _read_error(path, f"{width}x{height} pixels is more than the {limit:,} the readers decode whole",
                          "set SIMSEARCH_MAX_IMAGE_PIXELS higher if the memory is there")


def _check_finite(path, pixels: np.ndarray) -> np.ndarray:
    """Float pixels must be numbers: NaN or infinity would turn the normalisation and every
    embedding of the image into NaN, so such an image is refused by name."""
    if pixels.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(pixels)))
        if bad:
            raise _read_error(path, f"{bad} of {pixels.size} pixel values are NaN or infinite",
                              "replace them (e.g. by 0 or the background value) before using the image")
    return pixels


_MAX_Q_CHANNELS = 4  # an unlabelled axis of at most this size next to YX is read as channels
# Pillow mode -> (conversion mode or None, channels, dtype of the returned array)
_PIL_MODES = {
    "1": ("L", 1, "uint8"), "L": (None, 1, "uint8"), "LA": ("L", 1, "uint8"),
    "P": ("RGB", 3, "uint8"), "PA": ("RGB", 3, "uint8"), "RGB": (None, 3, "uint8"),
    "RGBA": ("RGB", 3, "uint8"), "RGBX": ("RGB", 3, "uint8"), "CMYK": ("RGB", 3, "uint8"),
    "YCbCr": ("RGB", 3, "uint8"), "I;16": (None, 1, "uint16"), "I;16L": (None, 1, "uint16"),
    "I;16B": (None, 1, "uint16"), "I;16N": (None, 1, "uint16"), "I": (None, 1, "int32"),
    "F": (None, 1, "float32"),
}
_HASH_CHUNK = 1 << 20

FrameInfo = tuple[int, int, int, str]  # (height, width, channels, dtype name)


def image_name(image_id: str) -> str:
    """The image as the user knows it: its path relative to the dataset root as found there
    (``#N`` after it for frame N > 0 of a multi-frame file), i.e. the id without its content hash.

    Examples
    --------
    >>> image_name("plate1/A01.tif@3f2a9c0d1b2e")
    'plate1/A01.tif'
    >>> image_name("stack.tif#2@3f2a9c0d1b2e")
    'stack.tif#2'
    """
    return image_id.rsplit("@", 1)[0]


class NamedImage:
    """For results that carry an `image_id`: `.image`, the image as the user named it.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Hit(NamedImage):
    ...     image_id: str
    >>> Hit("a/b.png@0123456789ab").image
    'a/b.png'
    """

    __slots__ = ()

    @property
    def image(self) -> str:
        """The image's path relative to the dataset root (see `image_name`)."""
        return image_name(self.image_id)


@dataclass(frozen=True)
class ImageRecord:
    """One 2-D (multi-channel) image: a whole file, or one frame of a multi-frame TIFF.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> stack = np.zeros((2, 32, 48), np.uint16)                  # two Z planes of one channel
    >>> tifffile.imwrite(pathlib.Path(tmp.name, "stack.tif"), stack, metadata={"axes": "ZYX"})
    >>> record = Dataset.open(tmp.name).images[1]                 # each frame is its own record
    >>> record.relpath, record.frame, record.height, record.width, record.channels, record.dtype
    ('stack.tif', 1, 32, 48, 1, 'uint16')
    >>> record.id.split("@")[0]                                   # then "@" and 12 hex digits of the file's hash
    'stack.tif#1'
    >>> tmp.cleanup()
    """

    id: str  # f"{relpath}@{hash12}", or f"{relpath}#{frame}@{hash12}" for frame > 0
    path: Path  # absolute path
    relpath: str  # relative to the dataset root, "/" separators
    frame: int
    height: int
    width: int
    channels: int
    dtype: str  # numpy dtype name of the stored pixels


@dataclass(frozen=True)
class SkippedFile:
    """A file that was meant to be an image but could not be used, and why.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> Image.fromarray(np.zeros((32, 48), np.uint8)).save(folder / "good.png")
    >>> (folder / "empty.png").touch()                            # e.g. a copy that was interrupted
    >>> [(skipped.path.name, skipped.reason) for skipped in Dataset.open(folder).skipped]
    [('empty.png', 'zero-size file')]
    >>> tmp.cleanup()
    """

    path: Path
    reason: str


def _read_error(path, reason: str, hint: str | None = None) -> ImageReadError:
    err = ImageReadError(f"cannot read image '{path}': {reason}", hint)
    err.reason = reason  # short form, used for SkippedFile.reason
    return err


def _unsupported_suffix(suffix: str) -> str:
    return f"unsupported file type '{suffix}' (supported: {', '.join(SUPPORTED_SUFFIXES)})"


def _check_dtype(dtype, path) -> str:
    name = np.dtype(dtype).name
    if name not in _PIXEL_TYPES:
        raise _read_error(path, f"unsupported pixel type '{name}'",
                          f"supported pixel types: {', '.join(_PIXEL_TYPES)}")
    return name


@dataclass(frozen=True)
class _TiffLayout:
    """Roles of the axes of a TIFF series of shape ``shape``."""

    shape: tuple[int, ...]
    y: int
    x: int
    channel_axes: tuple[int, ...]  # folded (C order) into one channel axis
    frame_axes: tuple[int, ...]  # flattened (C order) into frames
    frame_shape: tuple[int, ...]
    channels: int


def _tiff_layout(axes: str, shape: tuple[int, ...], path) -> _TiffLayout:
    """Decide which axes are Y, X, channels and frames (see module docstring)."""
    axes = axes.upper()
    if axes.count("Y") != 1 or axes.count("X") != 1:
        raise _read_error(path, f"unsupported TIFF axes '{axes}' (need one Y and one X axis)")
    channel = [i for i, a in enumerate(axes) if a in "SC"]
    if not channel and axes == "QYX" and shape[0] <= _MAX_Q_CHANNELS:
        channel = [0]
    elif not channel and axes.endswith("YXQ") and shape[-1] <= _MAX_Q_CHANNELS:
        channel = [len(axes) - 1]
    y, x = axes.index("Y"), axes.index("X")
    frames = tuple(i for i in range(len(axes)) if i not in (y, x, *channel))
    return _TiffLayout(tuple(shape), y, x, tuple(channel), frames,
                       tuple(shape[i] for i in frames), math.prod(shape[i] for i in channel))


def _to_hwc(arr: np.ndarray, layout: _TiffLayout, positions: dict[int, int]) -> np.ndarray:
    """Index ``arr`` (same ndim as the series) at ``positions`` of the frame axes -> (H, W, C)."""
    index = tuple(positions.get(i, slice(None)) for i in range(arr.ndim))
    kept = [i for i in range(arr.ndim) if i not in positions]
    order = [kept.index(i) for i in (layout.y, layout.x, *layout.channel_axes)]
    sub = arr[index].transpose(order)
    return sub.reshape(sub.shape[0], sub.shape[1], -1)


def _region_to_hwc(layout: _TiffLayout, region: np.ndarray) -> np.ndarray:
    """A region read by a LazyImage (the series' axes, each frame axis cut to one) -> (h, w, C)."""
    return _to_hwc(region, layout, dict.fromkeys(layout.frame_axes, 0))


def _page_mode(series, layout: _TiffLayout) -> int | None:
    """Number of leading axes that index pages, if pages can be read one by one."""
    page_shape = tuple(series.keyframe.shape)
    lead = len(layout.shape) - len(page_shape)
    pages = series.pages
    if (lead < 0 or layout.shape[lead:] != page_shape or layout.y < lead or layout.x < lead
            or math.prod(layout.shape[:lead]) != len(pages) or any(p is None for p in pages)):
        return None
    return lead


def _read_tiff(path: Path, frame: int | None) -> tuple[list[FrameInfo], np.ndarray | None]:
    """Probe (frame=None) or decode one frame (frame=-1: decode all pages to verify)."""
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise _read_error(path, "TIFF file contains no image series")
        series = tif.series[0]
        dtype = _check_dtype(series.dtype, path)
        layout = _tiff_layout(series.axes, tuple(series.shape), path)
        n_frames = math.prod(layout.frame_shape)
        h, w = layout.shape[layout.y], layout.shape[layout.x]
        frames = [(h, w, layout.channels, dtype)] * n_frames
        if frame is None:
            return frames, None
        if frame in (0, -1) and readable_by_region(series.keyframe, h, w, n_frames):
            # a slide: read region by region, never whole; verifying decodes its smallest level
            lazy = open_tiff(path, layout.y, layout.x, partial(_region_to_hwc, layout))
            if frame == 0:
                return frames, lazy
            overview(lazy)
            lazy.close()
            return frames, None
        _check_size(path, h, w)
        lead = _page_mode(series, layout)
        if frame == -1:  # verify: decode everything, one page at a time when possible
            for page in (series.pages if lead is not None else [series]):
                _check_finite(path, page.asarray())
            return frames, None
        if not 0 <= frame < n_frames:
            raise _read_error(path, f"frame {frame} out of range (file has {n_frames} frames)")
        positions = dict(zip(layout.frame_axes, np.unravel_index(frame, layout.frame_shape)))
        positions = {k: int(v) for k, v in positions.items()}
        if lead is None:
            return frames, _check_finite(path, _to_hwc(series.asarray(), layout, positions))
        # read only the pages of this frame: fixed leading frame axes, all leading channel axes
        ranges = [[positions[i]] if i in positions else range(layout.shape[i]) for i in range(lead)]
        pages = [series.pages[int(np.ravel_multi_index(ix, layout.shape[:lead])) if lead else 0]
                 for ix in itertools.product(*ranges)]
        # one page (most images) as a view: stacking would hold the image twice
        stack = pages[0].asarray()[None] if len(pages) == 1 else np.stack([p.asarray() for p in pages])
        stack = stack.reshape([len(r) for r in ranges] + list(layout.shape[lead:]))
        local = {i: (0 if i < lead else v) for i, v in positions.items()}
        return frames, _check_finite(path, _to_hwc(stack, layout, local))


def _read_zarr(path: Path, frame: int | None) -> tuple[list[FrameInfo], "np.ndarray | LazyImage | None"]:
    """An OME-Zarr folder, as `_read_tiff`: probe (None), verify (-1: its overview) or read one
    frame, region by region (a LazyImage) above `lazy_image_pixels`, else whole."""
    if not is_zarr_image(path):
        raise _read_error(path, "not a Zarr folder (no zarr.json, .zgroup or .zarray in it)")
    levels, axes = zarr_image(path)
    dtype = _check_dtype(levels[0].dtype, path)
    layout = _tiff_layout(axes, tuple(levels[0].shape), path)
    n_frames = math.prod(layout.frame_shape)
    h, w = layout.shape[layout.y], layout.shape[layout.x]
    frames = [(h, w, layout.channels, dtype)] * n_frames
    if frame is None:
        return frames, None
    if not -1 <= frame < n_frames:
        raise _read_error(path, f"frame {frame} out of range (file has {n_frames} frames)")
    position = np.unravel_index(max(frame, 0), layout.frame_shape)
    fixed = {axis: slice(int(p), int(p) + 1) for axis, p in zip(layout.frame_axes, position)}
    lazy = LazyImage(path, levels, layout.y, layout.x, fixed, partial(_region_to_hwc, layout))
    if frame == -1:
        overview(lazy)
        return frames, None
    if h * w > lazy_image_pixels():
        return frames, lazy
    _check_size(path, h, w)
    return frames, lazy.level(0)


_pil_lock = threading.Lock()
_pil_users = 0
_pil_saved: tuple = ()


@contextmanager
def _pil_settings():
    """Temporarily allow huge images and refuse truncated ones; restored when the last reader ends."""
    global _pil_users, _pil_saved
    with _pil_lock:
        if _pil_users == 0:
            _pil_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = None, False
        _pil_users += 1
    try:
        yield
    finally:
        with _pil_lock:
            _pil_users -= 1
            if _pil_users == 0:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _pil_saved


def _read_pil(path: Path, decode: bool) -> tuple[list[FrameInfo], np.ndarray | None]:
    with _pil_settings(), Image.open(path) as img:
        if img.mode not in _PIL_MODES:
            raise _read_error(path, f"unsupported pixel type (image mode '{img.mode}')")
        convert, channels, dtype = _PIL_MODES[img.mode]
        info = [(img.height, img.width, channels, dtype)]
        if not decode:
            return info, None
        _check_size(path, img.height, img.width)
        img.load()
        if convert:
            img = img.convert(convert)
        arr = np.asarray(img).astype(dtype, copy=False)
    return info, _check_finite(path, arr.reshape(arr.shape[0], arr.shape[1], -1))


def _inspect(path, mode: str, frame: int = 0) -> tuple[list[FrameInfo], np.ndarray | None]:
    """mode: 'probe' (header only), 'verify' (decode everything) or 'read' (return ``frame``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise _read_error(path, _unsupported_suffix(suffix))
    try:
        size = path.stat().st_size
    except OSError as exc:
        reason = "file not found" if isinstance(exc, FileNotFoundError) else f"cannot access file: {exc}"
        raise _read_error(path, reason) from None
    if size == 0 and not path.is_dir():
        raise _read_error(path, "zero-size file")
    if mode != "probe":
        release_freed_memory()  # the last image decoded is freed: its memory goes back first
    try:
        if suffix in (".tif", ".tiff"):
            return _read_tiff(path, {"probe": None, "verify": -1, "read": frame}[mode])
        if suffix == ".zarr":
            return _read_zarr(path, {"probe": None, "verify": -1, "read": frame}[mode])
        if mode == "read" and frame != 0:
            raise _read_error(path, f"frame {frame} out of range (file has 1 frame)")
        return _read_pil(path, decode=mode != "probe")
    except ImageReadError:
        raise
    except Exception as exc:  # any decoder failure: truncated, corrupt, wrong format
        message = str(exc) or type(exc).__name__
        raise _read_error(path, f"truncated or corrupt {_FORMAT_NAMES[suffix]}: {message}") from exc


def probe_frames(path) -> list[FrameInfo]:
    """Per frame ``(height, width, channels, dtype name)`` from the header; raises ImageReadError."""
    return _inspect(path, "probe")[0]


def channel_names(path) -> list[str]:
    """The channels' names an OME-TIFF's metadata gives (its first image's), e.g. ['DAPI',
    'GFP']; [] for other files, or where a channel has no name or the metadata cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp(), "field.ome.tif")
    >>> tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint16), ome=True,
    ...                  metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    >>> channel_names(path)
    ['DAPI', 'GFP']
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return []
    try:
        with tifffile.TiffFile(path) as tif:
            xml = tif.ome_metadata if tif.is_ome else None
        if not xml:
            return []
        root = ElementTree.fromstring(xml)
        namespace = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {"ome": ""}
        pixels = root.find("ome:Image/ome:Pixels", namespace)
        names = [channel.get("Name") or "" for channel in (pixels.findall("ome:Channel", namespace) if pixels is not None else [])]
    except (OSError, ValueError, ElementTree.ParseError, tifffile.TiffFileError):
        return []
    return names if names and all(names) else []


def read_image(path, frame: int = 0) -> "np.ndarray | LazyImage":
    """Decode one frame as an ``(H, W, C)`` array (C >= 1) in the file's native dtype; a large
    tiled TIFF (a slide, see `lazy_image_pixels`) comes as a `LazyImage`, read region by region.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> from PIL import Image
    >>> from simsearch import read_image
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> Image.fromarray(np.zeros((32, 48, 4), np.uint8), "RGBA").save(folder / "cells.png")
    >>> read_image(folder / "cells.png").shape                    # the alpha channel is dropped
    (32, 48, 3)
    >>> planes = np.arange(2 * 32 * 48, dtype=np.uint16).reshape(2, 32, 48)
    >>> tifffile.imwrite(folder / "stack.tif", planes, metadata={"axes": "ZYX"})
    >>> second = read_image(folder / "stack.tif", frame=1)
    >>> second.shape, second.dtype, bool((second[..., 0] == planes[1]).all())
    ((32, 48, 1), dtype('uint16'), True)
    >>> tmp.cleanup()
    """
    arr = _inspect(path, "read", frame)[1]
    if isinstance(arr, LazyImage):
        return arr
    return np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=False))


def _hash12(path) -> str:
    """First 12 hex chars of blake2b(digest_size=16) of the file content, streamed (a Zarr
    folder: `zarr_content_hash`)."""
    if Path(path).is_dir():
        return zarr_content_hash(path)
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _is_hidden(relpath: str) -> bool:
    return any(part.startswith(".") for part in relpath.split("/"))


def _relpath(path: Path, root: Path) -> str:
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # other drive on Windows
        return path.as_posix()


def _find_in_folder(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        images = [d for d in dirs if is_zarr_image(Path(folder, d))]  # an OME-Zarr image is a folder
        found += [Path(folder, d) for d in images]
        dirs[:] = [d for d in dirs if d not in images]
        found += [Path(folder, f) for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in SUPPORTED_SUFFIXES]
    return found


def is_glob_pattern(text: str) -> bool:
    """Whether `text` names images by a glob pattern (`Dataset.open`): it holds *, ? or [ and is
    not the name of a file or folder.

    Examples
    --------
    >>> from simsearch import is_glob_pattern
    >>> is_glob_pattern("plates/*.tif"), is_glob_pattern("plates/well_A1.tif")
    (True, False)
    """
    return any(c in text for c in "*?[") and not Path(text).exists()


def _find_by_glob(pattern: str) -> tuple[Path, list[Path]]:
    parts = Path(pattern).parts
    fixed = list(itertools.takewhile(lambda p: not any(c in p for c in "*?["), parts))
    root = Path(*fixed) if fixed else Path(".")
    while not root.is_dir() and root != root.parent:
        root = root.parent
    root = root.resolve()
    paths = sorted(Path(p).resolve() for p in glob.glob(pattern, recursive=True))
    return root, [p for p in paths if (p.is_file() or is_zarr_image(p)) and p.suffix.lower() in SUPPORTED_SUFFIXES
                  and not _is_hidden(_relpath(p, root))]


def _read_list_file(list_file: Path) -> tuple[list[Path], list[SkippedFile]]:
    try:
        lines = list_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read image list '{list_file}': {exc}",
                           "give a plain-text file with one image path per line") from None
    paths, skipped = [], []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = Path(line).expanduser()
        path = (path if path.is_absolute() else list_file.parent / path).resolve()
        where = f"(listed in {list_file.name} line {number})"
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            skipped.append(SkippedFile(path, f"{_unsupported_suffix(path.suffix.lower())} {where}"))
        elif not path.is_file() and not is_zarr_image(path):
            reason = "is a folder, not an image file" if path.is_dir() else "file not found"
            skipped.append(SkippedFile(path, f"{reason} {where}"))
        else:
            paths.append(path)
    return paths, skipped


def resolve_source(source) -> str:
    """An image source as `Dataset.open` records it: a glob pattern made absolute, a folder,
    file or list file resolved; two spellings of one place give one string.

    Examples
    --------
    >>> import os
    >>> resolve_source("images/../images") == os.path.realpath("images")
    True
    """
    text = str(source)
    if isinstance(source, str) and is_glob_pattern(text):
        return str(Path(os.path.expanduser(text)).absolute())
    return str(Path(text).expanduser().resolve())


def source_exists(source) -> bool:
    """Whether an image source is there: a folder, file or list file that exists; a glob
    pattern always is (it may match nothing now, and `Dataset.open` says so).

    Examples
    --------
    >>> source_exists("/no/such/folder"), source_exists("/no/such/*.tif")
    (False, True)
    """
    return is_glob_pattern(str(source)) or Path(resolve_source(source)).exists()


class Dataset:
    """A set of images sharing one channel count; ``images`` sorted by relpath then frame.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> (folder / "plate2").mkdir()
    >>> for name in ("a.png", "plate2/b.png"):
    ...     Image.fromarray(np.zeros((32, 48), np.uint8)).save(folder / name)
    >>> dataset = Dataset.open(folder)                            # a folder (recursive), a glob or a list file
    >>> len(dataset), dataset.channels, [record.relpath for record in dataset]
    (2, 1, ['a.png', 'plate2/b.png'])
    >>> dataset.read(dataset.find("b.png")).shape                 # (H, W, C) in the file's dtype
    (32, 48, 1)
    >>> len(Dataset.open(f"{folder}/plate2/*.png"))
    1
    >>> tmp.cleanup()
    """

    def __init__(self, root: Path, images: list[ImageRecord], skipped: list[SkippedFile] = (),
                 source: str | None = None):
        self.root = Path(root)
        self.source = source if source is not None else str(self.root)  # what open() was given, resolved
        self.images = sorted(images, key=lambda r: (r.relpath, r.frame))
        self.skipped = list(skipped)
        self._by_id = {r.id: r for r in self.images}
        counts = Counter(r.channels for r in self.images)
        self.channels = max(counts, key=lambda c: counts[c]) if counts else 0
        odd = {r.relpath: r.channels for r in self.images if r.channels != self.channels}
        if odd:
            names = [f"'{rel}' has {c} channel(s)" for rel, c in list(odd.items())[:10]]
            more = f", and {len(odd) - 10} more" if len(odd) > 10 else ""
            raise DatasetError(
                f"images in '{self.root}' do not share one channel count: most have "
                f"{self.channels} channel(s), but {', '.join(names)}{more}",
                "select files with the same channels (e.g. a glob or a list file)")

    @classmethod
    def open(cls, source, *, verify: bool = True) -> "Dataset":
        """Open a folder (recursive), a glob pattern or a text file listing one path per line.

        verify=True decodes every file once so truncated/corrupt files are skipped now;
        verify=False reads headers only.
        """
        text = str(source)
        skipped: list[SkippedFile] = []
        resolved_source = resolve_source(source)
        if isinstance(source, str) and is_glob_pattern(text):
            root, paths = _find_by_glob(os.path.expanduser(text))
            kind = f"glob pattern '{text}'"
        else:
            path = Path(resolved_source)
            if not path.exists():
                raise DatasetError(f"image source '{source}' does not exist",
                                   "give a folder, a glob pattern or a text file listing images")
            if is_zarr_image(path):
                root, paths, kind = path.parent, [path], f"Zarr image '{path}'"
            elif path.is_dir():
                root, paths, kind = path, _find_in_folder(path), f"folder '{path}'"
            elif path.suffix.lower() in SUPPORTED_SUFFIXES:
                root, paths, kind = path.parent, [path], f"file '{path}'"
            elif path.suffix.lower() in _LIST_SUFFIXES:
                root, kind = path.parent, f"image list '{path}'"
                paths, skipped = _read_list_file(path)
            else:
                raise DatasetError(f"image source '{path}' is neither a folder, an image nor an image list"
                                   f" ({_unsupported_suffix(path.suffix.lower())})",
                                   "use a folder, a glob pattern or a .txt file with one path per line")
        images: list[ImageRecord] = []
        for path in dict.fromkeys(paths):  # drop duplicates, keep order
            rel = _relpath(path, root)
            try:
                frames = _inspect(path, "verify" if verify else "probe")[0]
                hash12 = _hash12(path)
            except ImageReadError as exc:
                skipped.append(SkippedFile(path, getattr(exc, "reason", str(exc))))
                continue
            except OSError as exc:
                skipped.append(SkippedFile(path, f"cannot read file: {exc}"))
                continue
            for i, (h, w, c, dtype) in enumerate(frames):
                image_id = f"{rel}#{i}@{hash12}" if i else f"{rel}@{hash12}"
                images.append(ImageRecord(image_id, path, rel, i, h, w, c, dtype))
        if not images:
            if not skipped:
                raise DatasetError(f"no image files found in {kind}",
                                   f"supported file types: {', '.join(SUPPORTED_SUFFIXES)}")
            reasons = "; ".join(f"{s.path.name}: {s.reason}" for s in skipped[:5])
            more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            raise DatasetError(f"no readable image in {kind}: {len(skipped)} file(s) skipped "
                               f"({reasons}{more})", "check that the files are complete images")
        return cls(root, images, skipped, source=resolved_source)

    def subset(self, ids) -> "Dataset":
        """The images with these ids, e.g. the training part of a split. It keeps the root
        and source, so a project reopened from its source sees the whole set again."""
        return Dataset(self.root, [self.by_id(i) for i in ids], source=self.source)

    def by_id(self, image_id: str) -> ImageRecord:
        """The record of an image by its exact id ('relpath@hash12', `ImageRecord.id`); `find`
        also takes a relative path or a file name.

        Raises DatasetError when no image has that id (e.g. its file changed since the id was made).

        Examples
        --------
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> from simsearch import Dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> Image.fromarray(np.zeros((32, 48), np.uint8)).save(f"{tmp.name}/a.png")
        >>> dataset = Dataset.open(tmp.name)
        >>> image_id = dataset.images[0].id                           # 'a.png@' and 12 hex digits
        >>> record = dataset.by_id(image_id)
        >>> record.relpath, record.height, record.width
        ('a.png', 32, 48)
        >>> tmp.cleanup()
        >>> project.dataset.by_id(project.displayed[0]).relpath       # doctest: +SKIP
        'BloodImage_00001.jpg'
        """
        try:
            return self._by_id[image_id]
        except KeyError:
            raise DatasetError(f"unknown image id '{image_id}' in dataset '{self.root}'",
                               "ids look like 'relpath@hash12'; the file may have changed since "
                               "the id was made") from None

    def read(self, image: ImageRecord | str) -> "np.ndarray | LazyImage":
        """Pixels of one image (record or id) as (H, W, C) in the native dtype; a slide (a large
        tiled TIFF) as a `LazyImage` that decodes only the regions sliced from it."""
        record = self.by_id(image) if isinstance(image, str) else image
        return read_image(record.path, record.frame)

    def __len__(self) -> int:
        return len(self.images)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._by_id

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self.images)

    def skipped_lines(self) -> list[str]:
        """What `simsearch embed` and `simsearch eval` say of the files skipped (`SkippedFile`):
        their count, then each path and why; no line when none was.

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.zeros((32, 48), np.uint8)).save(folder / "good.png")
        >>> (folder / "empty.png").touch()
        >>> [line.replace(str(folder), "F") for line in Dataset.open(folder).skipped_lines()]
        ['skipped 1 file(s):', '  F/empty.png: zero-size file']
        """
        if not self.skipped:
            return []
        return [f"skipped {len(self.skipped)} file(s):"] + [f"  {s.path}: {s.reason}" for s in self.skipped]

    def skipped_names(self, names) -> dict[str, SkippedFile]:
        """Of `names` (images named as annotations name them: a relative path or a file name,
        with or without its extension), those of a skipped file, with that file.

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> Image.fromarray(np.zeros((32, 48), np.uint8)).save(folder / "good.png")
        >>> (folder / "empty.png").touch()
        >>> {name: s.reason for name, s in Dataset.open(folder).skipped_names(["empty", "gone.png"]).items()}
        {'empty': 'zero-size file'}
        """
        keys = {}
        for s in self.skipped:
            relpath = _relpath(s.path, self.root)
            for key in (relpath, s.path.name, str(PurePosixPath(relpath).with_suffix("")), s.path.stem):
                keys.setdefault(key, s)
        return {name: keys[name] for name in names if name in keys}

    @property
    def channel_names(self) -> list[str]:
        """The channels' names (an OME-TIFF's, read from the first image's file: `channel_names`),
        [] where the files do not name them or name another number of channels."""
        if not hasattr(self, "_channel_names"):
            names = channel_names(self.images[0].path) if self.images else []
            self._channel_names = names if len(names) == self.channels else []
        return self._channel_names

    def described_channel(self, index: int) -> str:
        """'1' or, where the files name it, '1 (GFP)'."""
        names = self.channel_names
        return f"{index} ({names[index]})" if names else str(index)

    def summary(self) -> str:
        """A few human-readable lines: root, counts, channels, dtypes, skipped files."""
        dtypes = Counter(r.dtype for r in self.images)
        n_files = len({r.path for r in self.images})
        named = f": {', '.join(self.described_channel(i) for i in range(self.channels))}" if self.channel_names else ""
        lines = [f"dataset root: {self.root}",
                 f"images: {len(self.images)} (from {n_files} file(s)), channels: {self.channels}{named}",
                 "dtypes: " + ", ".join(f"{d} ({n})" for d, n in sorted(dtypes.items()))]
        if self.images:
            heights = [r.height for r in self.images]
            widths = [r.width for r in self.images]
            lines.append(f"size: {min(heights)}-{max(heights)} x {min(widths)}-{max(widths)} pixels")
        lines.append(f"skipped files: {len(self.skipped)}")
        for s in self.skipped[:20]:
            lines.append(f"  {_relpath(s.path, self.root)}: {s.reason}")
        if len(self.skipped) > 20:
            lines.append(f"  ... and {len(self.skipped) - 20} more")
        return "\n".join(lines)

    def find(self, name: str) -> ImageRecord:
        """A record by id, or by relative path (first frame) / file name when unambiguous."""
        if name in self._by_id:
            return self._by_id[name]
        matches = [r for r in self.images if r.relpath == name and r.frame == 0]
        if not matches:
            matches = [r for r in self.images if r.path.name == name and r.frame == 0]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DatasetError(f"image name '{name}' is ambiguous in dataset '{self.root}'",
                               "give the relative path or the id")
        if "@" in name:  # an id (relpath@hash12) that no image has now
            return self.by_id(name)
        close = difflib.get_close_matches(name, [r.relpath for r in self.images], n=3)
        raise DatasetError(f"no image '{name}' in dataset '{self.root}' (by id, relative path or file name)",
                           f"did you mean {', '.join(repr(c) for c in close)}?" if close else
                           f"names look like '{self.images[0].relpath}'; `simsearch info` describes the dataset"
                           if self.images else "the dataset holds no image")
