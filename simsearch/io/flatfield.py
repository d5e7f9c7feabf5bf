"""Retrospective flat-field correction: the background every image of a dataset shares.

A microscope adds the same pattern to every image it records: uneven illumination
(vignetting), and dust on the optics, which in a brightfield image is a dark speck at the same
place in every field, the size and shade of a small object. A per-pixel statistic over many
images of one camera is that pattern: an object is seldom at the same place in many images,
the background always is (retrospective correction, as in BaSiC, Peng et al. 2017, without its
low-rank model). Two forms: 'divide' for transmitted light, where the pattern multiplies
(illumination times transmission: brightfield, smears, micrographs), and 'subtract' for a dark
ground, where it adds (fluorescence, an inverted image). The pattern is scaled to its mean
per channel, so corrected images keep their intensity range.

The statistic is a percentile on the background's side of the objects (BACKGROUND_PERCENTILE):
the 80th for transmitted light, where objects are darker, the 20th on a dark ground, where they
are brighter. The median is not: in a dense smear cells cover about half of each pixel's
values, so it follows which images were sampled. On grey BCCD the medians of two halves of the
images correlate 0.73 (pixel by pixel, less their mean), their 80th percentiles 0.994.
Dividing by the median image, outside the product, lifted the grey platelets' similarity search
from 0.494 to 0.797 PR-AUC, the dust specks having passed for platelets
(benchmarks/results/issue17-user/flat-field, benchmarks/results/issue17-flatfield).

'auto' decides from the data (`choose_flat_field`): no correction unless the images are
fields of one size and the patterns of two halves of them agree at least AUTO_AGREEMENT; then
'divide' where the ground is the bright side of the images' values, 'subtract' where it is the
dark side.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from simsearch.util.errors import ConfigError, ImageReadError, ProjectError
from simsearch.util.files import atomic_path

log = logging.getLogger(__name__)

FLAT_FIELD_MODES = ("none", "divide", "subtract", "auto")
FLAT_FIELD_FILE = "flat_field.npy"  # in the project folder (`ProjectLayout.flat_field`)
FLAT_FIELD_IMAGES = 256  # the pattern is taken over at most this many images, spread over the dataset
MIN_FLAT_FIELD_IMAGES = 8  # fewer, and the objects themselves make the pattern
BACKGROUND_PERCENTILE = {"divide": 80.0, "subtract": 20.0}  # per pixel, on the background's side of the objects
UNRELIABLE_BELOW = 0.5  # a warning when the patterns of two halves of the images correlate less
# 'auto' corrects when two halves agree this much: their correlation r is S / (S + N) for a pattern of
# variance S estimated with noise N per half, so the whole estimate leaves a pattern of variance
# N / 2 = S (1 - r) / 2r, under 1/8 of the uncorrected one at r = 0.8
AUTO_AGREEMENT = 0.8
AUTO_SAMPLE_PIXELS = 1 << 22  # 'auto' tells the ground's side from about this many pixels of the stack
FLAT_FIELD_MEMORY = 1 << 30  # bytes the stack of sampled images may take
MIN_GAIN = 0.05  # 'divide': where the background is darker than this share of its mean, it counts as this


def check_flat_field_mode(mode: str) -> None:
    """A ConfigError naming the parameter unless `mode` is one of FLAT_FIELD_MODES."""
    if mode not in FLAT_FIELD_MODES:
        raise ConfigError(f"flat_field: {mode!r} is not one of {', '.join(FLAT_FIELD_MODES)}")


@dataclass(frozen=True, eq=False)
class FlatField:
    """The dataset's fixed background and how to take it out of an image.

    mode: 'divide' (the background multiplies: transmitted light) or 'subtract' (it adds: a
    dark ground). background: (H, W, C) float32, the per-pixel background (BACKGROUND_PERCENTILE)
    over `images` images of the dataset, one plane per channel of the files, in stored units.
    agreement: how far the patterns of two halves of those images agree (their correlation,
    pixel by pixel, less each channel's mean; the lowest over channels): near 1 the pattern is
    the microscope's, near 0 mostly noise (NaN: not measured).

    Examples
    --------
    >>> import numpy as np
    >>> background = np.array([[[50.0], [100.0], [150.0]]], np.float32)   # one row lit unevenly
    >>> flat = FlatField("divide", background, images=40)
    >>> flat.correct(np.array([[[50], [100], [150]]], np.uint16)).ravel().tolist()   # the background itself
    [100.0, 100.0, 100.0]
    >>> flat.correct(np.array([[[25], [100], [300]]], np.uint16)).ravel().tolist()   # half, as, twice as bright
    [50.0, 100.0, 200.0]
    >>> FlatField("subtract", background).correct(np.array([[[60], [110], [160]]], np.uint16)).ravel().tolist()
    [110.0, 110.0, 110.0]
    """

    mode: str
    background: np.ndarray = field(repr=False)
    images: int = 0
    agreement: float = float("nan")

    def __post_init__(self) -> None:
        if self.mode not in BACKGROUND_PERCENTILE:
            raise ConfigError(f"flat_field: {self.mode!r} is not one of {', '.join(BACKGROUND_PERCENTILE)}")
        if self.background.ndim != 3 or self.background.dtype != np.float32 or not np.isfinite(self.background).all():
            raise ConfigError(f"flat_field: the background must be a finite (H, W, C) float32 array, got "
                              f"{self.background.dtype} of shape {self.background.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the images it corrects."""
        return self.background.shape[0], self.background.shape[1]

    @cached_property
    def factors(self) -> np.ndarray:
        """(H, W, C) float32: what each pixel is divided by ('divide': the background over its
        channel's mean, at least MIN_GAIN) or what is subtracted from it ('subtract': the
        background less its channel's mean)."""
        mean = self.background.reshape(-1, self.background.shape[2]).mean(axis=0)
        if self.mode == "subtract":
            return (self.background - mean).astype(np.float32)
        if (mean <= 0).any():
            raise ConfigError("flat_field: 'divide' needs a background brighter than 0 in every channel; "
                              "this dataset's is 0 in channel(s) " + ", ".join(map(str, np.flatnonzero(mean <= 0))),
                              hint="use flat_field 'subtract' for a dark ground (fluorescence)")
        return np.maximum(self.background / mean, MIN_GAIN).astype(np.float32)

    @cached_property
    def digest(self) -> str:
        """16 hex digits of the mode and the background's bytes: part of the embedding cache key."""
        hasher = hashlib.blake2b(self.mode.encode(), digest_size=8)
        hasher.update(np.ascontiguousarray(self.background).tobytes())
        hasher.update(str(self.background.shape).encode())
        return hasher.hexdigest()

    def check_shape(self, height: int, width: int, what: str = "the image") -> None:
        """A ConfigError unless an image of (height, width) is of the size the background was made for."""
        if (height, width) != self.shape:
            raise ConfigError(f"flat field: {what} is {height}x{width} pixels, the flat field {self.shape[0]}x{self.shape[1]}",
                              hint="a flat field needs images of one size, from one camera")

    def correct(self, pixels: np.ndarray) -> np.ndarray:
        """A whole (H, W, C) image in stored units, every channel of the files -> float32, corrected
        (a region of it, on the device: `_Resampler` in features/embed.py)."""
        self.check_shape(*pixels.shape[:2])
        return self.remove(pixels.astype(np.float32), self.factors)

    def remove(self, values, factors):
        """`values` (float, a numpy array or a torch tensor) with `factors`, the same pixels of
        `factors`, taken out: divided by them or less them, by the mode."""
        return values / factors if self.mode == "divide" else values - factors

    def save(self, path: Path) -> None:
        """Write the background as a .npy file (whole or not at all)."""
        with atomic_path(Path(path)) as tmp:
            np.save(tmp, self.background)

    def to_dict(self) -> dict:
        """The settings entry: the mode, the file (FLAT_FIELD_FILE, in the project folder) and the digest."""
        return {"mode": self.mode, "file": FLAT_FIELD_FILE, "images": int(self.images), "agreement": round(float(self.agreement), 4),
                "digest": self.digest}

    @classmethod
    def from_dict(cls, data: dict, folder: Path | None) -> "FlatField":
        """The flat field a settings entry names, read from `folder`; a ProjectError when the
        file is missing or is not the one the entry was written with."""
        try:
            mode, file, digest = data["mode"], data["file"], data["digest"]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"flat_field: malformed entry {data!r}: {exc}") from exc
        if folder is None:
            raise ConfigError("flat_field: the entry names a file; give the project folder that holds it")
        path = Path(folder) / file
        try:
            background = np.load(path)
        except (OSError, ValueError) as exc:
            raise ProjectError(f"cannot read the flat field {path}: {exc}",
                               hint="the project's embeddings were made with it; restore the file") from None
        flat = cls(mode, background, images=int(data.get("images", 0)), agreement=float(data.get("agreement", "nan")))
        if flat.digest != digest:
            raise ProjectError(f"the flat field {path} is not the one the project was made with (digest {flat.digest}, "
                               f"recorded {digest})", hint="restore the file; the project's embeddings were made with it")
        return flat

    def describe(self) -> str:
        """The correction in one line, as `Project.summary` shows it: divided by or less the
        background, its percentile, how many images it was taken over, their size (height x width)
        and how far two halves of them agree."""
        how = "divided by" if self.mode == "divide" else "less"
        return (f"each image {how} the per-pixel {BACKGROUND_PERCENTILE[self.mode]:g}th percentile of {self.images} images "
                f"({self.shape[0]}x{self.shape[1]}; two halves of them agree {self.agreement:.2f})")


