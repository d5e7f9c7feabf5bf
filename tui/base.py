"""What every step screen shares: the step bar on top, the footer, `?` help from the
bindings, and engine errors shown as a dialog (the traceback goes to the project's log)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import Reactive
from textual.screen import Screen
from rich.text import Text
from textual.widget import Widget
from textual.widgets import Footer

STEPS = [("1", "dataset", "Dataset"), ("2", "curate", "Curate"), ("3", "background", "Background"),
         ("4", "train", "Train"), ("5", "review", "Review"), ("6", "thresholds", "Thresholds"), ("7", "run", "Run")]
TITLES = {name: title for _, name, title in STEPS}
KEYS = {name: key for key, name, _ in STEPS}  # hints name a step by its key: "train first (4)"
DEFAULT_DISPLAYED = 6  # displayed images offered for a new choice, or every image of a smaller dataset
SHORT_TITLES = {**TITLES, "dataset": "Data", "background": "Bg", "thresholds": "Thr"}  # for narrow terminals


def level_sides(project) -> str:
    """The patch sides of a project's scale pyramid, smallest first, as every screen writes them:
    "16/32/64 px"."""
    return "/".join(str(project.geometry_at(level).patch_size[1]) for level in project.scales) + " px"


def threshold_bindings(kind: str) -> list[Binding]:
    """[ ] by 0.01 and { } by 0.05, for the screen's `threshold(step)` action; the footer shows
    the first two as one entry."""
    group = Binding.Group("thr", compact=True)
    return [
        Binding("left_square_bracket", "threshold(-0.01)", "thr -", tooltip=f"{kind} threshold -0.01", group=group),
        Binding("right_square_bracket", "threshold(0.01)", "thr +", tooltip=f"{kind} threshold +0.01", group=group),
        Binding("left_curly_bracket", "threshold(-0.05)", f"{kind} threshold -0.05", show=False),
        Binding("right_curly_bracket", "threshold(0.05)", f"{kind} threshold +0.05", show=False),
    ]


# screens showing the displayed images of one class at a time: their image, zoom and next_class actions
IMAGE_AND_CLASS_BINDINGS = [
    Binding("n", "image(1)", "next displayed image", show=False),
    Binding("p", "image(-1)", "previous displayed image", show=False),
    Binding("z", "zoom(2)", "zoom in", show=False),
    Binding("Z", "zoom(0.5)", "zoom out", show=False),
    Binding("comma", "next_class(-1)", "previous class", show=False),
    Binding("full_stop", "next_class(1)", "next class", show=False),
    Binding("v", "toggle_boxes", "hide or show the boxes of suggestions and detections on the image", show=False),
]


class StepBar(Widget):
    """Where the user is in the flow and what is done: `1 Dataset ✔  2 Curate 1/3 ...`, with
    shorter titles where the width does not hold them (worked out at each render)."""

    DEFAULT_CSS = "StepBar { height: 1; background: $boost; padding: 0 1; }"

    current = ""
    done: dict[str, str] = {}

    def update_steps(self, current: str, done: dict[str, str]) -> None:
        self.current, self.done = current, dict(done)
        self.refresh()

    def render(self) -> Text:
        def bar(titles: dict[str, str]) -> list[tuple[str, str]]:
            parts = []
            for key, name, _ in STEPS:
                mark, title = self.done.get(name, ""), titles.get(name, "")
                text = f"{key}{(' ' + title) if title else ''}{(' ' + mark) if mark else ''}"
                parts.append((name, f" {text} "))
            return parts

        width = self.content_size.width
        for titles in (TITLES, SHORT_TITLES, {self.current: TITLES.get(self.current, "")}):  # as much as fits
            parts = bar(titles)
            if sum(len(text) for _, text in parts) <= width or not width:
                break
        line = Text()
        for name, text in parts:
            line.append(text, style="reverse bold" if name == self.current else "")
        return line


class StepScreen(Screen):
    """A step of the workflow. Subclasses set NAME, ABOUT and BINDINGS (every binding has a
    description: `?` lists them all) and implement `body()` and `refresh_view()`."""

    NAME = ""
    ABOUT = ""
    # Textual repaints the whole screen when the focus moves (over SSH: 28-145 kB a `tab`); the
    # widgets whose focus styles change repaint themselves, so the screen need not
    focused: Reactive[Widget | None] = Reactive(None, repaint=False)
    DEFAULT_CSS = "StepScreen Footer.-compact FooterLabel { margin-right: 1; }"  # a key group's label, apart from the next key

    def compose(self) -> ComposeResult:
        yield StepBar(id="steps")
        yield from self.body()
        yield Footer(show_command_palette=False, compact=True)  # every key readable at 80 columns; ctrl+p still works

    def body(self) -> ComposeResult:
        yield from ()

    def on_screen_resume(self) -> None:
        self.app.remember_place(screen=self.NAME)
        self.update_step_bar()
        self.refresh_view()

    def mark_by_label(self, grid, toggle, what: str, page_done=None) -> None:
        """Page-wise marking: every tile of the grid's page gets a letter; typing one calls
        `toggle(item index)` and the labels come back for the next; space calls
        `page_done(the page's items)` if given and shows the next page; esc ends, and so does any
        other key that is no label, which then acts. Several marks a page, a key each, instead of
        walking the grid tile by tile."""
        from .dialogs import HintScreen, hint_labels

        items = grid.page_items()
        if not items:
            return
        labels = dict(zip(hint_labels(len(items)), items))
        grid.show_labels(labels)

        def chosen(result: str | None) -> None:
            grid.clear_labels()
            if result is None:
                return
            if result == HintScreen.NEXT_PAGE:
                if page_done is not None:
                    page_done(list(labels.values()))
                if not grid.next_page():
                    self.notify("that was the last page")
                    return
            else:
                toggle(labels[result])
            self.mark_by_label(grid, toggle, what, page_done)

        self.app.push_screen(HintScreen(list(labels), what, pages=True), chosen)

    @property
    def boxes_hidden(self) -> bool:
        """The user's `v`: the image without the boxes of suggestions or detections (at a small
        zoom of a crowded image they cover it), on every screen and after a reopening."""
        return bool(self.app.state.get("boxes_hidden", False))

    def action_toggle_boxes(self) -> None:
        hidden = not self.boxes_hidden
        self.app.remember_place(boxes_hidden=hidden)
        self.notify("the boxes are hidden: v shows them" if hidden else "the boxes are shown")
        self.redraw_image()

    def redraw_image(self) -> None:
        """The image view again, after its overlays changed."""
        self.refresh_view()

    def update_step_bar(self) -> None:
        """After a change: the step bar's marks now, and whether the model is still up to date
        once that is checked (`SimSearchApp.check_model`)."""
        self.show_steps()
        self.app.check_model()

    def show_steps(self) -> None:
        self.query_one(StepBar).update_steps(self.NAME, self.app.step_marks())

    def refresh_view(self) -> None:
        """Show the project's current state (after a change, an undo, a return to the screen)."""
