"""The curation screen, where users live: prototypes drawn on the displayed images, the
similarity threshold, suggestions on the image and in a grid, negatives flagged, the class
confirmed (paper Sec. II-B, Fig. 2)."""
from __future__ import annotations

import logging
from functools import partial

import numpy as np
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

import simsearch

from .base import IMAGE_AND_CLASS_BINDINGS, KEYS, StepScreen, level_sides, threshold_bindings
from .classes import ClassActions
from .dialogs import HINT_KEYS, HintScreen, PromptScreen, hint_labels
from .render import CURSOR, FOCUS, NEGATIVE, Overlay, Viewport, class_colour, crop_patch, sparkline
from .undo import confirmation, patch
from .widgets import FocusView, ImageView, PatchGrid

log = logging.getLogger("simsearch.tui.curate")

DEFAULT_BOX = 64  # the cursor box before the first prototype fixes the patch size
UPDATING_AFTER = 0.4  # s: suggestions that take longer are announced in the side panel


class CurateScreen(ClassActions, StepScreen):
    NAME = "curate"
    TITLE = "Curate"
    ABOUT = ("Draw a prototype with the cursor box (arrows move it, enter adds it), set the similarity "
             "threshold, flag wrong suggestions as negatives, confirm the class.")
    DEFAULT_CSS = """
    CurateScreen #side { width: 28; }
    CurateScreen #classes { height: auto; max-height: 12; border: round $primary; padding: 0 1; }
    CurateScreen #status { height: 1fr; padding: 0 1; }
    CurateScreen #imagebar, CurateScreen #gridbar { height: 1; padding: 0 1; background: $boost; }
    CurateScreen #grid { height: 10; }
    CurateScreen #views { height: 1fr; }
    CurateScreen #focus { width: 2fr; }
    CurateScreen #image { width: 3fr; border: tall $background; }  /* the same size focused: tab repaints no pixels */
    CurateScreen #image:focus { border: tall $accent; }
    """
    BINDINGS = [
        Binding("left,h", "move(0, -1)", "move the cursor box left", show=False),
        Binding("right,l", "move(0, 1)", "move the cursor box right", show=False),
        Binding("up,k", "move(-1, 0)", "move the cursor box up", show=False),
        Binding("down,j", "move(1, 0)", "move the cursor box down", show=False),
        Binding("shift+left,H", "move(0, -4)", "move the cursor box a patch left", show=False),
        Binding("shift+right,L", "move(0, 4)", "move the cursor box a patch right", show=False),
        Binding("shift+up,K", "move(-4, 0)", "move the cursor box a patch up", show=False),
        Binding("shift+down,J", "move(4, 0)", "move the cursor box a patch down", show=False),
        Binding("f", "hints", "hints", tooltip="label the likely objects in view; typing a label puts the box on that object"),
        Binding("plus,equals_sign", "resize(1)", "grow the cursor box (after the first prototype: the next level of a scale pyramid)", show=False),
        Binding("b", "box_size", "type the cursor box size in px (before the first prototype, or with --scales auto)", show=False),
        Binding("minus", "resize(-1)", "shrink the cursor box (after the first prototype: the level below in a scale pyramid)", show=False),
        Binding("enter,a", "add_prototype", "add", tooltip="add the cursor box as a prototype"),
        Binding("x", "remove_prototype", "remove the prototype under the cursor", show=False),
        *threshold_bindings("similarity"),
        Binding("space", "flag", "flag", tooltip="flag / unflag the suggestion as a negative"),
        Binding("m", "mark", "mark", tooltip="page by page in the grid: a letter flags its suggestion as a negative, space the next page"),
        Binding("tab", "toggle_focus", "grid", tooltip="move between the image and the suggestion grid"),
        Binding("g", "toggle_grid", "show or hide the suggestion grid (more room for the images)", show=False),
        Binding("s", "toggle_sort", "grid order: most similar first / nearest the threshold first", show=False),
        *IMAGE_AND_CLASS_BINDINGS,
        Binding("N", "new_class", "new class", show=False),
        Binding("r", "rename_class", "rename the class", show=False),
        Binding("d", "delete_class", "delete the class (asks first)", show=False),
        Binding("c", "confirm", "confirm", tooltip="confirm the class"),
    ]

    def __init__(self):
        super().__init__(id="curate")
        self.class_name: str | None = None
        self.image_index = 0
        self.viewports: dict[str, Viewport] = {}
        self.cursor: tuple[float, float] | None = None
        self.box_size = DEFAULT_BOX
        self.level = 1.0  # the cursor box's level of the project's scale pyramid (its patch size at 1)
        self.suggestions = []
        self.order: np.ndarray = np.zeros(0, np.int64)
        self.sort_near_threshold = False
        self.grid_mode = False  # keys act on the grid's suggestion (tab), not the image's cursor
        self.grid_hidden = False  # the user's g; an empty grid takes no room either way
        # per image: likely objects, for hint mode (None: being found)
        self.blobs: dict[str, simsearch.Blobs | None] = {}
        self.hint_targets: dict[str, tuple[float, float, float]] = {}  # label -> (y, x, diameter) px
        self.status_text = ""  # the side panel's lines about the class's suggestions, as last computed
        self.updating = None  # the timer that says "updating the suggestions" while they take long

    def body(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="side"):
                yield Static("", id="classes")
                yield Static("", id="status")
            with Vertical(id="main"):
                yield Static("", id="imagebar")
                with Horizontal(id="views"):
                    yield ImageView(id="image")
                    yield FocusView(id="focus")
                yield Static("", id="gridbar")
                yield PatchGrid(id="grid")

    def on_mount(self) -> None:
        self.query_one("#image", ImageView).can_focus = True
        state = self.app.state
        names = [c.name for c in self.app.curation.classes()]
        self.class_name = state.get("class") if state.get("class") in names else (names[0] if names else None)
        self.image_index = int(state.get("image", 0) or 0)
        self.show_grid_panel(not state.get("grid_hidden", False), remember=False)
        self.restore_place(state)
        self.query_one("#image", ImageView).focus()
        if self.grid_mode:
            self.query_one("#grid", PatchGrid).focus()

    def restore_place(self, state: dict) -> None:
        """Back where the user was (see `remember`); whatever is missing or damaged is left at its default."""
        try:
            if state.get("cursor"):
                self.cursor = (float(state["cursor"][0]), float(state["cursor"][1]))
            geometry = self.project.geometry  # a free box starts at the patch size the user gave
            self.box_size = int(state.get("box") or (max(geometry.patch_size) if geometry else DEFAULT_BOX))
            if float(state.get("level", 1.0)) in self.project.scales:
                self.level = float(state.get("level", 1.0))
            for image_id, (zoom, cy, cx) in (state.get("views") or {}).items():
                if image_id in self.displayed:
                    record = self.project.dataset.by_id(image_id)
                    self.viewports[image_id] = Viewport(record.height, record.width, zoom=float(zoom), cy=float(cy), cx=float(cx))
            self.sort_near_threshold = bool(state.get("near_threshold", False))
            self.grid_mode = bool(state.get("grid_mode", False))
            self.query_one("#grid", PatchGrid).focus_index = int(state.get("grid_focus", 0) or 0)
        except (TypeError, ValueError, KeyError, simsearch.SimSearchError) as error:
            log.warning("ignoring part of the saved place: %s", error)

    # -- what is shown ------------------------------------------------------------------------

    @property
    def project(self) -> simsearch.Project:
        return self.app.project

    @property
    def displayed(self) -> list[str]:
        return self.project.displayed

    @property
    def image_id(self) -> str | None:
        shown = self.displayed
        if not shown:
            return None
        self.image_index %= len(shown)
        return shown[self.image_index]

    @property
    def patch_size(self) -> tuple[int, int]:
        """The cursor box (h, w): free before the first prototype and over an automatic scale
        pyramid; afterwards the patch, or the patch of the chosen level of a fixed pyramid."""
        if self.free_box:
            return (self.box_size, self.box_size)
        return self.project.geometry_at(self.level if self.level in self.project.scales else 1.0).patch_size

    @property
    def free_box(self) -> bool:
        return self.project.geometry is None or self.project.automatic_scales

    def size_box(self, side: float) -> None:
        """Fit the cursor box to an object of `side` px, as far as the project lets it."""
        if self.free_box:
            self.box_size = int(min(1024, max(8, round(side))))
        else:
            self.level = self.project.nearest_level(side)

    def refresh_view(self) -> None:
        names = [c.name for c in self.app.curation.classes()]
        if self.class_name not in names:
            self.choose_class(names[0] if names else None)
        if len(self.suggestions) and self.suggestions.class_name != self.class_name:
            self.suggestions, self.order = [], np.zeros(0, np.int64)  # another class's: not shown
        self.show_classes()
        self.remember()
        self.show_image()
        self.load_suggestions()

    def choose_class(self, name: str | None) -> None:
        """Show another class: its grid starts at its first suggestion (a reopening restores the
        focus of the class shown last, `restore_place`)."""
        if name != self.class_name:
            self.class_name = name
            self.query_one("#grid", PatchGrid).focus_index = 0

    def remember(self) -> None:
        """The user's place, for reopening there after a quit, a kill or a dropped connection:
        class and image, the cursor box, each image's zoom and position, the grid's order,
        focus and mode."""
        views = {image_id: [round(v.zoom, 3), round(v.cy, 1), round(v.cx, 1)] for image_id, v in self.viewports.items()}
        place = {"image": self.image_index, "box": self.box_size, "level": self.level, "views": views, "grid_mode": self.grid_mode,
                 "grid_focus": self.query_one("#grid", PatchGrid).focus_index, "near_threshold": self.sort_near_threshold}
        if self.cursor is not None:
            place["cursor"] = [round(self.cursor[0], 1), round(self.cursor[1], 1)]
        if self.class_name:
            place["class"] = self.class_name
        self.app.remember_place(**place)

    def show_classes(self) -> None:
        lines = ["[b]Classes[/b]  , . to switch"]
        for index, info in enumerate(self.app.curation.classes()):
            counts = self.app.curation.class_counts(info.name)
            prototypes, negatives = counts.prototypes, counts.negatives
            mark = "✔" if info.confirmed else ("~" if counts.positives else " ")
            pointer = "▶" if info.name == self.class_name else " "
            r, g, b = class_colour(index)
            lines.append(f"{pointer}[rgb({r},{g},{b})]■[/] {escape(info.name)[:12]:<12} {mark} {prototypes}p {negatives}n")
        if len(lines) == 1:
            lines.append("none yet: N adds one")
        self.query_one("#classes", Static).update("\n".join(lines))

    def load_suggestions(self) -> None:
        """Similarity maps can take seconds the first time (embedding the displayed images) and
        minutes for a new level of a scale pyramid on a CPU: always off the UI thread, one
        computation at a time, and the side panel says so when it takes longer than a key's answer."""
        self.cancel_updating()
        self.updating = self.set_timer(UPDATING_AFTER, self.show_updating) if self.class_name is not None else None
        self.compute_suggestions(self.class_name)

    @work(thread=True, exclusive=True, group="suggestions")
    def compute_suggestions(self, name: str | None) -> None:
        def compute():
            if name is None:
                return [], None
            histogram = self.app.curation.similarity_histogram(name, bins=20) if self.app.curation.prototypes(name) else None
            return self.app.curation.suggestions(name), histogram

        self.app.run_in_worker(compute, lambda result: self.show_suggestions(name, *result), failed=self.stop_updating)

    def show_updating(self) -> None:
        self.query_one("#status", Static).update("[b]updating the suggestions ...[/b]\n" + self.status_text)

    def cancel_updating(self) -> None:
        if self.updating is not None:
            self.updating.stop()
            self.updating = None

    def stop_updating(self) -> None:
        """After a failed computation: the side panel as it was."""
        self.cancel_updating()
        self.query_one("#status", Static).update(self.status_text)

    def show_suggestions(self, name, suggestions, histogram) -> None:
        if name != self.class_name:
            return
        self.cancel_updating()
        self.suggestions = suggestions
        self.sort_grid()
        self.show_classes()  # flag counts and confirmation marks change with every action
        self.update_step_bar()  # and so do the classes confirmed and whether the model is up to date
        self.show_status(histogram)
        self.show_image()
        self.show_grid()

    def sort_grid(self) -> None:
        count = len(self.suggestions)
        if not count:
            self.order = np.zeros(0, np.int64)
            return
        if self.sort_near_threshold and self.class_name is not None:
            threshold = self.app.curation.class_info(self.class_name).similarity_threshold
            self.order = np.argsort(np.abs(self.suggestions.similarities - threshold), kind="stable")
        else:
            self.order = np.arange(count)

    def show_status(self, histogram) -> None:
        status = self.query_one("#status", Static)
        if self.class_name is None:
            status.update("Add a class with N, then draw a prototype.")
            return
        info = self.app.curation.class_info(self.class_name)
        flagged = int(np.sum(self.suggestions.flagged)) if len(self.suggestions) else 0
        images = len(self.suggestions.image_counts()) if len(self.suggestions) else 0
        lines = [f"threshold [b]{info.similarity_threshold:+.2f}[/b]  [ ] {{ }}"]
        if histogram is not None:
            counts, edges = histogram
            lines.append(sparkline([float(np.log1p(c)) for c in counts], width=20))
            position = int(np.clip(np.searchsorted(edges, info.similarity_threshold) - 1, 0, 19))
            lines.append(" " * position + "▲")
        count = len(self.suggestions)  # each line within the side panel's 26 columns at 80x24, where it can
        lines.append(f"{count} suggestion{'' if count == 1 else 's'} in {images} image{'' if images == 1 else 's'}")
        lines.append(f"{flagged} flagged as negative")
        if flagged:  # from the user's own flags: at most this, as the unflagged ones are not all checked
            lines.append(f"precision ≤ {1 - flagged / count:.0%} above it")
        elif count:  # no flag yet: no estimate, only what makes one
            lines.append("space flags the wrong ones")
        if info.confirmed:
            lines.append("[b]confirmed[/b]")
        elif self.app.curation.positives(self.class_name):
            lines.append("[b]changed[/b]: c confirms again")
        if not self.app.curation.prototypes(self.class_name):
            lines.append("no prototype yet: move the box onto an example and press enter")
        self.status_text = "\n".join(lines)
        status.update(self.status_text)

    def show_image(self) -> None:
        view = self.query_one("#image", ImageView)
        image_id = self.image_id
        if image_id is None:
            view.clear(f"no displayed images: choose them on the dataset screen ({KEYS['dataset']})")
            self.query_one("#imagebar", Static).update("")
            return
        rgb, factor = self.app.images.get(image_id)
        record = self.project.dataset.by_id(image_id)
        viewport = self.viewport(image_id)
        if self.cursor is None or not (0 <= self.cursor[0] <= record.height and 0 <= self.cursor[1] <= record.width):
            self.cursor = (record.height / 2, record.width / 2)
        overlays = self.overlays(image_id)
        view.show(rgb, factor, viewport, overlays, detail=partial(self.app.images.detail, image_id))
        self.show_focus(rgb, factor, record, overlays)
        counts = self.suggestions.image_counts() if len(self.suggestions) else {}
        strip = " ".join(
            f"[reverse]{i + 1}:{counts.get(shown, 0)}[/]" if i == self.image_index else f"{i + 1}:{counts.get(shown, 0)}"
            for i, shown in enumerate(self.displayed)
        )
        box = "[reverse]boxes hidden (v)[/]  " if self.boxes_hidden and len(self.suggestions) else ""
        if self.project.geometry is not None and len(self.project.scales) > 1:  # a pyramid: which level the box is (first: it fits 80 columns)
            box += f"box {self.patch_size[1]} of {level_sides(self.project)} +-  "
        self.query_one("#imagebar", Static).update(
            f"{box}image {self.image_index + 1}/{len(self.displayed)} n/p  zoom {viewport.zoom:g}x  {escape(record.relpath)}  {strip}"
        )
        self.remember()

    def redraw_image(self) -> None:
        self.show_image()

    def show_focus(self, rgb, factor: float, record, overlays: list[Overlay]) -> None:
        """The thing the keys act on, large: the focused suggestion in the grid, else the cursor box."""
        focused = self.focused_suggestion() if self.grid_mode else None
        if focused is not None and focused.image_id == record.id:
            box = focused.box
            title = f"suggestion {self.query_one('#grid', PatchGrid).focus_index + 1}: sim {focused.similarity:.2f}"
            title += " NEGATIVE" if focused.flagged else ""
        else:
            box = self.cursor_box()
            (height, width), (cy, cx) = self.patch_size, self.cursor
            title = f"box {width}x{height} at x {cx:.0f}, y {cy:.0f}"
        self.query_one("#focus", FocusView).show_object(rgb, factor, (record.height, record.width), box, overlays,
                                                        title=escape(title))

    def overlays(self, image_id: str) -> list[Overlay]:
        names = [c.name for c in self.app.curation.classes()]
        colour = class_colour(names.index(self.class_name)) if self.class_name in names else CURSOR
        overlays = []
        if len(self.suggestions) and not self.boxes_hidden:
            mine = np.flatnonzero(np.asarray(self.suggestions.image_ids)[self.suggestions.image_index] == image_id)
            for index in mine[:2000].tolist():
                s = self.suggestions[index]
                overlays.append(Overlay(s.box, NEGATIVE if s.flagged else colour, "cross" if s.flagged else "thin"))
        for index, name in enumerate(names):
            for prototype in self.app.curation.prototypes(name):
                if prototype.image_id == image_id:
                    overlays.append(Overlay(prototype.box, class_colour(index), "solid"))
        focused = self.focused_suggestion()
        if focused is not None and focused.image_id == image_id and self.grid_mode:
            overlays.append(Overlay(focused.box, FOCUS, "focus"))
        if self.cursor is not None:
            overlays.append(Overlay(self.cursor_box(), CURSOR, "dashed"))
        return overlays

    def viewport(self, image_id: str) -> Viewport:
        """Each image keeps its own zoom and position."""
        if image_id not in self.viewports:
            record = self.project.dataset.by_id(image_id)
            self.viewports[image_id] = Viewport(record.height, record.width)
        return self.viewports[image_id]

    def cursor_box(self) -> tuple[float, float, float, float]:
        (cy, cx), (h, w) = self.cursor, self.patch_size
        record = self.project.dataset.by_id(self.image_id)
        cy = min(max(h / 2, cy), record.height - h / 2)
        cx = min(max(w / 2, cx), record.width - w / 2)
        return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2

    def show_grid(self) -> None:
        grid = self.query_one("#grid", PatchGrid)
        if not len(self.suggestions):
            grid.set_items(0, None, lambda i: False)
        else:
            grid.set_items(len(self.order), self.tile, lambda i: bool(self.suggestions.flagged[self.order[i]]))
        self.layout_grid()
        self.show_grid_bar()

    def tile(self, position: int):
        s = self.suggestions[int(self.order[position])]
        rgb, factor = self.app.images.get(s.image_id)
        return crop_patch(rgb, factor, s.box, 16)

    def focused_suggestion(self):
        grid = self.query_one("#grid", PatchGrid)
        if not len(self.suggestions) or grid.focus_index >= len(self.order):
            return None
        return self.suggestions[int(self.order[grid.focus_index])]

    def show_grid_bar(self) -> None:
        s = self.focused_suggestion()
        order = "nearest the threshold first" if self.sort_near_threshold else "most similar first"
        text = f"suggestions, {order} (s)" if len(self.suggestions) else self.why_no_suggestions()
        if s is not None:
            position = self.query_one("#grid", PatchGrid).focus_index + 1
            text += f"  #{position} sim {s.similarity:.3f}{'  NEGATIVE' if s.flagged else ''}"
        self.query_one("#gridbar", Static).update(text)

    def why_no_suggestions(self) -> str:
        if self.class_name is None:
            return "suggestions: none before a class (N adds one)"
        if not self.app.curation.prototypes(self.class_name):
            return "suggestions: none before a prototype (enter)"
        return "suggestions: none above the threshold ([ lowers it)"

    @on(PatchGrid.Moved)
    def grid_moved(self, event: PatchGrid.Moved) -> None:
        s = self.focused_suggestion()
        if s is not None and s.image_id in self.displayed:
            self.image_index = self.displayed.index(s.image_id)
            self.cursor = (s.y, s.x)
            self.viewport(s.image_id).follow(s.y, s.x, self.query_one("#image", ImageView).aspect)
        self.show_image()
        self.show_grid_bar()

    @on(ImageView.Clicked)
    def image_clicked(self, event: ImageView.Clicked) -> None:
        self.cursor = (event.y, event.x)
        self.show_image()

    @on(ImageView.Dragged)
    def box_drawn(self, event: ImageView.Dragged) -> None:
        """A box drawn with the mouse becomes the cursor box (its size too, before the first
        prototype fixes the patch size); enter adds it."""
        record = self.project.dataset.by_id(self.image_id)
        x0, y0, x1, y1 = simsearch.box_within(event.box, (record.height, record.width))
        if x1 <= x0 or y1 <= y0:
            return
        self.cursor = ((y0 + y1) / 2, (x0 + x1) / 2)
        self.size_box(simsearch.object_side(y1 - y0, x1 - x0))
        self.show_image()

    # -- keys -----------------------------------------------------------------------------------

    def action_move(self, rows: int, cols: int) -> None:
        if self.image_id is None:
            return
        h, w = self.patch_size
        cy, cx = self.cursor or (0.0, 0.0)
        record = self.project.dataset.by_id(self.image_id)
        self.cursor = (min(max(0.0, cy + rows * h / 4), record.height), min(max(0.0, cx + cols * w / 4), record.width))
        view = self.query_one("#image", ImageView)
        self.viewport(self.image_id).follow(*self.cursor, view.aspect)
        self.show_image()

    def action_hints(self) -> None:
        """Label the likely objects in view (blobs of the displayed image); the label typed puts
        the cursor box on that object, sized to it while the patch size is not fixed yet."""
        image_id = self.image_id
        if image_id is None:
            return
        rgb, factor = self.app.images.get(image_id)
        if image_id not in self.blobs:  # seconds on a large image: say so first
            self.notify("finding the likely objects in view ...")
            self.blobs[image_id] = None
            self.call_after_refresh(self._find_blobs_then_hint, image_id, rgb, factor)
            return
        blobs = self.blobs[image_id]
        if blobs is None:  # still being found
            return
        view = self.query_one("#image", ImageView)
        x0, y0, x1, y1 = self.viewport(image_id).region(view.aspect)
        ys, xs, sizes = blobs.ys / factor, blobs.xs / factor, blobs.sizes / factor
        # the strongest in view, one letter each, on cells of their own: on a small terminal labels
        # side by side hid each other (zoom in and press f again for others)
        inside, taken = [], set()
        for i in (i for i in range(len(blobs)) if x0 <= xs[i] <= x1 and y0 <= ys[i] <= y1):
            cell = view.hint_cell(float(ys[i]), float(xs[i]))
            if cell is None or any((cell[0] + d, cell[1]) in taken for d in (-1, 0, 1)):
                continue
            inside.append(i)
            taken.add(cell)
            if len(inside) == len(HINT_KEYS):
                break
        if not inside:
            self.notify("no likely objects found in view: move the box with the arrows", severity="warning")
            return
        labels = hint_labels(len(inside))
        self.hint_targets = targets = {label: (float(ys[i]), float(xs[i]), float(sizes[i])) for label, i in zip(labels, inside)}
        view.show_hints([(label, y, x) for label, (y, x, _) in targets.items()])
        log.info("hints on %s: %s", image_id, {label: tuple(round(v, 1) for v in t) for label, t in targets.items()})

        def chosen(label: str | None) -> None:
            view.clear_hints()
            if label is None:
                return
            y, x, size = targets[label]
            self.cursor = (y, x)
            self.size_box(1.25 * size)  # the object and a rim around it
            self.viewport(image_id).follow(y, x, view.aspect)
            self.show_image()

        self.app.push_screen(HintScreen(labels, "the label of an object"), chosen)

    def _find_blobs_then_hint(self, image_id: str, rgb, factor: float) -> None:
        self.blobs[image_id] = simsearch.find_blobs(rgb, count=200, min_size=max(4.0, 8 * factor))
        if image_id == self.image_id:
            self.action_hints()

    def action_box_size(self) -> None:
        if not self.free_box:
            self.notify_fixed_size()
            return

        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                self.box_size = int(min(1024, max(8, int(text))))
            except ValueError:
                self.notify(f"{text!r} is not a number of pixels", severity="error")
                return
            self.show_image()

        self.app.push_screen(PromptScreen("Cursor box size in pixels (the first prototype fixes the patch size)",
                                          str(self.box_size)), chosen)

    def action_resize(self, direction: int) -> None:
        if self.free_box:
            self.box_size = int(min(1024, max(8, self.box_size * (1.25 if direction > 0 else 0.8))))
        else:
            levels = self.project.scales
            index = levels.index(self.level) if self.level in levels else levels.index(1.0)
            if len(levels) == 1 or not 0 <= index + direction < len(levels):
                self.notify_fixed_size()
                return
            self.level = levels[index + direction]
        self.show_image()

    def notify_fixed_size(self) -> None:
        levels = self.project.scales
        if len(levels) == 1:
            self.notify(f"the patch size is fixed at {self.patch_size[1]}x{self.patch_size[0]} px by the first prototype")
        else:
            self.notify(f"the box sizes are the scale pyramid's: {level_sides(self.project)} (+ and - step through them)")

    def action_add_prototype(self) -> None:
        if self.class_name is None:
            self.notify("add a class first (N)", severity="warning")
            return
        if self.image_id is None:
            return
        self.add_prototype(self.class_name, self.image_id, self.cursor_box())

    @work(thread=True, group="edit")
    def add_prototype(self, name: str, image_id: str, box) -> None:
        def add():
            confirmed = confirmation(self.app.curation, name)  # an undo gives it back
            return confirmed, self.app.curation.add_prototype(name, image_id, box)

        self.app.run_in_worker(add, lambda result: self.prototype_added(*result))

    def prototype_added(self, confirmed: list | None, prototype) -> None:
        self.app.remember(f"prototype of {prototype.class_name}", "remove_prototype",
                          {"name": prototype.class_name, "id": prototype.id, "image_id": prototype.image_id,
                           "box": list(prototype.box), "confirmed": confirmed})
        self.notify(f"prototype added to {prototype.class_name}")
        self.show_classes()
        self.load_suggestions()

    def action_remove_prototype(self) -> None:
        if self.cursor is None or self.image_id is None:
            return
        cy, cx = self.cursor
        for prototype in self.app.curation.prototypes():
            x0, y0, x1, y1 = prototype.box
            if prototype.image_id == self.image_id and x0 <= cx <= x1 and y0 <= cy <= y1:
                name, image_id, box = prototype.class_name, prototype.image_id, prototype.box
                with self.app.engine_lock:
                    confirmed = confirmation(self.app.curation, name)
                    self.app.curation.remove_prototype(prototype.id)
                self.app.remember(f"removing a prototype of {name}", "add_prototype",
                                  {"name": name, "image_id": image_id, "box": list(box), "confirmed": confirmed})
                self.notify(f"prototype of {name} removed")
                self.refresh_view()
                return
        self.notify("no prototype under the cursor")

    def action_threshold(self, step: float) -> None:
        if self.class_name is None:
            return
        name = self.class_name
        old = self.app.curation.class_info(name).similarity_threshold
        value = round(min(1.0, max(-1.0, old + step)), 4)
        confirmed = confirmation(self.app.curation, name)
        self.app.curation.set_threshold(name, value)
        self.app.remember(f"threshold of {name}", "set_similarity_threshold",
                          {"name": name, "value": old, "confirmed": confirmed}, key=("threshold", name))
        self.load_suggestions()

    def flag_target(self):
        """The focused grid suggestion, or in the image the suggestion under the cursor."""
        if self.grid_mode:
            return self.focused_suggestion()
        if not len(self.suggestions) or self.cursor is None:
            return None
        cy, cx = self.cursor
        h, w = self.patch_size
        best, distance = None, None
        for index in np.flatnonzero(np.asarray(self.suggestions.image_ids)[self.suggestions.image_index] == self.image_id):
            d = abs(self.suggestions.ys[index] - cy) / h + abs(self.suggestions.xs[index] - cx) / w
            if d < 0.5 and (distance is None or d < distance):
                best, distance = index, d
        return None if best is None else self.suggestions[int(best)]

    def action_flag(self) -> None:
        target = self.flag_target()
        if target is None:
            self.notify("no suggestion here: tab to the grid, or move the box onto one")
            return
        self.flag(target, not target.flagged)
        if self.grid_mode:
            self.query_one("#grid", PatchGrid).action_move(1, 0)
        self.load_suggestions()

    def flag(self, target, flagged: bool) -> None:
        """Flag (or unflag) a suggestion as a negative, undoably (the undo confirms the class again
        if it was confirmed)."""
        confirmed = confirmation(self.app.curation, target.class_name)
        self.app.curation.flag_negative(target, flagged=flagged)
        self.app.remember("flag" if flagged else "unflag", "set_negative", {
            "name": target.class_name, "patch": patch(target.record()), "flagged": not flagged, "confirmed": confirmed})

    def action_mark(self) -> None:
        if not len(self.suggestions):
            return
        grid = self.query_one("#grid", PatchGrid)
        self.show_grid_panel(True)

        def toggle(position: int) -> None:
            target = self.suggestions[int(self.order[position])]
            flagged = not target.flagged
            self.flag(target, flagged)
            self.suggestions.flagged[int(self.order[position])] = flagged  # shown at once; the reload confirms it
            self.show_grid()
            self.load_suggestions()

        self.mark_by_label(grid, toggle, "the letter of a wrong suggestion")

    def action_toggle_focus(self) -> None:
        self.show_grid_panel(True)  # tab to a hidden grid shows it
        if not len(self.suggestions) and not self.grid_mode:
            self.notify(self.why_no_suggestions())
            return
        self.set_grid_mode(not self.grid_mode)

    def set_grid_mode(self, on: bool) -> None:
        """Focus moves later (Textual defers it); the mode changes now, so the next key
        already acts on the grid or the image."""
        self.grid_mode = on
        (self.query_one("#grid", PatchGrid) if on else self.query_one("#image", ImageView)).focus()
        self.show_image()

    def on_descendant_focus(self, event) -> None:
        if isinstance(event.widget, (PatchGrid, ImageView)):
            self.grid_mode = isinstance(event.widget, PatchGrid)

    def action_toggle_grid(self) -> None:
        self.show_grid_panel(self.grid_hidden)

    def show_grid_panel(self, visible: bool, *, remember: bool = True) -> None:
        """Show or hide the suggestion grid and its title bar (hidden: more room for the images)."""
        self.grid_hidden = not visible
        self.layout_grid()
        if remember:
            self.app.remember_place(grid_hidden=not visible)

    def layout_grid(self) -> None:
        """The grid takes its rows only when the user has not hidden it and it has suggestions
        to show (before the first prototype the image has them); its title bar, which says
        why it is empty, stays unless hidden."""
        shown = not self.grid_hidden and len(self.suggestions) > 0
        if self.grid_hidden and self.grid_mode:
            self.set_grid_mode(False)
        self.query_one("#grid", PatchGrid).display = shown
        self.query_one("#gridbar", Static).display = not self.grid_hidden

    def action_toggle_sort(self) -> None:
        self.sort_near_threshold = not self.sort_near_threshold
        self.sort_grid()
        self.query_one("#grid", PatchGrid).focus_index = 0
        self.show_grid()

    def action_image(self, step: int) -> None:
        if self.displayed:
            self.image_index = (self.image_index + step) % len(self.displayed)
            self.cursor = None
            self.show_image()

    def action_zoom(self, factor: float) -> None:
        if self.image_id is None:
            return
        viewport = self.viewport(self.image_id)
        viewport.set_zoom(viewport.zoom * factor)
        if self.cursor is not None:
            viewport.cy, viewport.cx = self.cursor
        self.show_image()

    def action_next_class(self, step: int) -> None:
        names = [c.name for c in self.app.curation.classes()]
        if not names:
            return
        index = names.index(self.class_name) if self.class_name in names else 0
        self.choose_class(names[(index + step) % len(names)])
        self.refresh_view()

    def action_confirm(self) -> None:
        if self.class_name is None:
            return
        self.confirm_class(self.class_name)

    @work(thread=True, group="edit")
    def confirm_class(self, name: str) -> None:
        curation = self.app.curation

        def confirm():
            before, earlier = curation.class_info(name), curation.positives(name)
            return before, earlier, self.app.curation.confirm_class(name)

        self.app.run_in_worker(confirm, lambda result: self.class_confirmed(name, *result))

    def class_confirmed(self, name: str, before, earlier: list, positives: list) -> None:
        self.app.remember(f"confirming {name}", "restore_confirmation", {
            "name": name, "threshold": before.similarity_threshold, "positives": [patch(p) for p in earlier],
            "confirmed": before.confirmed})
        self.notify(f"{name}: {len(positives)} clean positives")
        self.show_classes()
        self.update_step_bar()
        self.load_suggestions()