def compute_flat_field(dataset, mode: str, *, max_images: int = FLAT_FIELD_IMAGES, memory: int = FLAT_FIELD_MEMORY,
                       progress: Callable[[int, int], None] | None = None) -> FlatField | None:
    """The per-pixel background (BACKGROUND_PERCENTILE of `mode`) over up to `max_images` images
    spread evenly over a Dataset (all of one size), as a `FlatField` of `mode`, with how far two
    halves of them agree (a warning is logged below UNRELIABLE_BELOW); None for mode 'none';
    for 'auto' what `choose_flat_field` decides, its reason logged.

    Raises ConfigError naming the files when the images differ in size, are slides or are too
    few (MIN_FLAT_FIELD_IMAGES), or when the stack would not fit in `memory` bytes ('auto' then
    gives None).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rng = np.random.default_rng(0)
    >>> for i in range(9):                                   # a dark speck at (2, 3) in every image
    ...     image = rng.integers(180, 220, (8, 8)).astype(np.uint8)
    ...     image[2, 3] = 60
    ...     Image.fromarray(image).save(pathlib.Path(tmp.name, f"field{i}.png"))
    >>> flat = compute_flat_field(Dataset.open(tmp.name), "divide")
    >>> flat.shape, flat.images, bool(flat.factors[2, 3, 0] < 0.4)
    ((8, 8), 9, True)
    >>> tmp.cleanup()
    """
    check_flat_field_mode(mode)
    if mode == "none":
        return None
    if mode == "auto":
        flat, reason = choose_flat_field(dataset, max_images=max_images, memory=memory, progress=progress)
        log.info("flat field auto: %s", reason)
        return flat
    flat = _flat_field(_sampled_images(dataset, max_images, memory, progress), mode)
    log.info("flat field: %s", flat.describe())
    if not flat.agreement >= UNRELIABLE_BELOW:
        log.warning("flat field: the patterns of two halves of the images agree only %.2f: these images share little "
                    "fixed background, and correcting by it adds noise (flat_field 'none' leaves them as they are)",
                    flat.agreement)
    return flat


