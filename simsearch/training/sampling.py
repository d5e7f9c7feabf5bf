"""Seeded sampling of training examples: a random stream of its own for each use, class-balanced
epoch orders and class-balanced subsets."""
from __future__ import annotations

import hashlib
import json

import torch


def stream(seed: int, *parts) -> torch.Generator:
    """A random stream of its own for each use (an epoch of a stage, the noisy cap, ...), so
    that resuming after any epoch draws exactly what an uninterrupted run draws."""
    key = hashlib.blake2b(json.dumps([seed, *parts]).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(key, "little") & (2**63 - 1))


def balanced_order(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices into `labels` in which each of the k classes present fills count/k
    places: a class's samples in random order, repeated as often as its share needs (the rare
    ones oversampled, the common ones each drawn at most once more than the others), the whole
    shuffled. So a batch holds each class at about 1/k whatever the class frequencies."""
    classes = torch.unique(labels)
    if not len(classes) or count <= 0:
        return torch.zeros(0, dtype=torch.int64)
    shares = torch.full((len(classes),), count // len(classes), dtype=torch.int64)
    shares[torch.randperm(len(classes), generator=generator)[: count % len(classes)]] += 1
    parts = []
    for value, share in zip(classes.tolist(), shares.tolist()):
        members = torch.nonzero(labels == value).flatten()
        rounds = -(-share // len(members))
        parts.append(torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])[:share])
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]


def balanced_subset(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` distinct indices (sorted), as evenly spread over the classes as their sizes
    allow: small classes whole, the rest of the room shared equally by the larger ones."""
    classes, sizes = torch.unique(labels, return_counts=True)
    room, left = {}, count
    for position, index in enumerate(torch.argsort(sizes).tolist()):  # smallest first: water filling
        share = left // (len(classes) - position)
        room[int(classes[index])] = min(int(sizes[index]), share)
        left -= room[int(classes[index])]
    picks = []
    for value, share in room.items():
        members = torch.nonzero(labels == value).flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:share]])
    return torch.sort(torch.cat(picks)).values
