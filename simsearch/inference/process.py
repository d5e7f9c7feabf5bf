"""Process a whole dataset with a trained model: probability maps streamed to disk
(resumable), then detections or a segmentation and every export, from the cached maps
(so new confidence thresholds only redo the cheap part).

Output folder::

    maps/<image>.npy          float16 (rows, cols, classes) softmax maps (the cache); with a
                              scale pyramid also maps/<image>.level<s>.npy per other level
    detections.csv / .json    every detection: image, class, x, y, confidence, box
    geojson/<image>.geojson   QuPath annotations (pixel coordinates, class names)
    napari/<image>.csv        napari points (axis-0 = y, axis-1 = x) with class, confidence
    labels/<image>.tif        segmentation label images (segmentation mode)
    overviews/<image>.png     detections drawn on the normalised image
    summary.csv               per image: count and fraction per class (area fraction in segmentation mode)
    model/                    the model used, with its config
    manifest.json             versions, seeds, settings, normalisation, thresholds, annotation counts
"""
from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import threading
from dataclasses import dataclass
from functools import partial
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import faiss
import numpy as np
import skimage
import torch
from scipy.ndimage import map_coordinates

from simsearch import __version__
from simsearch.inference import export
from simsearch.util.errors import DatasetError, ImageReadError
from simsearch.features.embed import display_rgb, joins_batch
from simsearch.io.images import Dataset, NamedImage
from simsearch.io.slides import lazy_image_pixels, overview
from simsearch.inference.predict import Detection, Predictor, detections_from_levels
from simsearch.util.files import atomic_path, write_text_atomic
from simsearch.util.prefetch import grouped, written_behind
from simsearch.project.project import Project
from simsearch.training.loop import trained_model_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessProgress(NamedImage):
    """status: 'computed', 'cached' or 'failed' (message says why).

    Examples
    --------
    `iter_process` yields one per image:

    >>> for event in iter_process(project, "screen1/results"):    # doctest: +SKIP
    ...     if event.status == "failed":
    ...         print(f"{event.done}/{event.total}", event.image_id, event.message)
    17/120 plate1/B05.tif@5d41402abc4b cannot read image '/data/screen1/plate1/B05.tif': truncated or corrupt TIFF: ...
    """

    done: int
    total: int
    image_id: str
    status: str
    message: str = ""


def iter_process(
    project: Project,
    out: str | Path,
    *,
    images: Dataset | None = None,
    device: str = "auto",
    cancel: threading.Event | None = None,
    predictor: Predictor | None = None,
) -> Iterator[ProcessProgress]:
    """Compute and cache the probability maps of every image (the project's dataset, or
    `images`); images already done are skipped. The next images are decoded in threads
    while the network runs (`Project.read_ahead`); consecutive images of one shape go
    through the network together up to `Project.embed_batch_pixels` pixels (default 0: one
    at a time), with the same maps to float rounding and the same events in the same order.
    A probe's maps (`--strategy probe`: the pretrained embedding) come from the project's
    cached embeddings where it has them, with no image read and no network pass
    (`Predictor.cached_level_maps`); a trained model's probe and similarity gate take their
    pretrained embedding from there too (`Predictor.cached_pretrained`). An image id names its
    file's content (path and hash), so an image of `images` whose id the project holds (a
    subset on a cluster's worker, the same files listed again) uses the cache as well.

    Examples
    --------
    On a project with a trained model (`simsearch.train`); `write_results` then exports:

    >>> from simsearch import Dataset, Project, iter_process, write_results
    >>> project = Project.open("screen1/project")                                  # doctest: +SKIP
    >>> for event in iter_process(project, "screen1/results", device="cpu"):       # doctest: +SKIP
    ...     print(f"{event.done}/{event.total} {event.status}")
    1/120 computed
    2/120 computed
    ...
    >>> manifest = write_results(project, "screen1/results")                       # doctest: +SKIP
    >>> screen2 = Dataset.open("/data/screen2")         # new images, same channels  # doctest: +SKIP
    >>> for _ in iter_process(project, "screen2/results", images=screen2):         # doctest: +SKIP
    ...     pass
    >>> manifest = write_results(project, "screen2/results", images=screen2)       # doctest: +SKIP
    """
    dataset = images or project.dataset
    if dataset.channels != project.file_channels:
        example = dataset.images[0].relpath if len(dataset) else "none"
        raise DatasetError(f"images {dataset.source} have {dataset.channels} channel(s) (e.g. {example}); the project's model "
                           f"was trained on images of {project.file_channels}",
                           hint="process images with the project's channels, or make a project on these images")
    predictor = predictor or Predictor(project, device=device)
    prepare_maps_folder(project, out)
    for event, error in written_behind(_steps(project, dataset, predictor, out, cancel)):  # maps written during the next image
        if error is not None:
            raise error  # a map that cannot be written (a full disk) stops the run, as it would the next
        yield event


