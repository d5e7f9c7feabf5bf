"""The run and export screen: the trained model over the whole dataset (or another folder),
then every export (CSV, JSON, GeoJSON, napari, label images, overviews, manifest), with
progress; the per-image summary table at the end. Interrupted runs resume (cached maps)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, ProgressBar, Static

import simsearch

from .base import KEYS, StepScreen
from .child import EngineChild
from .dialogs import PromptScreen


class RunScreen(StepScreen):
    NAME = "run"
    TITLE = "Run and export"
    ABOUT = ("Run the trained model on every image of the dataset (or of another folder) and export detections: "
             "CSV, JSON, GeoJSON (QuPath), napari points, label images (segmentation), overviews and a manifest.")
    DEFAULT_CSS = """
    RunScreen #run-settings { height: auto; padding: 0 1; }
    RunScreen #run-progress { height: auto; max-height: 2; padding: 0 1; }
    RunScreen #run-bar { display: none; }
    RunScreen #run-summary { height: 1fr; }
    """
    BINDINGS = [
        Binding("r", "run", "run", tooltip="run on every image and export"),
        Binding("x", "cancel", "stop", tooltip="stop (finished images are kept; r resumes)"),
        Binding("o", "output", "output", tooltip="choose the output folder"),
        Binding("i", "images", "images", tooltip="run on another folder of images"),
        Binding("S", "segmentation", "segmentation", tooltip="segmentation labels on / off"),
    ]

    def __init__(self):
        super().__init__(id="run")
        self.child = EngineChild()
        self.running = False

    def body(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="run-settings")
            with Vertical(id="run-progress"):
                yield Static("", id="run-status")
                yield ProgressBar(id="run-bar", show_eta=True)
            yield DataTable(id="run-summary", zebra_stripes=True)

    @property
    def output(self) -> Path:
        return Path(self.app.state.get("output") or self.app.project.layout.results)

    @property
    def images(self) -> str | None:
        return self.app.state.get("run_images")

    @property
    def segmentation(self) -> bool:
        return bool(self.app.state.get("segmentation", False))

    def refresh_view(self) -> None:
        has_model = simsearch.training_status(self.app.project).has_model
        lines = [f"output  {escape(str(self.output))} (o)",
                 f"images  {escape(self.images or 'the project dataset')} (i)",
                 f"segmentation labels {'on' if self.segmentation else 'off'} (S)",
                 "thresholds " + ", ".join(f"{escape(c.name)} {c.confidence_threshold:.2f}" for c in self.app.curation.classes())]
        if not has_model:
            lines.append(f"[b]no trained model yet[/b]: train first ({KEYS['train']})")
        self.query_one("#run-settings", Static).update("\n".join(lines))
        summary = self.output / "summary.csv"
        if summary.is_file() and not self.running:
            self.show_summary(summary)

    def action_output(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            if Path(text).expanduser().is_file():
                self.notify(f"output: {text} is a file; give a folder (a new one, or a run's to resume)", severity="error")
                return
            self.app.remember_place(output=str(Path(text).expanduser().resolve()))
            self.refresh_view()

        self.app.push_screen(PromptScreen("Output folder:", str(self.output)), chosen)

    def action_images(self) -> None:
        def chosen(text: str | None) -> None:
            if text is None:
                return
            if text and not (Path(text).expanduser().exists() or simsearch.is_glob_pattern(text)):
                self.notify(f"images: {text} does not exist; give a folder, a glob pattern or a list file",
                            severity="error")
                return
            self.app.remember_place(run_images=text or None)
            self.refresh_view()

        self.app.push_screen(PromptScreen("Images to run on (folder, glob or list file; empty: the project dataset):",
                                          self.images or ""), chosen)

    def action_segmentation(self) -> None:
        self.app.remember_place(segmentation=not self.segmentation)
        self.refresh_view()

    def action_cancel(self) -> None:
        if self.running:
            self.child.stop()  # the maps finished so far stay: r resumes

    def action_run(self) -> None:
        if self.running:
            self.notify("already running")
            return
        self.running = True
        self.run_all(self.output, self.images, self.segmentation)

    @work(thread=True, exclusive=True, group="run")
    def run_all(self, output: Path, images: str | None, segmentation: bool) -> None:
        """`simsearch process` in a child process (child.py): the maps of every image (cached: a
        stopped run resumes), then every export."""
        arguments = ["process", "--project", str(self.app.project.folder), "--out", str(output), "--device", self.app.device,
                     *(["--images", images] if images else []), *(["--segmentation"] if segmentation else [])]

        def process() -> tuple[int, dict | None]:
            failed, results = 0, None
            for event in self.child.run(arguments):
                if "results" in event:
                    results = event
                    continue
                failed += event["status"] == "failed"
                text = f"maps {event['done']}/{event['total']}" + (f" ({failed} failed)" if failed else "")
                if event["done"] == event["total"]:
                    text += "; writing detections and exports ..."
                self.app.call_from_thread(self.show_progress, event["done"], event["total"], text)
            return failed, results

        def report(outcome: tuple[int, dict | None]) -> None:
            failed, results = outcome
            if results is None:
                self.finished("stopped: r resumes", None)
                return
            message = f"{results['detections']} detections written to {output}"
            if failed:
                message += f"; {failed} image(s) failed (see {output}/manifest.json and the log)"
            self.finished(message, output)

        self.app.run_in_worker(process, report, locked=False, failed=lambda: self.finished("stopped by an error", None))

    def show_progress(self, done: int, total: int, text: str) -> None:
        bar = self.query_one("#run-bar", ProgressBar)
        bar.display = True
        bar.update(total=max(1, total), progress=done)
        self.query_one("#run-status", Static).update(escape(text))

    def finished(self, message: str, output: Path | None) -> None:
        self.running = False
        if output is not None:  # done: the bar ends full, not at the export step's 0 %
            self.query_one("#run-bar", ProgressBar).update(total=1, progress=1)
        self.query_one("#run-status", Static).update(escape(message))
        self.notify(message)
        if output is not None:
            self.app.remember_place(results=str(output))
            self.update_step_bar()
        self.refresh_view()

    def show_summary(self, path: Path) -> None:
        """summary.csv's counts, and the area of each class with segmentation, in columns that fit
        80 (the share of each class among an image's detections stays in the file)."""
        table = self.query_one("#run-summary", DataTable)
        table.clear(columns=True)
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        columns = summary_columns(rows[0])
        table.add_columns(*(label for _, label, _ in columns))
        for row in rows[1:]:
            table.add_row(*(Text(show(row[index]), justify="left" if index == 0 else "right") for index, _, show in columns))


def summary_columns(header: list[str]) -> list[tuple[int, str, Callable[[str], str]]]:
    """(index in summary.csv, label, formatter) of the columns the Run screen shows: the image,
    its detections, each class's count ("WBC") and area with segmentation ("WBC area", in %).

    >>> [label for _, label, _ in summary_columns(["image", "detections", "WBC_count", "WBC_fraction", "WBC_area_fraction"])]
    ['image', 'found', 'WBC', 'WBC area']
    >>> summary_columns(["image", "detections", "WBC_area_fraction"])[2][2]("0.0257")
    '2.6%'
    """
    columns = []
    for index, name in enumerate(header):
        if name == "detections":
            columns.append((index, "found", str))
        elif name.endswith("_area_fraction"):
            columns.append((index, f"{name.removesuffix('_area_fraction')} area", _percent))
        elif name.endswith("_count"):
            columns.append((index, name.removesuffix("_count"), str))
        elif not name.endswith("_fraction"):
            columns.append((index, name, str))
    return columns


def _percent(value: str) -> str:
    try:
        return f"{100 * float(value):.1f}%"
    except ValueError:
        return value
