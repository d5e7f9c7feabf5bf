"""Intensity normalisation and channel handling, as in the SimSearch paper.

Normalisation (paper Sec. II-B): for every image and channel take the 5th and
95th intensity percentiles; over the dataset take the 0.5th percentile of the
lows and the 99.5th percentile of the highs; rescale that range to [0, 1] and
clip. It is computed once, streaming over the images (only two numbers per
image and channel are kept), and stored with the project.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from simsearch.io.flatfield import FlatField
from simsearch.io.slides import LazyImage, overview
from simsearch.util.errors import ConfigError, DatasetError, ImageReadError

log = logging.getLogger(__name__)

# Pixels used per image for the channel correlation (a strided subsample).
_CORRELATION_PIXELS = 1_000_000


# how images are normalised: the paper's one range for the dataset, each image's own range, or
# "auto": per image where the images' own ranges are a small part of the common one
NORMALIZATION_MODES = ("auto", "dataset", "image")
PER_IMAGE_BELOW = 0.4  # "auto": per image when the median image range is below this share of the dataset's


@dataclass(frozen=True)
class Normalization:
    """Per-channel intensity range mapped to [0, 1].

    low, high: one value per channel of the files (not of the selection): the dataset's range.
    per_image: each image is mapped by its own range instead (`for_image`), the paper's rule
    with the image as its own dataset: for images recorded at different exposures or gains.
    flat_field: the dataset's fixed background (`FlatField`), taken out of every image before
    the range maps it (the range is then that of the corrected images); None: no correction.

    Examples
    --------
    >>> import numpy as np
    >>> Normalization(low=(100.0,), high=(4100.0,)).apply(np.array([[[2100]]], np.uint16)).tolist()
    [[[0.5]]]
    >>> dim = np.array([[[100], [300], [500]]], np.uint16)       # an image at a fifth of the exposure
    >>> Normalization(low=(100.0,), high=(4100.0,), per_image=True).for_image(dim)
    Normalization(low=(120.0,), high=(480.0,), per_image=False)
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    per_image: bool = False
    flat_field: FlatField | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ConfigError("normalization: 'low' and 'high' need one value per channel")
        for channel, (lo, hi) in enumerate(zip(self.low, self.high)):
            if not np.isfinite(lo) or not np.isfinite(hi):
                raise ConfigError(f"normalization: channel {channel} has a non-finite range ({lo}, {hi})")

    @property
    def channels(self) -> int:
        """How many channels it maps: those of the files (one `low` and `high` value each)."""
        return len(self.low)

    def low_and_span(self, channels: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """float32 (low, high - low) of the channels (all by default): value v maps to
        clip((v - low) / span, 0, 1). The one definition, used by the dense path on the device
        and by `apply`; a constant channel (span 0) maps to 0 rather than dividing by zero."""
        picked = list(range(self.channels)) if channels is None else list(channels)
        low = np.asarray(self.low, np.float32)[picked]
        span = np.asarray(self.high, np.float32)[picked] - low
        span[span <= 0] = 1.0
        return low, span

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) any dtype -> (H, W, C) float32 in [0, 1], in numpy."""
        if image.ndim != 3 or image.shape[2] != self.channels:
            raise ConfigError(
                f"normalization expects (H, W, {self.channels}) images, got shape {image.shape}"
            )
        low, span = self.low_and_span()
        values = self.flat_field.correct(image) if self.flat_field is not None else image.astype(np.float32)
        out = (values - low) / span
        return np.clip(out, 0.0, 1.0, out=out)

    def for_image(self, image) -> "Normalization":
        """The range that maps `image` ((H, W, C) array or a `LazyImage` slide, read through its
        overview): the dataset's, or with `per_image` the image's own 5th and 95th percentiles
        per channel, counted once per image object while it lives (every pyramid level and
        crop of an image read once share them; an array changed in place keeps its first range),
        after the flat field's correction."""
        if not self.per_image:
            return self
        key = id(image)
        known = _IMAGE_RANGES.get(key)
        if known is not None and known[0]() is image:
            return known[1]
        pixels = overview(image)[0] if isinstance(image, LazyImage) else image
        lows, highs = image_percentiles(self.flat_field.correct(pixels) if self.flat_field is not None else pixels)
        found = Normalization(tuple(float(v) for v in lows), tuple(float(v) for v in highs), flat_field=self.flat_field)
        _IMAGE_RANGES[key] = (weakref.ref(image, lambda _, key=key: _IMAGE_RANGES.pop(key, None)), found)
        return found

    def fingerprint(self) -> str:
        """Short stable hash, used in embedding cache keys."""
        text = json.dumps(self.to_dict())
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def to_dict(self) -> dict:
        """The settings entry; a flat field is named by its file in the project folder
        (`FlatField.save` writes it) and its digest."""
        data = {"low": [float(v) for v in self.low], "high": [float(v) for v in self.high]}
        if self.per_image:  # older projects' keys unchanged
            data["per_image"] = True
        if self.flat_field is not None:
            data["flat_field"] = self.flat_field.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, folder: Path | None = None) -> "Normalization":
        """The normalisation a settings entry records; a flat field is read from `folder`."""
        try:
            low, high = tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"])
            per_image = bool(data.get("per_image", False))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"normalization: malformed entry {data!r}: {exc}") from exc
        flat = FlatField.from_dict(data["flat_field"], folder) if data.get("flat_field") else None
        return cls(low, high, per_image=per_image, flat_field=flat)

    def describe(self) -> str:
        """The ranges in one line, as `Project.summary` shows them: 'ch0: [100, 4100]' per channel,
        whether each image is mapped by its own range, and the flat field (`FlatField.describe`)."""
        ranges = ", ".join(f"ch{c}: [{lo:.4g}, {hi:.4g}]" for c, (lo, hi) in enumerate(zip(self.low, self.high)))
        text = f"per image (each image's own 5th-95th percentiles; the dataset's: {ranges})" if self.per_image else ranges
        return text if self.flat_field is None else f"{text}; flat field: {self.flat_field.describe()}"


