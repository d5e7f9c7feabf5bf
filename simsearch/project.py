"""A project folder: the dataset, its normalisation, the backbone and the cached
patch embeddings and index, recorded in ``project.yaml``.

Layout::

    project.yaml        settings: dataset source, channels, patch geometry,
                        backbone (name, weights file, sha256), normalisation,
                        channel correlation
    embeddings/         one float16 .npy per image and settings (memory-mapped)
    index/              the FAISS patch index and its metadata

Settings are fixed when the project is created; reopening never changes the
backbone or the normalisation silently.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import yaml

from .errors import ConfigError, ImageReadError, ProjectError, SimSearchError
from .features.backbones import Backbone, BackboneSpec, load_backbone, load_recorded_backbone
from .features.embed import DenseEmbedder, PatchEmbeddings
from .features.geometry import PatchGeometry
from .io.images import Dataset
from .preprocess import Normalization, compute_dataset_statistics, resolve_channels
from .search.index import PatchIndex

log = logging.getLogger(__name__)

PROJECT_FILE = "project.yaml"
PROJECT_FORMAT = 1


@dataclass(frozen=True)
class EmbedProgress:
    """One step of embedding a dataset. status: 'embedded', 'cached' or 'failed'."""

    done: int
    total: int
    image_id: str
    status: str
    message: str = ""


class Project:
    """Open with `Project.create(...)` or `Project.open(folder)`."""

    def __init__(self, folder: Path, settings: dict, dataset: Dataset):
        self.folder = folder
        self.settings = settings
        self.dataset = dataset
        self.normalization = Normalization.from_dict(settings["normalization"])
        self.geometry = PatchGeometry.from_dict(settings["geometry"])
        self.channels = tuple(settings["channels"])
        self.backbone_spec = BackboneSpec.from_dict(settings["backbone"])
        self.channel_correlation = np.asarray(settings["channel_correlation"], dtype=np.float64)
        self._embedder: DenseEmbedder | None = None
        self._device = settings.get("device", "auto")

    # -- creating and opening ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: str | Path,
        dataset: str | Path | Dataset,
        *,
        patch_size: int | tuple[int, int],
        backbone: str = "auto",
        weights: str | Path | None = None,
        channels: list[int] | None = None,
        min_cells: int = 4,
        passes: int = 1,
        progress: Callable[[int, int], None] | None = None,
    ) -> "Project":
        """Scan the dataset, compute its normalisation, resolve the backbone, write project.yaml."""
        folder = Path(folder).expanduser().resolve()
        if (folder / PROJECT_FILE).exists():
            raise ProjectError(f"{folder} already holds a project", hint="open it with Project.open, or choose another folder")
        if not isinstance(dataset, Dataset):
            dataset = Dataset.open(dataset)
        geometry = PatchGeometry.for_patch(patch_size, min_cells=min_cells, passes=passes)
        selection = resolve_channels(dataset.channels, channels)
        loaded = load_backbone(backbone, weights=weights)
        total = len(dataset)
        stats = compute_dataset_statistics(
            dataset, progress=(lambda done: progress(done, total)) if progress else None
        )
        settings = {
            "format": PROJECT_FORMAT,
            "dataset": {"source": str(dataset.source)},
            "channels": list(selection),
            "file_channels": dataset.channels,
            "geometry": geometry.to_dict(),
            "backbone": loaded.spec.to_dict(),
            "normalization": stats.normalization.to_dict(),
            "channel_correlation": np.round(stats.correlation, 6).tolist(),
        }
        folder.mkdir(parents=True, exist_ok=True)
        _write_yaml_atomic(folder / PROJECT_FILE, settings)
        project = cls(folder, settings, dataset)
        project._embedder = DenseEmbedder(loaded, project.normalization, geometry, channels=selection, device=project._device)
        log.info("created project %s: backbone %s (%s)", folder, loaded.spec.name, loaded.spec.weights_path)
        return project

    @classmethod
    def open(cls, folder: str | Path, *, dataset: str | Path | None = None) -> "Project":
        """Reopen a project; `dataset` re-points it when the images moved (ids must match)."""
        folder = Path(folder).expanduser().resolve()
        path = folder / PROJECT_FILE
        if not path.is_file():
            raise ProjectError(f"no project at {folder} ({PROJECT_FILE} not found)", hint="create one with `simsearch embed DATASET --project DIR`")
        try:
            settings = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ProjectError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(settings, dict) or "format" not in settings:
            raise ProjectError(f"{path} is not a SimSearch project file")
        if settings["format"] > PROJECT_FORMAT:
            raise ProjectError(f"{path} was written by a newer SimSearch (format {settings['format']})", hint="upgrade simsearch")
        source = dataset if dataset is not None else settings["dataset"]["source"]
        opened = Dataset.open(source, verify=False)
        if opened.channels != settings["file_channels"]:
            raise ProjectError(
                f"dataset {source} has {opened.channels} channels; project {folder} was made with {settings['file_channels']}"
            )
        if dataset is not None:
            settings["dataset"]["source"] = str(opened.source)
            _write_yaml_atomic(path, settings)
        return cls(folder, settings, opened)

    # -- embeddings ------------------------------------------------------------------------

    @property
    def embedder(self) -> DenseEmbedder:
        if self._embedder is None:
            backbone = load_recorded_backbone(self.backbone_spec)
            self._embedder = DenseEmbedder(backbone, self.normalization, self.geometry, channels=self.channels, device=self._device)
        return self._embedder

    @property
    def backbone(self) -> Backbone:
        return self.embedder.backbone

    def set_device(self, device: str) -> None:
        """Choose 'auto', 'cpu' or 'cuda' for the embeddings computed from now on."""
        if device != self._device:
            self._device = device
            self._embedder = None

    def _cache_path(self, image_id: str) -> Path:
        settings = self.embedder.cache_settings()
        key = hashlib.blake2b(json.dumps([image_id, settings], sort_keys=True).encode(), digest_size=12).hexdigest()
        return self.folder / "embeddings" / key[:2] / f"{key}.npy"

    def embeddings(self, image_id: str) -> PatchEmbeddings:
        """Cached embeddings of one image (float16, memory-mapped), computed if missing."""
        record = self.dataset.by_id(image_id)
        path = self._cache_path(record.id)
        if not path.is_file():
            self._embed_and_save(record, path)
        vectors = np.load(path, mmap_mode="r")
        return PatchEmbeddings(vectors, self.geometry, (record.height, record.width))

    def _embed_and_save(self, record, path: Path) -> None:
        embedded = self.embedder.embed(self.dataset.read(record))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(tmp, embedded.vectors.astype(np.float16))
        tmp.replace(path)

    def iter_embed(self, *, cancel: threading.Event | None = None) -> Iterator[EmbedProgress]:
        """Embed every image not yet cached; yields one event per image. Failures are
        reported and skipped; cancelling stops before the next image (finished ones stay cached)."""
        total = len(self.dataset)
        for done, record in enumerate(self.dataset, start=1):
            if cancel is not None and cancel.is_set():
                return
            path = self._cache_path(record.id)
            if path.is_file():
                yield EmbedProgress(done, total, record.id, "cached")
                continue
            try:
                self._embed_and_save(record, path)
            except (ImageReadError, OSError) as exc:
                yield EmbedProgress(done, total, record.id, "failed", getattr(exc, "message", str(exc)))
                continue
            yield EmbedProgress(done, total, record.id, "embedded")

    def failed_images(self) -> list[str]:
        return [r.id for r in self.dataset if not self._cache_path(r.id).is_file()]

    # -- the index -------------------------------------------------------------------------

    @property
    def index_folder(self) -> Path:
        return self.folder / "index" / self._settings_tag()

    def _settings_tag(self) -> str:
        text = json.dumps(self.embedder.cache_settings(), sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()

    def build_index(self) -> PatchIndex:
        """Index every cached embedding (images that failed to embed are left out) and save it."""
        index = PatchIndex(self.embedder.dim)
        for record in self.dataset:
            if not self._cache_path(record.id).is_file():
                continue
            embedded = self.embeddings(record.id)
            index.add(record.id, np.asarray(embedded.vectors, np.float32), embedded.centres())
        index.save(self.index_folder)
        return index

    def load_index(self) -> PatchIndex:
        return PatchIndex.load(self.index_folder)

    def patch_vector(self, image_id: str, y: float, x: float) -> np.ndarray:
        """(D,) float32 embedding of the grid patch whose centre is nearest to (y, x) px."""
        embedded = self.embeddings(image_id)
        record = self.dataset.by_id(image_id)
        if not (0 <= y < record.height and 0 <= x < record.width):
            raise ConfigError(f"point ({y:.0f}, {x:.0f}) lies outside image {image_id} ({record.height}x{record.width})")
        if 0 in embedded.grid_shape:
            raise ConfigError(f"image {image_id} is smaller than one patch {self.geometry.patch_size}")
        row, col = self.geometry.nearest_position(y, x, embedded.grid_shape)
        return np.asarray(embedded.vectors[row, col], np.float32)

    def summary(self) -> str:
        spec = self.backbone_spec
        lines = [
            f"project   {self.folder}",
            self.dataset.summary(),
            f"channels  {list(self.channels)} of {self.settings['file_channels']}",
            f"patch     {self.geometry.patch_size[0]}x{self.geometry.patch_size[1]} px, scale {self.geometry.scale:g}, "
            f"pooling {self.geometry.kernel[0]}x{self.geometry.kernel[1]} cells, grid step {self.geometry.grid_step:.2f} px",
            f"backbone  {spec.name} ({spec.weights_path}, sha256 {spec.weights_sha256[:12]})",
            "normalization  " + ", ".join(
                f"ch{c}: [{lo:.4g}, {hi:.4g}]" for c, (lo, hi) in enumerate(zip(self.normalization.low, self.normalization.high))
            ),
        ]
        if len(self.channel_correlation) > 1:
            lines.append("channel correlation")
            lines += ["  " + " ".join(f"{v:6.3f}" for v in row) for row in self.channel_correlation]
        return "\n".join(lines)


def _write_yaml_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, path)
