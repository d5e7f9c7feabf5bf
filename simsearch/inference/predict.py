"""Dense inference with a trained model: per-class probability maps in one backbone pass
per image, detections as local maxima above each class's confidence threshold."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from simsearch.io.images import NamedImage
from simsearch.features.backbones import Backbone
from simsearch.features.embed import DenseEmbedder
from simsearch.features.geometry import PatchGeometry, box_around, box_within
from simsearch.project.project import Project
from simsearch.search.peaks import peaks_across_scales
from simsearch.search.similarity import gate_by_similarity
from simsearch.training.loop import trained_model_config
from simsearch.training.model import TwinNetwork
from simsearch.util.errors import ProjectError


@dataclass(frozen=True)
class Detection(NamedImage):
    """A detected object: centre (y, x) px, box (x0, y0, x1, y1), class, confidence and the
    level of the scale pyramid it was found at.

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchGeometry, detections_from_maps
    >>> maps = np.zeros((10, 10, 2), np.float32)                   # (rows, cols, classes + background)
    >>> maps[4, 6, 0] = 0.9
    >>> detection = detections_from_maps(maps, ["cell"], {}, PatchGeometry.for_patch(64, min_cells=4), "img1.png@0123456789ab")[0]
    >>> detection.class_name, round(detection.confidence, 2)
    ('cell', 0.9)
    >>> detection.y, detection.x, detection.box, detection.level   # box: the 64 px patch around (y, x)
    (96.0, 128.0, (96.0, 64.0, 160.0, 128.0), 1.0)
    """

    image_id: str
    class_name: str
    y: float
    x: float
    confidence: float
    box: tuple[float, float, float, float]
    level: float = 1.0  # of the scale pyramid: the box is that level's patch


class Predictor:
    """Loads project/model/ (written by training) and runs it densely over images. A model
    trained with a probe beside it (`TrainSettings.probe_share`) gives the average of its own
    class probabilities and the probe's, the probe's on the pretrained embedding: the trained
    and the pretrained network run as one (`TwinNetwork`), sharing the layers training froze.
    A model trained with the similarity gate (`TrainSettings.similarity_gate`) scores each class
    as the geometric mean of that probability and the patch's similarity to the class's
    prototypes, on the pretrained embedding of the same pass (`gate_by_similarity`). Where the
    project has an image's embeddings cached, that pretrained half is read from them and only
    the trained network runs (`cached_pretrained`; `level_maps_of` does so by itself).

    Examples
    --------
    On a project with a trained model (`simsearch.train`):

    >>> from simsearch import Predictor, Project
    >>> project = Project.open("screen1/project", read_only=True)           # doctest: +SKIP
    >>> predictor = Predictor(project, device="cpu")                         # doctest: +SKIP
    >>> predictor.class_names                                                # doctest: +SKIP
    ['RBC', 'WBC', 'background']
    >>> image_id = project.undisplayed[0]                                    # doctest: +SKIP
    >>> predictor.probability_maps(project.dataset.read(image_id)).shape     # doctest: +SKIP
    (29, 39, 3)
    >>> for detection in predictor.detections(image_id, {"RBC": 0.7, "WBC": 0.5}):   # doctest: +SKIP
    ...     print(detection.class_name, round(detection.confidence, 2), [round(v) for v in detection.box])
    WBC 0.97 [212, 140, 308, 236]
    """

    def __init__(self, project: Project, *, device: str = "auto"):
        config = trained_model_config(project)
        self.project = project
        self.config = config
        self.class_names: list[str] = self.config["classes"]
        weights = torch.load(project.layout.model_weights, map_location="cpu", weights_only=True)
        base = project.backbone
        self.dim = base.channels  # of the trained embedding
        network = copy.deepcopy(base.network)
        network.load_state_dict(weights["network"])
        # the probe trained beside the model: its share of the probabilities; its embedding is the pretrained one
        self.probe_share = float(config.get("probe_share", 0.0))
        if self.probe_share and "probe_classifier" not in weights:
            raise ProjectError(f"the model in {project.layout.model} has a probe share but no probe",
                               hint="train again (simsearch train)")
        # the similarity gate: prototype vectors on the pretrained embedding and their classes
        self.gate: tuple[np.ndarray, np.ndarray] | None = None
        if config.get("similarity_gate"):
            if "gate_prototypes" not in weights:
                raise ProjectError(f"the model in {project.layout.model} gates by similarity but has no "
                                   "prototype vectors", hint="train again (simsearch train)")
            self.gate = (weights["gate_prototypes"].numpy(), weights["gate_classes"].numpy())
        self.twin = bool(self.probe_share or self.gate is not None)
        network.eval().requires_grad_(False)
        # a twin's trained network alone, for images whose pretrained half is cached (`cached_pretrained`)
        self._trained_half = (Backbone(spec=base.spec, network=network, channels=base.channels), weights.get("window"))
        self._halves: dict[float, DenseEmbedder] = {}
        self._device = device
        if self.twin:  # each cell's vector: the trained embedding, then the pretrained one
            network = TwinNetwork(network, base.network, base.name)
        trained = Backbone(spec=base.spec, network=network.eval().requires_grad_(False),
                           channels=base.channels * (2 if self.twin else 1))
        self.scales: tuple[float, ...] = tuple(float(v) for v in config.get("scales", [1.0]))  # the pyramid it was trained over
        self.embedders = {
            scale: DenseEmbedder(trained, project.normalization, project.geometry_at(scale), channels=project.channels,
                                 device=device, window=self._window(weights.get("window"), project.geometry_at(scale)))
            for scale in self.scales
        }
        self.embedder = self.embedders[1.0]
        # training changed neither the network nor the pooling (the probe strategy): the model's
        # embedding is the pretrained one, and its maps can come from cached embeddings
        geometries = [embedder.geometry for embedder in self.embedders.values()]
        self.on_pretrained = _unchanged(weights, base.network.state_dict(), geometries)
        self.classifier = self._linear(weights["classifier"])
        if self.probe_share:
            self.probe_classifier = self._linear(weights["probe_classifier"])

    def _window(self, trained: torch.Tensor | None, geometry: PatchGeometry) -> torch.Tensor | None:
        """The pooling window(s): the model's own (None: the geometry's), then the pretrained one's."""
        if not self.twin:
            return trained
        pretrained = torch.tensor(geometry.window, dtype=torch.float32)
        return torch.stack([pretrained if trained is None else trained.float(), pretrained])

    def _linear(self, state: dict) -> torch.nn.Linear:
        linear = torch.nn.Linear(self.dim, len(self.class_names))
        linear.load_state_dict(state)
        return linear.to(self.embedder.device).eval()

    def probability_maps(self, image, scale: float = 1.0, pretrained: np.ndarray | None = None) -> np.ndarray:
        """(H, W, C) raw image (an array or a `LazyImage` slide) -> (rows, cols, classes) float32
        softmax on the patch grid of one pyramid level (last class: background). The image is
        embedded in bands of rows: memory holds one band's vectors and the maps. `pretrained`:
        as `iter_bands`."""
        maps = []
        for vectors, band_maps in self.iter_bands(image, scale, pretrained):
            maps.append(band_maps)
            del vectors  # not held while the next band is embedded (a comprehension would hold it)
        return maps[0] if len(maps) == 1 else np.concatenate(maps)

    def iter_bands(self, image, scale: float = 1.0, pretrained: np.ndarray | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The trained embedding and the probability maps of an image (an array or a `LazyImage`
        slide) at one pyramid level, in bands of grid rows, top to bottom: ((rows, cols, D)
        float32 L2-normalised vectors, (rows, cols, classes) float32 maps) per band
        (`DenseEmbedder.iter_rows`); each band's vectors are let go before the next is embedded.
        With `pretrained`, a twin's pretrained half of this level (`cached_pretrained`), only
        the trained network runs."""
        embedder = self.embedders[scale] if pretrained is None else self._half(scale)
        for top, vectors in embedder.iter_rows(image):
            if pretrained is not None:
                vectors = self._joined(vectors, pretrained[top : top + len(vectors)])
            vectors, band_maps = self._vectors_and_maps(vectors)
            yield vectors, band_maps
            del vectors, band_maps

    def _half(self, scale: float) -> DenseEmbedder:
        """The trained network alone at one level, made when first needed."""
        if scale not in self._halves:
            backbone, window = self._trained_half
            self._halves[scale] = DenseEmbedder(backbone, self.project.normalization, self.embedders[scale].geometry,
                                                channels=self.project.channels, device=self._device, window=window)
        return self._halves[scale]

    @staticmethod
    def _joined(trained: np.ndarray, pretrained: np.ndarray) -> np.ndarray:
        """A twin's (..., 2 D) vectors from its trained half and a cached pretrained half."""
        if trained.shape != pretrained.shape:
            raise ProjectError(f"cached embeddings of shape {pretrained.shape} do not match the image's grid "
                               f"{trained.shape}", hint="embed the images again (simsearch embed)")
        return np.concatenate([trained, np.asarray(pretrained, dtype=np.float32)], -1)

    def _vectors_and_maps(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The embedder's (..., D or 2 D) vectors -> the trained embedding (..., D) and the
        probability maps: the classifier's, or its and the probe's averaged at the probe's share;
        with the similarity gate, each class's gated by the similarity to its prototypes."""
        maps = self._softmax(self.classifier, vectors[..., : self.dim])
        if not self.twin:
            return vectors, maps
        pretrained = vectors[..., self.dim :]
        if self.probe_share:
            maps = (1 - self.probe_share) * maps + self.probe_share * self._softmax(self.probe_classifier, pretrained)
        if self.gate is not None:
            maps = gate_by_similarity(maps, pretrained, *self.gate, device=self.embedder.device)
        return np.ascontiguousarray(vectors[..., : self.dim]), maps

    @torch.inference_mode()
    def _softmax(self, classifier: torch.nn.Linear, vectors: np.ndarray) -> np.ndarray:
        return torch.softmax(classifier(torch.from_numpy(vectors).to(self.embedder.device)), dim=-1).cpu().numpy()

    def cached_level_maps(self, image_id: str, project: Project | None = None) -> list | None:
        """`level_maps` of an image from `project`'s cached embeddings (default: the model's
        project; `Project.cached_embeddings`), without a network pass, where the model's
        embedding is the pretrained one (`on_pretrained`: the probe strategy) and every level is
        cached; else None. The same maps as `level_maps` to float16 rounding of the vectors.

        Examples
        --------
        >>> predictor.cached_level_maps(image_id) is None    # a probe, its image embedded   # doctest: +SKIP
        False
        """
        levels = self.cached_levels(image_id, project)
        return None if levels is None else [(scale, geometry, maps) for scale, geometry, _, maps in levels]

    def level_maps_of(self, image_id: str, project: Project | None = None) -> list:
        """`level_maps` of one of `project`'s images (default: the model's project): from its
        cached embeddings where `cached_level_maps` can, else the network on its pixels (a
        twin's pretrained half from the cache where it has it, `cached_pretrained`).

        Examples
        --------
        >>> [(scale, maps.shape) for scale, _, maps in predictor.level_maps_of(image_id)]   # doctest: +SKIP
        [(1.0, (29, 39, 3))]
        """
        project = project or self.project
        levels = self.cached_level_maps(image_id, project)
        if levels is not None:
            return levels
        return self.level_maps(project.dataset.read(image_id), self.cached_pretrained(image_id, project))

    def cached_levels(self, image_id: str, project: Project | None = None) -> list | None:
        """`cached_level_maps` with the embedding too: per level (scale, geometry, (rows, cols,
        D) float16 cached vectors, memory-mapped, (rows, cols, classes) maps), or None."""
        cached = self._cached_vectors(image_id, project or self.project) if self.on_pretrained else None
        if cached is None:
            return None
        return [(scale, self.embedders[scale].geometry, vectors, self._maps_of_cached(vectors))
                for scale, vectors in cached.items()]

    def cached_pretrained(self, image_id: str, project: Project | None = None) -> dict[float, np.ndarray] | None:
        """A twin's pretrained half (the embedding of the probe beside the model and of the
        similarity gate) of an image of `project` (default: the model's) from its cached
        embeddings: per scale, (rows, cols, D) float16 vectors, memory-mapped; None for a model
        without a twin, or where a level is not cached. The maps with it (`level_maps`) run only
        the trained network, about a fifth less work on EfficientNet-Lite0, and equal the twin's
        to float16 rounding of the vectors.

        Examples
        --------
        >>> image = project.dataset.read(image_id)                                      # doctest: +SKIP
        >>> levels = predictor.level_maps(image, predictor.cached_pretrained(image_id))  # doctest: +SKIP
        """
        return self._cached_vectors(image_id, project or self.project) if self.twin else None

    def _cached_vectors(self, image_id: str, project: Project) -> dict[float, np.ndarray] | None:
        """The project's cached pretrained vectors of an image at every level, or None."""
        levels = {}
        for scale, embedder in self.embedders.items():
            cached = project.cached_embeddings(image_id, scale)
            if cached is None or cached.geometry != embedder.geometry or cached.vectors.shape[-1] != self.dim:
                return None
            levels[scale] = cached.vectors
        return levels

    def _maps_of_cached(self, vectors: np.ndarray, rows: int = 64) -> np.ndarray:
        """Cached (rows, cols, D) float16 pretrained vectors -> the maps, `rows` grid rows at a
        time (a slide's vectors are memory-mapped, never all in memory as float32)."""
        maps = []
        for top in range(0, vectors.shape[0], rows):
            band = np.asarray(vectors[top : top + rows], dtype=np.float32)
            maps.append(self._vectors_and_maps(np.concatenate([band, band], -1) if self.twin else band)[1])
        return maps[0] if len(maps) == 1 else np.concatenate(maps)

    def vectors_and_maps(self, image: np.ndarray, scale: float = 1.0, pretrained: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, C) raw image -> the trained embedding (rows, cols, D) float32, L2-normalised,
        and the probability maps (rows, cols, classes) float32, at one level of the pyramid
        (`iter_bands` whole)."""
        vectors, maps = zip(*self.iter_bands(image, scale, pretrained))
        return (vectors[0], maps[0]) if len(maps) == 1 else (np.concatenate(vectors), np.concatenate(maps))

    def level_maps(self, image: np.ndarray, pretrained: dict[float, np.ndarray] | None = None
                   ) -> list[tuple[float, PatchGeometry, np.ndarray]]:
        """The probability maps at every level of the model's scale pyramid, as (scale,
        geometry, (rows, cols, classes) maps): what `detections_from_levels` reads. With
        `pretrained` (`cached_pretrained`) a twin's pretrained half comes from it."""
        return [(scale, embedder.geometry, self.probability_maps(image, scale, pretrained and pretrained[scale]))
                for scale, embedder in self.embedders.items()]

    def level_maps_batch(self, images: list, pretrained: list | None = None
                         ) -> list[list[tuple[float, PatchGeometry, np.ndarray]]]:
        """`level_maps` of each image; images of one shape go through the network together,
        one batch per level (`DenseEmbedder.embed_batch`), equal to one at a time to float
        rounding. The caller bounds the batch (`Project.embed_batch_pixels`); one image, or a
        slide, is `level_maps` itself (in bands). `pretrained`: each image's `cached_pretrained`,
        used where every image of the batch has it."""
        halves = pretrained is not None and all(p is not None for p in pretrained)
        if len(images) < 2:
            return [self.level_maps(image, pretrained[0] if halves else None) for image in images]
        per_image: list[list] = [[] for _ in images]
        for scale, embedder in self.embedders.items():
            batch = (self._half(scale) if halves else embedder).embed_batch(images)
            for index, (levels, embedded) in enumerate(zip(per_image, batch)):
                vectors = self._joined(embedded.vectors, pretrained[index][scale]) if halves else embedded.vectors
                levels.append((scale, embedder.geometry, self._vectors_and_maps(vectors)[1]))
        return per_image

    def detections(self, image_id: str, thresholds: dict[str, float] | None = None) -> list[Detection]:
        """Local maxima of each class's maps above its confidence threshold (default: the
        thresholds in the project store), across the levels of the pyramid, most confident first."""
        if thresholds is None:
            thresholds = {c.name: c.confidence_threshold for c in self.project.store.classes()}
        record = self.project.dataset.by_id(image_id)
        return detections_from_levels(self.level_maps_of(image_id), self.class_names[:-1], thresholds, image_id,
                                      (record.height, record.width))


def _unchanged(weights: dict, pretrained: dict, geometries: list[PatchGeometry]) -> bool:
    """Whether a saved model's network and pooling windows are the pretrained ones."""
    window = weights.get("window")
    same_window = window is None or all(torch.equal(window.float(), torch.tensor(g.window, dtype=torch.float32))
                                        for g in geometries)
    return same_window and all(torch.equal(weights["network"][name], tensor) for name, tensor in pretrained.items())


def detections_from_levels(levels: list[tuple[float, PatchGeometry, np.ndarray]], class_names: list[str],
                           thresholds: dict[str, float], image_id: str,
                           image_size: tuple[int, int] | None = None) -> list[Detection]:
    """Detections from one image's per-class probability maps at one or more levels of a scale
    pyramid ((scale, geometry, (rows, cols, classes) maps), the background last and not
    detected): each class's local maxima above its threshold (0.5 when not given), one per
    object across levels (`peaks_across_scales`), with the box of the level each was found at,
    cut to the image when its (height, width) `image_size` is given (a border grid's patches
    reach beyond it).

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchGeometry
    >>> base = PatchGeometry.for_patch(32, min_cells=4)
    >>> small, large = np.zeros((40, 40, 2), np.float32), np.zeros((20, 20, 2), np.float32)
    >>> small[11, 10, 0], large[4, 4, 0] = 0.6, 0.9   # one object, surer at twice the patch size
    >>> found = detections_from_levels([(1.0, base, small), (2.0, base.at_scale(2), large)], ["cell"], {}, "img")
    >>> [(d.class_name, round(d.confidence, 2), d.box[2] - d.box[0]) for d in found]
    [('cell', 0.9, 64.0)]

    On a border grid an object in the image's corner is found there, its box cut to the image:

    >>> edge = PatchGeometry.for_patch(32, min_cells=4, border=True)
    >>> maps = np.zeros((*edge.grid_shape(200, 200), 2), np.float32)
    >>> maps[0, 1, 0] = 0.8
    >>> [(d.y, d.x, d.box) for d in detections_from_levels([(1.0, edge, maps)], ["cell"], {}, "img", (200, 200))]
    [(8.0, 16.0, (0.0, 0.0, 32.0, 24.0))]
    """
    found = []
    for index, name in enumerate(class_names):
        peaks = peaks_across_scales([(scale, geometry, maps[..., index]) for scale, geometry, maps in levels],
                                    threshold=thresholds.get(name, 0.5))
        found += [
            Detection(image_id, name, y, x, value, box_within(box_around(y, x, (int(h), int(w))), image_size), level)
            for y, x, value, (h, w), level in zip(peaks.ys.tolist(), peaks.xs.tolist(), peaks.values.tolist(),
                                                   peaks.sizes.tolist(), peaks.levels.tolist())
        ]
    found.sort(key=lambda d: -d.confidence)
    return found


def detections_from_maps(maps: np.ndarray, class_names: list[str], thresholds: dict[str, float], geometry, image_id: str) -> list[Detection]:
    """Detections from one image's per-class probability maps ((rows, cols, classes), the
    background last and not detected): each class's local maxima `peak_spacing` apart,
    above its threshold (0.5 when not given), as Detections in image pixels with their boxes
    (`detections_from_levels` with one level).

    Examples
    --------
    >>> import numpy as np
    >>> from simsearch import PatchGeometry
    >>> maps = np.zeros((10, 10, 2), np.float32)
    >>> maps[4, 6, 0] = 0.9                               # one confident cell of class "cell"
    >>> found = detections_from_maps(maps, ["cell"], {"cell": 0.5}, PatchGeometry.for_patch(64, min_cells=4), "img")
    >>> [(d.class_name, round(d.confidence, 2)) for d in found]
    [('cell', 0.9)]
    """
    return detections_from_levels([(1.0, geometry, maps)], class_names, thresholds, image_id)