@dataclass(frozen=True)
class ChannelStatistics:
    """Result of one streaming pass over a dataset.

    normalization: the dataset-wide range per channel.
    correlation: (C, C) float64, mean over images of the Pearson correlation
        between channels (1 on the diagonal; 0 where a channel is constant).
    image_lows, image_highs: (N, C) float64, the per-image percentiles.

    Examples
    --------
    Channels 0 and 1 show the same thing (one is twice the other), channel 2 something else:

    >>> import numpy as np
    >>> from simsearch import compute_statistics
    >>> rng = np.random.default_rng(0)
    >>> nuclei, other = rng.integers(0, 1000, (2, 64, 64))
    >>> image = np.stack([nuclei, 2 * nuclei, other], axis=-1).astype(np.uint16)
    >>> stats = compute_statistics([image])
    >>> stats.image_lows.shape, stats.correlation.shape
    ((1, 3), (3, 3))
    >>> bool(stats.correlation[0, 1] > 0.99), bool(abs(stats.correlation[0, 2]) < 0.1)
    (True, True)
    """

    normalization: Normalization
    correlation: np.ndarray
    image_lows: np.ndarray = field(repr=False)
    image_highs: np.ndarray = field(repr=False)


def check_normalization_mode(mode: str) -> None:
    """A ConfigError naming the parameter unless `mode` is one of NORMALIZATION_MODES."""
    if mode not in NORMALIZATION_MODES:
        raise ConfigError(f"normalization: {mode!r} is not one of {', '.join(NORMALIZATION_MODES)}")


def choose_normalization(stats: "ChannelStatistics", mode: str = "auto") -> Normalization:
    """The project's normalisation from a pass over the dataset. 'dataset': the paper's one
    range; 'image': each image's own; 'auto': per image when, in every channel, the median
    image's 5th-95th percentile range covers less than PER_IMAGE_BELOW of the dataset's range
    (images recorded at different exposures, where one range leaves some nearly flat), else
    the paper's.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import compute_statistics
    >>> rng = np.random.default_rng(0)
    >>> images = [(gain * rng.integers(0, 1000, (32, 32, 1))).astype(np.uint16) for gain in (1, 10, 50)]
    >>> choose_normalization(compute_statistics(images)).per_image, choose_normalization(compute_statistics(images[:1])).per_image
    (True, False)
    """
    check_normalization_mode(mode)
    dataset = stats.normalization
    if mode == "auto":
        _, span = dataset.low_and_span()
        shares = np.median((stats.image_highs - stats.image_lows) / span, axis=0) if len(stats.image_lows) else np.ones(1)
        mode = "image" if float(np.max(shares)) < PER_IMAGE_BELOW else "dataset"
        log.info("normalization: %s (median image range %s of the dataset's)", "per image" if mode == "image" else "the dataset's",
                 ", ".join(f"{v:.0%}" for v in shares))
    return Normalization(dataset.low, dataset.high, per_image=mode == "image")


