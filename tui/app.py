"""The SimSearch terminal UI: a first slice, the curation screen without the image view.

It lists the classes, shows the suggestions of the selected class in a table, and
changes the threshold, flags negatives and confirms the class with single keys. Every
action goes straight into the project store through the engine's public API.
"""
from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Label, ListItem, ListView, Static

import simsearch

HELP = """[b]Keys[/b]
  up/down      choose a class (class list) or a suggestion (table)
  tab          move between the class list and the suggestion table
  \\[ / ]        similarity threshold -0.01 / +0.01
  { / }        similarity threshold -0.05 / +0.05
  space        flag / unflag the suggestion as a negative
  c            confirm the class (unflagged suggestions become positives)
  ?            this help        q  quit (everything is saved already)"""


class SimSearchApp(App):
    """Opens a project folder; nothing global: the folder comes through the constructor."""

    TITLE = "SimSearch"
    CSS = """
    #classes { width: 28; border: round $accent; }
    #side { width: 30; }
    #status { height: auto; padding: 0 1; }
    #suggestions { border: round $accent; }
    """
    BINDINGS = [
        Binding("left_square_bracket", "threshold(-0.01)", "thr -", show=True),
        Binding("right_square_bracket", "threshold(0.01)", "thr +", show=True),
        Binding("left_curly_bracket", "threshold(-0.05)", "thr --", show=False),
        Binding("right_curly_bracket", "threshold(0.05)", "thr ++", show=False),
        Binding("space", "flag", "flag", show=True),
        Binding("c", "confirm", "confirm", show=True),
        Binding("question_mark", "help", "help", show=True),
        Binding("q", "quit", "quit", show=True),
    ]

    def __init__(self, project_folder: str | Path):
        super().__init__()
        self.project = simsearch.Project.open(project_folder)
        self.curation = simsearch.Curation(self.project)
        self.current: str | None = None
        self.shown: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="side"):
                yield ListView(*[ListItem(Label(c.name), name=c.name) for c in self.curation.classes()], id="classes")
                yield Static("", id="status")
            table = DataTable(id="suggestions", cursor_type="row")
            table.add_columns("#", "similarity", "y", "x", "flag", "image")
            yield table
        yield Footer()

    def on_mount(self) -> None:
        classes = self.curation.classes()
        if classes:
            self.select_class(classes[0].name)
        else:
            self.query_one("#status", Static).update("no classes yet: add them with `simsearch class add`")

    def on_unmount(self) -> None:
        self.project.close()

    @on(ListView.Selected, "#classes")
    @on(ListView.Highlighted, "#classes")
    def class_chosen(self, event) -> None:
        if event.item is not None and event.item.name != self.current:
            self.select_class(event.item.name)

    def select_class(self, name: str) -> None:
        self.current = name
        self.query_one("#status", Static).update(f"{name}: computing similarity maps ...")
        self.load_suggestions(name)

    @work(thread=True, exclusive=True)
    def load_suggestions(self, name: str) -> None:
        """Similarity maps can take seconds the first time (embeddings): off the UI thread."""
        try:
            suggestions = self.curation.suggestions(name)
        except simsearch.SimSearchError as error:
            self.call_from_thread(self.notify, str(error), severity="error")
            return
        self.call_from_thread(self.show, name, suggestions)

    def show(self, name: str, suggestions) -> None:
        if name != self.current:
            return
        self.shown = suggestions[:]
        table = self.query_one("#suggestions", DataTable)
        row = table.cursor_row
        table.clear()
        for number, s in enumerate(self.shown, start=1):
            table.add_row(str(number), f"{s.similarity:.3f}", f"{s.y:.0f}", f"{s.x:.0f}", "x" if s.flagged else "",
                          s.image_id.rsplit("@", 1)[0])
        if self.shown:
            table.move_cursor(row=min(row, len(self.shown) - 1))
        info = self.project.store.class_info(name)
        flagged = sum(s.flagged for s in self.shown)
        images = len({s.image_id for s in self.shown})
        self.query_one("#status", Static).update(
            f"[b]{name}[/b]{' (confirmed)' if info.confirmed else ''}\nthreshold {info.similarity_threshold:+.2f}\n"
            f"{len(self.shown)} suggestions in {images} images\n{flagged} flagged as negative"
        )

    def refresh_suggestions(self) -> None:
        if self.current is not None:
            self.show(self.current, self.curation.suggestions(self.current))

    def action_threshold(self, step: float) -> None:
        if self.current is None:
            return
        value = self.project.store.class_info(self.current).similarity_threshold + step
        self.curation.set_threshold(self.current, round(min(1.0, max(-1.0, value)), 4))
        self.refresh_suggestions()

    def action_flag(self) -> None:
        table = self.query_one("#suggestions", DataTable)
        if not self.shown or table.cursor_row >= len(self.shown):
            return
        suggestion = self.shown[table.cursor_row]
        self.curation.flag_negative(suggestion, flagged=not suggestion.flagged)
        self.refresh_suggestions()

    def action_confirm(self) -> None:
        if self.current is None:
            return
        try:
            positives = self.curation.confirm_class(self.current)
        except simsearch.SimSearchError as error:
            self.notify(str(error), severity="error")
            return
        self.notify(f"{self.current}: {len(positives)} clean positives")
        self.refresh_suggestions()

    def action_help(self) -> None:
        self.notify(HELP, title="SimSearch", timeout=15)
