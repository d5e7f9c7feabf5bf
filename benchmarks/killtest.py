"""The kill test: every CLI action of a curation session, and `simsearch run` (every step from a
run file, training, processing and exports included), run again and again, each time killed with
SIGKILL, then checked the way a user would find the project: it opens for writing, its store
passes SQLite's integrity check, every action reported done is there, and running the killed
command again gives the state an uninterrupted run gives (store, displayed images, the saved
model's weights hash, the detections).

Two kinds of moments: seeded random times within the uninterrupted duration, and file events:
the uninterrupted run is watched and each file it creates or replaces (a new inode at a path,
temporary files included) is one event; a killed run is killed the moment that event is seen.

Used by tests/unit/test_kills.py (a few kills) and benchmarks/bench_kill.py (hundreds).
"""
from __future__ import annotations

import json
import os
import re
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Action:
    name: str
    arguments: list[str]  # after `simsearch -q`; {folder} is the run's folder
    project: str = ""  # the project inside the run's folder ('': the folder itself)


def session(images: Path, csv_file: Path) -> list[Action]:
    """A curation session on planted images (discs): what a scripted user runs, in order."""
    return [
        Action("create", ["create", str(images), "--project", "{folder}", "--displayed-images", "img0.tif", "img1.tif",
                          "img2.tif", "--backbone", "efficientnet-lite0"]),
        Action("import", ["import", str(csv_file), "--project", "{folder}"]),
        Action("suggest", ["suggest", "disc", "--threshold", "0.6", "--save-threshold", "--project", "{folder}"]),
        Action("flag", ["flag", "disc", "2", "--project", "{folder}"]),
        Action("confirm", ["confirm", "disc", "--project", "{folder}"]),
        Action("background", ["background", "propose", "--count", "6", "--project", "{folder}"]),
        Action("background-confirm", ["background", "confirm", "--project", "{folder}"]),
        Action("noisy", ["noisy", "--background-per-image", "2", "--project", "{folder}"]),
    ]


RUN_FILE = """dataset: {images}
project: project
output: results
displayed: [img0.tif, img1.tif, img2.tif]
backbone: efficientnet-lite0
annotations: {csv}
classes:
  disc: {{similarity_threshold: 0.6, confidence_threshold: 0.5}}
background: {{count: 6}}
noisy: {{cap: 40, background_per_image: 2}}
training:
  strategy: pos+neg+selflearn
  selflearn: {{epochs: 2, batch_size: 16}}
  supcon: {{epochs: 2, batch_size: 16}}
  classifier: {{epochs: 6, batch_size: 32}}
  classifier_copies: 4
segmentation: true
device: cpu
"""


def headless(images: Path, csv_file: Path) -> tuple[list[Action], dict[str, str]]:
    """`simsearch run` from a fresh folder holding only its run file: (actions, starting files)."""
    return [Action("run", ["run", "{folder}/run.yaml"], project="project")], {
        "run.yaml": RUN_FILE.format(images=images, csv=csv_file)}


def files(folder: Path) -> dict[str, int]:
    """Every file under `folder`: {path: inode}, temporary files' process ids and counters
    replaced by # so that the same temporary file of two runs is one event."""
    found = {}
    for path in folder.rglob("*"):
        try:
            found[re.sub(r"\.[0-9]+\.[0-9]+\.tmp", ".#.#.tmp", str(path.relative_to(folder)))] = path.stat().st_ino
        except OSError:
            pass  # gone between the listing and the stat: a temporary file renamed
    return found


def run(arguments: list[str], folder: Path, *, kill_after: float | None = None, kill_at_event: str | None = None,
        watch: list[str] | None = None) -> tuple[int, float]:
    """Run `simsearch -q ARGUMENTS` in `folder`; with kill_after, SIGKILL it after that many
    seconds; with kill_at_event, the moment that file event is seen. With `watch`, the file
    events seen are appended to it in order. Returns (exit code, seconds)."""
    command = [sys.executable, "-m", "simsearch", "-q", *[a.replace("{folder}", str(folder)) for a in arguments]]
    started = time.perf_counter()
    known = files(folder) if (kill_at_event or watch is not None) else {}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    if kill_at_event or watch is not None:
        while process.poll() is None:
            for path, inode in files(folder).items():
                if known.get(path) != inode:
                    known[path] = inode
                    if watch is not None and path not in watch:
                        watch.append(path)
                    if path == kill_at_event:
                        process.send_signal(signal.SIGKILL)
            time.sleep(0.001)
    elif kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode, time.perf_counter() - started