def _steps(project: Project, dataset: Dataset, predictor: Predictor, out: str | Path,
           cancel: threading.Event | None) -> Iterator[tuple[Callable[[], None] | None, ProcessProgress]]:
    """`iter_process`'s work: (the write of an image's maps, or None, and its event) per image."""
    jobs = ((record, {scale: maps_path(out, record.id, scale) for scale in predictor.scales}) for record in dataset)
    read = partial(_read_unless_done, dataset, predictor, project)
    loaded = enumerate(project.read_ahead(jobs, read, predictor.embedder.device), start=1)  # decoding ahead
    for group in grouped(loaded, partial(joins_batch, project.embed_batch_pixels)):  # same-shape images together
        if cancel is not None and cancel.is_set():
            return
        done, first = group[0]
        if first.value is None and first.error is None:
            yield None, ProcessProgress(done, len(dataset), first.item[0].id, "cached")
            continue
        try:
            if first.error is not None:
                raise first.error
            if isinstance(first.value, _Cached):  # never joins a batch
                per_image = [first.value.levels]
            else:
                halves = [predictor.cached_pretrained(one.item[0].id, project) for _, one in group]  # a twin's: cached
                per_image = predictor.level_maps_batch([one.value for _, one in group], halves)
        except (ImageReadError, DatasetError, OSError) as exc:  # that image (or batch) fails, the others go on
            for done, one in group:
                yield None, ProcessProgress(done, len(dataset), one.item[0].id, "failed", getattr(exc, "message", str(exc)))
            continue
        for (done, one), levels in zip(group, per_image):
            record, paths = one.item
            yield partial(_write_maps, paths, levels), ProcessProgress(done, len(dataset), record.id, "computed")


def _write_maps(paths: dict[float, Path], levels: list) -> None:
    """An image's maps at every level, float16, each whole or not at all; the patch level last:
    its file marks the image done."""
    for scale, _, maps in sorted(levels, key=lambda level: level[0] == 1.0):
        with atomic_path(paths[scale]) as tmp:
            np.save(tmp, maps.astype(np.float16))


@dataclass(frozen=True)
class _Cached:
    """An image's maps computed from the project's cached embeddings (`Predictor.cached_level_maps`)."""

    levels: list


def _read_unless_done(dataset: Dataset, predictor: Predictor, project: Project, job) -> np.ndarray | _Cached | None:
    """The pixels of a (record, map paths) job, or None when every map is there already; for
    a model on the pretrained embedding (the probe) its maps from the cached embeddings, where
    the project has them (the image is then not read)."""
    record, paths = job
    if all(path.is_file() for path in paths.values()):
        return None
    levels = predictor.cached_level_maps(record.id, project)  # an id is its file's content: any dataset's
    return dataset.read(record) if levels is None else _Cached(levels)


def maps_path(out: str | Path, image_id: str, scale: float = 1.0) -> Path:
    """Where an image's cached probability maps of one pyramid level lie in a results folder."""
    stem = export.safe_name(image_id)
    return Path(out) / "maps" / (f"{stem}.npy" if scale == 1.0 else f"{stem}.level{scale:g}.npy")


def prepare_maps_folder(project: Project, out: str | Path) -> Path:
    """out/maps, made, and emptied of the maps of another model than the project's (a stamp
    holds the model's hash); then maps found there are this model's, to be reused."""
    maps_folder = Path(out) / "maps"
    maps_folder.mkdir(parents=True, exist_ok=True)
    _forget_maps_of_other_models(project, maps_folder)
    return maps_folder


