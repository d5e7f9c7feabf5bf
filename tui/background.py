"""The background screen: Algorithm 1's candidates (the unlabelled patches most and least
similar to the mean prototype) as a grid; flag the ones that are not background, confirm."""
from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.binding import Binding

from .dialogs import PromptScreen
from .gridscreen import GridScreen
from .render import NEGATIVE, crop_patch
from .undo import patch


class BackgroundScreen(GridScreen):
    NAME = "background"
    TITLE = "Background"
    ABOUT = ("Background candidates: the unlabelled patches most (top) and least similar to the mean prototype. "
             "Flag any that show an object of interest; confirm to keep the rest as clean background.")
    PREFIX = "bg"
    EMPTY = "no candidates yet"
    BINDINGS = [
        Binding("b", "propose", "propose", tooltip="propose background candidates (Algorithm 1)"),
        Binding("space", "flag", "flag", tooltip="flag / unflag: not background"),
        Binding("m", "mark", "mark", tooltip="page by page: a letter flags its tile as not background, space the next page"),
        Binding("c", "confirm", "confirm", tooltip="confirm: the unflagged candidates become background"),
    ]

    def __init__(self):
        super().__init__(id="background")
        self.candidates = []

    def refresh_view(self) -> None:
        self.candidates = self.app.curation.background_candidates() if self.app.project.geometry else []
        self.grid.set_items(len(self.candidates), self.tile, lambda i: not self.candidates[i].is_background)
        confirmed = len(self.app.curation.clean_background())
        flagged = sum(not c.is_background for c in self.candidates)
        status = [f"{len(self.candidates)} candidates, {flagged} flagged as not background; {confirmed} confirmed background patches"]
        if not self.candidates:
            status.append("press b to propose candidates (needs prototypes on the curation screen)")
        elif self.app.curation.unconfirmed_background():
            # Algorithm 1's most similar are the objects the search did not accept: c keeps what is not flagged
            status.append("before c: flag every candidate that shows an object (space, or m and its letter); "
                          "they are likeliest among the most similar, which come first")
        self.set_status(status)
        self.show_focused()

    def tile(self, index: int):
        candidate = self.candidates[index]
        rgb, factor = self.app.images.get(candidate.image_id)
        return crop_patch(rgb, factor, candidate.box, 16)

    def entries(self) -> list:
        return self.candidates

    def mark(self, candidate) -> tuple[tuple[int, int, int], str]:
        return (NEGATIVE, "cross") if not candidate.is_background else ((120, 120, 120), "thin")

    def box(self, candidate) -> tuple[float, float, float, float]:
        return candidate.box

    def describe(self, candidate, record) -> str:
        kind = "most" if candidate.extreme == "high" else "least"
        return (f"#{self.grid.focus_index + 1} {kind} similar ({candidate.similarity:+.2f}) in {escape(record.relpath)}"
                f"{'  NOT BACKGROUND' if not candidate.is_background else ''}")

    def action_propose(self) -> None:
        def chosen(text: str | None) -> None:
            if not text:
                return
            try:
                count = int(text)
            except ValueError:
                self.notify(f"{text!r} is not a number", severity="error")
                return
            self.set_status(["finding background candidates ..."])
            self.propose(count)

        self.app.push_screen(PromptScreen("How many candidates of each kind (most and least similar)?", "20"), chosen)

    @work(thread=True, exclusive=True, group="background")
    def propose(self, count: int) -> None:
        def proposed(_) -> None:
            self.refresh_view()
            self.update_step_bar()  # new candidates: not checked yet

        self.app.run_in_worker(lambda: self.app.curation.propose_background(count), proposed)

    def action_flag(self) -> None:
        if not self.candidates:
            return
        grid = self.grid
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

        self.mark_by_label(self.grid, toggle, "the letter of a tile that is not background")

    def action_confirm(self) -> None:
        newly = self.app.curation.unconfirmed_background()
        try:
            self.app.curation.confirm_background()
        except Exception as error:
            self.app.show_error(error)
            return
        self.app.remember("background confirmation", "unconfirm_background", {"patches": [patch(p) for p in newly]})
        self.notify(f"{len(self.app.curation.clean_background())} clean background patches")
        self.refresh_view()
        self.update_step_bar()
