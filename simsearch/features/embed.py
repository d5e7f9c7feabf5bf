"""Dense patch embeddings: one backbone pass per image, Gaussian pooling as a convolution.

The paper embeds every sliding-window patch separately. Here the truncated
backbone runs once over the whole (resampled, normalised) image, tiled with a
halo when large, and the centre-weighted Gaussian pooling of (kh x kw) cells is a
depthwise convolution over the feature map: every valid patch position gets an
L2-normalised vector. `embed_windows` is the per-patch reference (the paper's
way), used by tests and benchmarks to check the dense path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from simsearch.util.errors import ConfigError
from simsearch.util.memory import release_freed_memory
from simsearch.io.preprocess import Normalization
from simsearch.io.slides import overview
from simsearch.util.tensors import from_numpy
from simsearch.features.backbones import IMAGENET_MEAN, Backbone
from simsearch.features.fold import fold_batch_norm
from simsearch.features.geometry import NETWORK_STRIDE, PatchGeometry

EMBEDDING_VERSION = 1  # bump when the numbers this module produces change
BAND_BYTES = 128 << 20  # an image whose float32 vectors take more is embedded in bands of rows
_POOL_CHUNK_BYTES = 16 << 20  # pooled vectors computed at once


@dataclass(frozen=True)
class PatchEmbeddings:
    """vectors: (rows, cols, D) L2-normalised (float32 fresh, float16 from the cache);
    the patch at grid (r, c) is described by `geometry.centre(r, c)` / `geometry.box(r, c)`.

    Examples
    --------
    `DenseEmbedder.embed` and `Project.embeddings` return these; the grid of 64 px patches
    over a 96 x 128 px image:

    >>> import numpy as np
    >>> from simsearch import PatchEmbeddings, PatchGeometry
    >>> embedded = PatchEmbeddings(np.zeros((3, 5, 112), np.float32), PatchGeometry.for_patch(64, min_cells=4), (96, 128))
    >>> embedded.grid_shape, embedded.centres()[1, 2].tolist()     # the patch at grid (1, 2): centre (y, x) px
    ((3, 5), [48.0, 64.0])
    >>> embedded.geometry.box(1, 2)                                # its (x0, y0, x1, y1)
    (32.0, 16.0, 96.0, 80.0)
    """

    vectors: np.ndarray
    geometry: PatchGeometry
    image_size: tuple[int, int]

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, cols) of the patch grid: the first two dimensions of `vectors`."""
        return self.vectors.shape[:2]

    def centres(self) -> np.ndarray:
        """(rows, cols, 2) float32 patch centres (y, x) in original pixels."""
        rows, cols = np.meshgrid(np.arange(self.grid_shape[0]), np.arange(self.grid_shape[1]), indexing="ij")
        y, x = self.geometry.centre(rows, cols)
        return np.stack([y, x], axis=-1).astype(np.float32)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None): the GPU when torch sees one, else the CPU; otherwise the torch device
    named, checked to exist. A ConfigError names a bad one.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device: {device!r} is not a torch device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but torch sees no GPU", hint="use device='cpu' or 'auto'")
    return resolved