_HISTOGRAM_ROWS = 1 << 22  # pixels per block when counting 8- and 16-bit values


# id of a living image -> (a weak reference to it, its own range): `Normalization.for_image`.
# The entry goes with the image, before its id can be reused.
_IMAGE_RANGES: dict[int, tuple[weakref.ref, Normalization]] = {}


def image_percentiles(image: np.ndarray, *, low: float = 5.0, high: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, C) -> per-channel (low, high) percentiles, each (C,) float64. NaNs are ignored.

    8- and 16-bit images are counted value by value in blocks (the same numbers as
    `np.percentile`, without its sorted copy of the whole image)."""
    flat = image.reshape(-1, image.shape[-1])
    if flat.dtype in (np.uint8, np.uint16) and len(flat):
        return _counted_percentiles(flat, (low, high))
    if np.issubdtype(flat.dtype, np.floating) and np.isnan(flat).any():
        values = np.nanpercentile(flat, [low, high], axis=0)
    else:
        values = np.percentile(flat, [low, high], axis=0)
    return values[0].astype(np.float64), values[1].astype(np.float64)


def _counted_percentiles(flat: np.ndarray, quantiles: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """np.percentile's default (linear) method from per-channel value counts."""
    levels = 256 if flat.dtype == np.uint8 else 65536
    counts = np.zeros((flat.shape[1], levels), np.int64)
    for start in range(0, len(flat), _HISTOGRAM_ROWS):
        block = flat[start:start + _HISTOGRAM_ROWS]
        for channel in range(flat.shape[1]):
            counts[channel] += np.bincount(block[:, channel], minlength=levels)
    ends = np.cumsum(counts, axis=1)  # ends[c, v]: how many values of channel c are <= v

    def at(rank: int) -> np.ndarray:  # per channel, the value at this rank of the sorted values
        return np.array([np.searchsorted(row, rank, side="right") for row in ends], np.float64)

    values = []
    for q in quantiles:
        rank = q / 100.0 * (len(flat) - 1)
        below = math.floor(rank)
        lower, upper = at(below), at(min(below + 1, len(flat) - 1))
        values.append(lower + (rank - below) * (upper - lower))
    return values[0], values[1]


