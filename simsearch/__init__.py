"""SimSearch: find every region of interest in thousands of microscopy images from a few examples.

The public API (scripts and the terminal UI use only these names):

- Images: `Dataset`, `ImageRecord`, `SkippedFile`, `read_image`, `display_rgb`, `is_glob_pattern`
  (whether a dataset given as text is a glob pattern); names: every result
  that carries an image id also has `.image`, the image as the user named it (`image_name`,
  `NamedImage`); slides (large tiled TIFFs) come as `LazyImage`, read region by region
  (`lazy_image_pixels`), with `overview` for a small copy
- Normalisation: `Normalization`, `ChannelStatistics`, `compute_statistics`,
  `compute_dataset_statistics`; the dataset's fixed background (flat field): `FlatField`,
  `compute_flat_field`, `choose_flat_field`; channels: `parse_channels` (as typed), `resolve_channels`
- Backbones: `load_backbone`, `Backbone`, `BackboneSpec`, `BACKBONES`; devices: `resolve_device`
- Dense embeddings: `PatchGeometry`, `DenseEmbedder`, `PatchEmbeddings`
- Search: `PatchIndex`, `SearchHits`, `SimilarPatch`, `similarity_map`
- Ground truth: `Annotation`, `read_truth` (CSV, VOC, COCO, BBBC041, YOLO, GeoJSON, label images, masks per object), `read_voc_folder`
- Projects: `Project`, `EmbedProgress`, `ProjectLockedError`; every path in a project folder:
  `ProjectLayout` (`Project.layout`); images decoded ahead of the network: `Loaded`
  (`Project.read_ahead`)
- Curation (the iterative patch selection loop): `Curation`, `Suggestion` (`Curation.suggestions`
  gives a `SuggestionList`),
  `BackgroundCandidate`, `NoisyProgress`, `ClassInfo`, `Prototype`, `PatchRecord`; what is
  gathered so far: `ClassCounts`, `BackgroundCounts`; listed items as pictures: `write_tiles`
- Peaks: `Peaks`, `find_peaks`; over a scale pyramid `SizedPeaks`, `peaks_across_scales`
  (levels: `parse_scales`, `scales_for_sizes`, `object_side`, `PatchGeometry.at_scale`); a box cut
  to its image: `box_within`; likely objects before any example: `Blobs`, `find_blobs`
- Training: `train` (blocking) and `iter_train` (progress events), `TrainSettings`,
  `StageSettings`, `AugmentSettings`, what a run learns from: `TrainingRecords`, `TrainProgress`, `TrainedModel` (the saved one:
  `saved_model`), `TrainingStatus`, `training_status`,
  `training_identity`, `TRAINING_STRATEGIES`; the check on held-out curated examples:
  `model_check`, `ClassCheck`
- Review of the model's detections (beyond the paper): `Review`, `ReviewItem`, `ReviewProgress`,
  `REVIEW_ORDERS`
- Inference and exports: `Predictor`, `Detection`, `detections_from_maps`, `detections_from_levels`, `iter_process`,
  `write_results`, `ProcessProgress`; on a Dask cluster: `cluster_client`, `iter_embed_on_cluster`,
  `iter_process_on_cluster`
- CPU speed: `keep_freed_memory` (glibc malloc keeps freed blocks; the CLI and UI call it)
- Files: `write_text_atomic` (whole or not at all)
- Errors: `SimSearchError` and its subclasses `ConfigError`, `DatasetError`, `ImageReadError`,
  `ProjectError` (and its `ImagesMovedError`), `WeightsError`

Coordinates are pixels of the full-resolution image, x to the right and y down. A box is
(x0, y0, x1, y1). A point is named fields `.x` and `.y` (`Suggestion`, `Detection`, ...), and in
arrays it is (row, col) = (y, x), as in numpy and scikit-image (`Peaks`, `SearchHits.centres`).
The command line takes X,Y and X0,Y0,X1,Y1 (x first) and prints x before y.

`import simsearch` loads none of torch, FAISS, scipy or scikit-image: each name is imported
from its module on first use (`_PUBLIC` below is the one list of them).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# every public name and the module that defines it: the one list (`__all__` is made from it,
# and a test checks the overview above against it)
_PUBLIC = {
    **dict.fromkeys(["ConfigError", "DatasetError", "ImageReadError", "ImagesMovedError", "ProjectError", "SimSearchError",
                     "WeightsError"], "util.errors"),
    **dict.fromkeys(["BACKBONES", "Backbone", "BackboneSpec", "load_backbone"], "features.backbones"),
    **dict.fromkeys(["DenseEmbedder", "PatchEmbeddings", "display_rgb", "resolve_device"], "features.embed"),
    **dict.fromkeys(["PatchGeometry", "box_within", "object_side", "parse_scales", "scales_for_sizes"], "features.geometry"),
    **dict.fromkeys(["Dataset", "ImageRecord", "NamedImage", "SkippedFile", "image_name", "is_glob_pattern", "read_image"],
                    "io.images"),
    **dict.fromkeys(["LazyImage", "lazy_image_pixels", "overview"], "io.slides"),
    **dict.fromkeys(["Annotation", "read_truth", "read_voc_folder"], "io.truth"),
    **dict.fromkeys(["FlatField", "choose_flat_field", "compute_flat_field"], "io.flatfield"),
    **dict.fromkeys(["ChannelStatistics", "Normalization", "compute_dataset_statistics", "compute_statistics",
                     "parse_channels", "resolve_channels"], "io.preprocess"),
    "Curation": "curation.session",
    "write_tiles": "curation.tiles",
    **dict.fromkeys(["BackgroundCandidate", "BackgroundCounts", "ClassCounts", "NoisyProgress", "Suggestion", "SuggestionList"],
                    "curation.results"),
    **dict.fromkeys(["ClassInfo", "PatchRecord", "ProjectLockedError", "Prototype", "ReviewItem"], "project.store"),
    **dict.fromkeys(["Detection", "Predictor", "detections_from_maps", "detections_from_levels"], "inference.predict"),
    **dict.fromkeys(["ProcessProgress", "iter_process", "write_results"], "inference.process"),
    **dict.fromkeys(["cluster_client", "iter_embed_on_cluster", "iter_process_on_cluster"], "inference.cluster"),
    **dict.fromkeys(["EmbedProgress", "Project"], "project.project"),
    "ProjectLayout": "project.layout",
    "write_text_atomic": "util.files",
    "Loaded": "util.prefetch",
    "keep_freed_memory": "util.memory",
    **dict.fromkeys(["REVIEW_ORDERS", "Review", "ReviewProgress"], "inference.review"),
    "ClassCheck": "training.check",
    "AugmentSettings": "training.augment",
    "TrainingRecords": "training.records",
    **dict.fromkeys(["TRAINING_STRATEGIES", "StageSettings", "TrainedModel", "TrainingStatus", "TrainProgress",
                     "TrainSettings", "iter_train", "model_check", "saved_model", "train", "training_identity",
                     "training_status"],
                    "training.loop"),
    **dict.fromkeys(["Blobs", "find_blobs"], "search.blobs"),
    **dict.fromkeys(["Peaks", "SizedPeaks", "find_peaks", "peaks_across_scales"], "search.peaks"),
    **dict.fromkeys(["PatchIndex", "SearchHits", "SimilarPatch"], "search.index"),
    "similarity_map": "search.similarity",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """A public name, imported from its module on first use."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'simsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