def choose_flat_field(dataset, *, max_images: int = FLAT_FIELD_IMAGES, memory: int = FLAT_FIELD_MEMORY,
                      progress: Callable[[int, int], None] | None = None) -> tuple[FlatField | None, str]:
    """Flat field 'auto': (the FlatField to correct by, or None, and why, in words).

    None where the images cannot have one (too few, of several sizes, slides, too large: the
    reason is compute_flat_field's error) or where the patterns of two halves of them agree less
    than AUTO_AGREEMENT (no fixed background worth taking out: each image lit its own way, or
    too few images to tell). Otherwise 'divide' when the median of the images' values lies in
    the upper half of their 1st-99th percentile range (a bright ground: transmitted light),
    'subtract' when in the lower half (a dark ground: fluorescence).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rng = np.random.default_rng(0)
    >>> light = np.linspace(140, 220, 32)[None, :]          # every field lit from the right
    >>> for i in range(12):
    ...     image = light + rng.normal(0, 2, (32, 32))
    ...     Image.fromarray(image.astype(np.uint8)).save(pathlib.Path(tmp.name, f"field{i}.png"))
    >>> flat, reason = choose_flat_field(Dataset.open(tmp.name))
    >>> flat.mode, reason.split(":")[0]
    ('divide', 'divide')
    >>> tmp.cleanup()
    """
    try:
        pixels = _sampled_images(dataset, max_images, memory, progress)
    except ConfigError as exc:
        return None, f"none: {exc.message}"
    step = max(1, int(np.ceil(np.sqrt(pixels[..., 0].size / AUTO_SAMPLE_PIXELS))))  # a grid of pixels is enough
    low, median, high = np.percentile(pixels[:, ::step, ::step].mean(axis=3, dtype=np.float32), [1, 50, 99])
    bright = median - low > high - median
    mode = "divide" if bright else "subtract"
    (near, near_value), (far, far_value) = (("99th", high), ("1st", low)) if bright else (("1st", low), ("99th", high))
    ground = (f"the images' median {median:.4g} lies nearer their {near} percentile {near_value:.4g} than their "
              f"{far} {far_value:.4g}: a {'bright' if bright else 'dark'} ground")
    try:
        flat = _flat_field(pixels, mode)
    except ConfigError as exc:  # e.g. a bright ground in one channel, nothing in another: not a flat field to divide by
        return None, f"none: {exc.message} ({ground})"
    if not flat.agreement >= AUTO_AGREEMENT:
        return None, (f"none: the patterns of two halves of {flat.images} images agree {flat.agreement:.2f}, under "
                      f"{AUTO_AGREEMENT:g}; they share no fixed background worth taking out ({ground})")
    return flat, f"{mode}: {ground}; {flat.describe()}"


