"""What a training run leaves on disk: the checkpoint of the run in progress (training/), and
the saved model (model/model.pt and model.yaml, written last with model.pt's hash)."""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import torch
import yaml

from simsearch.project.layout import ProjectLayout
from simsearch.project.project import Project
from simsearch.project.store import ProjectLockedError
from simsearch.training.check import ClassCheck
from simsearch.training.model import PatchModel
from simsearch.util.errors import ConfigError, ProjectError
from simsearch.util.files import write_bytes_atomic, write_text_atomic

if TYPE_CHECKING:
    from simsearch.training.loop import TrainSettings

log = logging.getLogger(__name__)


class Checkpoints:
    """training/checkpoint.pt of the run in progress, written atomically after every epoch,
    and beside it checkpoint.json: the run's key, stage and epoch with the checkpoint's size
    and modification time, so that `training_status` need not unpickle the weights (16-22 ms)
    to learn them. Removed when the run finishes: a finished run is its saved model."""

    def __init__(self, layout: ProjectLayout):
        self.folder = layout.training
        self.path = layout.checkpoint
        self.summary_path = layout.checkpoint_summary
        self.lock_path = layout.training_lock

    def load(self, key: str) -> dict | None:
        """The checkpoint of the run `key`, or None (a checkpoint of another run is removed)."""
        if not self.path.is_file():
            return None
        state = self._read()
        if state.get("key") == key:
            return state
        log.info("the interrupted run in %s was trained on other data or settings; starting again", self.folder)
        self.clear()
        return None

    def _read(self) -> dict:
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ProjectError(f"training checkpoint {self.path} is unreadable: {exc}", hint="delete it to start training again") from exc

    def save(self, state: dict) -> None:
        write_bytes_atomic(self.path, torch_bytes(state))
        summary = {"key": state["key"], "stage": int(state["stage"]), "epoch": int(state["epoch"]), "checkpoint": self._stamp()}
        write_text_atomic(self.summary_path, json.dumps(summary))

    def clear(self) -> None:
        for path in (self.summary_path, self.path):  # the summary first: it must never outlive its checkpoint
            path.unlink(missing_ok=True)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Held while a run trains: a second run in the same project (another process, or the
        terminal UI beside the command line) is refused instead of mixing checkpoints."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                owner = handle.read().strip() or "another process"
                raise ProjectLockedError(f"training is already running in {self.folder.parent} ({owner})",
                                         hint="wait for it to finish, or stop it") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()}")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stamp(self) -> list[int]:
        info = self.path.stat()
        return [info.st_size, info.st_mtime_ns]

    def key_stage_and_epoch(self) -> tuple[str | None, int, int]:
        """From the summary when it describes the checkpoint as it is now, else from the checkpoint."""
        try:
            summary = json.loads(self.summary_path.read_text())
            if summary["checkpoint"] == self._stamp():
                return summary.get("key"), int(summary["stage"]), int(summary["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no summary, or a stale or damaged one: the checkpoint itself says
        state = self._read()
        return state.get("key"), int(state["stage"]), int(state["epoch"])


def saved_model_config(project: Project) -> dict | None:
    """model.yaml of the saved model (classes, settings, identity, metrics), or None when there
    is no model, or when model.yaml does not describe the model.pt beside it (a save cut short:
    model.yaml is written last and holds model.pt's hash)."""
    layout = project.layout
    if not layout.model_weights.is_file() or not layout.model_config.is_file():
        return None
    try:
        config = yaml.safe_load(layout.model_config.read_text())
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(config, dict):
        return None
    if "weights_blake2b" not in config:  # saved before models recorded their hash: taken as it is
        return config
    return config if config["weights_blake2b"] == weights_hash(layout.model_weights.read_bytes()) else None


def trained_model_config(project: Project) -> dict:
    """model.yaml of the saved model, or a ProjectError naming the folder: no model, or one whose
    model.yaml does not describe its model.pt."""
    folder = project.layout.model
    if not project.layout.model_weights.is_file():
        raise ProjectError(f"no trained model in {folder}", hint="train first (simsearch train)")
    config = saved_model_config(project)
    if config is None:
        raise ProjectError(f"the model in {folder} is incomplete: model.yaml does not describe model.pt "
                           "(a save cut short, or a model of an older SimSearch)", hint="train again (simsearch train)")
    return config


def weights_hash(weights: bytes) -> str:
    """The hash model.yaml records of model.pt's bytes."""
    return hashlib.blake2b(weights, digest_size=16).hexdigest()


def torch_bytes(state: dict) -> bytes:
    """`torch.save` into memory: the same weights give the same bytes (saved to a file, the
    archive inside is named after the file, here a temporary one named by process id)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_model(project: Project, model: PatchModel, names: list[str], settings: TrainSettings, metrics: dict,
               *, identity: str, start: str, checks: list[ClassCheck] = (), probe: PatchModel | None = None,
               gate: tuple[torch.Tensor, torch.Tensor] | None = None) -> Path:
    """Write model/model.pt, then model.yaml (classes, identity, settings, metrics, check)
    with model.pt's hash; returns model.pt's path. With the `probe` trained beside the model,
    model.pt holds its classifier too ("probe_classifier"; its embedding is the pretrained one)
    and model.yaml the probe's share of detection's probabilities ("probe_share"). With a
    `gate` ((K, D) prototype vectors on the pretrained embedding, (K,) their class indices;
    `TrainSettings.similarity_gate`) model.pt holds them ("gate_prototypes", "gate_classes")
    and model.yaml says detection gates ("similarity_gate")."""
    layout = project.layout
    state = {"network": model.network.state_dict(), "classifier": model.classifier.state_dict(),
             "projection": model.projection.state_dict(), "window": model.window.detach().cpu()}
    if probe is not None:
        state["probe_classifier"] = probe.classifier.state_dict()
    if gate is not None:
        state["gate_prototypes"], state["gate_classes"] = gate
    weights = torch_bytes(state)
    write_bytes_atomic(layout.model_weights, weights)
    config = {  # written last, with the weights' hash: a save cut short between the two is seen as no model
        "weights_blake2b": weights_hash(weights),
        "classes": names,
        "identity": identity,
        "start": start,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backbone": project.backbone_spec.to_dict(),
        "geometry": project.geometry.to_dict(),
        "scales": list(project.scales),  # the pyramid detection runs over
        "normalization": project.normalization.to_dict(),
        "channels": list(project.channels),
        "strategy": settings.strategy,
        "probe_share": settings.probe_average if probe is not None else 0.0,
        "similarity_gate": gate is not None,
        "settings": settings.to_dict(),
        "metrics": metrics,
        "check": [check.to_dict() for check in checks],
    }
    write_text_atomic(layout.model_config, yaml.safe_dump(config, sort_keys=False))
    return layout.model_weights


def start_from_last(project: Project, model: PatchModel, names: list[str]) -> str:
    """Load the last model's weights into `model` (its classifier only if the classes are the
    same); returns the start point's description, part of the checkpoint key."""
    config = saved_model_config(project)
    if config is None:
        raise ConfigError("training from the last model: there is no trained model yet", hint="train once without --from-last")
    weights = torch.load(project.layout.model_weights, map_location="cpu", weights_only=True)
    model.network.load_state_dict(weights["network"])
    if "projection" in weights:
        model.projection.load_state_dict(weights["projection"])
    if "window" in weights and isinstance(model.window, torch.nn.Parameter):
        model.window.data.copy_(weights["window"])
    if config.get("classes") == list(names):
        model.classifier.load_state_dict(weights["classifier"])
    else:
        log.info("classes changed since the last model (%s -> %s): a new classifier", config.get("classes"), names)
    return f"fine-tuned from {config.get('identity')}"


def saved_check(config: dict | None) -> tuple[ClassCheck, ...]:
    """The held-out check recorded in a saved model's model.yaml (empty when it has none)."""
    return tuple(ClassCheck.from_dict(item) for item in (config or {}).get("check") or ())