def _forget_maps_of_other_models(project: Project, maps_folder: Path) -> None:
    """Cached maps belong to one model: after training again, they are computed again."""
    digest = hashlib.blake2b(project.layout.model_weights.read_bytes(), digest_size=12).hexdigest()
    stamp = maps_folder / "MODEL"
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    stale = list(maps_folder.glob("*.npy"))
    if stale:
        log.info("the model changed: discarding %d cached probability map(s) in %s", len(stale), maps_folder)
    for path in stale:
        path.unlink()
    write_text_atomic(stamp, digest + "\n")


def segment(levels: list[tuple[float, object, np.ndarray]], image_size: tuple[int, int], thresholds: list[float],
            *, rows: tuple[int, int] | None = None) -> np.ndarray:
    """(scale, geometry, (rows, cols, C + 1) maps) per level of the scale pyramid -> (H, W)
    labels: per pixel the most probable ROI class whose probability (bilinear from each level's
    patch grid, the best over levels) reaches its threshold, 1-based; else 0. `rows`: only the
    image rows [top, bottom), a band of a slide's labels."""
    height, width = image_size
    top, bottom = rows or (0, height)
    classes = levels[0][2].shape[-1] - 1
    best = np.zeros((bottom - top, width), np.float32)
    labels = np.zeros((bottom - top, width), np.uint8 if classes < 255 else np.uint16)
    for _, geometry, maps in levels:
        rows, cols = np.meshgrid(*geometry.grid_position(np.arange(top, bottom) + 0.5, np.arange(width) + 0.5), indexing="ij")
        for index in range(classes):
            probability = map_coordinates(maps[..., index].astype(np.float32), [rows, cols], order=1, mode="nearest")
            better = (probability >= thresholds[index]) & (probability > best)
            labels[better] = index + 1
            best[better] = probability[better]
    return labels


def _write_labels(path: Path, levels, image_size: tuple[int, int], thresholds: list[float], class_names: list[str]) -> list[float]:
    """The label image of one image (`segment`), written whole, or for a slide (more than
    `lazy_image_pixels`) in tiled bands of rows, never whole; returns each class's area fraction."""
    height, width = image_size
    if height * width <= lazy_image_pixels():
        labels = segment(levels, image_size, thresholds)
        export.label_tiff(path, labels, class_names)
        return [float((labels == index).mean()) for index in range(1, len(class_names) + 1)]
    counts = np.zeros(len(class_names) + 1, np.int64)

    def bands():
        for top in range(0, height, export.LABEL_TILE):
            labels = segment(levels, image_size, thresholds, rows=(top, min(height, top + export.LABEL_TILE)))
            counts[:] += np.bincount(labels.ravel(), minlength=len(counts))[: len(counts)]
            yield labels

    export.label_tiff_in_bands(path, (height, width), bands(), class_names)
    return [float(count / (height * width)) for count in counts[1:]]


