"""Contrastive losses of the SimSearch paper, one nn.Module each, computed in float32 (also
inside a bf16 autocast region: at tau 0.07 a bf16 cosine's rounding of about 0.004 would move
a logit by 0.06).

- NTXentLoss: SimCLR's normalised temperature-scaled cross entropy (Chen et al. 2020),
  used on the noisy patches (paper Sec. II-D, tau = 0.5).
- SupConWithNegativesLoss: supervised contrastive loss (Khosla et al. 2020) with each
  class's user-flagged negatives added to the denominator of that class's anchors
  (paper Eq. 3-4, tau = 0.07).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NTXentLoss(nn.Module):
    """views_a, views_b: (N, D) embeddings of two augmented views of the same N patches.

    For each of the 2N views, the other view of its patch is the positive and the
    remaining 2N - 2 views are negatives:
        loss = mean_i -log( exp(s(i, pos(i)) / tau) / sum_{k != i} exp(s(i, k) / tau) )
    with s the cosine similarity. With `sources` (N,), the patch each row was cropped from,
    the views of another row of the same patch (a class-balanced epoch repeats the patches of
    a rare class) are left out of the denominator: they are the same patch, not a negative.
    Returns a scalar.

    Examples
    --------
    >>> import torch
    >>> views = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(0))
    >>> plain = NTXentLoss(0.5)(views[0], views[1])
    >>> bool(torch.isclose(plain, NTXentLoss(0.5)(views[0], views[1], sources=torch.arange(4))))  # four patches
    True
    >>> bool(NTXentLoss(0.5)(views[0], views[1], sources=torch.tensor([7, 3, 7, 5])) < plain)  # rows 0 and 2 one patch
    True
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, views_a: torch.Tensor, views_b: torch.Tensor,
                sources: torch.Tensor | None = None) -> torch.Tensor:
        if views_a.shape != views_b.shape or views_a.ndim != 2:
            raise ValueError(f"NTXentLoss expects two (N, D) tensors, got {tuple(views_a.shape)} and {tuple(views_b.shape)}")
        count = views_a.shape[0]
        with torch.autocast(views_a.device.type, enabled=False):
            z = F.normalize(torch.cat([views_a, views_b]).float(), dim=1)
            logits = z @ z.T / self.temperature
            targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(z.device)
            left_out = torch.eye(2 * count, dtype=torch.bool, device=z.device)
            if sources is not None:
                both = torch.cat([sources, sources]).to(z.device)
                left_out |= both[:, None] == both[None, :]
                left_out[torch.arange(2 * count, device=z.device), targets] = False  # the view's own pair stays
            logits = logits.masked_fill(left_out, float("-inf"))
            return F.cross_entropy(logits, targets)  # log-softmax subtracts the row max: stable


class SupConWithNegativesLoss(nn.Module):
    """Supervised contrastive loss with extra negatives per class.

    features: (N, D) embeddings of the batch (augmented views included);
    labels: (N,) int class of each (background is a class like any other);
    negatives: (M, D) embeddings of user-flagged negatives, negative_labels: (M,)
    the class each was flagged for. For anchor i with positives P(i) = {p != i:
    labels[p] == labels[i]} and denominator A(i) = {a != i} plus the negatives of
    class labels[i]:
        loss_i = -1/|P(i)| sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a in A(i)} exp(s_ia / tau) )
    Anchors without positives are left out of the mean (not counted as zero).
    Returns a scalar (0 with no valid anchor).
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        negatives: torch.Tensor | None = None,
        negative_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.autocast(features.device.type, enabled=False):
            return self._loss(features, labels, negatives, negative_labels)

    def _loss(self, features, labels, negatives, negative_labels) -> torch.Tensor:
        z = F.normalize(features.float(), dim=1)
        count = z.shape[0]
        labels = labels.to(z.device)
        self_mask = torch.eye(count, dtype=torch.bool, device=z.device)
        logits = (z @ z.T / self.temperature).masked_fill(self_mask, float("-inf"))
        positive = (labels[:, None] == labels[None, :]) & ~self_mask
        if negatives is not None and len(negatives):
            n = F.normalize(negatives.float().to(z.device), dim=1)
            extra = (z @ n.T / self.temperature).masked_fill(
                labels[:, None] != negative_labels.to(z.device)[None, :], float("-inf")
            )
            denominator = torch.logsumexp(torch.cat([logits, extra], dim=1), dim=1)
        else:
            denominator = torch.logsumexp(logits, dim=1)
        log_prob = logits - denominator[:, None]
        counts = positive.sum(dim=1)
        valid = counts > 0
        if not valid.any():
            return z.sum() * 0.0
        per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(dim=1)[valid] / counts[valid]
        return per_anchor.mean()


class NotClassLoss(nn.Module):
    """Learning from "not this class" answers (complementary labels; Ishida et al., NeurIPS
    2017): for logits (N, C) and the class each sample is not (N,),
        loss = mean_i -log(1 - softmax(logits_i)[not_class_i])
    computed as logsumexp(all logits) - logsumexp(the other logits), stable for any logits.
    It lowers the probability of the wrong class without claiming which class is right: a
    rejected WBC detection may be background or a red cell. Returns a scalar.
    """

    def forward(self, logits: torch.Tensor, not_class: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        wrong = F.one_hot(not_class.to(logits.device), logits.shape[1]).bool()
        others = torch.logsumexp(logits.masked_fill(wrong, float("-inf")), dim=1)
        return (torch.logsumexp(logits, dim=1) - others).mean()
