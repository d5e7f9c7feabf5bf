"""numpy -> torch without copies where possible and without warnings where not."""
from __future__ import annotations

import numpy as np
import torch


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """torch.from_numpy, copying only read-only arrays (memory-mapped caches), which torch
    refuses to share."""
    if not array.flags.writeable:
        array = np.array(array)
    return torch.from_numpy(array)
