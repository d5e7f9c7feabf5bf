"""Training crops: the patches of store records with their context margin, as the network sees them."""
from __future__ import annotations

import numpy as np
import torch

from simsearch.project.store import PatchRecord
from simsearch.features.embed import crop_windows
from simsearch.project.project import Project


def patch_crops(project: Project, patches: list[PatchRecord], context_cells: int) -> torch.Tensor:
    """(N, 3, H, W) float16 crops of all patches, each at its level of the scale pyramid (the
    same shape at every level: an object twice the patch's size is cropped at half the
    scale), reading each image once (float16 halves the memory of a training set)."""
    by_image: dict[str, dict[float, list[int]]] = {}
    for index, patch in enumerate(patches):
        by_image.setdefault(patch.image_id, {}).setdefault(float(patch.level), []).append(index)
    out = None
    for image_id, levels in by_image.items():
        pixels = project.dataset.read(image_id)
        for level, indices in levels.items():
            centres = np.array([(patches[i].y, patches[i].x) for i in indices])
            crops = crop_windows(pixels, project.normalization, project.channels, project.geometry_at(level), centres,
                                 context_cells=context_cells)
            if out is None:
                out = torch.empty((len(patches), *crops.shape[1:]), dtype=torch.float16)
            out[indices] = crops.half()
    return out if out is not None else torch.zeros(0)
