"""`simsearch run CONFIG.yaml`: every step, headless, from one YAML file.

    dataset: images/                 # folder, glob or list file (relative to the YAML file)
    project: out/project             # created on first run, reused (resumed) after
    output: out/results
    displayed: 6                     # or a list of image names
    seed: 0
    backbone: auto
    patch_size: 96                   # optional: else the first prototype's box
    scales: [0.5, 1, 2]              # optional: a scale pyramid (object sizes x the patch), or auto
    normalization: auto              # optional: auto, dataset (the paper's one range) or image (each its own)
    flat_field: none                 # optional: divide, subtract or auto: the dataset's fixed background (none)
    annotations: prototypes.csv      # kind,class,image,x0,y0,x1,y1 (kind prototype | negative)
    classes:                         # per class thresholds (defaults 0.5 / 0.5)
      WBC: {similarity_threshold: 0.6, confidence_threshold: 0.5}
    background: {count: 20}
    noisy: {cap: 500, background_per_image: 4}
    training: {preset: cpu, strategy: pos+neg+selflearn, selflearn: {epochs: 4}, ...}
    segmentation: false
    device: auto

The whole file is checked against one schema (simsearch/cli/runfile.py) before any work: unknown
keys at every level, types, ranges and the files that must exist; every problem is reported with
its key's path and the value given, and nothing is created. Every step resumes: a second run reuses the
project, its store, the embeddings, a finished training and computed maps; lines added to the
annotations file since are imported (and the model trained again). The embedding settings
(patch_size, backbone, min_cells, border, pooling, channels, normalization, flat_field) are the project's:
a reused project refuses a run file that asks for others, naming the key.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Callable

import yaml

from simsearch.curation.importer import import_annotations
from simsearch.curation.session import Curation
from simsearch.util.errors import ConfigError
from simsearch.io.images import Dataset
from simsearch.features.geometry import MIN_CELLS, POOLING
from simsearch.inference.process import iter_process, write_results
from simsearch.project.layout import ProjectLayout
from simsearch.project.project import Project
from simsearch.cli.commands import setting_text
from simsearch.cli.runfile import validate
from simsearch.training.loop import TrainSettings, iter_train, model_check

log = logging.getLogger(__name__)

def load_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"run configuration not found: {path}")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    validate(config, path)  # every key, type, range and file, before any work
    base = path.parent
    for key in ("dataset", "project", "output", "annotations"):
        config[key] = str((base / config[key]).resolve()) if not Path(config[key]).is_absolute() else config[key]
    return config


def training_settings(section: dict | None) -> TrainSettings:
    section = dict(section or {})
    settings = TrainSettings.preset(section.pop("preset", "cpu"), section.pop("strategy", "pos+neg+selflearn"))
    for group in ("selflearn", "supcon", "classifier", "augment"):
        if group in section:
            overrides, current = section.pop(group), getattr(settings, group)
            try:
                settings = replace(settings, **{group: replace(current, **overrides)})
            except TypeError as exc:
                raise ConfigError(f"training.{group}: {exc} (keys: {', '.join(current.__dataclass_fields__)})") from None
    try:
        return replace(settings, **section)
    except TypeError as exc:
        raise ConfigError(f"training: {exc}") from None


def run(config_path: str | Path, *, say: Callable[[str], None] = print, progress: Callable | None = None) -> dict:
    """Run every step; returns the manifest of the results."""
    config = load_config(config_path)
    settings = training_settings(config.get("training"))
    device = config.get("device", "auto")
    folder = Path(config["project"])
    if ProjectLayout(folder).exists():
        project = Project.open(folder, dataset=config["dataset"])
        try:
            _check_run_file_settings(project, config, config_path)
        except ConfigError:
            project.close()
            raise
        if "scales" in config:
            project.set_scales(config["scales"])
        say(f"reusing project {folder}")
    else:
        dataset = Dataset.open(config["dataset"])
        displayed = config.get("displayed", 6)
        project = Project.create(folder, dataset, patch_size=config.get("patch_size"), backbone=config.get("backbone", "auto"),
                                 weights=config.get("weights"), channels=config.get("channels"),
                                 displayed=displayed if isinstance(displayed, list) else min(int(displayed), len(dataset)),
                                 seed=int(config.get("seed", 0)), scales=config.get("scales"),
                                 normalization=config.get("normalization", "auto"), flat_field=config.get("flat_field", "none"),
                                 border=config.get("border", True),
                                 min_cells=config.get("min_cells", MIN_CELLS), pooling=config.get("pooling", POOLING))
        say(f"created project {folder}")
    with project:
        project.set_device(device)
        curation = Curation(project)
        _curate(project, curation, config, settings.use_noisy, say)
        for number, event in enumerate(iter_train(project, settings, device=device)):
            if event.reused:
                say(f"reusing the trained model in {project.layout.model}: the curation and settings are unchanged")
                continue
            if number == 0:
                say(f"training ({settings.strategy})")
            if progress:
                progress("train", event)
        for check in model_check(project):  # the model against similarity search on held-out examples
            say(check.verdict())
        say("processing the dataset")
        for event in iter_process(project, config["output"], device=device):
            if progress:
                progress("process", event)
            if event.status == "failed":
                say(f"  failed: {event.image}: {event.message}")
        manifest = write_results(project, config["output"], segmentation=bool(config.get("segmentation", False)),
                                 extra_manifest={"run_config": str(Path(config_path).resolve())})
    say(f"{manifest['detections']} detection(s) in {manifest['dataset']['images']} image(s); results in {config['output']}")
    return manifest


# the run file's keys that say how the embeddings are made (as Project.differing_settings names them)
EMBEDDING_KEYS = ("patch_size", "backbone", "min_cells", "border", "pooling", "channels", "normalization", "flat_field")


def _check_run_file_settings(project: Project, config: dict, config_path: str | Path) -> None:
    """A reused project keeps the embeddings it was made with: a run file that asks for others
    (edited since the first run) is a ConfigError naming the key, before any work. A patch size
    the project has not fixed yet (no prototype so far) is fixed by the run file's."""
    if "patch_size" in config and project.geometry is None:
        project.set_patch_size(config["patch_size"])
    differing = project.differing_settings(**{key: config[key] for key in EMBEDDING_KEYS if key in config})
    for key, (recorded, asked) in differing.items():
        raise ConfigError(
            f"{config_path}: {key}: project {project.folder} was made with {key} {setting_text(key, recorded)}, "
            f"the run file asks for {setting_text(key, asked)}",
            hint=f"remove {key} from the run file to use the project's own, or give the run another project folder "
                 "(its embeddings and training are made with these settings)",
        )


