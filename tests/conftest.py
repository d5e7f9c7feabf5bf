"""Shared fixtures. Tests never download: SIMSEARCH_OFFLINE=1 and an empty torch hub
folder make `auto` resolve to the packaged EfficientNet-Lite0 weights."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

os.environ["SIMSEARCH_OFFLINE"] = "1"
_TORCH_HOME = tempfile.TemporaryDirectory(prefix="simsearch-torch-home-")  # removed when the run ends
os.environ["TORCH_HOME"] = _TORCH_HOME.name
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # `make test` runs the tests in parallel processes (pytest-xdist)
    # that share the cores between them; set before torch is imported, and inherited by the
    # commands the tests start, so that a test's process and its commands compute alike
    _THREADS = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = _THREADS

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "data" / "bccd"


@pytest.fixture(scope="session")
def lite0():
    from simsearch import load_backbone

    return load_backbone("efficientnet-lite0")


@pytest.fixture(scope="session")
def bccd() -> Path:
    if not (BCCD / "JPEGImages").is_dir():
        pytest.skip("../shared/data/bccd is not present")
    return BCCD


def blob_image(shape=(160, 200), centres=(), radius=8, *, seed=0, dtype=np.uint8, channels=3) -> np.ndarray:
    """Dark noisy background with bright discs at the given (y, x) centres: (H, W, C)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(30, 5, shape)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200
    image = np.clip(image, 0, 255)
    if np.dtype(dtype) == np.uint16:
        image = image * 257
    return np.repeat(image[..., None], channels, axis=-1).astype(dtype)


PLANTED_SIZE = (176, 208)


def planted_image(seed: int):
    """Image with 3 discs and 3 crosses at well separated random places: (image, discs, crosses)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(30, 5, PLANTED_SIZE)
    yy, xx = np.mgrid[: PLANTED_SIZE[0], : PLANTED_SIZE[1]]
    centres = []
    while len(centres) < 6:
        c = rng.integers(24, [PLANTED_SIZE[0] - 24, PLANTED_SIZE[1] - 24])
        if all(np.hypot(*(c - o)) > 44 for o in centres):
            centres.append(c)
    discs, crosses = centres[:3], centres[3:]
    for cy, cx in discs:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 81] = 200
    for cy, cx in crosses:
        image[(abs(yy - cy) <= 2) & (abs(xx - cx) <= 10)] = 200
        image[(abs(xx - cx) <= 2) & (abs(yy - cy) <= 10)] = 200
    return np.clip(image, 0, 255).astype(np.uint8), [tuple(map(float, c)) for c in discs], [tuple(map(float, c)) for c in crosses]


def below_the_objects(suggestions, count: int) -> float:
    """A similarity threshold between the `count`-th suggestion (the last of the planted objects
    of the displayed images) and the next: the objects of undisplayed images score about as
    those do, some a little below the last."""
    return (suggestions[count - 1].similarity + suggestions[count].similarity) / 2


def write_planted(folder: Path, count: int) -> dict:
    """Write img0.tif .. img{count-1}.tif of planted discs and crosses into `folder` (created);
    returns {file name: (disc centres, cross centres)}, centres as (y, x)."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(count):
        image, discs, crosses = planted_image(i)
        tifffile.imwrite(folder / f"img{i}.tif", image)
        truth[f"img{i}.tif"] = (discs, crosses)
    return truth


def planted_project(tmp_path: Path, count: int, displayed=("img0.tif", "img1.tif", "img2.tif")):
    """A writable project on `count` planted images with the named displayed images:
    (project, truth as from write_planted). The caller closes the project."""
    from simsearch import Project

    truth = write_planted(tmp_path / "images", count)
    project = Project.create(tmp_path / "proj", tmp_path / "images", backbone="efficientnet-lite0")
    project.choose_displayed(names=list(displayed))
    return project, truth


def _tiny_training():
    from simsearch.training.loop import StageSettings, TrainSettings

    return TrainSettings(
        selflearn=StageSettings(1, 16, 1e-3, 1, 0.5),
        supcon=StageSettings(2, 16, 1e-3, 1, 0.5),
        classifier=StageSettings(15, 32, 1e-2, 10, 0.1),
        classifier_copies=4,  # the presets' 16 embed 4x the crops
    )


TINY = _tiny_training()  # training settings that finish in seconds on the planted projects


@pytest.fixture
def curated(tmp_path):
    """A planted project curated for training: classes disc and cross (one prototype each, 9
    clean positives), confirmed background and noisy patches: (project, truth)."""
    from simsearch import Curation

    project, truth = planted_project(tmp_path, 5)
    curation = Curation(project)
    for kind, index in (("disc", 0), ("cross", 1)):
        curation.add_class(kind)
        y, x = truth["img0.tif"][index][0]
        curation.add_prototype(kind, "img0.tif", (x - 16, y - 16, x + 16, y + 16))
        curation.confirm_class(kind, threshold=below_the_objects(curation.suggestions(kind, threshold=-1.0), 9))
    curation.propose_background(count=5)
    curation.confirm_background()
    list(curation.iter_noisy(background_per_image=3))
    yield project, truth
    project.close()


# -- the real app in a real terminal (tmux), for the UI tests ----------------------------------


class Terminal:
    """A tmux session on its own server socket."""

    def __init__(self, width: int, height: int):
        self.socket = f"simsearch-test-{uuid.uuid4().hex[:8]}"
        self.size = (width, height)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def start(self, command: list[str], cwd: Path) -> None:
        env = " ".join(f"{k}={v}" for k, v in (("SIMSEARCH_OFFLINE", "1"), ("TORCH_HOME", os.environ["TORCH_HOME"]),
                                               ("TERM", "xterm-256color"), ("COLORTERM", "truecolor")))
        # pytest exports COLUMNS and LINES, and Textual would keep that size through every resize
        line = f"cd {cwd} && env -u COLUMNS -u LINES {env} {' '.join(command)}; sleep 600"
        self.tmux("new-session", "-d", "-s", "app", "-x", str(self.size[0]), "-y", str(self.size[1]), line)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "app", key)
            time.sleep(0.15)

    def text(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "app", "-l", "".join(keys))
        time.sleep(0.15)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "app")

    def cells_coloured(self, colour: tuple[int, int, int]) -> int:
        """Cells drawn in `colour` (as their text or background colour): what the user sees."""
        wanted = "2;{};{};{}".format(*colour)
        count = 0
        for line in self.tmux("capture-pane", "-p", "-e", "-t", "app").splitlines():
            fg = bg = ""
            for sgr, char in re.findall(r"\x1b\[([0-9;]*)m|(.)", line):
                if char:
                    count += wanted in (fg, bg)
                elif sgr in ("", "0"):
                    fg = bg = ""
                else:
                    for kind, value in re.findall(r"(38|48);(2;\d+;\d+;\d+|5;\d+)", sgr):
                        fg, bg = (value, bg) if kind == "38" else (fg, value)
        return count

    def wait_for(self, text: str, timeout: float = 90.0) -> str:
        """Until `text` is on the screen (a regular expression when it starts with 're:')."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if re.search(text[3:], screen) if text.startswith("re:") else text in screen:
                return screen
            time.sleep(0.25)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal():
    opened = []

    def make(width=80, height=24):
        opened.append(Terminal(width, height))
        return opened[-1]

    yield make
    for terminal in opened:
        terminal.close()


def app_command(target: Path) -> list[str]:
    return [sys.executable, "-m", "simsearch_tui", str(target)]
