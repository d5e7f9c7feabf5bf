import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simsearch import BackboneSpec, ConfigError, WeightsError, load_backbone
from simsearch.features import backbones
from simsearch.features.backbones import load_efficientnet_lite0_classifier, load_recorded_backbone

IMAGENET_CATS = [281, 282, 283, 284, 285]  # tabby, tiger cat, Persian, Siamese, Egyptian cat
IMAGENET_ESPRESSO = 967


def _classify(model, rgb_uint8: np.ndarray) -> torch.Tensor:
    image = torch.from_numpy(rgb_uint8).permute(2, 0, 1).float()[None] / 255
    image = F.interpolate(image, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(backbones.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(backbones.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((image - mean) / std).softmax(dim=1)[0]


def test_packaged_efficientnet_lite0_weights_are_real_imagenet_weights():
    from skimage import data

    model = load_efficientnet_lite0_classifier()
    cat = _classify(model, data.chelsea())
    assert int(cat.argmax()) in IMAGENET_CATS
    assert float(cat[IMAGENET_CATS].sum()) > 0.8
    coffee = _classify(model, data.coffee())
    assert int(coffee.argmax()) == IMAGENET_ESPRESSO


def test_truncated_efficientnet_has_stride_16(lite0):
    assert lite0.name == "efficientnet-lite0" and lite0.channels == 112
    with torch.no_grad():
        out = lite0.network(torch.zeros(1, 3, 96, 160))
    assert tuple(out.shape) == (1, 112, 6, 10)
    assert not any(p.requires_grad for p in lite0.network.parameters())


def test_blocks_pad_as_tensorflow_same_padding_does():
    """The convolutions that pad by themselves give what an explicit 'SAME' pad gives."""
    from simsearch.features.efficientnet_lite import MBConvBlock, SamePad

    torch.manual_seed(0)
    for kernel, stride in ((3, 1), (5, 1), (3, 2), (5, 2)):
        block = MBConvBlock(16, 16, kernel, stride, 6).eval()
        x = torch.randn(2, 16, 23, 30)
        with torch.no_grad():
            y = F.relu6(block._bn0(block._expand_conv(x)))
            padded = SamePad(kernel, stride)(y)  # the reference: pad explicitly, then convolve without padding
            y = F.conv2d(padded, block._depthwise_conv.weight, stride=stride, groups=block._depthwise_conv.groups)
            y = block._bn2(block._project_conv(F.relu6(block._bn1(y))))
            expected = x + y if block.residual else y
            torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_auto_falls_back_to_efficientnet_offline_and_logs(caplog):
    caplog.set_level("INFO")
    backbone = load_backbone("auto")
    assert backbone.name == "efficientnet-lite0"
    assert backbone.spec.weights_sha256 == hashlib.sha256(Path(backbone.spec.weights_path).read_bytes()).hexdigest()
    assert "efficientnet-lite0" in caplog.text and backbone.spec.weights_path in caplog.text


@pytest.fixture
def resnet18_file(tmp_path) -> Path:
    """A real torchvision ResNet-18 state dict (random init: tests never download)."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


def test_resnet18_from_user_file(resnet18_file):
    backbone = load_backbone("resnet18", weights=resnet18_file)
    assert backbone.name == "resnet18" and backbone.channels == 256
    assert backbone.spec.weights_path == str(resnet18_file.resolve())
    with torch.no_grad():
        out = backbone.network(torch.zeros(1, 3, 64, 96))
    assert tuple(out.shape) == (1, 256, 4, 6)


def test_auto_prefers_resnet18_from_hub_cache(resnet18_file, monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / backbones.RESNET18_FILE).write_bytes(resnet18_file.read_bytes())
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    assert load_backbone("auto").name == "resnet18"


def test_missing_resnet18_weights_name_the_alternatives():
    with pytest.raises(WeightsError) as err:
        load_backbone("resnet18")
    assert "efficientnet-lite0" in str(err.value) and backbones.RESNET18_FILE in str(err.value)


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth"):
        load_backbone("resnet18", weights=missing)


def test_corrupt_weights_file_is_named(tmp_path, resnet18_file):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(resnet18_file.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="corrupt.pth"):
        load_backbone("resnet18", weights=corrupt)


def test_weights_of_another_architecture_are_rejected(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(WeightsError, match="do not fit"):
        load_backbone("resnet18", weights=other)
    with pytest.raises(WeightsError, match="do not fit"):
        load_backbone("efficientnet-lite0", weights=other)


def test_unknown_backbone_name():
    with pytest.raises(ConfigError, match="unknown name 'vgg'"):
        load_backbone("vgg")


def test_recorded_backbone_never_changes_silently(lite0, resnet18_file):
    assert load_recorded_backbone(lite0.spec).spec == lite0.spec
    changed = BackboneSpec("resnet18", str(resnet18_file), "0" * 64)
    with pytest.raises(WeightsError, match="differs from the one this project"):
        load_recorded_backbone(changed)
