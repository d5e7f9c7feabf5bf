"""The dataset screen: the images found, the files skipped and why, the channels with their
mean correlation, which channels the backbone sees, the displayed images, and embedding
every image ahead of time."""
from __future__ import annotations

import threading

import numpy as np
from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import ProgressBar, Static

import simsearch

from .base import DEFAULT_DISPLAYED, KEYS, StepScreen, level_sides
from .dialogs import PromptScreen


def correlation_table(matrix: np.ndarray, selected: tuple[int, ...]) -> str:
    """The channels' mean correlation matrix as text; selected channels marked with *."""
    count = matrix.shape[0]
    header = "      " + "".join(f"{('*' if c in selected else ' ') + 'ch' + str(c):>7}" for c in range(count))
    rows = [header]
    for i in range(count):
        rows.append(f"{('*' if i in selected else ' ') + 'ch' + str(i):>6}" + "".join(f"{matrix[i, j]:>7.2f}" for j in range(count)))
    return "\n".join(rows)


def scales_setting(project: simsearch.Project) -> str:
    """The object sizes as the user types them: '' (one), 'auto' or '0.5,1,2'."""
    if project.automatic_scales:
        return "auto"
    return ",".join(f"{v:g}" for v in project.scales) if len(project.scales) > 1 else ""


def sizes_text(project: simsearch.Project) -> str:
    """The scale pyramid in words, with its patch sides once the patch size is known."""
    levels = ", ".join(f"{v:g}" for v in project.scales)
    sides = f" ({level_sides(project)})" if project.geometry else ""
    if project.automatic_scales:
        return f"auto, from the prototype boxes: {levels} x the patch{sides}"
    if len(project.scales) == 1:
        return "one, the patch's"
    return f"{levels} x the patch{sides}"


