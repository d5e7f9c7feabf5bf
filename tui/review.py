"""The review screen (beyond the paper): the trained model's own detections on images the
user has not curated, most informative first, as a grid; `a` accepts an item (a clean
positive of the class), `x` rejects it (a negative), and `t` trains again on the answers."""
from __future__ import annotations

from PIL import ImageDraw
from rich.markup import escape
from textual import work
from textual.binding import Binding

import simsearch

from .base import KEYS
from .gridscreen import GridScreen
from .render import NEGATIVE, class_colour, crop_patch
from .undo import answered

ACCEPTED = (0, 200, 90)


class ReviewScreen(GridScreen):
    NAME = "review"
    TITLE = "Review"
    ABOUT = ("The trained model's detections on images you have not curated, nearest the confidence threshold first "
             "(o: most confident, or diverse). Accept (a) the ones that are the class and reject (x) the others: "
             "they become clean positives and negatives, and t trains again on them.")
    PREFIX = "rv"
    EMPTY = "nothing to review yet"
    BINDINGS = [
        Binding("r", "propose", "batch", tooltip="a new batch of the model's detections to review"),
        Binding("a", "answer('accepted')", "accept", tooltip="accept: it is the class (a clean positive)"),
        Binding("x", "answer('rejected')", "reject", tooltip="reject: it is not the class (a negative)"),
        Binding("backspace", "answer(None)", "clear", tooltip="take the answer back"),
        Binding("m", "mark", "mark",
                tooltip="page by page: a letter rejects its item; space accepts the page's unanswered ones, "
                        "then the next"),
        Binding("o", "cycle_order", "order", tooltip="order: " + ", ".join(simsearch.REVIEW_ORDERS)),
        Binding("t", "train", "train", tooltip="train again on the answers (step 4)"),
        Binding("comma", "next_class(-1)", "previous class", show=False),
        Binding("full_stop", "next_class(1)", "next class", show=False),
    ]

    def __init__(self):
        super().__init__(id="review")
        self.items: list[simsearch.ReviewItem] = []
        self.busy = False

    # -- state -------------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.app.curation.classes()]

    @property
    def class_name(self) -> str | None:
        names = self.class_names
        chosen = self.app.state.get("review_class")
        return chosen if chosen in names else (names[0] if names else None)

    @property
    def order(self) -> str:
        value = self.app.state.get("review_order")
        return value if value in simsearch.REVIEW_ORDERS else simsearch.REVIEW_ORDERS[0]

    def refresh_view(self) -> None:
        name = self.class_name
        if not simsearch.training_status(self.app.project).has_model or name is None:
            self.items = []
            self.set_status([f"No trained model yet: train first ({KEYS['train']}). Then review its detections here."])
            self.grid.set_items(0, lambda i: None, lambda i: False)
            self.show_focused()
            return
        curation = self.app.curation
        self.items = curation.review_items(name)
        counts = curation.class_counts(name)
        colour = "rgb({},{},{})".format(*class_colour(self.class_names.index(name)))
        lines = [f"[{colour}]■[/] [b]{escape(name)}[/b] (, .)  order [b]{self.order}[/b] (o)  "  # 78 columns at 80x24
                 f"threshold {curation.class_info(name).confidence_threshold:.2f}  "
                 f"{counts.accepted} accepted, {counts.rejected} rejected"]
        if self.busy:
            lines.append("running the model on undisplayed images ...")
        elif not self.items:
            lines.append("r lists a batch of the model's detections to review")
        else:
            left = sum(i.answer is None for i in self.items)
            lines.append(f"batch of {len(self.items)}: {left} to answer. a accept, x reject; t trains again on the answers")
        self.set_status(lines)
        self.grid.set_items(len(self.items), self.tile, lambda i: self.items[i].answer == "rejected")
        self.show_focused()

    def box(self, item) -> tuple[float, float, float, float]:
        height, width = self.app.project.geometry_at(item.level).patch_size  # its level of the scale pyramid
        return (item.x - width / 2, item.y - height / 2, item.x + width / 2, item.y + height / 2)

    def tile(self, index: int):
        item = self.items[index]
        rgb, factor = self.app.images.get(item.image_id)
        tile = crop_patch(rgb, factor, self.box(item), 32)
        if item.answer == "accepted":
            ImageDraw.Draw(tile).rectangle([0, 0, tile.width - 1, tile.height - 1], outline=ACCEPTED, width=3)
        return tile

    def entries(self) -> list:
        return self.items

    def mark(self, item) -> tuple[tuple[int, int, int], str]:
        return {"accepted": (ACCEPTED, "solid"), "rejected": (NEGATIVE, "cross"), None: ((120, 120, 120), "thin")}[item.answer]

    def describe(self, item, record) -> str:
        answer = {"accepted": "  ACCEPTED", "rejected": "  REJECTED", None: ""}[item.answer]
        return f"#{item.number}/{len(self.items)} confidence {item.confidence:.2f} in {escape(record.relpath)}{answer}"

    # -- actions -------------------------------------------------------------------------------

    def action_propose(self) -> None:
        if self.busy or self.class_name is None:
            return
        self.busy = True
        self.refresh_view()
        self.propose(self.class_name, self.order)

    @work(thread=True, exclusive=True, group="review")
    def propose(self, class_name: str, order: str) -> None:
        def prepare_and_propose() -> None:
            review = simsearch.Review(self.app.project, device=self.app.device)
            for event in review.iter_prepare():
                self.app.call_from_thread(self.show_progress, event)
            review.propose(class_name, count=int(self.app.state.get("review_count", 20)), order=order)

        self.app.run_in_worker(prepare_and_propose, lambda _: self.proposed(), failed=self.proposed)

    def show_progress(self, event) -> None:
        self.set_status([f"running the model on undisplayed images: {event.done}/{event.total}"])

    def proposed(self) -> None:
        self.busy = False
        self.grid.focus_index = 0
        self.refresh_view()

    def action_answer(self, answer: str | None) -> None:
        if not self.items:
            return
        grid = self.grid
        item = self.items[grid.focus_index]
        curation, name = self.app.curation, self.class_name
        curation.answer_review(name, [item.number], answer)
        self.app.remember(f"review answer {item.number}", "answer_review", {"name": name, "items": answered([item])})
        self.refresh_view()
        self.update_step_bar()
        if answer is not None:
            grid.action_move(1, 0)

    def action_mark(self) -> None:
        if not self.items:
            return
        curation, name = self.app.curation, self.class_name

        def answer(numbers: list[int], value: str | None) -> None:
            before = answered([item for item in self.items if item.number in numbers])
            curation.answer_review(name, numbers, value)
            self.app.remember(f"review answers {numbers}", "answer_review", {"name": name, "items": before})
            self.refresh_view()
            self.update_step_bar()

        def reject(index: int) -> None:  # never a toggle: space would accept an item whose rejection it took back
            item = self.items[index]
            if item.answer == "rejected":
                self.notify(f"#{item.number} was already rejected (it stays so)")
                return
            answer([item.number], "rejected")

        def accept_rest(indices: list[int]) -> None:
            rest = [self.items[i].number for i in indices if self.items[i].answer is None]
            if rest:
                answer(rest, "accepted")

        self.mark_by_label(self.grid, reject, "the letter of a wrong item", accept_rest)

    def action_cycle_order(self) -> None:
        orders = simsearch.REVIEW_ORDERS
        self.app.remember_place(review_order=orders[(orders.index(self.order) + 1) % len(orders)])
        self.refresh_view()

    def action_next_class(self, step: int) -> None:
        names = self.class_names
        if names and self.class_name is not None:
            self.app.remember_place(review_class=names[(names.index(self.class_name) + step) % len(names)])
            self.grid.focus_index = 0
            self.refresh_view()

    def action_train(self) -> None:
        self.app.switch_screen("train")
        self.app.call_after_refresh(self.app.get_screen("train").action_start)
