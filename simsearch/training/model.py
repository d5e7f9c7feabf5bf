"""The trainable patch model: truncated backbone + Gaussian pooling (the embedding),
a projection head for the contrastive stages and a linear classifier (paper Sec. II-D, Fig. 3).

Training sees patch crops with a margin of `context_cells` feature cells, and the
embedding pools the centre window, as the dense path does over a whole image; so a
trained network can be dropped into DenseEmbedder for one-pass inference.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from simsearch.features.backbones import Backbone
from simsearch.features.geometry import PatchGeometry


def frozen_prefix(backbone: Backbone) -> list[nn.Module]:
    """The early layers kept frozen in training (ResNet-18: conv1..layer2, as in the paper;
    EfficientNet-Lite0: stem to the end of the stride-8 stage, its counterpart)."""
    network = backbone.network
    if backbone.name == "resnet18":
        return list(network.children())[:6]
    return [network._conv_stem, network._bn0, *list(network._blocks)[:5]]


class PatchModel(nn.Module):
    def __init__(self, backbone: Backbone, geometry: PatchGeometry, num_classes: int, *,
                 context_cells: int = 2, projection_dim: int = 128, learn_pooling: bool = False,
                 frozen_batch_norm: bool = True):
        super().__init__()
        self.frozen_batch_norm = frozen_batch_norm
        self.name = backbone.name
        self.network = copy.deepcopy(backbone.network)
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1))
        window = torch.tensor(geometry.window, dtype=torch.float32)
        # the paper initialises the pooling with a Gaussian and trains it; fixed, it is the dense path's
        if learn_pooling:
            self.window = nn.Parameter(window)
        else:
            self.register_buffer("window", window)
        self.context_cells = context_cells
        dim = backbone.channels
        self.dim = dim
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))
        self.classifier = nn.Linear(dim, num_classes)
        self.network.requires_grad_(True)
        shadow = copy.copy(backbone)
        shadow.network = self.network
        for module in frozen_prefix(shadow):
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> "PatchModel":
        """Batch norm keeps its ImageNet statistics (small, imbalanced batches) unless the
        model was made with `frozen_batch_norm=False`."""
        super().train(mode)
        if self.frozen_batch_norm:
            for module in self.network.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def embed(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) crops in [0, 1] with the context margin -> (B, D) L2-normalised."""
        features = self.network((crops - self.mean) / self.std)
        c = self.context_cells
        kh, kw = self.window.shape
        centre = features[:, :, c : c + kh, c : c + kw].float()
        return F.normalize((centre * self.window).sum(dim=(2, 3)), dim=1)

    def project(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(embeddings), dim=1)

    def trainable_backbone_parameters(self) -> list[nn.Parameter]:
        """The unfrozen backbone layers, and the pooling window when it is learnt."""
        pooling = [self.window] if isinstance(self.window, nn.Parameter) else []
        return [p for p in self.network.parameters() if p.requires_grad] + pooling