def _curate(project: Project, curation: Curation, config: dict, use_noisy: bool, say) -> None:
    """Import the CSV (again each run: lines imported before are not added twice, new ones are,
    and they make the training run again), then set thresholds, confirm classes, curate
    background, extract noisy patches."""
    imported = import_annotations(project, curation, config["annotations"])
    if imported["prototype"] or imported["negative"]:
        say(f"imported {imported['prototype']} prototype(s) and {imported['negative']} negative(s)")
    if imported["not_in_file"]:
        say(f"note: {imported['not_in_file']} prototype(s) of the project are on no line of {config['annotations']} "
            "(added by hand, or their line was edited since): they stay; remove them in the terminal UI, "
            "or give the run a new project folder")
    thresholds = config.get("classes") or {}
    unknown = sorted(set(thresholds) - {c.name for c in curation.classes()})
    if unknown:
        raise ConfigError(f"classes: {unknown} have no prototypes in {config['annotations']}")
    for info in curation.classes():
        own = thresholds.get(info.name) or {}
        similarity = float(own.get("similarity_threshold", info.similarity_threshold))
        curation.set_confidence_threshold(info.name, float(own.get("confidence_threshold", info.confidence_threshold)))
        if not info.confirmed or similarity != info.similarity_threshold:
            positives = curation.confirm_class(info.name, similarity)
            say(f"{info.name}: {len(positives)} clean positive(s) at similarity {similarity:.2f}")
    if not curation.clean_background():  # none yet (or every confirmed one flagged): propose
        count = int((config.get("background") or {}).get("count", 20))
        curation.propose_background(count)
        kept = curation.confirm_background()
        say(f"background: {len(kept)} clean patch(es)")
    noisy = config.get("noisy") or {}
    if use_noisy:
        for _ in curation.iter_noisy(cap_per_class=noisy.get("cap"), background_per_image=int(noisy.get("background_per_image", 4)),
                                     seed=int(config.get("seed", 0))):
            pass
        say("noisy: " + ", ".join(f"{c.name} {curation.class_counts(c.name).noisy}" for c in curation.classes())
            + f", background {curation.background_counts().noisy}")