def write_results(
    project: Project,
    out: str | Path,
    *,
    images: Dataset | None = None,
    thresholds: dict[str, float] | None = None,
    segmentation: bool = False,
    overviews: bool = True,
    extra_manifest: dict | None = None,
) -> dict:
    """Detections (or labels) and every export from the cached maps; returns the manifest.

    Run `iter_process` on the same `out` (and `images`) first. `thresholds`: per class
    confidence (default: the project's); new thresholds only redo this cheap part. Images
    without maps (those that failed) are listed in the manifest (`dataset.without_results`).

    Examples
    --------
    >>> from simsearch import Project, write_results
    >>> project = Project.open("screen1/project")                                  # doctest: +SKIP
    >>> manifest = write_results(project, "screen1/results", thresholds={"RBC": 0.7, "WBC": 0.5})   # doctest: +SKIP
    >>> manifest["detections"], manifest["confidence_thresholds"]                  # doctest: +SKIP
    (1843, {'RBC': 0.7, 'WBC': 0.5})
    >>> manifest = write_results(project, "screen1/results", segmentation=True)   # labels/ too  # doctest: +SKIP
    """
    out = Path(out)
    dataset = images or project.dataset
    predictor_config = trained_model_config(project)
    class_names = predictor_config["classes"][:-1]
    scales = [float(v) for v in predictor_config.get("scales", [1.0])]
    if thresholds is None:
        thresholds = {c.name: c.confidence_threshold for c in project.store.classes()}
    names = {r.id: r.relpath for r in dataset}
    everything: list[Detection] = []
    summary = []
    without_maps = []  # failed (or not yet processed): named in the manifest, so that no image is missed silently
    for record in dataset:
        paths = {scale: maps_path(out, record.id, scale) for scale in scales}
        if not all(path.is_file() for path in paths.values()):
            without_maps.append(record.relpath)
            continue
        levels = [(scale, project.geometry_at(scale), np.load(path).astype(np.float32)) for scale, path in paths.items()]
        found = detections_from_levels(levels, class_names, thresholds, record.id, (record.height, record.width))
        everything += found
        stem = export.safe_name(record.id)
        export.geojson(out / "geojson" / f"{stem}.geojson", found)
        export.napari_points(out / "napari" / f"{stem}.csv", found)
        row = {"image": record.relpath, "detections": len(found)}
        for name in class_names:
            count = sum(d.class_name == name for d in found)
            row[f"{name}_count"] = count
            row[f"{name}_fraction"] = round(count / len(found), 5) if found else 0.0
        if segmentation:
            fractions = _write_labels(out / "labels" / f"{stem}.tif", levels, (record.height, record.width),
                                      [thresholds.get(n, 0.5) for n in class_names], class_names)
            for name, fraction in zip(class_names, fractions):
                row[f"{name}_area_fraction"] = round(fraction, 6)
        summary.append(row)
        if overviews:  # a slide is drawn from its overview (a pyramid level), never read whole
            pixels, smaller = overview(dataset.read(record))
            rgb = display_rgb(pixels, project.normalization, project.channels)
            export.overview_png(out / "overviews" / f"{stem}.png", rgb, found, class_names, smaller=smaller)
    export.detections_csv(out / "detections.csv", everything, names)
    export.detections_json(out / "detections.json", everything, names)
    export.summary_csv(out / "summary.csv", summary)
    model_out = out / "model"
    model_out.mkdir(parents=True, exist_ok=True)
    for path in (project.layout.model_weights, project.layout.model_config):
        shutil.copy2(path, model_out / path.name)
    manifest = _manifest(project, dataset, thresholds, predictor_config, len(everything), segmentation, extra_manifest)
    manifest["dataset"]["without_results"] = without_maps
    export.manifest_json(out / "manifest.json", manifest)
    return manifest


def _manifest(project, dataset, thresholds, model_config, detections, segmentation, extra) -> dict:
    store = project.store
    counts = {
        c.name: {
            "prototypes": len(store.prototypes(c.name)),
            "positives": len(store.patches(c.name, "positive")),
            "negatives": len(store.patches(c.name, "negative")),
            "noisy": store.noisy_count(c.name),
        }
        for c in store.classes()
    }
    counts["background"] = {
        "clean": sum(flag for _, _, flag in store.background(confirmed_only=True)),
        "noisy": store.noisy_count(None),
    }
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"simsearch": __version__, "python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__, "faiss": getattr(faiss, "__version__", "?"), "scikit-image": skimage.__version__},
        "project": str(project.folder),
        "dataset": {"root": str(dataset.root), "images": len(dataset), "skipped": [str(s.path) for s in dataset.skipped]},
        "channels": list(project.channels),
        "normalization": project.normalization.to_dict(),
        "backbone": project.backbone_spec.to_dict(),
        "geometry": project.geometry.to_dict(),
        "scales": model_config.get("scales", [1.0]),
        "displayed": project.displayed,
        "seed": project.displayed_seed,
        "training": {"strategy": model_config.get("strategy"), "settings": model_config.get("settings"), "metrics": model_config.get("metrics")},
        "confidence_thresholds": thresholds,
        "similarity_thresholds": {c.name: c.similarity_threshold for c in store.classes()},
        "annotation_counts": counts,
        "detections": detections,
        "segmentation": segmentation,
        **(extra or {}),
    }
