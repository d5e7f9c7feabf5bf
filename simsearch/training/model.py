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
from simsearch.features.efficientnet_lite import EfficientNetLite0Stride16
from simsearch.features.geometry import PatchGeometry


FROZEN_LITE0_BLOCKS = 5  # EfficientNet-Lite0's blocks up to the end of its stride-8 stage


def frozen_prefix(backbone: Backbone) -> list[nn.Module]:
    """The early layers kept frozen in training (ResNet-18: conv1..layer2, as in the paper;
    EfficientNet-Lite0: stem to the end of the stride-8 stage, its counterpart)."""
    network = backbone.network
    if backbone.name == "resnet18":
        return list(network.children())[:6]
    return [network._conv_stem, network._bn0, *list(network._blocks)[:FROZEN_LITE0_BLOCKS]]


class _Lite0Prefix(nn.Module):
    """EfficientNet-Lite0's stem and its frozen blocks, as its forward runs them."""

    def __init__(self, network: EfficientNetLite0Stride16):
        super().__init__()
        self._stem_pad, self._conv_stem, self._bn0 = network._stem_pad, network._conv_stem, network._bn0
        self.blocks = nn.Sequential(*list(network._blocks)[:FROZEN_LITE0_BLOCKS])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(EfficientNetLite0Stride16.stem(self, x))  # the stem's layers are here under its names


def prefix_and_rest(network: nn.Module, name: str) -> tuple[nn.Module, nn.Module]:
    """A backbone network (`name`: its backbone's) as two modules run one after the other: the
    layers training keeps frozen (`frozen_prefix`) and the rest."""
    if name == "resnet18":
        layers = list(network.children())
        return nn.Sequential(*layers[:6]), nn.Sequential(*layers[6:])
    return _Lite0Prefix(network), nn.Sequential(*list(network._blocks)[FROZEN_LITE0_BLOCKS:])


class TwinNetwork(nn.Module):
    """A trained backbone network and another (the pretrained one it started from) in one
    pass: (N, 3, H, W) -> (N, 2 D, h, w), the trained network's D feature maps first. Where
    the two hold the same frozen prefix (`frozen_prefix`: training leaves it as it is unless
    batch-norm statistics follow the batches) it runs once for both, so the second network
    costs only its later layers (on EfficientNet-Lite0 about a quarter of a pass on a CPU).

    Examples
    --------
    >>> import copy
    >>> from simsearch.features.backbones import load_backbone
    >>> backbone = load_backbone("efficientnet-lite0")
    >>> trained = copy.deepcopy(backbone.network)
    >>> _ = trained._blocks[-1].requires_grad_(True)
    >>> twin = TwinNetwork(trained, backbone.network, backbone.name)
    >>> twin.shares_prefix, tuple(twin(torch.rand(1, 3, 64, 64)).shape)
    (True, (1, 224, 4, 4))
    """

    def __init__(self, trained: nn.Module, other: nn.Module, name: str):
        super().__init__()
        self.prefix, self.rest = prefix_and_rest(trained, name)
        other_prefix, self.other_rest = prefix_and_rest(other, name)
        mine, theirs = self.prefix.state_dict(), other_prefix.state_dict()
        self.shares_prefix = mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k].to(mine[k].device))
                                                                    for k in mine)
        self.other_prefix = None if self.shares_prefix else other_prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        early = self.prefix(x)
        other = early if self.other_prefix is None else self.other_prefix(x)
        return torch.cat([self.rest(early), self.other_rest(other)], dim=1)


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