class DenseEmbedder:
    """Turns raw (H, W, C) images into PatchEmbeddings.

    tile_cells: tile interior in feature cells; default 32 (512 scaled px) on the
    CPU, where it bounds host memory, and 128 on a GPU, where launches cost more;
    halo_cells: context added around each tile so that tiling does not change
    the features beyond a small tolerance. window: the (kh, kw) pooling weights (default:
    the centre-weighted Gaussian; a trained model may bring its own), or (G, kh, kw) for a
    network whose D channels are G feature maps side by side (`TwinNetwork`): group g pools
    with window g and each group's vector is L2-normalised on its own. An image no larger (in cells) than one
    haloed tile runs whole in one pass; larger ones run in tiles of one shape (`_tiles`). Memory
    is bounded by one haloed tile plus the (cells x D) feature map of one image.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import DenseEmbedder, Normalization, PatchGeometry, load_backbone
    >>> embedder = DenseEmbedder(load_backbone("efficientnet-lite0"), Normalization(low=(0.0,), high=(255.0,)),
    ...                          PatchGeometry.for_patch(64, min_cells=4), channels=(0,), device="cpu")
    >>> image = np.random.default_rng(0).integers(0, 256, (96, 128, 1)).astype(np.uint8)   # (H, W, C) raw
    >>> embedded = embedder.embed(image)
    >>> embedded.vectors.shape                                     # (rows, cols, D) on the patch grid
    (3, 5, 112)
    >>> round(float(np.linalg.norm(embedded.vectors[1, 2])), 3)    # L2-normalised: a dot product is a cosine
    1.0
    """

    def __init__(
        self,
        backbone: Backbone,
        normalization: Normalization,
        geometry: PatchGeometry,
        *,
        channels: tuple[int, ...],
        device: str | torch.device | None = "auto",
        tile_cells: int | None = None,
        halo_cells: int = 8,
        window: torch.Tensor | None = None,
    ):
        self.device = resolve_device(device)
        if tile_cells is None:
            tile_cells = 128 if self.device.type == "cuda" else 32
        if tile_cells < 4 or halo_cells < 0:
            raise ConfigError(f"tile_cells must be >= 4 and halo_cells >= 0, got {tile_cells}, {halo_cells}")
        self.backbone = backbone
        self.normalization = normalization
        self.geometry = geometry
        self._margin_fill = _margin_fill(geometry, backbone.mean)
        self.channels = tuple(channels)
        self.tile_cells = tile_cells
        self.halo_cells = halo_cells
        self.backbone.to(self.device)
        self._network = fold_batch_norm(backbone.network)  # the same numbers, faster (features/fold.py)
        if self.device.type == "cuda":
            self._network.to(memory_format=torch.channels_last)
        if window is None:
            window = torch.tensor(geometry.window, dtype=torch.float32)
        elif tuple(window.shape[-2:]) != tuple(geometry.kernel) or window.dim() not in (2, 3):
            raise ConfigError(f"pooling window: shape {tuple(window.shape)}, the patch geometry needs {tuple(geometry.kernel)}")
        self.groups = window.shape[0] if window.dim() == 3 else 1  # feature maps side by side, each its own vector
        if backbone.channels % self.groups:
            raise ConfigError(f"pooling window: {self.groups} groups do not divide the network's {backbone.channels} channels")
        self._window = window.float().to(self.device)

    @property
    def dim(self) -> int:
        """D, the length of each patch vector: the backbone's channels (112 for efficientnet-lite0)."""
        return self.backbone.channels

    def cache_settings(self) -> dict:
        """Everything that changes the numbers beyond tolerance; part of each cache key."""
        return {
            "version": EMBEDDING_VERSION,
            "backbone": self.backbone.spec.name,
            "weights_sha256": self.backbone.spec.weights_sha256,
            "geometry": self.geometry.to_dict(),
            "normalization": self.normalization.fingerprint(),
            "channels": list(self.channels),
        }  # tiling and device change the numbers only within tolerance (tests), like bf16 on a GPU

    # -- the dense path ------------------------------------------------------------------

    def embed(self, image) -> PatchEmbeddings:
        """(H, W, C) raw pixels (an array or a `LazyImage`) -> PatchEmbeddings with float32 vectors."""
        height, width = image.shape[:2]
        bands = [vectors for _, vectors in self.iter_rows(image)]
        vectors = bands[0] if len(bands) == 1 else np.concatenate(bands)
        return PatchEmbeddings(vectors, self.geometry, (height, width))

    def embed_batch(self, images: Sequence[np.ndarray]) -> list[PatchEmbeddings]:
        """Several (H, W, C) raw images of one shape embedded together: at each tile position
        all of them go through the network as one (N, 3, h, w) batch, which is what keeps a GPU
        busy with small images. Equal to `embed` of each image to float rounding; memory grows
        with N (the caller bounds it, e.g. `Project.embed_batch_pixels`). Images of other shapes
        or needing bands (slides) are embedded one at a time.

        Examples
        --------
        Three grey 96 x 128 images of one shape:

        >>> import numpy as np
        >>> from simsearch import DenseEmbedder, Normalization, PatchGeometry, load_backbone
        >>> grey = Normalization(low=(0.0,), high=(255.0,))
        >>> embedder = DenseEmbedder(load_backbone("efficientnet-lite0"), grey, PatchGeometry.for_patch(64, min_cells=4), channels=(0,), device="cpu")
        >>> images = np.random.default_rng(0).integers(0, 256, (3, 96, 128, 1)).astype(np.uint8)
        >>> together = embedder.embed_batch(list(images))
        >>> [e.vectors.shape for e in together]
        [(3, 5, 112), (3, 5, 112), (3, 5, 112)]
        >>> bool(np.allclose(together[1].vectors, embedder.embed(images[1]).vectors, atol=1e-4))
        True
        """
        height, width = images[0].shape[:2] if len(images) else (0, 0)
        rows, cols = self.geometry.grid_shape(height, width)
        if len(images) < 2 or len({tuple(image.shape) for image in images}) > 1 or not (rows and cols) \
                or not self.in_one_band(height, width):
            return [self.embed(image) for image in images]
        resamplers = [_Resampler(image, self.normalization, self.channels, self.geometry.scale, self.device, self._margin_fill)
                      for image in images]
        with torch.inference_mode():
            vectors = _unit_vectors(self._embed_rows(resamplers, 0, rows, rows, cols), self.groups)
        return [PatchEmbeddings(one, self.geometry, (height, width)) for one in vectors]

    def band_rows(self, height: int, width: int) -> int:
        """Grid rows embedded at once: the whole image when its vectors take at most
        BAND_BYTES, else bands of rows (a multiple of the passes) that do."""
        rows, cols = self.geometry.grid_shape(height, width)
        row_bytes = max(1, cols) * self.dim * 4
        if rows * row_bytes <= BAND_BYTES:
            return max(1, rows)
        passes = self.geometry.passes
        return max(passes, BAND_BYTES // row_bytes // passes * passes)

    def in_one_band(self, height: int, width: int) -> bool:
        """Whether an image's vectors are embedded in one band (`band_rows`): held whole at once."""
        return self.band_rows(height, width) >= self.geometry.grid_shape(height, width)[0]

    def iter_rows(self, image, *, band_rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """The patch grid of an (H, W, C) image in bands of rows, top to bottom: (first row,
        (rows, cols, D) float32 L2-normalised vectors). Memory is bounded by one band, so an
        image of any size (a `LazyImage` slide) can be embedded and written band by band.
        Each band's features see `halo_cells` of context above and below, as tiles do; an
        image that fits one band (`band_rows`) gives exactly the vectors of `embed`."""
        height, width = image.shape[:2]
        rows, cols = self.geometry.grid_shape(height, width)
        if not (rows and cols):
            yield 0, np.zeros((rows, cols, self.dim), np.float32)
            return
        band = band_rows or self.band_rows(height, width)
        if band < rows and band % self.geometry.passes:
            raise ConfigError(f"band_rows: {band} is not a multiple of the {self.geometry.passes} passes")
        resamplers = [_Resampler(image, self.normalization, self.channels, self.geometry.scale, self.device, self._margin_fill)]
        for first in range(0, rows, band):
            # Inference mode per band, not as a decorator: torch's generator wrapper would hold the last band
            # yielded while the next is computed (a slide's peak memory held two bands).
            with torch.inference_mode():
                vectors = _unit_vectors(self._embed_rows(resamplers, first, min(rows, first + band), rows, cols), self.groups)[0]
            yield first, vectors
            del vectors
            if band < rows:
                release_freed_memory()  # a band's feature maps go back before the next band allocates

    def _embed_rows(self, resamplers: list["_Resampler"], first: int, stop: int, rows: int, cols: int) -> torch.Tensor:
        """Unnormalised (N, stop - first, cols, D) pooled features of grid rows [first, stop) of N
        images of one shape whose grid has `rows` rows. Shift (sy, sx) of `passes` covers the rows and columns
        sy, sy + passes, ... whose windows lie whole cells apart: one feature map per shift.
        (`first` is a multiple of the passes; feature cell c of shift sy lies at scaled pixel
        `geometry.window_top_left(sy, 0)` + 16 c: the margin of a border grid lies before 0.)"""
        geometry = self.geometry
        passes = geometry.passes
        kh, kw = geometry.kernel
        out = None  # allocated once the first feature map is done: it is not held beside the tiles' activations
        for shift_y in range(min(passes, stop - first)):
            for shift_x in range(min(passes, cols)):
                n_rows, n_cols = len(range(first + shift_y, stop, passes)), len(range(shift_x, cols, passes))
                top = first // passes  # this band's first row among the shift's rows
                map_rows = len(range(shift_y, rows, passes)) + kh - 1  # the shift's feature map over the whole image
                above = min(self.halo_cells, top)  # context beyond the band, never beyond the whole map
                below = min(self.halo_cells, map_rows - (top + n_rows + kh - 1))
                cells = (above + n_rows + kh - 1 + below, n_cols + kw - 1)
                features = self._feature_map(resamplers, *geometry.window_top_left(shift_y + (top - above) * passes, shift_x), cells)
                if out is None:
                    out = torch.empty((len(resamplers), stop - first, cols, self.dim), dtype=torch.float32, device=self.device)
                for image_features, image_out in zip(features, out):
                    self._pool_into(image_features[:, above : above + n_rows + kh - 1], image_out[shift_y::passes, shift_x::passes])
                del features
        return out

    def _feature_map(self, resamplers: list["_Resampler"], offset_y: int, offset_x: int, cells: tuple[int, int]) -> torch.Tensor:
        """(N, D, cells_h, cells_w) float32 features of N scaled images of one shape from pixel
        (offset_y, offset_x); each tile runs through the network once for all N."""
        cells_h, cells_w = cells
        features = torch.empty((len(resamplers), self.dim, cells_h, cells_w), dtype=torch.float32, device=self.device)
        halo = self.halo_cells
        if cells_h * cells_w <= (self.tile_cells + 2 * halo) ** 2:  # costs no more than one haloed tile
            rows, span_h = [(0, cells_h, 0)], cells_h
            cols, span_w = [(0, cells_w, 0)], cells_w
        else:
            (rows, span_h), (cols, span_w) = (_tiles(n, self.tile_cells, halo) for n in cells)
        for top, bottom, in_top in rows:
            for left, right, in_left in cols:
                box = (offset_y + in_top * NETWORK_STRIDE, offset_y + (in_top + span_h) * NETWORK_STRIDE,
                       offset_x + in_left * NETWORK_STRIDE, offset_x + (in_left + span_w) * NETWORK_STRIDE)
                pixels = torch.stack([resampler.region(*box) for resampler in resamplers])
                tile_features = self._run_network(pixels)
                features[:, :, top:bottom, left:right] = tile_features[
                    :, :, top - in_top : bottom - in_top, left - in_left : right - in_left
                ]
                del tile_features, pixels
            if len(rows) * len(cols) > 1:
                release_freed_memory()  # after each row of tiles: the heap's holes, fragmented by the small
                # allocations between tiles, go back (a slide's peak grew by a third of the activations without)
        return features

    def _run_network(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 in [0, 1] -> (N, D, H/16, W/16) float32."""
        batch = self.backbone.normalize_input(rgb01.to(self.device, non_blocking=True))
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self._network(batch).float()
        return self._network(batch)

    def _pool_into(self, features: torch.Tensor, target: torch.Tensor) -> None:
        """Gaussian-weighted window sums of (D, rows + kh - 1, >= cols + kw - 1) features into
        `target` (rows, cols, D), a few rows at a time: a band's pooled map is never held
        twice (whole, and in the target's layout) nor in the convolution's own buffers."""
        rows, cols = target.shape[:2]
        kh, kw = self._window.shape[-2:]
        dim = features.shape[0]
        weight = self._channel_windows(dim)[:, None]
        chunk = max(1, _POOL_CHUNK_BYTES // max(1, cols * dim * 4))
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            pooled = F.conv2d(features[None, :, start : stop + kh - 1, : cols + kw - 1], weight, groups=dim)[0]
            target[start:stop] = pooled.permute(1, 2, 0)

    def _channel_windows(self, dim: int, *, transposed: bool = False) -> torch.Tensor:
        """(dim, kh, kw): each channel's pooling window (its group's)."""
        window = self._window.transpose(-1, -2) if transposed else self._window
        if window.dim() == 2:
            return window.expand(dim, *window.shape)
        return window.repeat_interleave(dim // len(window), dim=0)

    # -- the per-patch reference -----------------------------------------------------------

    @torch.inference_mode()
    def embed_windows(
        self,
        image: np.ndarray,
        tops_lefts: np.ndarray,
        *,
        context_cells: int = 0,
        rotations: tuple[int, ...] = (0,),
        batch_size: int = 64,
    ) -> np.ndarray:
        """Per-window reference: crop each window (plus `context_cells` feature cells of
        context on every side), rotate it by 90 degrees x k for each k in `rotations`,
        and run it through the network alone; pool its centre window (transposed for
        odd k).

        context_cells=0 is the paper's per-patch sliding window. With a few cells of
        context the unrotated result matches the dense path (which sees the whole
        image) away from the image borders.
        tops_lefts: (N, 2) top-left corners in *scaled* pixels (grid position (r, c)
        is `geometry.window_top_left(r, c)`, `scaled_tops_lefts`). Returns (N * len(rotations), D) float32,
        L2-normalised, window-major (all rotations of window 0 first).
        """
        resampler = _Resampler(image, self.normalization, self.channels, self.geometry.scale, self.device, self._margin_fill)
        kh, kw = self.geometry.kernel
        margin = context_cells * NETWORK_STRIDE
        corners = np.asarray(tops_lefts, np.int64).reshape(-1, 2)
        out = torch.zeros((len(corners), len(rotations), self.dim))
        for start in range(0, len(corners), batch_size):
            crops = torch.stack([
                resampler.region(top - margin, top + kh * NETWORK_STRIDE + margin, left - margin, left + kw * NETWORK_STRIDE + margin)
                for top, left in corners[start : start + batch_size].tolist()
            ])
            for index, k in enumerate(rotations):
                window = self._channel_windows(self.dim, transposed=k % 2 == 1)
                features = self._run_network(torch.rot90(crops, k, dims=(2, 3)))
                cells = features[:, :, context_cells : context_cells + window.shape[1], context_cells : context_cells + window.shape[2]]
                out[start : start + len(crops), index] = torch.from_numpy(_unit_vectors((cells * window).sum(dim=(2, 3)), self.groups))
        return out.reshape(-1, self.dim).numpy()

    def embed_at(self, image: np.ndarray, centres: np.ndarray, *, rotations: tuple[int, ...] = (0,), context_cells: int = 4) -> np.ndarray:
        """Embed patches centred anywhere (y, x original px; not only on the grid), with
        context and optional rotations, as `embed_windows`: (N * len(rotations), D)."""
        return self.embed_windows(image, window_corners(self.geometry, centres), context_cells=context_cells, rotations=rotations)


def joins_batch(budget: int, batch: list, candidate) -> bool:
    """Whether a decoded image is embedded together with the images of `batch`: numbered
    loaded jobs ``(n, Loaded)`` (`simsearch.util.prefetch`) whose item is ``(record, {scale:
    output path})``, the work left. It joins when every one is a decoded array (not a slide,
    a failure or an image with nothing to do) of one shape with the same levels to compute,
    within `budget` pixels in all (`Project.embed_batch_pixels`; 0: never).

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch.util.prefetch import Loaded
    >>> job = lambda pixels: (0, Loaded(("record", {1.0: "out.npy"}), pixels))
    >>> image = np.zeros((100, 100, 1))
    >>> joins_batch(25_000, [job(image)], job(image)), joins_batch(25_000, [job(image), job(image)], job(image))
    (True, False)
    >>> joins_batch(25_000, [job(image)], job(np.zeros((100, 90, 1))))     # another shape
    False
    """
    first, last = batch[0][1], candidate[1]
    if not all(one.error is None and one.item[1] and isinstance(one.value, np.ndarray) for one in (first, last)):
        return False
    height, width = last.value.shape[:2]
    return (first.value.shape == last.value.shape and list(first.item[1]) == list(last.item[1])
            and height * width * (len(batch) + 1) <= budget)


def _unit_vectors(pooled: torch.Tensor, groups: int = 1) -> np.ndarray:
    """Pooled features (..., D) L2-normalised in place (as F.normalize), each of `groups`
    equal parts of D on its own, as a float32 array."""
    parts = pooled.unflatten(-1, (groups, -1))  # a view: dividing it divides `pooled`
    parts.div_(torch.linalg.vector_norm(parts, dim=-1, keepdim=True).clamp_min_(1e-12))
    return pooled.cpu().numpy()


def _tiles(size: int, tile: int, halo: int) -> tuple[list[tuple[int, int, int]], int]:
    """The tiles along an axis of `size` feature cells, as ([(interior first, interior stop,
    input first), ...], input span): ceil(size / `tile`) tiles (fewer where halos outgrow
    tiles) whose inputs all span the same number of cells, spread evenly, each interior with
    at least `halo` cells of context on each side but the image's edge (so edge tiles have
    larger interiors). The network then sees one tile shape, and malloc reuses a tile's freed
    activations for the next (tiles of a dozen shapes grew a slide's heap by 0.4 GB over a
    few bands); the cells computed are as many as with equal interiors and halos cut at the
    image's edges."""
    count = math.ceil(size / tile)
    span = math.ceil((size + 2 * halo * (count - 1)) / count)
    while count > 1 and size - span < count - 1:  # halos wider than the tiles: fewer tiles, each its own start
        count -= 1
        span = math.ceil((size + 2 * halo * (count - 1)) / count)
    if count == 1 or span >= size:
        return [(0, size, 0)], size
    starts = [round(i * (size - span) / (count - 1)) for i in range(count)]
    bounds = [0] + [(previous + span + start) // 2 for previous, start in zip(starts, starts[1:])] + [size]
    return [(bounds[i], bounds[i + 1], starts[i]) for i in range(count)], span


_WIDEN = {torch.uint16: torch.int32, torch.uint32: torch.int64}


def _margin_fill(geometry: PatchGeometry, neutral: tuple[float, float, float]) -> "tuple[float, float, float] | str":
    """`_Resampler`'s fill for a geometry: 'background' (the image's median colour), or the
    backbone's input mean `neutral`."""
    return "background" if geometry.fill == "background" else neutral


class _Resampler:
    """Regions of the normalised, channel-selected, bilinearly resampled image, on the device.

    Scaled pixel v samples the original at y = (v + 0.5) / scale - 0.5, clamped to the
    image (low-pass filtered first when scale < 1), so any region is computed identically
    whether the image is processed whole or in tiles. A scaled pixel whose source lies
    outside the image's pixels takes `fill` (RGB in [0, 1]), or with 'background' the image's
    median colour (`background_colour`, from the whole image, so tiles and bands agree). The
    margin of a border grid (`PatchGeometry.margin`) holds nothing that could pass for an
    object either way (a mirrored margin did: an object near the edge and its mirror image
    looked like one object, and on BCCD similarity search lost 0.016-0.031 PR-AUC). The
    backbone's input mean (0 after its input normalisation, as the network's own zero padding)
    is what projects made before 2026-12-04 see; on fluorescence, a dark ground, that grey
    beside a nucleus cut by the edge looks like nothing inside the image, and the background
    colour lifted similarity search on real nuclei (benchmarks/results/issue17-fill).
    Only the source pixels a region needs are copied to the device (in their
    stored dtype); the flat field's correction (`FlatField`), normalisation and resampling run
    there in float32. A per-image
    normalisation takes the range of the whole image given (`Normalization.for_image`).
    """

    def __init__(
        self,
        image: np.ndarray,
        normalization: Normalization,
        channels: tuple[int, ...],
        scale: float,
        device: torch.device = torch.device("cpu"),
        fill: "tuple[float, float, float] | str" = IMAGENET_MEAN,
    ):
        if image.ndim != 3:
            raise ConfigError(f"expected an (H, W, C) image, got shape {image.shape}")
        if image.shape[2] != normalization.channels:
            raise ConfigError(f"image has {image.shape[2]} channels, the normalization {normalization.channels}")
        self.image = image
        self.channels = list(channels)
        self.scale = scale
        self.device = device
        low, span = normalization.for_image(image).low_and_span(self.channels)  # the dataset's range, or the image's own
        self._flat = normalization.flat_field
        if self._flat is not None:
            self._flat.check_shape(*image.shape[:2])
        self._low = torch.from_numpy(low).to(device)
        self._span = torch.from_numpy(span).to(device)
        colour = self.background_colour() if fill == "background" else fill
        self._fill = torch.tensor(colour, dtype=torch.float32, device=device).view(3, 1, 1)

    def background_colour(self) -> tuple[float, float, float]:
        """The median of each selected channel over the image (an overview of at most 2^16
        pixels), normalised and mapped to RGB as the image is: the colour around objects in most
        microscopy (the dark ground of fluorescence, the pale one of a smear or a micrograph)."""
        sample = np.asarray(overview(self.image, max_pixels=1 << 16)[0])[..., self.channels]
        if self._flat is not None:  # the same pixels of the flat field (an overview of one size subsamples alike)
            sample = sample.astype(np.float32)
            sample = self._flat.remove(sample, overview(self._flat.factors, max_pixels=1 << 16)[0][..., self.channels])
        median = np.median(sample.reshape(-1, len(self.channels)).astype(np.float32), axis=0)
        level = torch.from_numpy(median).to(self.device).view(-1, 1, 1)
        return tuple(float(v) for v in self._as_rgb(level).flatten().cpu())

    def _sampled_at(self, start: int, stop: int) -> np.ndarray:
        """Where scaled pixels [start, stop) sample the original along an axis, in original
        pixel coordinates (pixel i spans [i, i + 1))."""
        return (np.arange(start, stop, dtype=np.float64) + 0.5) / self.scale

    def _source_coords(self, start: int, stop: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The source pixels (lower, upper) and weight of the upper that scaled pixels
        [start, stop) interpolate, clamped to an axis of `size`."""
        coords = np.clip(self._sampled_at(start, stop) - 0.5, 0, size - 1)
        lower = np.floor(coords).astype(np.int64)
        upper = np.minimum(lower + 1, size - 1)
        return lower, upper, (coords - lower).astype(np.float32)

    def _normalised(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Source pixels [y0:y1, x0:x1] -> (3, h, w) float32 in [0, 1] on the device."""
        crop = from_numpy(self.image[y0:y1, x0:x1])
        if crop.dtype in _WIDEN:  # CUDA kernels lack unsigned 16/32-bit arithmetic
            crop = crop.to(_WIDEN[crop.dtype])
        crop = crop.to(self.device, non_blocking=True).float()[..., self.channels].permute(2, 0, 1)
        if self._flat is not None:  # the dataset's fixed background out, in stored units
            factors = torch.from_numpy(np.ascontiguousarray(self._flat.factors[y0:y1, x0:x1][..., self.channels]))
            factors = factors.to(self.device, non_blocking=True).permute(2, 0, 1)
            crop = self._flat.remove(crop, factors)
        return self._as_rgb(crop)

    def _as_rgb(self, planes: torch.Tensor) -> torch.Tensor:
        """(C, h, w) selected channels, float32 in stored units on the device -> (3, h, w) in
        [0, 1]: normalised to the range, one channel as grey, two as R and G."""
        planes = ((planes - self._low.view(-1, 1, 1)) / self._span.view(-1, 1, 1)).clamp_(0.0, 1.0)
        if planes.shape[0] == 1:
            return planes.expand(3, -1, -1)
        if planes.shape[0] == 2:  # a two-colour overlay: R and G, B left at 0
            return torch.cat([planes, torch.zeros_like(planes[:1])])
        return planes

    def _smoothed(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Source pixels [y0:y1, x0:x1] low-pass filtered before a reduction (scale < 1), as
        skimage's rescale anti-aliasing (Gaussian, sigma (1 / scale - 1) / 2): without it a
        reduced image aliases its grain into texture. The filter reads a margin beyond the
        region and replicates the edge beyond the image, so tiles match the whole image."""
        sigma = (1.0 / self.scale - 1.0) / 2.0
        margin = math.ceil(3 * sigma)
        height, width = self.image.shape[:2]
        top, bottom, left, right = max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin)
        source = self._normalised(top, bottom, left, right)
        pads = (margin - (x0 - left), margin - (right - x1), margin - (y0 - top), margin - (bottom - y1))
        source = F.pad(source[None], pads, mode="replicate")[0] if any(pads) else source
        offsets = torch.arange(-margin, margin + 1, dtype=torch.float32, device=source.device)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).view(1, 1, -1)
        planes = source.reshape(-1, 1, *source.shape[1:])  # (3, 1, h, w)
        planes = F.conv2d(planes, kernel[..., None])  # along y
        planes = F.conv2d(planes, kernel[:, :, None, :])  # along x
        return planes[:, 0]

    def region(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        """(3, bottom - top, right - left) float32 RGB in [0, 1] of the scaled image, on the
        device; `fill` where the region reaches beyond the image."""
        height, width = self.image.shape[:2]
        inside_y, inside_x = (self._inside(start, stop, size) for start, stop, size in ((top, bottom, height), (left, right, width)))
        region = self._resampled(top, bottom, left, right)
        if inside_y.all() and inside_x.all():
            return region
        inside = torch.from_numpy(inside_y[:, None] & inside_x[None, :]).to(self.device)
        return torch.where(inside, region, self._fill)

    def _inside(self, start: int, stop: int, size: int) -> np.ndarray:
        """Which scaled pixels [start, stop) sample within the image's pixels along an axis of `size`."""
        coords = self._sampled_at(start, stop)
        return (coords >= 0) & (coords <= size)

    def _resampled(self, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
        height, width = self.image.shape[:2]
        y_lo, y_hi, wy = self._source_coords(top, bottom, height)
        x_lo, x_hi, wx = self._source_coords(left, right, width)
        y0, y1 = int(y_lo.min()), int(y_hi.max()) + 1
        x0, x1 = int(x_lo.min()), int(x_hi.max()) + 1
        source = self._smoothed(y0, y1, x0, x1) if self.scale < 1 else self._normalised(y0, y1, x0, x1)
        index = lambda values, origin: torch.from_numpy(values - origin).to(self.device)  # noqa: E731
        if self.scale == 1.0:
            return source.index_select(1, index(y_lo, y0)).index_select(2, index(x_lo, x0))
        wy_t = torch.from_numpy(wy).to(self.device)[None, :, None]
        rows = source.index_select(1, index(y_lo, y0)) * (1 - wy_t) + source.index_select(1, index(y_hi, y0)) * wy_t
        wx_t = torch.from_numpy(wx).to(self.device)[None, None, :]
        return rows.index_select(2, index(x_lo, x0)) * (1 - wx_t) + rows.index_select(2, index(x_hi, x0)) * wx_t


def display_rgb(image: np.ndarray, normalization: Normalization, channels: tuple[int, ...],
                region: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """(H, W, C) raw -> (H, W, 3) float32 in [0, 1]: what the backbone sees, for display.

    One selected channel is shown as grey, two as red and green, three as RGB. With `region`
    (top, bottom, left, right in image px) only that part is read and returned, at full
    resolution (a slide decodes only the tiles it touches), black where it reaches beyond the
    image; a per-image range and a flat field stay the whole image's.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import Normalization, display_rgb
    >>> image = np.array([[[100], [2100], [4100]]], np.uint16)    # one row of three pixels, one channel
    >>> rgb = display_rgb(image, Normalization(low=(100.0,), high=(4100.0,)), channels=(0,))
    >>> rgb.shape, rgb[0, :, 0].tolist()
    ((1, 3, 3), [0.0, 0.5, 1.0])
    >>> two = np.array([[[4100, 2100]]], np.uint16)
    >>> display_rgb(two, Normalization(low=(100.0, 100.0), high=(4100.0, 4100.0)), channels=(0, 1)).tolist()
    [[[1.0, 0.5, 0.0]]]
    >>> display_rgb(image, Normalization(low=(100.0,), high=(4100.0,)), (0,), region=(0, 1, 2, 4))[0, :, 0].tolist()
    [1.0, 0.0]
    """
    height, width = image.shape[:2]
    top, bottom, left, right = region if region is not None else (0, height, 0, width)
    resampler = _Resampler(image, normalization, channels, 1.0, fill=(0.0, 0.0, 0.0))
    return resampler.region(top, bottom, left, right).permute(1, 2, 0).numpy()


def window_corners(geometry: PatchGeometry, centres: np.ndarray) -> np.ndarray:
    """(N, 2) patch centres (y, x) in original pixels -> (N, 2) window top-left corners in scaled pixels."""
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    half = np.array(geometry.kernel) * NETWORK_STRIDE / 2
    return np.round(centres * geometry.scale - half).astype(np.int64)


def crop_windows(
    image: np.ndarray, normalization: Normalization, channels: tuple[int, ...], geometry: PatchGeometry,
    centres: np.ndarray, *, context_cells: int,
) -> torch.Tensor:
    """(N, 3, H, W) float32 crops in [0, 1] of the windows centred at `centres` (y, x px),
    with `context_cells` cells of margin, exactly as the network sees them (scaled, normalised;
    beyond the image the geometry's `fill`: the image's median colour, or the ImageNet mean every
    backbone here normalises with, as `DenseEmbedder`)."""
    resampler = _Resampler(image, normalization, channels, geometry.scale, fill=_margin_fill(geometry, IMAGENET_MEAN))
    kh, kw = geometry.kernel
    margin = context_cells * NETWORK_STRIDE
    crops = [
        resampler.region(top - margin, top + kh * NETWORK_STRIDE + margin, left - margin, left + kw * NETWORK_STRIDE + margin)
        for top, left in window_corners(geometry, centres).tolist()
    ]
    if not crops:
        return torch.zeros((0, 3, kh * NETWORK_STRIDE + 2 * margin, kw * NETWORK_STRIDE + 2 * margin))
    return torch.stack(crops)


def scaled_tops_lefts(geometry: PatchGeometry, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Grid positions -> (N, 2) top-left corners in scaled pixels, for embed_windows."""
    return np.stack(geometry.window_top_left(np.asarray(rows), np.asarray(cols)), axis=1)
