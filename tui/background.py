"""The background screen: Algorithm 1's candidates (the unlabelled patches most and least
similar to the mean prototype) as a grid; flag the ones that are not background, confirm."""
from __future__ import annotations

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from .base import StepScreen
from .dialogs import PromptScreen
from .undo import patch
from .render import FOCUS, NEGATIVE, Overlay, Viewport, crop_patch
from .widgets import ImageView, PatchGrid


class BackgroundScreen(StepScreen):
    NAME = "background"
    TITLE = "Background"
    ABOUT = ("Background candidates: the unlabelled patches most (top) and least similar to the mean prototype. "
             "Flag any that show an object of interest; confirm to keep the rest as clean background.")
    DEFAULT_CSS = """
    BackgroundScreen #bg-bar { height: 1; padding: 0 1; background: $boost; }
    BackgroundScreen #bg-status { height: auto; padding: 0 1; }
    BackgroundScreen #bg-grid { width: 1fr; }
    BackgroundScreen #bg-image { width: 1fr; }
    """
    BINDINGS = [
        Binding("b", "propose", "propose", tooltip="propose background candidates (Algorithm 1)"),
        Binding("space", "flag", "flag", tooltip="flag / unflag: not background"),
        Binding("m", "mark", "mark", tooltip="page by page: a letter flags its tile as not background, space the next page"),
        Binding("c", "confirm", "confirm", tooltip="confirm: the unflagged candidates become background"),
    ]

    def __init__(self):
        super().__init__(id="background")
        self.candidates = []

    def body(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="bg-status")
            yield Static("", id="bg-bar")
            with Horizontal():
                yield PatchGrid(id="bg-grid")
                yield ImageView(id="bg-image")

    def on_mount(self) -> None:
        self.query_one("#bg-grid", PatchGrid).focus()

    def refresh_view(self) -> None:
        self.candidates = self.app.curation.background_candidates() if self.app.project.geometry else []
        grid = self.query_one("#bg-grid", PatchGrid)
        grid.set_items(len(self.candidates), self.tile, lambda i: not self.candidates[i].is_background)
        confirmed = len(self.app.project.store.clean_background())
        flagged = sum(not c.is_background for c in self.candidates)
        status = [f"{len(self.candidates)} candidates, {flagged} flagged as not background; {confirmed} confirmed background patches"]
        if not self.candidates:
            status.append("press b to propose candidates (needs prototypes on the curation screen)")
        self.query_one("#bg-status", Static).update("\n".join(status))
        self.show_focused()

    def tile(self, index: int):
        candidate = self.candidates[index]
        rgb, factor = self.app.images.get(candidate.image_id)
        return crop_patch(rgb, factor, candidate.box, 16)

    def show_focused(self) -> None:
        grid = self.query_one("#bg-grid", PatchGrid)
        view = self.query_one("#bg-image", ImageView)
        if not self.candidates:
            view.clear("no candidates yet")
            self.query_one("#bg-bar", Static).update("")
            return
        candidate = self.candidates[grid.focus_index]
        record = self.app.project.dataset.by_id(candidate.image_id)
        rgb, factor = self.app.images.get(candidate.image_id)
        viewport = Viewport(record.height, record.width, zoom=2.0, cy=candidate.y, cx=candidate.x)
        overlays = [Overlay(c.box, NEGATIVE if not c.is_background else (120, 120, 120), "cross" if not c.is_background else "thin")
                    for c in self.candidates if c.image_id == candidate.image_id]
        overlays.append(Overlay(candidate.box, FOCUS, "focus"))
        view.show(rgb, factor, viewport, overlays)
        kind = "most" if candidate.extreme == "high" else "least"
        self.query_one("#bg-bar", Static).update(
            f"#{grid.focus_index + 1} {kind} similar ({candidate.similarity:+.2f}) in {escape(record.relpath)}"
            f"{'  NOT BACKGROUND' if not candidate.is_background else ''}")

    @on(PatchGrid.Moved)
    def moved(self, event: PatchGrid.Moved) -> None:
        self.show_focused()

    def action_propose(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                count = int(text)
            except ValueError:
                self.notify(f"{text!r} is not a number", severity="error")
                return
            self.query_one("#bg-status", Static).update("finding background candidates ...")
            self.propose(count)

        self.app.push_screen(PromptScreen("How many candidates of each kind (most and least similar)?", "20"), chosen)

    @work(thread=True, exclusive=True, group="background")
    def propose(self, count: int) -> None:
        try:
            with self.app.engine_lock:
                self.app.curation.propose_background(count)
        except Exception as error:
            self.app.show_error_from_thread(error)
            return
        self.app.call_from_thread(self.refresh_view)

    def action_flag(self) -> None:
        if not self.candidates:
            return
        grid = self.query_one("#bg-grid", PatchGrid)
        candidate = self.candidates[grid.focus_index]
        flag = candidate.is_background  # flag it as not background
        self.app.curation.flag_not_background(candidate, flag)
        self.app.remember("background flag", "set_not_background", {"patch": patch(candidate.record()), "flagged": not flag})
        self.refresh_view()
        grid.action_move(1, 0)

    def action_mark(self) -> None:
        if not self.candidates:
            return

        def toggle(index: int) -> None:
            candidate = self.candidates[index]
            flag = candidate.is_background
            self.app.curation.flag_not_background(candidate, flag)
            self.app.remember("background flag", "set_not_background", {"patch": patch(candidate.record()), "flagged": not flag})
            self.refresh_view()

        self.mark_by_label(self.query_one("#bg-grid", PatchGrid), toggle, "the letter of a tile that is not background")

    def action_confirm(self) -> None:
        try:
            self.app.curation.confirm_background()
        except Exception as error:
            self.app.show_error(error)
            return
        self.notify(f"{len(self.app.project.store.clean_background())} clean background patches")
        self.refresh_view()
        self.update_step_bar()
