"""What the background and review screens share: patches to judge one at a time, as a grid
beside the focused one shown large (the focus view) above its place in the whole image (every
patch of that image marked, the focused one framed)."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from .base import StepScreen
from .render import FOCUS, Overlay, Viewport
from .widgets import FocusView, ImageView, PatchGrid


class GridScreen(StepScreen):
    """Subclasses set PREFIX (the widgets are PREFIX-status, -bar, -grid and -image) and EMPTY,
    and give `entries()`, `box(entry)`, `mark(entry)` (overlay colour and style) and
    `describe(entry, record)` (the bar's text)."""

    PREFIX = ""
    EMPTY = "nothing to show yet"
    DEFAULT_CSS = """
    GridScreen .grid-bar { height: 1; padding: 0 1; background: $boost; }
    GridScreen .grid-status { height: auto; padding: 0 1; }
    GridScreen PatchGrid { width: 1fr; }
    GridScreen .grid-views { width: 1fr; }
    GridScreen FocusView { height: 2fr; }
    GridScreen .grid-views > ImageView { height: 1fr; }
    """

    def body(self) -> ComposeResult:
        with Vertical():
            yield Static("", id=f"{self.PREFIX}-status", classes="grid-status")
            yield Static("", id=f"{self.PREFIX}-bar", classes="grid-bar")
            with Horizontal():
                yield PatchGrid(id=f"{self.PREFIX}-grid")
                with Vertical(classes="grid-views"):
                    yield FocusView(id=f"{self.PREFIX}-focus")
                    yield ImageView(id=f"{self.PREFIX}-image")

    def on_mount(self) -> None:
        saved = self.app.state.get(self.focus_key)  # where the user was, as on Curate
        self.grid.focus_index = saved if isinstance(saved, int) and saved >= 0 else 0
        self.grid.focus()

    @property
    def focus_key(self) -> str:
        """The grid's focus in the UI state (PROJECT/tui-state.yaml), for a reopened UI."""
        return f"{self.NAME}_focus"

    @property
    def grid(self) -> PatchGrid:
        return self.query_one(f"#{self.PREFIX}-grid", PatchGrid)

    def set_status(self, lines: list[str]) -> None:
        self.query_one(f"#{self.PREFIX}-status", Static).update("\n".join(lines))

    def entries(self) -> list:
        raise NotImplementedError

    def show_focused(self) -> None:
        entries = self.entries()
        view = self.query_one(f"#{self.PREFIX}-image", ImageView)
        focus = self.query_one(f"#{self.PREFIX}-focus", FocusView)
        bar = self.query_one(f"#{self.PREFIX}-bar", Static)
        if not entries:
            view.clear(self.EMPTY)
            focus.clear("")
            bar.update("")
            return
        entry = entries[min(self.grid.focus_index, len(entries) - 1)]
        self.app.remember_place(**{self.focus_key: self.grid.focus_index})
        record = self.app.project.dataset.by_id(entry.image_id)
        rgb, factor = self.app.images.get(entry.image_id)
        overlays = [Overlay(self.box(other), *self.mark(other)) for other in entries if other.image_id == entry.image_id]
        overlays.append(Overlay(self.box(entry), FOCUS, "focus"))
        focus.show_object(rgb, factor, (record.height, record.width), self.box(entry), overlays)
        view.show(rgb, factor, Viewport(record.height, record.width), overlays)  # the whole image: where it is
        bar.update(self.describe(entry, record))

    @on(PatchGrid.Moved)
    def moved(self, event: PatchGrid.Moved) -> None:
        self.show_focused()