def state(project: Path) -> dict:
    """What the user's actions left in the project (and its results next to it), without times
    and ids: comparable."""
    if not (project / "project.yaml").is_file():
        return {"project": None}
    connection = sqlite3.connect(f"file:{project / 'store.sqlite'}?mode=ro", uri=True)
    try:
        tables = {
            "classes": "SELECT name, similarity_threshold, confidence_threshold, confirmed_at IS NOT NULL FROM classes ORDER BY name",
            "prototypes": "SELECT c.name, p.image_id, p.x0, p.y0, p.x1, p.y1 FROM prototypes p JOIN classes c ON c.id = p.class_id "
                          "ORDER BY 1, 2, 3, 4",
            "patches": "SELECT c.name, kind, image_id, y, x FROM class_patches p JOIN classes c ON c.id = p.class_id ORDER BY 1, 2, 3, 4, 5",
            "background": "SELECT image_id, y, x, extreme, is_background, confirmed FROM background ORDER BY 1, 2, 3",
            "noisy": "SELECT class_id, image_id, y, x FROM noisy_patches ORDER BY 1, 2, 3, 4",
            "noisy_done": "SELECT image_id FROM noisy_done ORDER BY 1",
        }
        found = {name: [list(row) for row in connection.execute(query)] for name, query in tables.items()}
    finally:
        connection.close()
    settings = (project / "project.yaml").read_text()
    found["displayed"] = [line.strip() for line in settings.splitlines() if line.strip().startswith("- ") and "@" in line]
    model = project / "model" / "model.yaml"
    found["model"] = [line for line in model.read_text().splitlines() if "blake2b" in line] if model.is_file() else None
    detections = project.parent / "results" / "detections.csv"
    found["detections"] = detections.read_text() if detections.is_file() else None
    return found


def check(project: Path) -> list[str]:
    """What a user would find wrong with the project after a kill (empty: nothing)."""
    problems = []
    if not (project / "project.yaml").is_file():
        return problems if not (project / "store.sqlite").exists() else ["a store without project.yaml"]
    connection = sqlite3.connect(project / "store.sqlite")
    try:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
    if verdict != "ok":
        problems.append(f"integrity check: {verdict}")
    from simsearch import Project  # opened here, not in a process of its own: no second torch import per kill

    try:
        Project.open(project).close()
    except Exception as error:  # noqa: BLE001 - whatever stops a user opening it is the finding
        problems.append(f"does not open: {type(error).__name__}: {error}")
        return problems
    leftovers = [p.name for p in project.rglob(".*.tmp*")]
    if leftovers:
        problems.append(f"temporary files left after opening: {leftovers}")
    return problems


