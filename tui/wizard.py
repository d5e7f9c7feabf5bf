"""The new-project wizard: the settings that matter, then the project is created (the
images scanned, the normalisation computed) with progress, and the curation screen opens
(the dataset screen, `1`, lists the images, skipped files and channels)."""
from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, ProgressBar, Static

import simsearch

from .base import DEFAULT_DISPLAYED

FIELDS = [
    ("dataset", "Images: a folder, a glob (e.g. 'data/*.tif') or a text file listing paths"),
    ("folder", "Project folder (created; everything is saved there)"),
    ("patch", "Patch size in pixels, about one object (empty: set by the first prototype box)"),
    ("scales", "Object sizes: empty for one (the patch), auto (each prototype box keeps its size) or "
               "levels x the patch, e.g. 0.5,1,2 for objects of 3 sizes"),
    ("displayed", "Displayed images for curation (the rest give noisy examples)"),
    ("channels", "Channels for the network, e.g. 0 or 0,1,2 (empty: the first three)"),
    ("backbone", "Backbone: auto, efficientnet-lite0 (offline) or resnet18"),
    ("weights", "Backbone weights file (empty: the packaged or cached ones), e.g. resnet18-f37072fd.pth"),
    ("flat_field", "Flat field (uneven light, dust on the optics; 8+ images of one size): none, divide "
                   "(brightfield), subtract (fluorescence) or auto"),
]


def default_folder(dataset: Path) -> Path:
    name = (dataset.stem if dataset.suffix else dataset.name) or "images"
    return Path.cwd() / f"{name}-simsearch"


class WizardScreen(Screen):
    TITLE = "New project"
    ABOUT = "Create a project from a folder of images. Tab moves between fields; enter creates the project."
    DEFAULT_CSS = """
    WizardScreen VerticalScroll { padding: 0 1; }
    WizardScreen .label { margin-top: 1; }
    WizardScreen #wizard-status { margin-top: 1; height: auto; }
    """
    BINDINGS = [Binding("ctrl+s", "create", "create the project"), Binding("escape", "app.quit", "quit without creating")]

    def __init__(self, target: Path):
        super().__init__(id="wizard")
        self.target = target

    def compose(self) -> ComposeResult:
        dataset = "" if (self.target == Path.cwd()) else str(self.target)
        values = {"dataset": dataset, "folder": str(default_folder(self.target)) if dataset else "", "patch": "", "scales": "",
                  "displayed": str(DEFAULT_DISPLAYED), "channels": "", "backbone": "auto", "weights": "", "flat_field": "none"}
        with VerticalScroll():
            yield Static("[b]SimSearch · new project[/b]\nTab moves between the fields; enter creates the project.")
            for key, label in FIELDS:
                yield Static(escape(label), classes="label")
                yield Input(value=values[key], id=f"field-{key}")
            with Vertical(id="wizard-status"):
                yield Static("", id="wizard-message")
                yield ProgressBar(id="wizard-progress", show_eta=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#field-dataset" if not self.query_one("#field-dataset", Input).value else "#field-patch", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_create()

    def value(self, key: str) -> str:
        return self.query_one(f"#field-{key}", Input).value.strip()

    def action_create(self) -> None:
        try:
            settings = self.settings()
        except simsearch.SimSearchError as error:
            self.app.show_error(error)
            return
        self.query_one("#wizard-message", Static).update("scanning the images and computing the normalisation ...")
        self.create(**settings)

    def settings(self) -> dict:
        """The fields as arguments, or a ConfigError naming the field."""
        if not self.value("dataset"):
            raise simsearch.ConfigError("images: give a folder, glob or list file")
        folder = self.value("folder") or str(default_folder(Path(self.value("dataset"))))

        def number(key: str, text: str) -> int | None:
            if not text:
                return None
            try:
                value = int(text)
            except ValueError:
                raise simsearch.ConfigError(f"{key}: {text!r} is not a whole number") from None
            if value < 1:
                raise simsearch.ConfigError(f"{key}: must be at least 1, got {value}")
            return value

        channels = simsearch.parse_channels(self.value("channels"))
        return {"dataset": self.value("dataset"), "folder": folder, "patch": number("patch size", self.value("patch")),
                "scales": self.value("scales") or None,  # checked by Project.create before it writes anything
                "displayed": number("displayed images", self.value("displayed")) or DEFAULT_DISPLAYED, "channels": channels,
                "backbone": self.value("backbone") or "auto", "weights": self.value("weights") or None,
                "flat_field": self.value("flat_field") or "none"}

    @work(thread=True, exclusive=True, group="create")
    def create(self, dataset: str, folder: str, patch: int | None, scales: str | None, displayed: int, channels,
               backbone: str, weights: str | None, flat_field: str) -> None:
        def make() -> simsearch.Project:
            images = simsearch.Dataset.open(dataset)
            return simsearch.Project.create(
                folder, images, patch_size=patch, scales=scales, backbone=backbone, weights=weights, channels=channels,
                progress=lambda done, total: self.app.call_from_thread(self.show_progress, done, total),
                # the default shrinks to a small dataset; a count typed beyond it is refused by name
                displayed=min(displayed, len(images)) if displayed == DEFAULT_DISPLAYED else displayed,
                flat_field=flat_field)

        self.app.run_in_worker(make, self.app.open_project, locked=False, failed=lambda: self.query_one(
            "#wizard-message", Static).update("not created: fix the field and press enter"))

    def show_progress(self, done: int, total: int) -> None:
        self.query_one("#wizard-progress", ProgressBar).update(total=total, progress=done)
