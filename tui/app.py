"""The SimSearch terminal UI: the whole workflow, from a folder of images to exported
detections, keyboard first, over SSH.

One step screen per stage of the paper's flow (dataset, curate, background, train, review
(beyond the paper), thresholds, run), switched with the keys 1-7; a wizard creates a project from a dataset.
Every action goes straight into the project store through the engine's public API, so
closing the terminal loses nothing; the UI's own place (screen, class, image) is kept in
PROJECT/tui-state.yaml so that reopening returns there.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

import yaml
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.worker import get_current_worker

import simsearch

from .base import STEPS, StepScreen
from .dialogs import ErrorScreen, HelpScreen
from .render import DisplayImages
from .undo import OPERATIONS, UndoLog, UndoStep

log = logging.getLogger("simsearch.tui")
LOG_FILE = "tui.log"


class SimSearchApp(App):
    """Opens a project folder, or a dataset (folder, glob or list file) through the wizard."""

    TITLE = "SimSearch"
    CSS = """
    .muted { color: $text-muted; }
    .panel { border: round $primary; padding: 0 1; }
    """
    BINDINGS = [
        *[Binding(key, f"step('{name}')", name, show=False) for key, name, _ in STEPS],
        Binding("u", "undo", "undo"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]
    STEP_KEYS_HELP = (f"{STEPS[0][0]}-{STEPS[-1][0]}", "step: " + " ".join(name for _, name, _ in STEPS))

    def __init__(self, target: str | Path | None = None, *, device: str = "auto"):
        super().__init__()
        self.target = Path(target).expanduser() if target is not None else Path.cwd()
        self.device = device
        self.project: simsearch.Project | None = None
        self.curation: simsearch.Curation | None = None
        self.images: DisplayImages | None = None
        self.undo = UndoLog(None)
        self.state: dict = {}
        self.model_stale = False  # the saved model is older than the curation or the training settings (check_model)
        self.engine_lock = threading.RLock()  # one engine computation at a time (workers)
        self.log_path: Path = Path.home() / ".cache" / "simsearch" / LOG_FILE

    # -- opening ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        if (self.target / "project.yaml").is_file():
            try:
                project = simsearch.Project.open(self.target)
            except Exception as error:  # locked, damaged, dataset moved: say so and stop
                self._log_to(self.target)
                self.show_error(error, then=self.exit)
                return
            self.open_project(project)
        else:
            from .wizard import WizardScreen

            self._log_to(None)
            self.push_screen(WizardScreen(self.target))

    def open_project(self, project: simsearch.Project) -> None:
        """Install the step screens on an open, writable project and go where the user was."""
        from .background import BackgroundScreen
        from .curate import CurateScreen
        from .dataset import DatasetScreen
        from .review import ReviewScreen
        from .run import RunScreen
        from .thresholds import ThresholdScreen
        from .train import TrainScreen

        self.project = project
        project.set_device(self.device)
        self.curation = simsearch.Curation(project)
        self.images = DisplayImages(project, capacity=16)
        self._log_to(project.folder)
        self.state = self._read_state()
        self.undo = UndoLog(project.layout.ui_undo)
        self.sub_title = f"{project.folder.name}"
        for screen in (DatasetScreen(), CurateScreen(), BackgroundScreen(), TrainScreen(), ReviewScreen(), ThresholdScreen(),
                       RunScreen()):
            self.install_screen(screen, name=screen.NAME)
        first = self.state.get("screen") or ("curate" if project.displayed else "dataset")
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.push_screen(first if first in {name for _, name, _ in STEPS} else "dataset")

    def on_unmount(self) -> None:
        if self.project is not None:
            self.project.close()

    # -- logging, errors -------------------------------------------------------------------------

    def _log_to(self, folder: Path | None) -> None:
        """Engine and UI messages go to PROJECT/tui.log (never onto the screen)."""
        self.log_path = (folder / LOG_FILE) if folder is not None and os.access(folder, os.W_OK) else self.log_path
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        root = logging.getLogger("simsearch")
        for handler in list(root.handlers):
            if getattr(handler, "_simsearch_tui", False):
                root.removeHandler(handler)
        handler = logging.FileHandler(self.log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._simsearch_tui = True
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False

    def show_error(self, error: BaseException, *, then: Callable[[], None] | None = None) -> None:
        """A readable dialog; the traceback goes to the log."""
        if isinstance(error, simsearch.SimSearchError):  # the input: the user can change it
            message, hint, title = error.message, error.hint, "Not done"
            log.warning("%s", error)
        else:
            message, hint, title = f"unexpected error: {type(error).__name__}: {error}", "please report it with the log file", \
                "Something went wrong"
            log.error("unexpected error", exc_info=error)
        self.push_screen(ErrorScreen(message, hint, str(self.log_path), title), callback=(lambda _: then()) if then else None)

    def show_error_from_thread(self, error: BaseException) -> None:
        self.call_from_thread(self.show_error, error)

    def run_in_worker(self, task: Callable[[], object], done: Callable[[object], None] | None = None, *,
                      failed: Callable[[], None] | None = None, locked: bool = True) -> None:
        """The body of every engine worker (a method decorated `@work(thread=True)`): run `task`
        on this worker thread, under the engine lock unless `locked` is False; then `done(result)`
        on the UI thread, or, if it raised, the error's dialog and `failed()` on the UI thread."""
        try:
            if locked:
                with self.engine_lock:
                    result = task()
            else:
                result = task()
        except Exception as error:
            self.show_error_from_thread(error)
            if failed is not None:
                self.call_from_thread(failed)
            return
        if done is not None:
            self.call_from_thread(done, result)

    # -- the user's place ------------------------------------------------------------------------

    def _read_state(self) -> dict:
        path = self.project.layout.ui_state
        try:
            state = yaml.safe_load(path.read_text()) if path.is_file() else {}
        except (OSError, yaml.YAMLError):
            log.warning("ignoring unreadable %s", path)
            state = {}
        return state if isinstance(state, dict) else {}

    def remember_place(self, **values) -> None:
        if self.project is None:
            return
        changed = {k: v for k, v in values.items() if self.state.get(k) != v}
        if not changed:
            return
        self.state.update(changed)
        try:
            simsearch.write_text_atomic(self.project.layout.ui_state, yaml.safe_dump(self.state, sort_keys=True))
        except OSError as error:
            log.warning("could not save the UI state: %s", error)

    # -- undo ------------------------------------------------------------------------------------

    def remember(self, description: str, operation: str, args: dict, *, key: tuple | None = None) -> None:
        """Record how to undo an action just done: the engine call (an operation of
        tui/undo.py) that reverses it, kept on disk; consecutive steps with the same key merge
        (the first one's undo stays: many threshold presses undo in one go)."""
        self.undo.push(UndoStep(description, operation, args, list(key) if key else None))

    def action_undo(self) -> None:
        if isinstance(self.screen, ModalScreen):
            return
        step = self.undo.pop()
        if step is None:
            self.notify("nothing to undo")
            return
        try:
            with self.engine_lock:
                OPERATIONS[step.operation](self, step.args)
        except Exception as error:
            self.show_error(error)
            return
        self.notify(f"undone: {step.description}")
        if isinstance(self.screen, StepScreen):
            self.screen.refresh_view()
            self.screen.update_step_bar()

    # -- navigation ------------------------------------------------------------------------------

    # A change of screen is painted once: Textual paints the whole screen two to four times as
    # it mounts, resumes and prunes (each copy crosses SSH), so the paints wait 50 ms (as
    # Textual's own switch_mode does) and the screen is then drawn once.
    def switch_screen(self, screen):
        self.delay_update()
        return super().switch_screen(screen)

    def push_screen(self, screen, *args, **kwargs):
        self.delay_update()
        return super().push_screen(screen, *args, **kwargs)

    def pop_screen(self):
        self.delay_update()
        return super().pop_screen()

    def action_step(self, name: str) -> None:
        if self.project is None or isinstance(self.screen, ModalScreen) or self.screen.id == name:
            return
        self.switch_screen(name)

    def step_marks(self) -> dict[str, str]:
        """Per step what is done, for the step bar."""
        if self.project is None:
            return {}
        marks = {}
        if self.project.displayed:
            marks["dataset"] = "✔"
        classes = self.curation.classes()
        if classes:
            confirmed = sum(c.confirmed for c in classes)
            marks["curate"] = "✔" if confirmed == len(classes) else f"{confirmed}/{len(classes)}"
        if self.curation.clean_background():  # "~": candidates proposed since, not checked yet
            marks["background"] = "~" if self.curation.unconfirmed_background() else "✔"
        status = simsearch.training_status(self.project)
        if status.has_model:
            marks["train"] = "~" if self.model_stale else "✔"  # "~" as a class changed since confirmed
            if self.state.get("thresholds_model") == status.model_stamp:
                marks["thresholds"] = "✔"
        elif status.checkpoint_stage:
            marks["train"] = "…"
        answered = sum(1 for c in classes for item in self.curation.review_items(c.name, current_only=False) if item.answer)
        if answered:
            marks["review"] = str(answered)
        if self.state.get("results"):
            marks["run"] = "✔"
        return marks

    def check_model(self) -> None:
        """Whether the saved model is out of date with the curation or the training settings (as
        the Train screen says), for the step bar. Up to seconds (the training identity embeds the
        prototypes): off the UI thread, and of a burst of calls (review keys) only the last."""
        if self.project is not None and simsearch.training_status(self.project).has_model:
            self._check_model(self.get_screen("train").settings())

    @work(thread=True, exclusive=True, group="model-check")
    def _check_model(self, settings: simsearch.TrainSettings) -> None:
        worker = get_current_worker()
        time.sleep(0.3)
        adopt = "strategy" not in self.state and "preset" not in self.state  # nothing chosen with the keys yet

        def stale() -> bool | None:
            if worker.is_cancelled:
                return None
            if simsearch.training_status(self.project, settings).up_to_date:
                return False
            saved = self.saved_model_training() if adopt else None
            if saved is not None:  # trained elsewhere (a run file, the command line): its settings are the defaults
                self.call_from_thread(self.adopt_training, *saved)
            return saved is None

        if not worker.is_cancelled:
            self.run_in_worker(stale, self.show_model_stale)

    def saved_model_training(self) -> tuple[str, str] | None:
        """(strategy, preset) that train the saved model as it is, where one does: a model trained
        by a run file or the command line (`--strategy probe`, say) is then up to date here too."""
        saved = simsearch.saved_model(self.project)
        if saved is None or saved.strategy not in simsearch.TRAINING_STRATEGIES:
            return None
        for preset in simsearch.TrainSettings.PRESETS:
            if simsearch.training_status(self.project, simsearch.TrainSettings.preset(preset, saved.strategy)).up_to_date:
                return saved.strategy, preset
        return None

    def adopt_training(self, strategy: str, preset: str) -> None:
        """The Train screen's strategy and preset, as the saved model was trained."""
        self.remember_place(strategy=strategy, preset=preset)
        if isinstance(self.screen, StepScreen):
            self.screen.refresh_view()

    def show_model_stale(self, stale: bool | None) -> None:
        if stale is not None and stale != self.model_stale:
            self.model_stale = stale
            if isinstance(self.screen, StepScreen):
                self.screen.show_steps()

    def action_help(self) -> None:
        screen = self.screen
        bindings: list[tuple[str, str]] = []
        seen = set()
        # the focused widget's keys too, if it is one of this package's (the grid), not Textual's
        focused = screen.focused if type(screen.focused).__module__.startswith(f"{__package__}.") else None
        for source in (getattr(screen, "BINDINGS", []), getattr(focused, "BINDINGS", [])):
            for binding in source:
                if isinstance(binding, Binding) and binding.description and binding.key not in seen:
                    seen.add(binding.key)
                    bindings.append((binding.key, binding.tooltip or binding.description))
        bindings.append(self.STEP_KEYS_HELP)
        bindings += [(b.key, b.description) for b in self.BINDINGS if not b.key.isdigit()]
        title = getattr(screen, "TITLE", None) or getattr(screen, "NAME", "SimSearch")
        self.push_screen(HelpScreen(f"SimSearch · {title}", getattr(screen, "ABOUT", ""), bindings))

