"""The training screen: noisy extraction, then the training stages (self-supervised,
supervised contrastive, classifier), each with a progress bar, loss curve, patches/s and
ETA. x cancels (the last checkpoint stays); t starts or resumes, also after the app or the
connection was closed.

The stages run in a child process (`simsearch train --progress json`, see child.py, on the
project opened read-only: training writes only its own files)."""
from __future__ import annotations

import os
import threading
import time

import torch

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import ProgressBar, Static

import simsearch

from .base import KEYS, StepScreen
from .child import EngineChild
from .dialogs import PromptScreen
from .render import sparkline

STAGES = [("noisy", "noisy extraction"), ("selflearn", "self-supervised (SimCLR)"),
          ("supcon", "supervised contrastive"), ("classifier", "linear classifier"),
          ("probe", "linear probe (pretrained features)")]
STRATEGIES = list(reversed(simsearch.TRAINING_STRATEGIES))  # the paper's full method first
PRESETS = list(simsearch.TrainSettings.PRESETS)
UP_TO_DATE = ("[b]the model is up to date[/b] with this curation and these settings: "
              f"review its detections ({KEYS['review']}), set thresholds ({KEYS['thresholds']})")


def reserve_a_core_for_the_ui(device: str) -> None:
    """Training on the CPU with every core leaves the UI thread waiting for one: keys took up to
    0.4 s (benchmarks/bench_tui.py). One core fewer for torch keeps the keys answering."""
    if simsearch.resolve_device(device).type == "cpu" and (os.cpu_count() or 1) > 1:
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1)))


def trained_stages(settings: simsearch.TrainSettings) -> list[str]:
    """The stages (`STAGES` names) a run with `settings` trains, in order, as its events name them."""
    return ((["selflearn"] if settings.use_noisy else []) + (["supcon"] if settings.contrastive else [])
            + ["classifier"] + (["probe"] if settings.probe_average else []))


