"""SimSearch: find every region of interest in thousands of microscopy images from a few examples.

The public API (scripts and the terminal UI use only these names):

- Images: `Dataset`, `ImageRecord`, `SkippedFile`, `read_image`
- Normalisation: `Normalization`, `ChannelStatistics`, `compute_statistics`,
  `compute_dataset_statistics`, `resolve_channels`
- Backbones: `load_backbone`, `Backbone`, `BackboneSpec`, `BACKBONES`
- Dense embeddings: `PatchGeometry`, `DenseEmbedder`, `PatchEmbeddings`
- Search: `PatchIndex`, `SearchHits`, `SimilarPatch`, `similarity_map`
- Ground truth: `Annotation`, `read_truth` (CSV, VOC, COCO, label images), `read_voc_folder`
- Projects: `Project`, `EmbedProgress`, `ProjectLockedError`
- Curation (the iterative patch selection loop): `Curation`, `Suggestion`,
  `BackgroundCandidate`, `NoisyProgress`, `ClassInfo`, `Prototype`, `PatchRecord`
- Peaks: `Peaks`, `find_peaks`; likely objects before any example: `Blobs`, `find_blobs`
- Training: `train` (blocking) and `iter_train` (progress events), `TrainSettings`,
  `StageSettings`, `TrainProgress`, `TrainedModel`, `training_status`, `training_identity`,
  `TRAINING_STRATEGIES`; the check on held-out curated examples: `model_check`, `ClassCheck`
- Review of the model's detections (beyond the paper): `Review`, `ReviewItem`, `ReviewProgress`,
  `REVIEW_ORDERS`
- Inference and exports: `Predictor`, `Detection`, `detections_from_maps`, `iter_process`, `write_results`, `ProcessProgress`
- CPU speed: `keep_freed_memory` (glibc malloc keeps freed blocks; the CLI and UI call it)
- Files: `write_text_atomic` (whole or not at all)
- Errors: `SimSearchError` and its subclasses
"""
from .errors import (
    ConfigError,
    DatasetError,
    ImageReadError,
    ProjectError,
    SimSearchError,
    WeightsError,
)
from .features.backbones import BACKBONES, Backbone, BackboneSpec, load_backbone
from .features.embed import DenseEmbedder, PatchEmbeddings, display_rgb, resolve_device
from .features.geometry import PatchGeometry
from .io.images import Dataset, ImageRecord, SkippedFile, read_image
from .preprocess import (
    ChannelStatistics,
    Normalization,
    compute_dataset_statistics,
    compute_statistics,
    resolve_channels,
)
from .curation.session import BackgroundCandidate, Curation, NoisyProgress, Suggestion
from .curation.store import ClassInfo, PatchRecord, ProjectLockedError, Prototype, ReviewItem
from .predict import Detection, Predictor, detections_from_maps
from .process import ProcessProgress, iter_process, write_results
from .project import EmbedProgress, Project
from .files import write_text_atomic
from .memory import keep_freed_memory
from .review import REVIEW_ORDERS, Review, ReviewProgress
from .train.check import ClassCheck
from .train.loop import (TRAINING_STRATEGIES, StageSettings, TrainedModel, TrainingStatus, TrainProgress, TrainSettings,
                         iter_train, model_check, train, training_identity, training_status)
from .search.blobs import Blobs, find_blobs
from .search.peaks import Peaks, find_peaks
from .io.truth import Annotation, read_truth, read_voc_folder
from .search.index import PatchIndex, SearchHits, SimilarPatch
from .search.similarity import similarity_map

__version__ = "0.1.0"

__all__ = [
    "BackgroundCandidate", "ClassInfo", "Curation", "NoisyProgress", "PatchRecord", "Peaks",
    "ProjectLockedError", "Prototype", "Suggestion", "find_peaks", "display_rgb", "Blobs", "find_blobs",
    "Detection", "Predictor", "ProcessProgress", "iter_process", "write_results",
    "StageSettings", "TrainProgress", "TrainSettings", "TrainedModel", "TrainingStatus", "iter_train", "train",
    "training_identity", "training_status", "TRAINING_STRATEGIES", "ClassCheck", "model_check",
    "detections_from_maps", "keep_freed_memory", "write_text_atomic", "Review", "ReviewItem", "ReviewProgress", "REVIEW_ORDERS",
    "BACKBONES", "Backbone", "BackboneSpec", "ChannelStatistics", "ConfigError", "Dataset",
    "DatasetError", "DenseEmbedder", "EmbedProgress", "ImageReadError", "ImageRecord",
    "Normalization", "PatchEmbeddings", "PatchGeometry", "PatchIndex", "Project", "ProjectError",
    "SearchHits", "SimSearchError", "SimilarPatch", "Annotation", "read_truth", "read_voc_folder", "SkippedFile", "WeightsError", "compute_dataset_statistics",
    "compute_statistics", "load_backbone", "read_image", "resolve_channels", "resolve_device",
    "similarity_map",
]
