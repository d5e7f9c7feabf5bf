"""Undo that outlives the process. Each step is the engine call that reverses an action, kept
as data (an operation name and its arguments) in PROJECT/tui-undo.json, written whole after
every change: a UI reopened after a kill or a dropped connection can still undo what was done
before it."""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import simsearch

log = logging.getLogger("simsearch.tui.undo")

LIMIT = 200


def patch(record: simsearch.PatchRecord) -> dict:
    """A patch record as undo arguments."""
    return asdict(record)


def answered(items: list) -> list[list]:
    """Review items and their answers before a change, as undo arguments: each by its place
    (image id, y, x), which a later batch does not renumber."""
    return [[item.image_id, item.y, item.x, item.answer] for item in items]


def _answers(app, args: dict) -> None:
    if "items" not in args:  # steps written before 2026-12-07: by number in the batch shown then
        for number, answer in args["answers"].items():
            app.curation.answer_review(args["name"], [int(number)], answer)
        return
    by_answer: dict[str | None, list] = {}
    for image_id, y, x, answer in args["items"]:
        by_answer.setdefault(answer, []).append(simsearch.PatchRecord(image_id, y, x))
    for answer, items in by_answer.items():
        app.curation.restore_review_answers(args["name"], items, answer)


def confirmation(curation: simsearch.Curation, name: str) -> list[dict] | None:
    """The class's confirmation, for the undo of a change that takes it away (a threshold, a flag,
    a prototype): its clean positives (a flag may take one out), or None when not confirmed."""
    return [patch(p) for p in curation.positives(name)] if curation.class_info(name).confirmed else None


def reconfirming(undo: Callable[[Any, dict], None]) -> Callable[[Any, dict], None]:
    """`undo` (the reverse call), then the confirmation that the change took away, if any (the
    step's "confirmed", see `confirmation`)."""
    def run(app, a: dict) -> None:
        undo(app, a)
        if a.get("confirmed") is not None:
            positives = [simsearch.PatchRecord(**p) for p in a["confirmed"]]
            app.curation.restore_confirmation(a["name"], None, positives, confirmed=True)
    return run


def _remove_prototype(app, args: dict) -> None:
    """The prototype added, found by its class, image and box: its id alone could name another
    one by now (the store gives a deleted prototype's id to the next, and the undo history
    outlives the UI: deleted and another added from the command line in between). Steps
    written before 2026-12-07 hold only the id."""
    if "box" not in args:
        app.curation.remove_prototype(args["id"])
        return
    box = tuple(float(v) for v in args["box"])
    for prototype in app.curation.prototypes(args["name"]):
        if prototype.image_id == args["image_id"] and tuple(float(v) for v in prototype.box) == box:
            app.curation.remove_prototype(prototype.id)
            return
    raise simsearch.ConfigError(f"the prototype of {args['name']} in {args['image_id']} at {list(box)} is gone already",
                                hint="it was removed outside the UI; nothing was undone")


# operation -> the engine call, given the app and the step's arguments
OPERATIONS: dict[str, Callable[[Any, dict], None]] = {
    "delete_class": lambda app, a: app.curation.delete_class(a["name"]),
    "restore_class": lambda app, a: app.curation.restore_class(a["file"]),
    "rename_class": lambda app, a: app.curation.rename_class(a["old"], a["new"]),
    "set_similarity_threshold": reconfirming(lambda app, a: app.curation.set_threshold(a["name"], a["value"])),
    "set_confidence_threshold": lambda app, a: app.curation.set_confidence_threshold(a["name"], a["value"]),
    "set_negative": reconfirming(
        lambda app, a: app.curation.set_negative(a["name"], simsearch.PatchRecord(**a["patch"]), a["flagged"])),
    "set_not_background": lambda app, a: app.curation.set_not_background(simsearch.PatchRecord(**a["patch"]), a["flagged"]),
    "remove_prototype": reconfirming(_remove_prototype),
    "add_prototype": reconfirming(lambda app, a: app.curation.add_prototype(a["name"], a["image_id"], tuple(a["box"]))),
    "answer_review": _answers,
    "unconfirm_background": lambda app, a: app.curation.unconfirm_background(
        [simsearch.PatchRecord(**p) for p in a["patches"]]),
    "restore_confirmation": lambda app, a: app.curation.restore_confirmation(
        a["name"], a["threshold"], [simsearch.PatchRecord(**p) for p in a["positives"]], confirmed=a["confirmed"]),
}


@dataclass
class UndoStep:
    description: str
    operation: str
    args: dict
    key: list | None = None  # consecutive steps with the same key merge (threshold presses)


class UndoLog:
    """The undo steps of a project, newest last, saved at `path` (the project layout's ui_undo;
    nowhere when None)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.steps: list[UndoStep] = []
        if self.path is not None and self.path.is_file():
            try:
                self.steps = [UndoStep(**step) for step in json.loads(self.path.read_text())
                              if step.get("operation") in OPERATIONS]
            except (OSError, ValueError, TypeError) as error:
                log.warning("ignoring the unreadable undo log %s: %s", self.path, error)

    def push(self, step: UndoStep) -> None:
        if step.operation not in OPERATIONS:
            raise ValueError(f"unknown undo operation {step.operation!r}")
        if step.key is not None and self.steps and self.steps[-1].key == list(step.key):
            return  # the first of the run keeps its undo: many presses undo in one go
        self.steps.append(UndoStep(step.description, step.operation, step.args, list(step.key) if step.key else None))
        del self.steps[:-LIMIT]
        self._save()

    def pop(self) -> UndoStep | None:
        step = self.steps.pop() if self.steps else None
        self._save()
        return step

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            simsearch.write_text_atomic(self.path, json.dumps([asdict(step) for step in self.steps]))
        except OSError as error:
            log.warning("could not save the undo log: %s", error)
