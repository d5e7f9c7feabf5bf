"""Dense inference with a trained model: per-class probability maps in one backbone pass
per image, detections as local maxima above each class's confidence threshold."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from .features.backbones import Backbone
from .features.embed import DenseEmbedder
from .features.geometry import box_around
from .project import Project
from .search.peaks import find_peaks, peak_spacing
from .training.loop import trained_model_config


@dataclass(frozen=True)
class Detection:
    """A detected object: centre (y, x) px, box (x0, y0, x1, y1), class and confidence."""

    image_id: str
    class_name: str
    y: float
    x: float
    confidence: float
    box: tuple[float, float, float, float]


class Predictor:
    """Loads project/model/ (written by training) and runs it densely over images."""

    def __init__(self, project: Project, *, device: str = "auto"):
        folder = project.model_folder
        config = trained_model_config(project)
        self.project = project
        self.config = config
        self.class_names: list[str] = self.config["classes"]
        weights = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        base = project.backbone
        network = copy.deepcopy(base.network)
        network.load_state_dict(weights["network"])
        trained = Backbone(spec=base.spec, network=network.eval().requires_grad_(False), channels=base.channels)
        self.embedder = DenseEmbedder(trained, project.normalization, project.geometry, channels=project.channels, device=device,
                                      window=weights.get("window"))
        self.classifier = torch.nn.Linear(base.channels, len(self.class_names))
        self.classifier.load_state_dict(weights["classifier"])
        self.classifier.to(self.embedder.device).eval()

    def probability_maps(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) raw image -> (rows, cols, classes) float32 softmax on the patch grid
        (last class: background)."""
        return self.vectors_and_maps(image)[1]

    @torch.inference_mode()
    def vectors_and_maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, C) raw image -> the trained embedding (rows, cols, D) float32, L2-normalised,
        and the probability maps (rows, cols, classes) float32."""
        vectors = self.embedder.embed(image).vectors
        maps = torch.softmax(self.classifier(torch.from_numpy(vectors).to(self.embedder.device)), dim=-1)
        return vectors, maps.cpu().numpy()

    def detections(self, image_id: str, thresholds: dict[str, float] | None = None) -> list[Detection]:
        """Local maxima of each class's map above its confidence threshold (default: the
        thresholds in the project store), most confident first."""
        if thresholds is None:
            thresholds = {c.name: c.confidence_threshold for c in self.project.store.classes()}
        maps = self.probability_maps(self.project.dataset.read(image_id))
        return detections_from_maps(maps, self.class_names[:-1], thresholds, self.project.geometry, image_id)


def detections_from_maps(maps: np.ndarray, class_names: list[str], thresholds: dict[str, float], geometry, image_id: str) -> list[Detection]:
    """Detections from one image's per-class probability maps ((rows, cols, classes), the
    background last and not detected): each class's local maxima at least half a patch apart,
    above its threshold (0.5 when not given), as Detections in image pixels with their boxes.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchGeometry
    >>> maps = np.zeros((10, 10, 2), np.float32)
    >>> maps[4, 6, 0] = 0.9                               # one confident cell of class "cell"
    >>> found = detections_from_maps(maps, ["cell"], {"cell": 0.5}, PatchGeometry.for_patch(64), "img")
    >>> [(d.class_name, round(d.confidence, 2)) for d in found]
    [('cell', 0.9)]
    """
    spacing = peak_spacing(geometry)
    found = []
    for index, name in enumerate(class_names):
        peaks = find_peaks(maps[..., index], min_distance=spacing, threshold=thresholds.get(name, 0.5))
        ys, xs = geometry.centre(peaks.rows, peaks.cols)
        found += [
            Detection(image_id, name, y, x, value, box_around(y, x, geometry.patch_size))
            for y, x, value in zip(ys.tolist(), xs.tolist(), peaks.values.tolist())
        ]
    found.sort(key=lambda d: -d.confidence)
    return found