class DatasetScreen(StepScreen):
    NAME = "dataset"
    TITLE = "Dataset"
    ABOUT = ("The images of the project, the files that were skipped and why, and the channels. Choose the "
             "channels the network sees (the least correlated carry the most information) and the displayed images.")
    DEFAULT_CSS = """
    DatasetScreen #info { height: 1fr; padding: 0 1; }
    DatasetScreen #embedding { height: auto; max-height: 3; padding: 0 1; }
    DatasetScreen #embed-progress { display: none; }
    """
    BINDINGS = [
        Binding("c", "channels", "channels", tooltip="choose the channels the network sees"),
        Binding("D", "displayed", "displayed", tooltip="choose how many images are displayed for curation"),
        Binding("s", "scales", "sizes", tooltip="objects of several sizes: a scale pyramid (auto, or e.g. 0.5,1,2)"),
        Binding("e", "embed", "embed all", tooltip="embed every image now (otherwise as needed)"),
        Binding("x", "cancel", "stop", tooltip="stop embedding (finished images stay cached)"),
    ]

    def __init__(self):
        super().__init__(id="dataset")
        self.cancel = threading.Event()

    def body(self) -> ComposeResult:
        with VerticalScroll(id="info"):
            yield Static("", id="summary")
        with VerticalScroll(id="embedding"):
            yield Static("", id="embed-status")
            yield ProgressBar(id="embed-progress", show_eta=True)

    def refresh_view(self) -> None:
        project = self.app.project
        dataset = project.dataset
        lines = [f"[b]Project[/b] {escape(str(project.folder))}", escape(dataset.summary()), ""]
        seen = ", ".join(dataset.described_channel(c) for c in project.channels) if dataset.channel_names \
            else str(list(project.channels))
        lines.append(f"[b]Channels[/b]: the images have {project.file_channels}; the network sees "
                     f"{escape(seen)} (1 channel: grey; 2: red and green)")
        if project.channel_correlation.size > 1:
            lines += ["mean correlation between channels (* = used):",
                      escape(correlation_table(project.channel_correlation, project.channels))]
        shown = project.displayed
        lines += ["", f"[b]Displayed images[/b] ({len(shown)} of {len(dataset)}; the rest give noisy examples):"]
        lines += [f"  {escape(dataset.by_id(i).relpath)}" for i in shown[:12]]
        if len(shown) > 12:
            lines.append(f"  ... and {len(shown) - 12} more")
        if not shown:
            lines.append("  none yet: press D")
        geometry = project.geometry
        lines += ["", f"[b]Patch size[/b]: {f'{geometry.patch_size[1]}x{geometry.patch_size[0]} px' if geometry else 'set by the first prototype'}",
                  f"[b]Object sizes[/b] (s): {sizes_text(project)}",
                  f"[b]Backbone[/b]: {escape(project.backbone_spec.name)}"]
        self.query_one("#summary", Static).update("\n".join(lines))

    def ask(self, question: str, value: str, apply) -> None:
        """Prompt for one line; `apply(text)` changes the project and returns what to tell the
        user, or raises a SimSearchError for the error dialog. esc (None) changes nothing."""
        def chosen(text: str | None) -> None:
            if text is None:
                return
            try:
                told = apply(text)
            except simsearch.SimSearchError as error:
                self.app.show_error(error)
                return
            self.notify(told)
            self.refresh_view()

        self.app.push_screen(PromptScreen(question, value), chosen)

    def action_channels(self) -> None:
        project = self.app.project

        def apply(text: str) -> str:
            project.set_channels(simsearch.parse_channels(text))
            self.app.images.forget()  # the display follows the channels
            return f"channels {list(project.channels)}"

        dataset = project.dataset
        choices = ", ".join(dataset.described_channel(c) for c in range(project.file_channels)) \
            if dataset.channel_names else f"0..{project.file_channels - 1}"
        self.ask(f"Channels for red, green, blue ({choices}; 1 to 3 of them):", ",".join(map(str, project.channels)), apply)

    def action_scales(self) -> None:
        project = self.app.project

        def apply(text: str) -> str:
            project.set_scales(text)
            return f"object sizes: {sizes_text(project)}"

        self.ask("Object sizes x the patch: empty for one, auto (each prototype box keeps its size) or levels, e.g. "
                 "0.5,1,2 (each level is embedded once, when first needed)", scales_setting(project), apply)

    def action_displayed(self) -> None:
        project = self.app.project

        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                project.choose_displayed(int(text))
            except ValueError:
                self.app.show_error(simsearch.ConfigError(f"displayed images: {text!r} is not a number"))
                return
            except simsearch.SimSearchError as error:
                self.app.show_error(error)
                return
            self.notify(f"{len(project.displayed)} displayed images")
            self.refresh_view()
            self.update_step_bar()

        if self.app.curation.prototypes():
            self.notify("changing the displayed images keeps prototypes, negatives and positives", severity="warning")
        current = len(project.displayed) or min(DEFAULT_DISPLAYED, len(project.dataset))
        question = f"How many displayed images (1..{len(project.dataset)})?"
        self.app.push_screen(PromptScreen(question, str(current)), chosen)

    def action_embed(self) -> None:
        if self.app.project.geometry is None:
            self.notify(f"the patch size is not set yet: add the first prototype ({KEYS['curate']}), then embed", severity="warning")
            return
        self.cancel.clear()
        self.embed_all()

    def action_cancel(self) -> None:
        self.cancel.set()

    @work(thread=True, exclusive=True, group="embed")
    def embed_all(self) -> None:
        def embed() -> int:
            failed = 0
            for event in self.app.project.iter_embed(cancel=self.cancel):
                failed += event.status == "failed"
                self.app.call_from_thread(self.show_progress, event, failed)
            return failed

        self.app.run_in_worker(embed, lambda failed: self.query_one("#embed-status", Static).update(
            "embedding stopped" if self.cancel.is_set() else f"all images embedded ({failed} failed)"))

    def show_progress(self, event, failed: int) -> None:
        bar = self.query_one("#embed-progress", ProgressBar)
        bar.display = True
        bar.update(total=event.total, progress=event.done)
        self.query_one("#embed-status", Static).update(
            f"embedding {event.done}/{event.total} ({failed} failed; x stops)" + (f": {escape(event.message)}" if event.status == "failed" else ""))
