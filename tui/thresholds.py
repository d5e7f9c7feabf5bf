"""The threshold screen: per class a confidence threshold, with the detections on the
displayed images and a few undisplayed ones drawn live and counted per class and per image,
and the precision the user's own review answers give at the threshold."""
from __future__ import annotations

from functools import partial

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

import simsearch

from .base import IMAGE_AND_CLASS_BINDINGS, KEYS, StepScreen, threshold_bindings
from .render import Overlay, Viewport, class_colour
from .widgets import ImageView

PREVIEW_IMAGES = 3  # undisplayed images shown with their detections
KEY_LEGEND = "[ ] ±0.01  { } ±0.05  , . class"  # one line of the side panel (32 columns)


class ThresholdScreen(StepScreen):
    NAME = "thresholds"
    TITLE = "Thresholds"
    ABOUT = ("Choose each class's confidence threshold. The trained model's detections on the displayed images and "
             "a few undisplayed ones (a preview of the rest) are drawn and counted as the threshold moves, beside the "
             "precision your review answers give.")
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
        self.maps: dict[str, list] = {}  # image id -> (scale, geometry, maps) per pyramid level
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
            self.query_one("#th-side", Static).update(f"No trained model yet: train first ({KEYS['train']}).")
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

        def predict_images() -> None:
            predictor = simsearch.Predictor(project, device=self.app.device)
            names = predictor.class_names[:-1]
            for image_id in self.images:  # every level of the model's scale pyramid
                levels = predictor.level_maps_of(image_id)  # a probe's from the cached embeddings
                self.app.call_from_thread(self.map_ready, names, image_id, levels)

        self.app.run_in_worker(predict_images, locked=False)

    def map_ready(self, names: list[str], image_id: str, levels: list) -> None:
        self.model_names = names
        self.maps[image_id] = levels
        if len(self.maps) == len(self.images):  # the user has seen this model's detections
            self.app.remember_place(thresholds_model=self.model_stamp)
            self.update_step_bar()
        self.show()

    @property
    def images(self) -> list[str]:
        """The displayed images, then a preview of the rest: the first few undisplayed ones."""
        return self.app.project.displayed + self.app.project.undisplayed[:PREVIEW_IMAGES]

    def precision_lines(self, thresholds: dict[str, float]) -> list[str]:
        """Per class, the share of the user's review answers above its threshold that were
        accepted: an estimate of the precision there, from their own judgements."""
        curation, lines = self.app.curation, []
        for name in self.model_names:
            answered = [i for i in curation.review_items(name, current_only=False) if i.answer]
            above = [i for i in answered if i.confidence >= thresholds.get(name, 0.5)]
            if above:
                accepted = sum(i.answer == "accepted" for i in above)
                lines.append(f" {escape(name)[:12]:<12} ≈ {accepted / len(above):.0%}  {accepted} of {len(above)}")
        if lines:  # each line within the side panel's 32 columns
            lines[:0] = ["", "precision at the threshold", "(your review answers above it)"]
        elif self.model_names:
            lines = ["", f"review ({KEYS['review']}) to estimate precision"]
        return lines

    def thresholds(self) -> dict[str, float]:
        return {c.name: c.confidence_threshold for c in self.app.curation.classes()}

    def detections(self, image_id: str) -> list:
        record = self.app.project.dataset.by_id(image_id)
        return simsearch.detections_from_levels(self.maps[image_id], self.model_names, self.thresholds(), image_id,
                                                (record.height, record.width))

    def show(self) -> None:
        if not self.model_names:
            return
        project = self.app.project
        thresholds = self.thresholds()
        self.class_index %= len(self.model_names)
        per_image = {image_id: self.detections(image_id) for image_id in self.maps}
        lines = ["[b]Confidence thresholds[/b]", KEY_LEGEND, ""]
        for index, name in enumerate(self.model_names):
            total = sum(1 for found in per_image.values() for d in found if d.class_name == name)
            r, g, b = class_colour(index)
            pointer = "▶" if index == self.class_index else " "
            lines.append(f"{pointer}[rgb({r},{g},{b})]■[/] {escape(name)[:12]:<12} {thresholds.get(name, 0.5):.2f}  {total} found")
        lines += self.precision_lines(thresholds)
        lines += ["", f"on {len(self.maps)}/{len(self.images)} images ({len(project.displayed)} displayed)"]
        if len(self.images) < len(project.dataset):  # the counts are a preview's, not the dataset's
            lines.append(f"of {len(project.dataset)}: Run ({KEYS['run']}) does them all")
        lines += ["image " + " ".join(f"{escape(name)[:4]:>4}" for name in self.model_names)]
        for number, image_id in enumerate(self.images, start=1):
            if image_id in per_image:
                counts = [sum(d.class_name == n for d in per_image[image_id]) for n in self.model_names]
                lines.append(f"{'▶' if number - 1 == self.image_index else ' '}{number:>3}: " + " ".join(f"{c:>4}" for c in counts))
        self.query_one("#th-side", Static).update("\n".join(lines))
        self.show_image(per_image)

    def show_image(self, per_image: dict) -> None:
        project = self.app.project
        displayed = self.images
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
                    for d in per_image[image_id] if not self.boxes_hidden]
        view.show(rgb, factor, viewport, overlays, detail=partial(self.app.images.detail, image_id))
        self.query_one("#th-bar", Static).update(
            ("[reverse]boxes hidden (v)[/]  " if self.boxes_hidden else "")
            + f"image {self.image_index + 1}/{len(displayed)}{'' if image_id in project.displayed else ' (undisplayed)'} n/p"
            f"  {len(per_image[image_id])} detections  zoom {viewport.zoom:g}x  {escape(record.relpath)}")  # the name last: cut first

    def action_threshold(self, step: float) -> None:
        if not self.model_names:
            return
        name = self.model_names[self.class_index]
        old = self.thresholds().get(name, 0.5)
        value = round(min(1.0, max(0.0, old + step)), 4)
        self.app.curation.set_confidence_threshold(name, value)
        self.app.remember(f"confidence threshold of {name}", "set_confidence_threshold", {"name": name, "value": old},
                          key=("confidence", name))
        self.show()

    def action_next_class(self, step: int) -> None:
        if self.model_names:
            self.class_index = (self.class_index + step) % len(self.model_names)
            self.show()

    def action_image(self, step: int) -> None:
        if self.images:
            self.image_index = (self.image_index + step) % len(self.images)
            self.show()

    def action_zoom(self, factor: float) -> None:
        displayed = self.images
        if displayed:
            image_id = displayed[self.image_index % len(displayed)]
            record = self.app.project.dataset.by_id(image_id)
            viewport = self.viewports.setdefault(image_id, Viewport(record.height, record.width))
            viewport.set_zoom(viewport.zoom * factor)
            self.show()