def check_line(check: simsearch.ClassCheck) -> str:
    """The model's check on held-out examples, a warning in bold red."""
    text = escape(check.verdict())
    return text.replace("WARNING:", "[b red]WARNING:[/b red]") if not check.helps else text


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class TrainScreen(StepScreen):
    NAME = "train"
    TITLE = "Train"
    ABOUT = ("Noisy examples from the undisplayed images, then training: self-supervised on the noisy patches, "
             "supervised contrastive with your negatives, a linear classifier (and, in the cpu preset, a linear probe "
             "beside it, and scores held to how like your prototypes a patch is). Runs in the background; x cancels, "
             "t resumes from the last finished epoch, even after closing the app.")
    DEFAULT_CSS = """
    TrainScreen #train-settings { height: auto; padding: 0 1; }
    TrainScreen .stage { height: 3; padding: 0 1; }
    TrainScreen .stage ProgressBar { width: 1fr; }
    """
    BINDINGS = [
        Binding("t", "start", "train", tooltip="start or resume training"),
        Binding("x", "cancel", "cancel", tooltip="cancel (the last finished epoch is kept)"),
        Binding("s", "cycle_strategy", "strategy", tooltip="strategy: " + ", ".join(STRATEGIES)),
        Binding("p", "cycle_preset", "preset", tooltip="preset: cpu (minutes) or paper (GPU)"),
        Binding("m", "noisy_cap", "noisy cap", tooltip="noisy patches per class at most"),
        Binding("f", "toggle_start", "start", tooltip="start from the pretrained backbone, or fine-tune the last model"),
    ]

    def __init__(self):
        super().__init__(id="train")
        self.cancel = threading.Event()
        self.running = False
        self.child = EngineChild()
        self.losses: dict[str, list[float]] = {}
        self.coming: list[str] = []  # the stages the run trains (`trained_stages`)
        self.saved_stamp: int | None = None  # the saved model whose stages the bars show (`show_saved`)
        self.saved: simsearch.TrainedModel | None = None

    def body(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("", id="train-settings")
            for stage, title in STAGES:
                with Vertical(classes="stage", id=f"stage-{stage}"):
                    yield Static(title, id=f"label-{stage}")
                    yield ProgressBar(total=1, id=f"bar-{stage}", show_eta=False)

    @property
    def strategy(self) -> str:
        value = self.app.state.get("strategy")
        return value if value in STRATEGIES else STRATEGIES[0]

    @property
    def preset(self) -> str:
        value = self.app.state.get("preset")
        if value in PRESETS:
            return value
        return "paper" if simsearch.resolve_device("auto").type == "cuda" else "cpu"

    @property
    def from_last(self) -> bool:
        return bool(self.app.state.get("from_last", False))

    @property
    def noisy_cap(self) -> int:
        return int(self.app.state.get("noisy_cap", 500))

    def settings(self) -> simsearch.TrainSettings:
        """The training chosen with the keys (strategy, preset)."""
        return simsearch.TrainSettings.preset(self.preset, self.strategy)

    def refresh_view(self) -> None:
        project = self.app.project
        status = simsearch.training_status(project, self.settings())
        curation = self.app.curation
        start = "the last model" if self.from_last else "the pretrained backbone"
        lines = [f"strategy [b]{self.strategy}[/b] (s)   preset [b]{self.preset}[/b] (p)   noisy cap {self.noisy_cap}/class (m)"
                 f"   from {start} (f)"]
        counts = [curation.class_counts(c.name) for c in curation.classes()]
        background = curation.background_counts()
        lines.append("clean positives: " + (", ".join(f"{escape(c.name)} {c.positives}" for c in counts) or "none")
                     + f"; background {background.clean}")
        if "selflearn" in self.strategy:
            lines.append("noisy: " + ", ".join(f"{escape(c.name)} {c.noisy}" for c in counts)
                         + f", background {background.noisy}")
        if self.running:
            lines.append("training ... (x cancels)")
        elif status.up_to_date:
            lines.append(UP_TO_DATE)
        elif status.has_model:
            lines.append("[b]the curation or settings changed[/b] since the model was trained: t trains again")
        if status.has_model and not self.running:
            if status.model_stamp != self.saved_stamp:  # on opening, or a run saved a model: its stages
                self.saved_stamp, self.saved = status.model_stamp, simsearch.saved_model(project)
                self.show_saved()
            lines += [check_line(check) for check in (self.saved.check if self.saved else ())]
        if status.checkpoint_stage and not self.running:
            if status.resumable:
                lines.append(f"an earlier run stopped in {status.checkpoint_stage} after {status.checkpoint_epoch} epoch(s): t resumes it")
            else:
                lines.append("an earlier run stopped, on another curation or settings: t starts again")
        self.query_one("#train-settings", Static).update("\n".join(lines))

    def action_cycle_strategy(self) -> None:
        if self.running:
            return
        self.app.remember_place(strategy=STRATEGIES[(STRATEGIES.index(self.strategy) + 1) % len(STRATEGIES)])
        self.refresh_view()
        self.update_step_bar()  # the model may be out of date with other settings, or up to date again

    def action_cycle_preset(self) -> None:
        if self.running:
            return
        self.app.remember_place(preset=PRESETS[(PRESETS.index(self.preset) + 1) % len(PRESETS)])
        self.refresh_view()
        self.update_step_bar()

    def action_toggle_start(self) -> None:
        if self.running:
            return
        self.app.remember_place(from_last=not self.from_last)
        self.refresh_view()

    def action_noisy_cap(self) -> None:
        def chosen(text: str | None) -> None:
            if text:
                try:
                    self.app.remember_place(noisy_cap=max(0, int(text)))
                except ValueError:
                    self.notify(f"{text!r} is not a number", severity="error")
                self.refresh_view()

        self.app.push_screen(PromptScreen("At most how many noisy patches per class?", str(self.noisy_cap)), chosen)

    def action_start(self) -> None:
        if self.running:
            self.notify("training is running")
            return
        self.cancel.clear()
        self.running = True
        self.losses = {}
        self.coming = trained_stages(self.settings())
        for stage, _ in STAGES:  # the last run's bars would pass for this one's
            self.show_stage(stage, 0, 1, "" if stage == "noisy" or stage in self.coming else "(not in this strategy)")
        self.refresh_view()
        self.run_training(self.preset, self.strategy, self.noisy_cap, self.from_last and self.has_model())

    def has_model(self) -> bool:
        return simsearch.training_status(self.app.project).has_model

    def action_cancel(self) -> None:
        if self.running:
            self.cancel.set()
            self.child.stop()  # the last finished epoch's checkpoint stays
            self.notify("cancelling after the current step ...")

    @work(thread=True, exclusive=True, group="train")
    def run_training(self, preset: str, strategy: str, cap: int, from_last: bool) -> None:
        reserve_a_core_for_the_ui(self.app.device)

        def noisy_then_train() -> str:
            settings = simsearch.TrainSettings.preset(preset, strategy)
            if settings.use_noisy:
                started = time.perf_counter()
                with self.app.engine_lock:  # it uses the curation's similarity maps
                    for event in self.app.curation.iter_noisy(cap_per_class=cap, cancel=self.cancel):
                        elapsed = time.perf_counter() - started
                        self.app.call_from_thread(self.show_noisy, event, elapsed)
                if self.cancel.is_set():
                    return "cancelled during noisy extraction"
                self.app.call_from_thread(self.show_stage, "noisy", 1, 1, "done")
                self.app.call_from_thread(self.refresh_view)  # the noisy counts
            last = None
            arguments = ["train", "--project", str(self.app.project.folder), "--strategy", strategy, "--preset", preset,
                         "--device", self.app.device, *(["--from-last"] if from_last else [])]
            for event in self.child.run(arguments):  # the child process: no engine lock
                last = simsearch.TrainProgress(**event)
                self.app.call_from_thread(self.show_training, last)
            if last is None or last.stage != "done":
                return "cancelled: t resumes from the last finished epoch"
            return "nothing changed since the last training: the model is reused" if last.reused else "finished: a model is saved"

        self.app.run_in_worker(noisy_then_train, self.finished, locked=False, failed=lambda: self.finished("stopped by an error"))

    def show_noisy(self, event, elapsed: float) -> None:
        rate = event.done / elapsed if elapsed > 0 else 0
        eta = (event.total - event.done) / rate if rate else 0
        added = ", ".join(f"{k or 'background'} +{v}" for k, v in event.added.items())
        self.show_stage("noisy", event.done, event.total, f"{event.done}/{event.total} images, ETA {duration(eta)}  {escape(added)}")

    def show_stage(self, stage: str, done: float, total: float, text: str) -> None:
        title = dict(STAGES)[stage]
        self.query_one(f"#label-{stage}", Static).update(f"[b]{title}[/b]  {text}")
        self.query_one(f"#bar-{stage}", ProgressBar).update(total=total, progress=done)

    def show_saved(self) -> None:
        """Each stage of the saved model as it finished: a full bar, its epochs and losses (the
        bars of a run cancelled in this session stay, as the saved model is not that run's)."""
        metrics = self.saved.metrics if self.saved else {}
        for stage, _ in STAGES:
            losses = metrics.get("selflearn" if stage == "noisy" else stage)  # noisy examples: for self-learning
            if not losses:
                self.show_stage(stage, 0, 1, "(not in the saved model)")
            elif stage == "noisy":
                self.show_stage(stage, 1, 1, "done (saved model)")
            else:
                self.show_stage(stage, 1, 1, f"{len(losses)} epochs  loss {losses[-1]:.3f} {sparkline(losses, 20)}"
                                             "  (saved model)")

    def show_training(self, progress) -> None:
        if progress.stage == "done":
            return
        if progress.stage not in self.losses:  # its first event: the stages before it are done (a resumed run: before the stop)
            for stage in self.coming[: self.coming.index(progress.stage)] if progress.stage in self.coming else []:
                if self.query_one(f"#bar-{stage}", ProgressBar).percentage != 1:
                    self.show_stage(stage, 1, 1, "done")
        curve = self.losses.setdefault(progress.stage, [])
        if progress.step == progress.steps:
            curve.append(progress.loss)
        done = (progress.epoch - 1) * progress.steps + progress.step
        self.show_stage(progress.stage, done, progress.epochs * progress.steps,
                        f"epoch {progress.epoch}/{progress.epochs}  loss {progress.loss:.3f} {sparkline(curve + [progress.loss], 20)}"
                        f"  {progress.patches_per_s:.0f} patches/s  ETA {duration(progress.eta_s)}")
        if done == progress.epochs * progress.steps and progress.stage in self.coming:  # what the next seconds do
            later = self.coming[self.coming.index(progress.stage) + 1:]
            if later:
                self.show_stage(later[0], 0, 1, "embedding its examples ..." if later[0] in ("classifier", "probe")
                                else "starting ...")
            else:
                self.notify("checking the model on the held-out examples ...")

    def finished(self, message: str) -> None:
        self.running = False
        self.notify(message)
        self.refresh_view()
        self.update_step_bar()
