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


def balanced_order(labels: torch.Tensor, count: int, generator: torch.Generator,
                   examples: torch.Tensor | None = None) -> torch.Tensor:
    """`count` indices into `labels` in which each of the k classes present fills count/k
    places: a class's samples in random order, repeated as often as its share needs (the rare
    ones oversampled, the common ones each drawn at most once more than the others), the whole
    shuffled. So a batch holds each class at about 1/k whatever the class frequencies.

    With `examples` (for each index, the example it is a copy of: the classifier stage's
    augmented copies), a class's share goes round its examples instead: each is drawn as often
    as the others of its class (once more at most), a different copy each time until all its
    copies have been drawn.

    Examples
    --------
    >>> import torch
    >>> labels = torch.tensor([0] * 8 + [1] * 8)                    # 4 examples x 2 copies a class
    >>> examples = torch.arange(16) % 8                              # index i is a copy of example i % 8
    >>> order = balanced_order(labels, 8, torch.Generator().manual_seed(0), examples)
    >>> sorted(examples[order].tolist())                             # each example once
    [0, 1, 2, 3, 4, 5, 6, 7]
    """
    classes = torch.unique(labels)
    if not len(classes) or count <= 0:
        return torch.zeros(0, dtype=torch.int64)
    shares = torch.full((len(classes),), count // len(classes), dtype=torch.int64)
    shares[torch.randperm(len(classes), generator=generator)[: count % len(classes)]] += 1
    parts = []
    for value, share in zip(classes.tolist(), shares.tolist()):
        members = torch.nonzero(labels == value).flatten()
        if examples is not None:
            parts.append(_round_the_examples(members, examples[members], share, generator))
            continue
        rounds = -(-share // len(members))
        parts.append(torch.cat([members[torch.randperm(len(members), generator=generator)] for _ in range(rounds)])[:share])
    order = torch.cat(parts)
    return order[torch.randperm(len(order), generator=generator)]


def _round_the_examples(members: torch.Tensor, examples: torch.Tensor, share: int,
                        generator: torch.Generator) -> torch.Tensor:
    """`share` of `members` (indices, each a copy of the example beside it in `examples`) in
    rounds: every example once a round, in random order, its copies in a random order of
    their own (the next one each round, from the first again after the last)."""
    _, inverse, counts = torch.unique(examples, return_inverse=True, return_counts=True)
    jitter = torch.rand(len(members), generator=generator, dtype=torch.float64)  # in [0, 1): shuffles within an example
    shuffled = members[torch.argsort(inverse.double() + jitter)]
    starts = torch.cumsum(counts, 0) - counts  # each example's copies lie together in `shuffled`
    rounds = -(-share // len(counts))
    picks = []
    for round_index in range(rounds):
        turn = torch.randperm(len(counts), generator=generator)
        picks.append(shuffled[starts[turn] + round_index % counts[turn]])
    return torch.cat(picks)[:share]


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