def kill_test(work: Path, images: Path, csv_file: Path, kills_per_action: int, seed: int = 0, say=print,
              events_per_action: int | None = None) -> dict:
    """For each action (the curation session's, then `simsearch run`): the state before it and
    after an uninterrupted run, watched for file events; then runs from the state before, killed
    `kills_per_action` times at random moments within the uninterrupted duration and once at each
    file event (at most `events_per_action`, a seeded choice; None: all), each checked,
    completed by running it again and compared."""
    rng = random.Random(seed)
    results = {"actions": {}, "kills": 0, "failures": []}
    for number, (actions, starting_files) in enumerate(((session(images, csv_file), {}), headless(images, csv_file))):
        reference = work / f"reference-{number}"
        shutil.rmtree(reference, ignore_errors=True)
        reference.mkdir(parents=True)
        for name, text in (starting_files or {}).items():
            (reference / name).write_text(text)
        for action in actions:
            before = work / "before"
            shutil.rmtree(before, ignore_errors=True)
            shutil.copytree(reference, before)
            events: list[str] = []
            code, seconds = run(action.arguments, reference, watch=events)
            assert code == 0, f"{action.name} failed without a kill"
            expected = state(reference / action.project)
            chosen = events if events_per_action is None or len(events) <= events_per_action else sorted(
                rng.sample(events, events_per_action), key=events.index)
            moments = [("time", rng.uniform(0.0, 0.9 * seconds)) for _ in range(kills_per_action)]
            rows = [_killed_run(action, before, work / f"{action.name}-trial", expected, how, when)
                    for how, when in moments + [("event", event) for event in chosen]]
            results["kills"] += sum(row["killed"] for row in rows)
            results["failures"] += [{"action": action.name, **row} for row in rows if row["problems"]]
            results["actions"][action.name] = {"uninterrupted_s": round(seconds, 2), "file_events": events, "runs": rows}
            say(f"{action.name}: {sum(r['killed'] for r in rows)} kill(s) in {len(rows)} run(s) of {seconds:.1f} s "
                f"({len(chosen)} at file events of {len(events)}), {sum(bool(r['problems']) for r in rows)} with problems")
    return results


def _killed_run(action: Action, before: Path, trial: Path, expected: dict, how: str, when) -> dict:
    """One run from the state `before`, killed at a moment ('time', seconds) or a file event
    ('event', path); checked, run again and compared with `expected`."""
    shutil.rmtree(trial, ignore_errors=True)
    shutil.copytree(before, trial)
    if how == "time":
        code, _ = run(action.arguments, trial, kill_after=when)
    else:
        code, _ = run(action.arguments, trial, kill_at_event=when)
    killed = code == -signal.SIGKILL
    project = trial / action.project
    problems = check(project)
    if action.name == "create" and (project / "project.yaml").is_file():
        pass  # the project was made whole before the kill: creating it again is refused, rightly
    else:
        code_again, _ = run(action.arguments, trial)  # the user runs it again
        if code_again != 0:
            problems.append(f"running it again failed (exit {code_again})")
    if not problems and state(project) != expected:
        differs = sorted(k for k, v in state(project).items() if expected.get(k) != v)
        problems.append(f"running it again gives another state than an uninterrupted run ({', '.join(differs)})")
    shutil.rmtree(trial, ignore_errors=True)
    return {"moment": round(when, 2) if how == "time" else when, "killed": killed, "problems": problems}


def write_report(results: dict, path: Path) -> None:
    lines = ["| action | uninterrupted | file events | runs | killed | with problems |", "|---|---|---|---|---|---|"]
    for name, row in results["actions"].items():
        runs = row["runs"]
        lines.append(f"| {name} | {row['uninterrupted_s']} s | {len(row['file_events'])} | {len(runs)} | "
                     f"{sum(r['killed'] for r in runs)} | {sum(bool(r['problems']) for r in runs)} |")
    lines += ["", f"{results['kills']} kills in all; {len(results['failures'])} run(s) with problems."]
    for failure in results["failures"]:
        lines.append(f"- {failure['action']} killed at {failure['moment']}: {'; '.join(failure['problems'])}")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(results, indent=1))


def planted_inputs(folder: Path) -> tuple[Path, Path]:
    """Planted disc images and a CSV of prototypes and a negative for them."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import write_planted

    truth = write_planted(folder / "images", 6)
    (y, x), (y2, x2) = truth["img0.tif"][0][0], truth["img1.tif"][0][0]
    rows = ["kind,class,image,x0,y0,x1,y1", f"prototype,disc,img0.tif,{x - 16},{y - 16},{x + 16},{y + 16}",
            f"prototype,disc,img1.tif,{x2 - 16},{y2 - 16},{x2 + 16},{y2 + 16}"]
    (folder / "prototypes.csv").write_text("\n".join(rows) + "\n")
    os.environ.setdefault("SIMSEARCH_OFFLINE", "1")
    return folder / "images", folder / "prototypes.csv"