def _sampled_images(dataset, max_images: int, memory: int, progress) -> np.ndarray:
    """(N, H, W, C): up to `max_images` images spread evenly over the dataset, as stored; a
    ConfigError naming the files where the dataset cannot give a flat field."""
    records = list(dataset)
    if len(records) < MIN_FLAT_FIELD_IMAGES:
        raise ConfigError(f"flat field: the per-pixel background needs at least {MIN_FLAT_FIELD_IMAGES} images; "
                          f"the dataset has {len(records)}", hint="use flat_field 'none'")
    first = records[0]
    for record in records:
        if (record.height, record.width) != (first.height, first.width):
            raise ConfigError(f"flat field: needs images of one size; {first.relpath} is {first.height}x{first.width} pixels, "
                              f"{record.relpath} {record.height}x{record.width}",
                              hint="use flat_field 'none', or one project per camera")
    itemsize = max(np.dtype(record.dtype).itemsize for record in records)
    per_image = first.height * first.width * dataset.channels * itemsize
    count = min(len(records), max_images, memory // per_image)
    if count < MIN_FLAT_FIELD_IMAGES:
        raise ConfigError(f"flat field: {MIN_FLAT_FIELD_IMAGES} images of {per_image / 2**20:.0f} MiB do not fit in "
                          f"{memory / 2**20:.0f} MiB", hint="use flat_field 'none' for images this large")
    picked = [records[i] for i in np.unique(np.linspace(0, len(records) - 1, count).round().astype(int))]
    pixels = np.empty((len(picked), first.height, first.width, dataset.channels), np.result_type(*{r.dtype for r in picked}))
    read = 0  # the stack is filled in place: memory holds it once
    for done, record in enumerate(picked, start=1):
        try:
            image = dataset.read(record)
        except ImageReadError as exc:
            log.warning("flat field: skipping %s: %s", record.relpath, exc.message)
            continue
        if not isinstance(image, np.ndarray):
            raise ConfigError(f"flat field: {record.relpath} is a slide; a flat field is for fields of view of one camera",
                              hint="use flat_field 'none'")
        pixels[read] = image
        read += 1
        if progress is not None:
            progress(done, len(picked))
    if read < MIN_FLAT_FIELD_IMAGES:
        raise ConfigError(f"flat field: only {read} of the sampled images could be read; it needs {MIN_FLAT_FIELD_IMAGES}")
    return pixels[:read]


def _flat_field(pixels: np.ndarray, mode: str) -> FlatField:
    """The FlatField of `mode` over a stack of images, with how far its two halves agree."""
    background, first_half, second_half = (_percentile_image(part, BACKGROUND_PERCENTILE[mode])
                                           for part in (pixels, pixels[0::2], pixels[1::2]))
    flat = FlatField(mode, background, images=len(pixels), agreement=_agreement(first_half, second_half))
    flat.factors  # noqa: B018 - 'divide' on a dark ground fails now, not at the first image
    return flat


def _percentile_image(pixels: np.ndarray, percentile: float) -> np.ndarray:
    """(N, H, W, C) -> (H, W, C) float32, the percentile over the images, a band of rows at a
    time (np.percentile's float64 copy stays small)."""
    out = np.empty(pixels.shape[1:], np.float32)
    band = max(1, (1 << 24) // max(1, pixels[0, 0].size * len(pixels)))
    for top in range(0, out.shape[0], band):
        out[top:top + band] = np.percentile(pixels[:, top:top + band], percentile, axis=0)
    return out


def _agreement(first: np.ndarray, second: np.ndarray) -> float:
    """The lowest over channels of the correlation between two (H, W, C) patterns, pixel by pixel;
    0 where a pattern is flat."""
    values = []
    for channel in range(first.shape[2]):
        a, b = (plane[..., channel].ravel().astype(np.float64) for plane in (first, second))
        a, b = a - a.mean(), b - b.mean()
        norm = np.sqrt((a @ a) * (b @ b))
        values.append(float(a @ b / norm) if norm > 0 else 0.0)
    return min(values)
