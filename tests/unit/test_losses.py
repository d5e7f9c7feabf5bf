import math

import pytest
import torch
import torch.nn.functional as F

from simsearch.training.losses import NTXentLoss, SupConWithNegativesLoss


def naive_ntxent(a, b, tau, sources=None):
    z = F.normalize(torch.cat([a, b]), dim=1).double()
    n = a.shape[0]
    source = list(range(n)) * 2 if sources is None else [int(s) for s in sources] * 2
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        num = math.exp(float(z[i] @ z[pos]) / tau)
        den = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k == pos or source[k] != source[i])
        total += -math.log(num / den)
    return total / (2 * n)


def naive_supcon(f, labels, negs, neg_labels, tau):
    z = F.normalize(f, dim=1).double()
    nz = F.normalize(negs, dim=1).double() if negs is not None else None
    losses = []
    for i in range(len(z)):
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        den = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(len(z)) if a != i)
        if nz is not None:
            den += sum(math.exp(float(z[i] @ nz[m]) / tau) for m in range(len(nz)) if neg_labels[m] == labels[i])
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / den) for p in positives) / len(positives))
    return sum(losses) / len(losses)


def test_ntxent_matches_naive_reference():
    torch.manual_seed(0)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    assert NTXentLoss(0.5)(a, b).item() == pytest.approx(naive_ntxent(a, b, 0.5), rel=1e-5)


def test_ntxent_leaves_other_rows_of_the_same_patch_out_of_the_denominator():
    # a class-balanced epoch repeats a rare class's patches: rows 0, 2 and 5 are one patch, whose other views
    # are not negatives of each other
    torch.manual_seed(2)
    a, b = torch.randn(6, 8), torch.randn(6, 8)
    sources = torch.tensor([4, 9, 4, 1, 7, 4])
    loss = NTXentLoss(0.5)(a, b, sources=sources).item()
    assert loss == pytest.approx(naive_ntxent(a, b, 0.5, sources), rel=1e-5)
    assert loss != pytest.approx(naive_ntxent(a, b, 0.5), rel=1e-3)
    assert NTXentLoss(0.5)(a, b, sources=torch.arange(6) * 3).item() == pytest.approx(naive_ntxent(a, b, 0.5), rel=1e-5)


@pytest.mark.parametrize("loss, inputs", [
    (NTXentLoss(0.5), lambda z: (z[:16], z[16:])),
    (SupConWithNegativesLoss(0.07), lambda z: (z[:24], torch.arange(24) % 3, z[24:], torch.arange(8) % 3)),
])
def test_losses_stay_float32_inside_a_bf16_autocast_region(loss, inputs):
    # training runs the step under autocast on a GPU; the losses' similarity matmul must not drop to bf16
    z = torch.randn(32, 64, generator=torch.Generator().manual_seed(3))
    plain = loss(*inputs(z)).item()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = loss(*inputs(z))
    assert autocast.dtype == torch.float32
    assert autocast.item() == pytest.approx(plain, rel=1e-6)


def test_ntxent_analytic_values():
    # identical views, orthogonal patches: positive similarity 1, others 0 -> log(e^2 + 2 (N-1))... exactly:
    n, tau = 4, 0.5
    a = torch.eye(n, 8)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * n - 2))
    assert NTXentLoss(tau)(a, a.clone()).item() == pytest.approx(expected, rel=1e-6)
    # stable for tiny temperatures (row-max subtraction): finite, not nan
    assert math.isfinite(NTXentLoss(1e-4)(torch.randn(5, 3), torch.randn(5, 3)).item())


def test_supcon_matches_naive_reference_with_and_without_negatives():
    torch.manual_seed(1)
    f = torch.randn(10, 6)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 3, 1])  # class 3 has one sample: no positives
    negs, neg_labels = torch.randn(4, 6), torch.tensor([0, 0, 1, 2])
    loss = SupConWithNegativesLoss(0.07)
    assert loss(f, labels).item() == pytest.approx(naive_supcon(f, labels, None, None, 0.07), rel=1e-5)
    assert loss(f, labels, negs, neg_labels).item() == pytest.approx(naive_supcon(f, labels, negs, neg_labels, 0.07), rel=1e-5)


def test_supcon_negatives_raise_the_loss_and_lonely_anchors_are_excluded():
    torch.manual_seed(2)
    f = torch.randn(8, 5)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    loss = SupConWithNegativesLoss(0.1)
    close_negative = f[:1] + 0.01 * torch.randn(1, 5)  # a negative right next to a class-0 anchor
    assert loss(f, labels, close_negative, torch.tensor([0])) > loss(f, labels)
    # an extra lonely anchor changes nothing (excluded, not averaged in as zero)
    lonely = torch.cat([f, torch.randn(1, 5)])
    assert loss(lonely, torch.cat([labels, torch.tensor([7])])).item() == pytest.approx(
        naive_supcon(lonely, torch.cat([labels, torch.tensor([7])]), None, None, 0.1), rel=1e-5)
    assert loss(torch.randn(3, 4), torch.tensor([0, 1, 2])).item() == 0.0


def test_supcon_analytic_value():
    # two classes of two identical unit vectors, orthogonal across classes
    tau = 0.5
    f = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2))
    assert SupConWithNegativesLoss(tau)(f, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(expected, rel=1e-6)


def test_losses_work_under_bf16_autocast():
    torch.manual_seed(3)
    f = torch.randn(6, 4, dtype=torch.bfloat16)
    value = SupConWithNegativesLoss()(f, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert value.dtype == torch.float32 and math.isfinite(value.item())


def test_not_class_loss_matches_its_definition_and_stays_finite():
    from simsearch.training.losses import NotClassLoss

    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    not_class = torch.tensor([0, 1, 2, 3, 0, 2])
    probabilities = torch.softmax(logits.double(), dim=1)
    naive = float(torch.mean(torch.stack([-torch.log(1 - probabilities[i, c]) for i, c in enumerate(not_class.tolist())])))
    assert float(NotClassLoss()(logits, not_class)) == pytest.approx(naive, rel=1e-5)
    # a confident wrong class: large but finite, and its gradient lowers that class's logit
    sure = torch.tensor([[30.0, 0.0, 0.0]], requires_grad=True)
    loss = NotClassLoss()(sure, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss) and float(loss) == pytest.approx(30.0 - math.log(2), rel=1e-4) and sure.grad[0, 0] > 0
    # nothing on the wrong class: no loss
    assert float(NotClassLoss()(torch.tensor([[-30.0, 5.0, 5.0]]), torch.tensor([0]))) == pytest.approx(0.0, abs=1e-6)
