"""Batch norm folded into convolutions for inference: the same outputs, no batch norm left,
the network given unchanged, and no folding where it would change what is computed."""
import copy

import torch
from torch import nn

from simsearch.features.fold import fold_batch_norm


def _randomise_statistics(network: nn.Module, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return network.eval()


def _batch_norms(network):
    return sum(isinstance(m, nn.BatchNorm2d) for m in network.modules())


def test_both_backbones_fold_to_the_same_outputs(lite0):
    from torchvision.models import resnet18

    full = resnet18(weights=None)
    resnet = _randomise_statistics(nn.Sequential(full.conv1, full.bn1, full.relu, full.maxpool, full.layer1, full.layer2, full.layer3))
    for network in (lite0.network, resnet):
        before = copy.deepcopy(network.state_dict())
        folded = fold_batch_norm(network)
        assert _batch_norms(network) > 0 and _batch_norms(folded) == 0
        x = torch.rand(2, 3, 96, 128, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            want, got = network(x), folded(x)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
        assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())  # the network is not changed


class _UsesTheConvolutionTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.norm(y) + y  # folding the norm into the convolution would change the second term


def test_a_convolution_whose_output_is_used_elsewhere_is_not_folded():
    network = _randomise_statistics(_UsesTheConvolutionTwice())
    folded = fold_batch_norm(network)
    assert _batch_norms(folded) == 1
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), network(x))
