"""A project folder: the dataset, its normalisation, the backbone and the cached
patch embeddings and index, recorded in ``project.yaml``.

The folder's paths are those of `ProjectLayout` (simsearch/project/layout.py): project.yaml
holds the settings (dataset source, channels, patch geometry and scales, backbone with its
weights' hash, normalisation, channel correlation); embeddings/ one float16 .npy per image,
level and settings (memory-mapped); index/ the FAISS patch index.

Settings are fixed when the project is created; reopening never changes the
backbone or the normalisation silently.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import yaml

from simsearch.util.errors import ConfigError, DatasetError, ImageReadError, ImagesMovedError, ProjectError
from simsearch.util.files import atomic_path, remove_orphaned_temporaries, save_npy_rows, write_text_atomic
from simsearch.util.memory import release_freed_memory
from simsearch.util.prefetch import Loaded, grouped, prefetched, written_behind
from simsearch.features.backbones import Backbone, BackboneSpec, load_backbone, load_recorded_backbone
from simsearch.features.embed import DenseEmbedder, PatchEmbeddings, joins_batch, resolve_device
from simsearch.project.layout import ProjectLayout
from simsearch.project.store import Store
from simsearch.features.geometry import AUTO_SCALES, LEGACY_POOLING, MIN_CELLS, POOLING, PatchGeometry, nearest_scale, parse_scales, scales_for_sizes
from simsearch.io.flatfield import check_flat_field_mode, compute_flat_field
from simsearch.io.images import Dataset, ImageRecord, NamedImage, image_name, source_exists
from simsearch.io.preprocess import (Normalization, check_normalization_mode, choose_normalization, compute_dataset_statistics,
                                     resolve_channels)
from simsearch.search.index import PatchIndex

log = logging.getLogger(__name__)

PROJECT_FORMAT = 1


@dataclass(frozen=True)
class EmbedProgress(NamedImage):
    """One step of embedding a dataset. status: 'embedded', 'cached' or 'failed'.

    Examples
    --------
    `Project.iter_embed` yields one per image (the Project example runs it):

    >>> for event in project.iter_embed():                         # doctest: +SKIP
    ...     if event.status == "failed":                           # the others: 'embedded' or 'cached'
    ...         print(f"{event.done}/{event.total}", event.image_id, event.message)
    2/3 img1.tif@5d41402abc4b cannot read image '/data/screen1/img1.tif': truncated or corrupt TIFF: ...
    """

    done: int
    total: int
    image_id: str
    status: str
    message: str = ""


class Project:
    """Open with `Project.create(...)` or `Project.open(folder)`.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> from simsearch import Project
    >>> tmp = tempfile.TemporaryDirectory()
    >>> images = pathlib.Path(tmp.name, "images")
    >>> images.mkdir()
    >>> rng = np.random.default_rng(0)
    >>> for i in range(3):
    ...     Image.fromarray(rng.integers(0, 256, (96, 128), np.uint8)).save(images / f"img{i}.png")
    >>> project = Project.create(pathlib.Path(tmp.name, "project"), images, patch_size=48,
    ...                          backbone="efficientnet-lite0", displayed=2)
    >>> len(project.dataset), project.geometry.patch_size, len(project.displayed)
    (3, (48, 48), 2)
    >>> [event.status for event in project.iter_embed()]          # every image's patch embeddings, cached
    ['embedded', 'embedded', 'embedded']
    >>> project.embeddings(project.displayed[0]).vectors.shape    # (rows, cols, D), float16 from the cache
    (9, 13, 112)
    >>> project.close()
    >>> with Project.open(pathlib.Path(tmp.name, "project")) as project:   # later, in another session
    ...     print(project.backbone_spec.name, project.channels)
    efficientnet-lite0 (0,)
    >>> tmp.cleanup()
    """

    def __init__(self, folder: Path, settings: dict, dataset: Dataset, *, read_only: bool = False):
        self.folder = folder
        self.layout = ProjectLayout(folder)
        self.settings = settings
        self.dataset = dataset
        self.read_only = read_only
        try:
            self.normalization = Normalization.from_dict(settings["normalization"], folder=folder)
            self.geometry = PatchGeometry.from_dict(settings["geometry"]) if settings.get("geometry") else None
            self.channels = tuple(int(channel) for channel in settings["channels"])
            self.backbone_spec = BackboneSpec.from_dict(settings["backbone"])
            self.channel_correlation = np.asarray(settings["channel_correlation"], dtype=np.float64)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:  # a damaged project.yaml
            detail = exc.message if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            raise ProjectError(f"{self.layout.settings_file}: {detail}", hint=RESTORE_SETTINGS) from exc
        self._backbone: Backbone | None = None
        self._embedders: dict[float, DenseEmbedder] = {}
        self._vectors_at: dict[tuple, np.ndarray] = {}  # `vectors_at`'s, made by these embedders
        self._device = "auto"
        self.prefetch_images = 2  # images read ahead while one is embedded (0: none; at least 2 per decoding thread)
        self.decode_threads: int | None = None  # threads decoding them (None: `read_ahead` chooses)
        self.embed_batch_pixels = 0  # same-shape images embedded together up to this many pixels (0: one at a time)
        # the store holds the single-writer lock for the whole project folder
        self.store = Store(folder, read_only=read_only)

    # -- creating and opening ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: str | Path,
        dataset: str | Path | Dataset,
        *,
        patch_size: int | tuple[int, int] | None = None,
        backbone: str = "auto",
        weights: str | Path | None = None,
        channels: list[int] | None = None,
        min_cells: int = MIN_CELLS,
        passes: int = 1,
        border: bool = True,
        pooling: float = POOLING,
        fill: str = "background",
        progress: Callable[[int, int], None] | None = None,
        embedding_cache: str | Path | None = None,
        normalization: Normalization | str = "auto",
        flat_field: str = "none",
        displayed: int | list[str] | None = None,
        seed: int = 0,
        scales: str | list[float] | None = None,
    ) -> "Project":
        """Scan the dataset, compute its normalisation, resolve the backbone, write project.yaml.

        patch_size None leaves it to the first prototype (`set_patch_size`). `embedding_cache`
        names a folder shared with other projects on the same images; `normalization`
        is 'auto', 'dataset' (the paper's one range) or 'image' (`choose_normalization`), or a
        known `Normalization` reused without a pass over the images (with its flat field, if it has
        one). `flat_field` 'divide' (transmitted light) or 'subtract' (a dark ground) takes the
        dataset's fixed background, a per-pixel percentile of its images (`FlatField`), out of every
        image before it is normalised: uneven illumination and dust on the optics; the images
        must be of one size; 'none' (the default, and what projects made before 2026-12-05 do)
        leaves them as they are; 'auto' decides from the images (`choose_flat_field`) and
        records what it decided. `displayed` (a count, chosen at random with
        `seed`, or image names) chooses the displayed images now, so that the project file is
        complete when it appears. `scales` (e.g. [0.5, 1, 2]) makes the similarity search a
        pyramid: objects of those sizes relative to the patch are matched too (`set_scales`).
        `border` lets the patch grid reach the image's edge, `fill` beyond it ('background', the
        image's median colour, or 'neutral', the backbone's input mean; `PatchGeometry`); projects
        made before it was an option keep the grid inside the image, and those made before
        2026-12-04 a neutral fill.
        `pooling` is the sigma of the Gaussian pooling window, a fraction of its side (0.15:
        about the best for a patch that frames its object, `POOLING`); projects made before it
        was a setting, and by default before 2026-12-03, keep 0.25.
        The file is written once and exclusively: of two processes
        creating the same project, one wins and the other gets a ProjectError. A folder that
        holds a project store (store.sqlite) without its project.yaml is refused too: its
        curation belongs to the settings that were lost, and is left as it is."""
        folder = Path(folder).expanduser().resolve()
        layout = ProjectLayout(folder)
        if folder.exists() and not folder.is_dir():
            raise ProjectError(f"project folder {folder} is a file, not a folder",
                               hint="name a new folder (or an empty one) for the project")
        if layout.settings_file.exists():
            raise ProjectError(f"{folder} already holds a project", hint=USE_EXISTING_PROJECT)
        if layout.store_file.exists():  # the curation of a project whose settings were lost: never made anew
            raise ProjectError(
                f"{folder} holds a project store ({layout.store_file.name}: its classes, prototypes and answers) "
                f"without its settings ({layout.settings_file.name} is missing); they belong to settings a new "
                "project would not have",
                hint=f"restore {layout.settings_file} (e.g. from a backup) to go on with that project, or choose "
                     "another folder for a new one; nothing was changed")
        if not isinstance(dataset, Dataset):
            dataset = Dataset.open(dataset)
        embedding = {"min_cells": min_cells, "passes": passes, "border": bool(border), "pooling": float(pooling), "fill": fill}
        geometry = PatchGeometry.for_patch(patch_size, **embedding) if patch_size else None
        if geometry is not None:
            check_some_image_holds_a_patch(dataset, geometry)
        pyramid = _scales_setting(scales)
        PatchGeometry.for_patch(64, **embedding)  # validates the settings now
        if isinstance(normalization, str):
            check_normalization_mode(normalization)  # before the pass over the images
        check_flat_field_mode(flat_field)
        if not isinstance(normalization, str) and flat_field != "none":
            raise ConfigError(f"flat_field {flat_field!r}: a given Normalization carries its own flat field (or none)",
                              hint="give a normalization mode ('auto', 'dataset', 'image') to compute one")
        selection = resolve_channels(dataset.channels, channels)
        shown = [] if displayed is None else displayed_ids(dataset, displayed, seed)
        loaded = load_backbone(backbone, weights=weights)
        total = len(dataset)
        if isinstance(normalization, str):
            flat = compute_flat_field(dataset, flat_field)
            stats = compute_dataset_statistics(dataset, progress=(lambda done: progress(done, total)) if progress else None,
                                               flat_field=flat)
            normalization, correlation = replace(choose_normalization(stats, normalization), flat_field=flat), stats.correlation
        else:  # given (e.g. shared by the projects of an evaluation): no pass over the images
            correlation = np.eye(dataset.channels)
        settings = {
            "format": PROJECT_FORMAT,
            "dataset": {"source": str(dataset.source)},
            "channels": list(selection),
            "file_channels": dataset.channels,
            "geometry": geometry.to_dict() if geometry else None,
            "stride": _paper_stride(geometry) if geometry else None,
            "embedding": embedding,
            "scales": pyramid,
            "displayed": shown,
            "seed": seed,
            "backbone": loaded.spec.to_dict(),
            "normalization": normalization.to_dict(),
            "channel_correlation": np.round(correlation, 6).tolist(),
            "embedding_cache": str(Path(embedding_cache).resolve()) if embedding_cache else None,
        }
        folder.mkdir(parents=True, exist_ok=True)
        if normalization.flat_field is not None:  # before the settings that name it
            normalization.flat_field.save(ProjectLayout(folder).flat_field)
        try:
            with atomic_path(ProjectLayout(folder).settings_file, exclusive=True) as tmp:  # one creator wins
                tmp.write_text(yaml.safe_dump(settings, sort_keys=False))
        except FileExistsError:
            raise ProjectError(f"{folder} already holds a project (created meanwhile by another process)",
                               hint=USE_EXISTING_PROJECT) from None
        project = cls(folder, settings, dataset)
        project._backbone = loaded
        log.info("created project %s: backbone %s (%s)", folder, loaded.spec.name, loaded.spec.weights_path)
        return project

    @classmethod
    def open(cls, folder: str | Path, *, dataset: str | Path | None = None, read_only: bool = False) -> "Project":
        """Reopen a project; `dataset` re-points it when the images moved (ids must match;
        recorded unless read_only).

        Only one process may have a project open for writing; read_only=True lets
        another look (and embed into the cache) without changing settings or actions."""
        folder = Path(folder).expanduser().resolve()
        path = ProjectLayout(folder).settings_file
        if not path.is_file():
            raise ProjectError(f"no project at {folder} ({path.name} not found)", hint="create one with `simsearch embed DATASET --project DIR`")
        try:
            settings = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ProjectError(f"{path} is not valid YAML: {exc}", hint=RESTORE_SETTINGS) from exc
        if not isinstance(settings, dict) or "format" not in settings:
            raise ProjectError(f"{path} is not a SimSearch project file", hint=RESTORE_SETTINGS)
        if isinstance(settings["format"], int) and settings["format"] > PROJECT_FORMAT:
            raise ProjectError(f"{path} was written by a newer SimSearch (format {settings['format']})", hint="upgrade simsearch")
        _check_settings(path, settings)
        source = dataset if dataset is not None else settings["dataset"]["source"]
        if dataset is None and not source_exists(source):
            raise ImagesMovedError(f"the images of project {folder} are not at {source} any more",
                               hint=f"if they moved, give their new place once: simsearch embed NEW_PLACE --project {folder} "
                                    "(or Project.open(folder, dataset=NEW_PLACE)); the project checks they are its images")
        opened = Dataset.open(source, verify=False)
        if opened.channels != settings["file_channels"]:
            raise ProjectError(
                f"dataset {source} has {opened.channels} channels; project {folder} was made with {settings['file_channels']}"
            )
        project = cls(folder, settings, opened, read_only=read_only)
        if dataset is not None:
            project._check_it_holds_the_curated_images(source)
        if not read_only:  # the project is ours now: what killed writers left half-written goes
            for path in remove_orphaned_temporaries(folder):
                log.info("removed %s, left by a process that died while writing it", path)
        if dataset is not None:
            settings["dataset"]["source"] = str(opened.source)
            if not read_only:  # a read-only look uses the new place without recording it
                project._save_settings()
        return project

    def _check_it_holds_the_curated_images(self, source) -> None:
        """A ProjectError (the project closed) where the dataset re-pointed to lacks images the
        curation names (the displayed images, the prototypes' images): another set of images,
        not the project's moved."""
        named = set(self.displayed) | {p.image_id for p in self.store.prototypes()}
        missing = sorted(image_id for image_id in named if image_id not in self.dataset)
        if missing:
            self.close()
            raise ProjectError(f"{source} does not hold the images of project {self.folder}: {len(missing)} of the "
                               f"{len(named)} images its curation names are not there, e.g. {image_name(missing[0])}",
                               hint="a project keeps its images (an image is known by its content); for other images "
                                    "use another --project folder")

    def close(self) -> None:
        """Release the store and its lock (everything is saved already)."""
        self.store.close()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def differing_settings(self, *, patch_size: int | tuple[int, int] | None = None, backbone: str | None = None,
                           passes: int | None = None, min_cells: int | None = None, border: bool | None = None,
                           pooling: float | None = None, channels: Sequence[int] | None = None, normalization: str | None = None,
                           flat_field: str | None = None) -> dict[str, tuple]:
        """The asked embedding settings that are not those the project was made with: reusing
        its embeddings for other settings would mix vectors of two kinds.

        Parameters
        ----------
        patch_size, backbone, passes, min_cells, border, pooling, channels, normalization, flat_field
            As `Project.create` takes them. None asks nothing, nor does 'auto' for the
            backbone, the normalization and the flat field (what it decided when the project was
            made stands); another normalization or flat field mode is a ConfigError.

        Returns
        -------
        dict
            {setting: (recorded, asked)} for each asked setting that differs, in the order of the
            parameters; empty when the project's embeddings are those asked for. The patch size
            is compared as (height, width), the channels as a tuple, the normalization as
            'dataset' or 'image'; a project whose patch size is not set yet records None.

        Examples
        --------
        >>> import tempfile, pathlib, numpy as np
        >>> from PIL import Image
        >>> tmp = tempfile.TemporaryDirectory()
        >>> images = pathlib.Path(tmp.name, "images")
        >>> images.mkdir()
        >>> Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(images / "img.png")
        >>> project = Project.create(pathlib.Path(tmp.name, "project"), images, patch_size=32, backbone="efficientnet-lite0")
        >>> project.differing_settings(patch_size=48, channels=[0], border=False, normalization="auto")
        {'patch_size': ((32, 32), (48, 48)), 'border': (True, False)}
        >>> project.differing_settings(patch_size=32, backbone="auto")
        {}
        >>> project.close()
        >>> tmp.cleanup()
        """
        if normalization is not None:
            check_normalization_mode(normalization)
        if flat_field is not None:
            check_flat_field_mode(flat_field)
        if isinstance(patch_size, int):
            patch_size = (patch_size, patch_size)
        options = self.embedding_options
        recorded = {
            "patch_size": self.geometry.patch_size if self.geometry else None, "backbone": self.backbone_spec.name,
            "passes": options["passes"], "min_cells": options["min_cells"], "border": options.get("border", False),
            "pooling": options["pooling"], "channels": self.channels, "normalization": "image" if self.normalization.per_image else "dataset",
            "flat_field": self.normalization.flat_field.mode if self.normalization.flat_field is not None else "none",
        }
        asked = {
            "patch_size": None if patch_size is None else tuple(patch_size), "backbone": None if backbone == "auto" else backbone,
            "passes": passes, "min_cells": min_cells, "border": border, "pooling": pooling, "channels": None if channels is None else tuple(channels),
            "normalization": None if normalization == "auto" else normalization,
            "flat_field": None if flat_field == "auto" else flat_field,
        }
        return {name: (recorded[name], value) for name, value in asked.items() if value is not None and value != recorded[name]}

    def _save_settings(self) -> None:
        if self.read_only:
            raise ProjectError(f"project {self.folder} is open read-only")
        _write_yaml_atomic(self.layout.settings_file, self.settings)

    # -- patch size and displayed images -----------------------------------------------------

    def set_patch_size(self, patch_size: int | tuple[int, int]) -> PatchGeometry:
        """Fix the patch shape (once: the first prototype does it, as in the paper)."""
        geometry = PatchGeometry.for_patch(patch_size, **self.embedding_options)
        if self.geometry is not None:
            if geometry.patch_size != self.geometry.patch_size:
                raise ConfigError(
                    f"patch size: the project's is {self.geometry.patch_size}, fixed by its first prototype; "
                    f"cannot change it to {geometry.patch_size}"
                )
            return self.geometry
        check_some_image_holds_a_patch(self.dataset, geometry)
        self.settings["geometry"] = geometry.to_dict()
        self.settings["stride"] = _paper_stride(geometry)
        self._save_settings()
        self.geometry = geometry
        self._embedding_changed()
        return geometry

    @property
    def embedding_options(self) -> dict:
        """How the project's patch grid is made, as `PatchGeometry.for_patch` takes them:
        min_cells, passes, pooling, and border for projects made since the border grid, fill since
        the background fill."""
        return {"pooling": LEGACY_POOLING, **self.settings.get("embedding", {"min_cells": 4, "passes": 1})}

    @property
    def scales(self) -> tuple[float, ...]:
        """The levels of the similarity search's scale pyramid: object sizes relative to the
        patch, always holding 1; (1.0,) searches at the patch size only (the paper's way).
        With 'auto', levels a factor 2 apart that cover the prototype boxes' sizes."""
        setting = self.settings.get("scales")
        if setting == AUTO_SCALES:
            sides = [p.side for p in self.store.prototypes()]
            return scales_for_sizes(sides, min(self.geometry.patch_size)) if self.geometry is not None else (1.0,)
        return parse_scales(setting)

    @property
    def automatic_scales(self) -> bool:
        """Whether the pyramid follows the prototype boxes (`set_scales('auto')`)."""
        return self.settings.get("scales") == AUTO_SCALES

    def set_scales(self, scales: str | list[float] | None) -> tuple[float, ...]:
        """Search at these object sizes relative to the patch (e.g. '0.5,1,2'), or 'auto' (from
        the prototype boxes, which then keep their own size); each level is embedded when first
        needed and cached like the patch size's own embeddings."""
        setting = _scales_setting(scales)
        if setting != self.settings.get("scales"):
            self.settings["scales"] = setting
            self._save_settings()
        return self.scales

    def nearest_level(self, side: float) -> float:
        """The pyramid level whose patch side is nearest (in ratio) to an object of `side` px
        (of a box: `object_side`)."""
        return nearest_scale(side, min(self.geometry.patch_size), self.scales)

    def geometry_at(self, scale: float = 1.0) -> PatchGeometry:
        """The patch geometry of one pyramid level (`PatchGeometry.at_scale`)."""
        if self.geometry is None:
            raise ConfigError(
                f"project {self.folder} has no patch size yet",
                hint="add a first prototype (it fixes the patch size), or create the project with a patch size "
                     "(--patch-size; Project.create(patch_size=))",
            )
        return self.geometry.at_scale(scale)

    def set_channels(self, channels: list[int] | None) -> tuple[int, ...]:
        """Choose the file channels shown to the backbone (as `Project.create(channels=)`);
        only before the first prototype, whose vector depends on them."""
        selection = resolve_channels(self.file_channels, channels)
        if selection == self.channels:
            return selection
        if self.store.prototypes():
            raise ConfigError(
                f"channels: the project already has prototypes embedded with channels {list(self.channels)}",
                hint="create a new project to use other channels",
            )
        self.settings["channels"] = list(selection)
        self._save_settings()
        self.channels = selection
        self._embedding_changed()
        return selection

    def choose_displayed(self, count: int | None = None, *, names: list[str] | None = None, seed: int = 0) -> list[str]:
        """Choose the displayed images: `count` at random (seeded), or `names` (ids, paths or
        file names). The rest are the undisplayed images used for noisy extraction."""
        if (count is None) == (names is None):
            raise ConfigError("displayed images: give either a count or names")
        ids = displayed_ids(self.dataset, names if names is not None else count, seed)
        self.settings["displayed"] = ids
        self.settings["seed"] = seed
        self._save_settings()
        return ids

    @property
    def displayed(self) -> list[str]:
        """Ids of the displayed images, those suggestions and background candidates are found on:
        in dataset order when drawn at random, else as named ([] before they are chosen:
        `choose_displayed`); a new list each time.

        Examples
        --------
        >>> project.displayed                                           # doctest: +SKIP
        ['img0.png@769023fa569a', 'img2.png@9d4f8796eeb2']
        >>> project.embeddings(project.displayed[0]).vectors.shape      # doctest: +SKIP
        (9, 13, 112)
        """
        return list(self.settings.get("displayed") or [])

    @property
    def displayed_seed(self) -> int | None:
        """The seed the displayed images were drawn with (None before they were chosen)."""
        return self.settings.get("seed")

    @property
    def file_channels(self) -> int:
        """Channels in the dataset's files (`channels` are those the network sees)."""
        return int(self.settings["file_channels"])

    @property
    def undisplayed(self) -> list[str]:
        """Ids of the dataset's images that are not displayed, in dataset order: those noisy
        extraction labels (`Curation.iter_noisy`); every image before the displayed ones are chosen.

        Examples
        --------
        >>> project.undisplayed                                         # doctest: +SKIP
        ['img1.png@e100b4779e90']
        >>> len(project.displayed) + len(project.undisplayed) == len(project.dataset)   # doctest: +SKIP
        True
        """
        shown = set(self.displayed)
        return [r.id for r in self.dataset if r.id not in shown]

    # -- embeddings ------------------------------------------------------------------------

    @property
    def backbone(self) -> Backbone:
        """The backbone the project recorded (`backbone_spec`), loaded on first use and kept.
        Raises WeightsError when its weights cannot be had or differ from the recorded file's sha256."""
        if self._backbone is None:
            self._backbone = load_recorded_backbone(self.backbone_spec)
        return self._backbone

    @property
    def embedder(self) -> DenseEmbedder:
        """The embedder of the patch size (pyramid level 1)."""
        return self.embedder_at(1.0)

    def embedder_at(self, scale: float) -> DenseEmbedder:
        """The embedder of one level of the scale pyramid (any scale; the project's are `scales`)."""
        scale = float(scale)
        if scale not in self._embedders:
            self._embedders[scale] = DenseEmbedder(self.backbone, self.normalization, self.geometry_at(scale),
                                                   channels=self.channels, device=self._device)
        return self._embedders[scale]

    def vectors_at(self, image_id: str, centre: tuple[float, float], scale: float = 1.0,
                   rotations: tuple[int, ...] = (0,)) -> np.ndarray:
        """(len(rotations), D) float32, read-only: the patch centred at `centre` (y, x px,
        anywhere, not only on the grid) of one image at one pyramid level, and its rotations
        (`DenseEmbedder.embed_at`). Kept in memory until the project's embedding changes (patch
        size, channels, device), so that every `Curation` of the project, and every check of
        the training identity, embeds a prototype once.

        Examples
        --------
        >>> vectors = project.vectors_at(project.displayed[0], (120.0, 200.0), rotations=(0, 1, 2, 3))   # doctest: +SKIP
        >>> vectors.shape                                                                            # doctest: +SKIP
        (4, 320)
        """
        key = (image_id, tuple(float(v) for v in centre), float(scale), tuple(rotations))
        if key not in self._vectors_at:
            pixels = self.dataset.read(image_id)
            vectors = self.embedder_at(scale).embed_at(pixels, np.array([key[1]]), rotations=key[3])
            vectors.flags.writeable = False
            self._vectors_at[key] = vectors
        return self._vectors_at[key]

    def _embedding_changed(self) -> None:
        self._embedders.clear()
        self._vectors_at.clear()

    def read_ahead(self, jobs: Iterable, load: Callable, device=None) -> Iterator[Loaded]:
        """`load(job)` of every job, in order (`prefetched`), `prefetch_images` jobs ahead of
        the caller (0: each in its turn; at least 2 per thread), in `decoding_threads` threads:
        by default one where the network runs on the CPU, whose cores it needs, and up to 8
        beside a GPU. The decoders release the GIL (JPEG, PNG and TIFF scale with threads),
        and one core decodes about 100 MP/s of JPEG.

        Examples
        --------
        >>> [loaded.value for loaded in project.read_ahead([1, 2, 3], lambda n: n * n)]   # doctest: +SKIP
        [1, 4, 9]
        """
        threads = self.decoding_threads(device)
        ahead = max(self.prefetch_images, 2 * threads) if self.prefetch_images > 0 else 0
        return prefetched(jobs, load, ahead=ahead, threads=threads)

    def decoding_threads(self, device=None) -> int:
        """The threads `read_ahead` decodes in: `decode_threads`, or by default 1 where the
        network runs on the CPU (`device`, default the project's) and up to 8 beside a GPU."""
        threads = self.decode_threads
        if threads is None:
            on_cpu = resolve_device(self._device if device is None else device).type == "cpu"
            threads = 1 if on_cpu else max(1, min(8, (os.cpu_count() or 2) - 1))
        if threads < 1:
            raise ConfigError(f"decode threads: at least 1, got {threads}")
        return threads

    def set_device(self, device: str) -> None:
        """Choose 'auto', 'cpu' or 'cuda' for the embeddings computed from now on."""
        if device != self._device:
            self._device = device
            self._embedding_changed()

    def _cache_path(self, image_id: str, scale: float = 1.0) -> Path:
        settings = self.embedder_at(scale).cache_settings()
        key = hashlib.blake2b(json.dumps([image_id, settings], sort_keys=True).encode(), digest_size=12).hexdigest()
        return self.embedding_folder / key[:2] / f"{key}.npy"

    @property
    def embedding_folder(self) -> Path:
        """The embedding cache: project/embeddings, or a shared folder named at creation
        (keys cover every setting, so projects on the same images can share one)."""
        shared = self.settings.get("embedding_cache")
        return Path(shared) if shared else self.layout.embeddings

    def embeddings(self, image_id: str, scale: float = 1.0) -> PatchEmbeddings:
        """Cached embeddings of one image (float16, memory-mapped) at one pyramid level
        (default: the patch size), computed if missing."""
        cached = self.cached_embeddings(image_id, scale)
        if cached is not None:
            return cached
        record = self.dataset.by_id(image_id)
        path = self._cache_path(record.id, scale)
        self._embed_and_save(self.dataset.read(record), path, scale)
        return PatchEmbeddings(np.load(path, mmap_mode="r"), self.geometry_at(scale), (record.height, record.width))

    def cached_embeddings(self, image_id: str, scale: float = 1.0) -> PatchEmbeddings | None:
        """`embeddings` where they are cached already, else None (nothing is computed; an id
        the dataset does not hold is None too).

        Examples
        --------
        >>> project.cached_embeddings(project.displayed[0]).vectors.dtype    # doctest: +SKIP
        dtype('float16')
        >>> project.cached_embeddings("not-embedded.tif@0123456789ab") is None  # doctest: +SKIP
        True
        """
        try:
            record = self.dataset.by_id(image_id)
        except DatasetError:
            return None
        vectors = self._cached_vectors(record.id, scale)
        if vectors is None:
            return None
        return PatchEmbeddings(vectors, self.geometry_at(scale), (record.height, record.width))

    def _cached_vectors(self, image_id: str, scale: float = 1.0) -> np.ndarray | None:
        """The cached vectors of one image at one level, memory-mapped, or None when there are none
        or their file cannot be read (cut short, e.g. by a full disk): the cache is derived data, so
        such a file counts as missing, with a warning, and is embedded again when next needed."""
        path = self._cache_path(image_id, scale)
        if not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            log.warning("image %s: its cached embeddings %s cannot be read (%s); counted as not embedded, and "
                        "embedded again when next needed", image_id, path, exc)
            return None

    def _embed_and_save(self, pixels, path: Path, scale: float = 1.0) -> None:
        """Embed an image (array or LazyImage) and cache its float16 vectors, band by band: a
        slide's vectors are never all in memory."""
        embedder = self.embedder_at(scale)
        rows, cols = embedder.geometry.grid_shape(*pixels.shape[:2])
        # The first band is computed before the file is opened: a process killed while embedding leaves no
        # temporary file (a slide's stays until the next open); one band is held at a time.
        save_npy_rows(path, (rows, cols, embedder.dim), np.float16, _vectors_only(embedder.iter_rows(pixels)))

    def iter_embed(self, *, images: Sequence[str] | None = None,
                   cancel: threading.Event | None = None) -> Iterator[EmbedProgress]:
        """Embed every image not yet cached (or whose cache file cannot be read), at every level of
        the scale pyramid; yields one event per image, once its vectors are cached. Failures are reported and skipped;
        cancelling stops before the next image (finished ones stay cached). The next images
        are read and decoded in threads while the network embeds this one (`read_ahead`), and
        each image's vectors are written in another while the
        network embeds the next; consecutive images of one shape go through the network
        together up to `embed_batch_pixels` pixels (0: one at a time).
        `images`: only these image ids (a batch of a cluster run)."""
        for event, error in written_behind(self._embed_steps(images, cancel)):
            if error is not None:  # the write failed: nothing of it is cached
                event = replace(event, status="failed", message=getattr(error, "message", str(error)))
            yield event

    def _embed_steps(self, images: Sequence[str] | None,
                     cancel: threading.Event | None) -> Iterator[tuple[Callable[[], None] | None, EmbedProgress]]:
        """`iter_embed`'s work: (the write of an image's vectors, or None, and its event) per image."""
        records = self.dataset if images is None else [self.dataset.by_id(image_id) for image_id in images]
        total = len(records)
        jobs = ((record, {scale: self._cache_path(record.id, scale) for scale in self.scales
                          if self._cached_vectors(record.id, scale) is None})
                for record in records)
        loaded = enumerate(self.read_ahead(jobs, self._read_if_missing), start=1)
        for group in grouped(loaded, partial(joins_batch, self.embed_batch_pixels)):  # same-shape images together
            if cancel is not None and cancel.is_set():
                return
            done, first = group[0]
            record, missing = first.item
            if not missing:
                yield None, EmbedProgress(done, total, record.id, "cached")
                continue
            flat = self.normalization.flat_field
            if flat is not None and (record.height, record.width) != flat.shape:  # a group is of one shape
                message = (f"{record.height}x{record.width} pixels; the project's flat field is for images of "
                           f"{flat.shape[0]}x{flat.shape[1]}")
                for done, one in group:
                    yield None, EmbedProgress(done, total, one.item[0].id, "failed", message)
                continue
            try:
                if first.error is not None:
                    raise first.error
                writes = self._embed_group([one.value for _, one in group], [one.item[1] for _, one in group])
                release_freed_memory()  # the feature maps: gone before the next step allocates
            except (ImageReadError, OSError) as exc:
                for done, one in group:
                    yield None, EmbedProgress(done, total, one.item[0].id, "failed", getattr(exc, "message", str(exc)))
                continue
            for (done, one), write in zip(group, writes):
                yield write, EmbedProgress(done, total, one.item[0].id, "embedded")

    def _embed_group(self, images: list, paths: list[dict[float, Path]]) -> list[Callable[[], None] | None]:
        """Embed images of one shape (one, or a batch: `DenseEmbedder.embed_batch`) at the levels
        of `paths` (the same for each); returns each image's write of its vectors to the cache.
        An image that needs bands (a slide) is written band by band here (its write: None)."""
        height, width = images[0].shape[:2]
        if len(images) == 1 and not (isinstance(images[0], np.ndarray)
                                     and all(self.embedder_at(scale).in_one_band(height, width) for scale in paths[0])):
            for scale, path in paths[0].items():
                self._embed_and_save(images[0], path, scale)
            return [None]
        levels = {scale: self.embedder_at(scale).embed_batch(images) if len(images) > 1 else [self.embedder_at(scale).embed(images[0])]
                  for scale in paths[0]}
        return [partial(_save_vectors, mine, {scale: embedded[index].vectors for scale, embedded in levels.items()})
                for index, mine in enumerate(paths)]

    def _read_if_missing(self, job) -> np.ndarray | None:
        """The pixels of a (record, missing levels) job, or None when every level is cached."""
        record, missing = job
        return self.dataset.read(record) if missing else None

    def failed_images(self) -> list[str]:
        """Ids of the images with no readable cached embeddings at the patch size (pyramid level
        1), in dataset order: those that failed to embed, and any not embedded yet."""
        return [r.id for r in self.dataset if self._cached_vectors(r.id) is None]

    # -- the index -------------------------------------------------------------------------

    @property
    def index_folder(self) -> Path:
        """The folder of the patch index of the current embedding settings (index/<tag>/, the tag
        a hash of the embedder's settings and the scales): where `build_index` saves and
        `load_index` reads."""
        return self.layout.index_folder(self._settings_tag())

    def _settings_tag(self) -> str:
        settings = self.embedder.cache_settings()
        if len(self.scales) > 1:  # an index of every level (one level keeps the tag it had before pyramids)
            settings = {**settings, "scales": list(self.scales)}
        text = json.dumps(settings, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()

    def build_index(self) -> PatchIndex:
        """Index every cached embedding, at every level of the scale pyramid (images that failed
        to embed are left out), and save it. Images embedded in bands (slides) stay in their
        cache files and are searched from disk, so the index's memory does not grow with them."""
        index = PatchIndex(self.embedder.dim)
        for record in self.dataset:
            if self._cached_vectors(record.id) is None:
                continue
            for scale in self.scales:
                embedded = self.embeddings(record.id, scale)
                if self.embedder_at(scale).band_rows(record.height, record.width) < len(embedded.vectors):  # a slide
                    index.add_on_disk(record.id, self._cache_path(record.id, scale), embedded.geometry, level=scale)
                else:
                    index.add(record.id, np.asarray(embedded.vectors, np.float32), embedded.centres(), level=scale)
        index.save(self.index_folder)
        return index

    def load_index(self) -> PatchIndex:
        """The patch index `build_index` saved for the current embedding settings (every cached
        embedding at every pyramid level), read from `index_folder`.

        Raises ProjectError when there is none (nothing built since the settings last changed)
        or it cannot be read.

        Examples
        --------
        >>> index = project.load_index()                                # doctest: +SKIP
        >>> len(index), index.dim                                       # doctest: +SKIP
        (351, 112)
        >>> hits = index.search(project.patch_vector(project.displayed[0], 48.0, 64.0), k=5)   # doctest: +SKIP
        """
        return PatchIndex.load(self.index_folder)

    def patch_vector(self, image_id: str, y: float, x: float, scale: float = 1.0) -> np.ndarray:
        """(D,) float32 embedding of the grid patch whose centre is nearest to (y, x) px, at one
        pyramid level (default: the patch size)."""
        record = self.dataset.by_id(image_id)
        if not (0 <= y < record.height and 0 <= x < record.width):
            raise ConfigError(f"point ({y:.0f}, {x:.0f}) lies outside image {image_id} ({record.height}x{record.width})")
        too_small = self.smaller_than_patch(record.id, scale)
        if too_small:
            raise ConfigError(too_small)
        embedded = self.embeddings(record.id, scale)
        row, col = embedded.geometry.nearest_position(y, x, embedded.grid_shape)
        return np.asarray(embedded.vectors[row, col], np.float32)

    def smaller_than_patch(self, image_id: str, scale: float = 1.0) -> str | None:
        """Why an image holds no patch at all at one pyramid level (default: the patch size), as
        an error or a warning says it; None when it holds some.

        Examples
        --------
        >>> project.smaller_than_patch(project.dataset.images[0].id)     # doctest: +SKIP
        'image thumb.png (64x48 px) is smaller than one patch (96x96 px)'
        """
        return image_smaller_than_patch(self.dataset.by_id(image_id), self.geometry_at(scale))

    def summary(self) -> str:
        """The project's settings as lines of text, as `simsearch info` prints them: folder,
        dataset, channels, patch geometry, scales, displayed images, backbone with its weights'
        hash, normalisation and, with several channels, their correlation.

        Examples
        --------
        >>> print(project.summary())                                    # doctest: +SKIP
        project   screen1/project
        dataset root: /data/screen1
        images: 3 (from 3 file(s)), channels: 1
        ...
        displayed 2 image(s), undisplayed 1
        backbone  efficientnet-lite0 (.../efficientnet-lite0-57934424.pth, sha256 579344248a93)
        normalization  ch0: [12, 244]
        """
        spec, geometry = self.backbone_spec, self.geometry
        patch = (
            f"{geometry.patch_size[0]}x{geometry.patch_size[1]} px, scale {geometry.scale:g}, pooling "
            f"{geometry.kernel[0]}x{geometry.kernel[1]} cells (sigma {geometry.pooling:.3g} x the patch), grid step {geometry.grid_step:.2f} px, "
            + (f"reaching the image's edge ({'its median colour' if geometry.fill == 'background' else 'neutral'} beyond it)"
               if geometry.border else "inside the image")
            if geometry else "not set yet (the first prototype fixes it)"
        )
        lines = [
            f"project   {self.folder}",
            self.dataset.summary(),
            f"channels  {list(self.channels)} of {self.settings['file_channels']}"
            + (f" ({', '.join(self.dataset.channel_names[c] for c in self.channels)})" if self.dataset.channel_names else ""),
            f"patch     {patch}",
            f"scales    {', '.join(f'{v:g}' for v in self.scales)} x the patch"
            + (" (one level)" if len(self.scales) == 1 else " (similarity search over a pyramid)"),
            f"displayed {len(self.displayed)} image(s), undisplayed {len(self.undisplayed)}",
            f"backbone  {spec.name} ({spec.weights_path}, sha256 {spec.weights_sha256[:12]})",
            "normalization  " + self.normalization.describe(),
        ]
        if len(self.channel_correlation) > 1:
            lines.append("channel correlation")
            lines += ["  " + " ".join(f"{v:6.3f}" for v in row) for row in self.channel_correlation]
        return "\n".join(lines)


# the hint of creating a project where one is: the command line's way first, then Python's
USE_EXISTING_PROJECT = ("use that project with the other commands (--project FOLDER) or Project.open, or choose "
                        "another folder for a new one")

# project.yaml's entries that every project has, with their types (the others were added later and
# have defaults for the projects made before them)
REQUIRED_SETTINGS = {"format": int, "dataset": dict, "channels": list, "file_channels": int, "backbone": dict,
                     "normalization": dict, "channel_correlation": list}
RESTORE_SETTINGS = ("restore project.yaml (e.g. from a backup); the project's store and embeddings are left as they "
                    "are")


def _check_settings(path: Path, settings: dict) -> None:
    """A ProjectError naming `path` and its first missing or malformed entry (a truncated or
    hand-edited file), before anything reads them."""
    for key, kind in REQUIRED_SETTINGS.items():
        if key not in settings:
            raise ProjectError(f"{path}: no '{key}' entry (the file is incomplete, e.g. cut short)",
                               hint=RESTORE_SETTINGS)
        if not isinstance(settings[key], kind):
            raise ProjectError(f"{path}: '{key}' is {settings[key]!r}, not a {kind.__name__}", hint=RESTORE_SETTINGS)
    if not isinstance(settings["dataset"].get("source"), str):
        raise ProjectError(f"{path}: 'dataset' has no 'source' (the images' place)", hint=RESTORE_SETTINGS)


def check_some_image_holds_a_patch(dataset: Dataset, geometry: PatchGeometry) -> None:
    """A ConfigError naming the patch size and the largest image when no image of `dataset`
    holds one patch of `geometry` (every image would be skipped): before anything is saved."""
    if any(image_smaller_than_patch(record, geometry) is None for record in dataset.images):
        return
    largest = max(dataset.images, key=lambda record: record.height * record.width)
    height, width = geometry.patch_size
    raise ConfigError(f"patch size {width}x{height} px: no image holds one patch (the largest, {largest.relpath}, "
                      f"is {largest.width}x{largest.height} px)",
                      hint="give a patch about the size of the objects (--patch-size), smaller than the images")


def image_smaller_than_patch(record: ImageRecord, geometry: PatchGeometry) -> str | None:
    """Why an image (its record) holds no patch of `geometry` at all, in the words of
    `Project.smaller_than_patch` and of `simsearch eval`; None when it holds some."""
    if 0 not in geometry.grid_shape(record.height, record.width):
        return None
    height, width = geometry.patch_size
    return f"image {record.relpath} ({record.width}x{record.height} px) is smaller than one patch ({width}x{height} px)"


def displayed_ids(dataset: Dataset, displayed: int | list[str], seed: int = 0) -> list[str]:
    """Ids of the displayed images: `displayed` of them at random (seeded), or those named."""
    if not isinstance(displayed, int):
        return [dataset.find(name).id for name in displayed]
    if not 1 <= displayed <= len(dataset):
        raise ConfigError(f"displayed images: count {displayed} is outside 1..{len(dataset)}")
    order = np.random.default_rng(seed).permutation(len(dataset))[:displayed]
    return [dataset.images[i].id for i in sorted(order)]


def _scales_setting(scales: str | list[float] | None) -> str | list[float]:
    """What project.yaml records for `scales`: 'auto' (in any case, as typed), or the checked list of levels."""
    automatic = isinstance(scales, str) and scales.strip().lower() == AUTO_SCALES
    return AUTO_SCALES if automatic else list(parse_scales(scales))


def _paper_stride(geometry: PatchGeometry) -> float:
    """The paper's sliding-window stride, 0.1 x patch width: the unit of its matching radius."""
    return round(0.1 * geometry.patch_size[1], 3)


def _write_yaml_atomic(path: Path, data: dict) -> None:
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def _save_vectors(paths: dict[float, Path], vectors: dict[float, np.ndarray]) -> None:
    """An image's vectors at its levels, cached as float16, each file whole or not at all."""
    for scale, path in paths.items():
        save_npy_rows(path, vectors[scale].shape, np.float16, [vectors[scale]])


def _vectors_only(bands: Iterator[tuple[int, np.ndarray]]) -> Iterator[np.ndarray]:
    """The vectors of `iter_rows` bands, each let go once the consumer asks for the next (a
    generator expression would hold the last one while the next is computed)."""
    for _, vectors in bands:
        yield vectors
        del vectors
