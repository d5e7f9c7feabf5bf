"""The threshold screen: per class a confidence threshold, with the detections on the
displayed images drawn live and counted per class and per image."""
from __future__ import annotations

import numpy as np
from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

import simsearch

from .base import IMAGE_AND_CLASS_BINDINGS, StepScreen, threshold_bindings
from .render import Overlay, Viewport, class_colour
from .widgets import ImageView


class ThresholdScreen(StepScreen):
    NAME = "thresholds"
    TITLE = "Thresholds"
    ABOUT = ("Choose each class's confidence threshold: the detections of the trained model on the displayed "
             "images are drawn and counted as the threshold moves.")
    DEFAULT_CSS = """
    ThresholdScreen #th-side { width: 34; padding: 0 1; }
    ThresholdScreen #th-bar { height: 1; padding: 0 1; background: $boost; }
    """
    BINDINGS = [
        *threshold_bindings("confidence"),
        *IMAGE_AND_CLASS_BINDINGS,
    ]

    def __init__(self):
        super().__init__(id="thresholds")
        self.maps: dict[str, np.ndarray] = {}
        self.model_names: list[str] = []
        self.model_stamp = None
        self.class_index = 0
        self.image_index = 0
        self.viewports: dict[str, Viewport] = {}

    def body(self) -> ComposeResult:
        with Horizontal():
            yield Static("", id="th-side")
            with Vertical():
                yield Static("", id="th-bar")
                yield ImageView(id="th-image")

    def refresh_view(self) -> None:
        project = self.app.project
        status = simsearch.training_status(project)
        if not status.has_model:
            self.query_one("#th-side", Static).update("No trained model yet: train first (4).")
            self.query_one("#th-image", ImageView).clear("no model")
            return
        stamp = status.model_stamp
        if stamp != self.model_stamp:  # a new model: compute the maps again
            self.model_stamp = stamp
            self.maps = {}
            self.query_one("#th-side", Static).update("computing the detections on the displayed images ...")
            self.predict()
            return
        self.show()

    @work(thread=True, exclusive=True, group="predict")
    def predict(self) -> None:
        project = self.app.project
        try:
            predictor = simsearch.Predictor(project, device=self.app.device)
            names = predictor.class_names[:-1]
            for image_id in project.displayed:
                maps = predictor.probability_maps(project.dataset.read(image_id))
                self.app.call_from_thread(self.map_ready, names, image_id, maps)
        except Exception as error:
            self.app.show_error_from_thread(error)

    def map_ready(self, names: list[str], image_id: str, maps: np.ndarray) -> None:
        self.model_names = names
        self.maps[image_id] = maps
        if len(self.maps) == len(self.app.project.displayed):  # the user has seen this model's detections
            self.app.remember_place(thresholds_model=self.model_stamp)
            self.update_step_bar()
        self.show()

    def thresholds(self) -> dict[str, float]:
        return {c.name: c.confidence_threshold for c in self.app.curation.classes()}

    def detections(self, image_id: str) -> list:
        return simsearch.detections_from_maps(self.maps[image_id], self.model_names, self.thresholds(),
                                              self.app.project.geometry, image_id)

    def show(self) -> None:
        if not self.model_names:
            return
        project = self.app.project
        thresholds = self.thresholds()
        self.class_index %= len(self.model_names)
        per_image = {image_id: self.detections(image_id) for image_id in self.maps}
        lines = ["[b]Confidence thresholds[/b]  , . class  [ ] { }", ""]
        for index, name in enumerate(self.model_names):
            total = sum(1 for found in per_image.values() for d in found if d.class_name == name)
            r, g, b = class_colour(index)
            pointer = "▶" if index == self.class_index else " "
            lines.append(f"{pointer}[rgb({r},{g},{b})]■[/] {escape(name)[:12]:<12} {thresholds.get(name, 0.5):.2f}  {total} found")
        lines += ["", f"on {len(self.maps)}/{len(project.displayed)} displayed images",
                  "image " + " ".join(f"{escape(name)[:4]:>4}" for name in self.model_names)]
        for number, image_id in enumerate(project.displayed, start=1):
            if image_id in per_image:
                counts = [sum(d.class_name == n for d in per_image[image_id]) for n in self.model_names]
                lines.append(f"{'▶' if number - 1 == self.image_index else ' '}{number:>3}: " + " ".join(f"{c:>4}" for c in counts))
        self.query_one("#th-side", Static).update("\n".join(lines))
        self.show_image(per_image)

    def show_image(self, per_image: dict) -> None:
        project = self.app.project
        displayed = project.displayed
        if not displayed:
            return
        self.image_index %= len(displayed)
        image_id = displayed[self.image_index]
        view = self.query_one("#th-image", ImageView)
        if image_id not in per_image:
            view.clear("computing ...")
            return
        record = project.dataset.by_id(image_id)
        rgb, factor = self.app.images.get(image_id)
        viewport = self.viewports.setdefault(image_id, Viewport(record.height, record.width))
        overlays = [Overlay(d.box, class_colour(self.model_names.index(d.class_name)),
                            "solid" if self.model_names.index(d.class_name) == self.class_index else "thin")
                    for d in per_image[image_id]]
        view.show(rgb, factor, viewport, overlays)
        self.query_one("#th-bar", Static).update(
            f"image {self.image_index + 1}/{len(displayed)} {escape(record.relpath)}  {len(per_image[image_id])} detections  n/p  zoom {viewport.zoom:g}x")

    def action_threshold(self, step: float) -> None:
        if not self.model_names:
            return
        name = self.model_names[self.class_index]
        old = self.thresholds().get(name, 0.5)
        value = round(min(1.0, max(0.0, old + step)), 4)
        self.app.project.store.set_confidence_threshold(name, value)
        self.app.remember(f"confidence threshold of {name}", "set_confidence_threshold", {"name": name, "value": old},
                          key=("confidence", name))
        self.show()

    def action_next_class(self, step: int) -> None:
        if self.model_names:
            self.class_index = (self.class_index + step) % len(self.model_names)
            self.show()

    def action_image(self, step: int) -> None:
        if self.app.project.displayed:
            self.image_index = (self.image_index + step) % len(self.app.project.displayed)
            self.show()

    def action_zoom(self, factor: float) -> None:
        displayed = self.app.project.displayed
        if displayed:
            image_id = displayed[self.image_index % len(displayed)]
            record = self.app.project.dataset.by_id(image_id)
            viewport = self.viewports.setdefault(image_id, Viewport(record.height, record.width))
            viewport.set_zoom(viewport.zoom * factor)
            self.show()