def channel_correlation(image: np.ndarray, *, max_pixels: int = _CORRELATION_PIXELS) -> np.ndarray:
    """(H, W, C) -> (C, C) Pearson correlation on a strided pixel subsample."""
    flat = image.reshape(-1, image.shape[-1])
    step = max(1, flat.shape[0] // max_pixels)
    sample = flat[::step].astype(np.float64)
    channels = sample.shape[1]
    if channels == 1:
        return np.ones((1, 1))
    std = sample.std(axis=0)
    centred = sample - sample.mean(axis=0)
    cov = centred.T @ centred / max(1, sample.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    corr[~np.isfinite(corr)] = 0.0
    np.fill_diagonal(corr, 1.0)
    return corr


def compute_statistics(
    images: Iterable[np.ndarray],
    *,
    image_low: float = 5.0,
    image_high: float = 95.0,
    dataset_low: float = 0.5,
    dataset_high: float = 99.5,
    progress: Callable[[int], None] | None = None,
) -> ChannelStatistics:
    """Stream (H, W, C) images once and return the paper's normalisation and channel correlation.

    Memory holds one image at a time plus two numbers per image and channel.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import compute_statistics
    >>> ramp = np.arange(101, dtype=np.uint16).reshape(1, 101, 1)        # values 0..100, one channel
    >>> stats = compute_statistics([ramp, 2 * ramp])
    >>> stats.image_lows[:, 0].tolist(), stats.image_highs[:, 0].tolist()   # per image: 5th, 95th percentile
    ([5.0, 10.0], [95.0, 190.0])
    >>> stats.normalization      # over the images: 0.5th percentile of the lows, 99.5th of the highs
    Normalization(low=(5.025,), high=(189.525,), per_image=False)
    """
    lows, highs = [], []
    corr_sum = None
    for count, image in enumerate(images, start=1):
        lo, hi = image_percentiles(image, low=image_low, high=image_high)
        lows.append(lo)
        highs.append(hi)
        corr = channel_correlation(image)
        corr_sum = corr if corr_sum is None else corr_sum + corr
        if progress is not None:
            progress(count)
    if not lows:
        raise DatasetError("cannot compute normalization: the dataset has no readable image")
    image_lows, image_highs = np.stack(lows), np.stack(highs)
    low = np.percentile(image_lows, dataset_low, axis=0)
    high = np.percentile(image_highs, dataset_high, axis=0)
    normalization = Normalization(tuple(float(v) for v in low), tuple(float(v) for v in high))
    return ChannelStatistics(normalization, corr_sum / len(lows), image_lows, image_highs)


def compute_dataset_statistics(dataset, *, progress: Callable[[int], None] | None = None, flat_field: FlatField | None = None,
                               **kwargs) -> ChannelStatistics:
    """compute_statistics over every image of a Dataset, corrected by `flat_field` if given;
    unreadable images are logged and skipped; a slide (`LazyImage`) counts through its overview
    (see `overview`).

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Dataset, compute_dataset_statistics
    >>> tmp = tempfile.TemporaryDirectory()
    >>> for name, value in (("a.png", 50), ("b.png", 200)):             # two flat grey images
    ...     Image.fromarray(np.full((16, 16), value, np.uint8)).save(pathlib.Path(tmp.name, name))
    >>> stats = compute_dataset_statistics(Dataset.open(tmp.name), progress=lambda done: print("image", done))
    image 1
    image 2
    >>> stats.normalization
    Normalization(low=(50.75,), high=(199.25,), per_image=False)
    >>> tmp.cleanup()
    """

    def readable_images():
        for record in dataset:
            try:
                image = dataset.read(record)
                # a slide: its percentiles from an overview (a pyramid level), never read whole
                pixels = overview(image)[0] if isinstance(image, LazyImage) else image
                yield flat_field.correct(pixels) if flat_field is not None else pixels
            except ImageReadError as exc:
                log.warning("normalization: skipping %s: %s", record.relpath, exc.message)

    return compute_statistics(readable_images(), progress=progress, **kwargs)


def parse_channels(text: str | None) -> list[int] | None:
    """A channel selection as people type it: '0,2,1', '0 2 1' or '0, 2'; empty means the
    default (None). Ranges are checked by `resolve_channels`, which knows the images.

    Examples
    --------
    >>> parse_channels("0, 2 1"), parse_channels("")
    ([0, 2, 1], None)
    """
    text = (text or "").replace(",", " ")
    try:
        return [int(value) for value in text.split()] or None
    except ValueError:
        raise ConfigError(f"channels: {text.strip()!r} is not a list of channel numbers", hint="e.g. 0,2,1") from None


def resolve_channels(file_channels: int, channels: Sequence[int] | None = None) -> tuple[int, ...]:
    """Validate a channel selection (indices into the file's channels) for the 3-channel backbone.

    None selects every channel when there are at most 3, else the first 3 (with a warning).

    Examples
    --------
    >>> resolve_channels(1), resolve_channels(5, [4, 0])
    ((0,), (4, 0))
    """
    if channels is None:
        if file_channels > 3:
            log.warning(
                "images have %d channels; using channels 0,1,2. Choose others with channels=[...] "
                "(CLI: --channels), e.g. the least correlated ones.",
                file_channels,
            )
        return tuple(range(min(3, file_channels)))
    selection = tuple(int(c) for c in channels)
    if not 1 <= len(selection) <= 3:
        raise ConfigError(
            f"channels: select 1 to 3 channels for the backbone, got {list(selection)}",
            hint="e.g. channels=[0] for one channel or [0, 2, 3] for three",
        )
    bad = [c for c in selection if not 0 <= c < file_channels]
    if bad:
        raise ConfigError(
            f"channels: {bad} out of range; the images have {file_channels} channel(s) (0..{file_channels - 1})"
        )
    if len(set(selection)) != len(selection):
        raise ConfigError(f"channels: {list(selection)} repeats a channel")
    return selection
