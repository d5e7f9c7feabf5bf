"""Augmentations for patch crops, on (B, 3, H, W) float tensors in [0, 1], per sample,
seeded through a torch.Generator (paper Sec. II-D: flips, rotations, solarize, coarse
dropout, brightness and contrast; the clean stage leaves out solarize and dropout)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass(frozen=True)
class AugmentSettings:
    """The augmentations of the self-learning stage (`TrainSettings.augment`); the supervised
    stages use `clean()` of them.

    Examples
    --------
    For fluorescence, where brightness carries the class, leave brightness alone:

    >>> from dataclasses import replace
    >>> from simsearch import AugmentSettings, TrainSettings
    >>> settings = replace(TrainSettings.cpu("pos"), augment=AugmentSettings(brightness=0.0))
    >>> settings.augment.brightness, settings.augment.clean().dropout
    (0.0, 0.0)
    """

    flips: bool = True
    rotations: bool = True  # 90-degree steps (180 only for non-square crops)
    brightness: float = 0.2  # additive shift in [-b, b]
    contrast: float = 0.2  # scale around the mean in [1 - c, 1 + c]
    solarize: float = 0.2  # probability of inverting values above 0.5
    dropout: float = 0.5  # probability of 1-3 zeroed rectangles of up to 1/4 of each side

    def clean(self) -> "AugmentSettings":
        """For the supervised stages: these settings without solarize and coarse dropout."""
        return replace(self, solarize=0.0, dropout=0.0)


def _chance(count: int, probability: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(count, generator=generator) < probability


def augment(batch: torch.Tensor, settings: AugmentSettings, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> augmented copy, same shape."""
    out = batch.clone()
    count, _, height, width = out.shape
    device = out.device
    if settings.flips:
        flip_h = _chance(count, 0.5, generator).to(device)
        flip_v = _chance(count, 0.5, generator).to(device)
        out = torch.where(flip_h[:, None, None, None], out.flip(3), out)
        out = torch.where(flip_v[:, None, None, None], out.flip(2), out)
    if settings.rotations:
        turns = torch.randint(0, 4 if height == width else 1, (count,), generator=generator)
        if height != width:
            turns = 2 * torch.randint(0, 2, (count,), generator=generator)
        out = torch.stack([torch.rot90(sample, int(k), dims=(1, 2)) for sample, k in zip(out, turns)])
    if settings.contrast:
        scale = 1 + (torch.rand(count, generator=generator) * 2 - 1) * settings.contrast
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * scale.to(device)[:, None, None, None] + mean
    if settings.brightness:
        shift = (torch.rand(count, generator=generator) * 2 - 1) * settings.brightness
        out = out + shift.to(device)[:, None, None, None]
    out = out.clamp(0.0, 1.0)
    if settings.solarize:
        chosen = _chance(count, settings.solarize, generator).to(device)[:, None, None, None]
        out = torch.where(chosen & (out > 0.5), 1.0 - out, out)
    if settings.dropout:
        for index in torch.nonzero(_chance(count, settings.dropout, generator)).flatten().tolist():
            for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
                h = int(torch.randint(1, max(2, height // 4), (1,), generator=generator))
                w = int(torch.randint(1, max(2, width // 4), (1,), generator=generator))
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                out[index, :, top : top + h, left : left + w] = 0.0
    return out
