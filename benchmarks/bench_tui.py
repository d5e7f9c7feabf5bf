"""Terminal UI responsiveness: how long a key takes to show its effect while training runs.

Goals (issue: terminal UI): p95 under 50 ms idle and under 100 ms while training, `?` opening
the help in under 100 ms. Training runs in a child process (tui/child.py). A
copy of the sample project (`make run` first) is opened in the real app (Textual's
headless pilot, 120x40); training (CPU preset, Pos+Neg+Selflearn) starts on the training
screen, and while it runs the help is opened and closed repeatedly: the time from the key
event reaching the app until the help screen is mounted (or gone) is one latency. The same keys are timed
with nothing running, for comparison.
Writes benchmarks/results/tui.json and tui.md.

    SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_tui.py
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PROJECT = REPO / "out" / "sample" / "project"


async def key_latencies(app, pilot, count: int) -> dict[str, list[float]]:
    """{'?': the help opening, 'esc': it closing}: seconds from the key to the screen changed."""
    from textual import events

    from simsearch_tui.dialogs import HelpScreen

    latencies: dict[str, list[float]] = {"?": [], "esc": []}
    for _ in range(count):
        for key, char, opened in (("question_mark", "?", True), ("escape", None, False)):
            # straight to the driver, as a terminal would: pilot.press waits for the app to be
            # idle, which it never is while progress arrives
            event = events.Key(key, char)
            event.set_sender(app)
            started = time.perf_counter()
            app._driver.send_message(event)
            while not (isinstance(app.screen, HelpScreen) == opened and app.screen.is_mounted):
                await asyncio.sleep(0.001)
            latencies["?" if opened else "esc"].append(time.perf_counter() - started)
            await asyncio.sleep(0.1)
    return latencies


async def measure(folder: Path, count: int) -> dict:
    from simsearch_tui.app import SimSearchApp

    app = SimSearchApp(folder, device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        while app.screen.id != "train":
            await asyncio.sleep(0.05)
        idle = await key_latencies(app, pilot, count)
        await pilot.press("t")
        while "epoch" not in str(app.screen.query_one("#label-selflearn").render()):
            await asyncio.sleep(0.05)
        busy = await key_latencies(app, pilot, count)
        still_training = app.screen.running
        await pilot.press("x")
        while app.screen.running:
            await asyncio.sleep(0.1)
    return {"idle": idle, "training": busy, "training_throughout": still_training}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(values) * 1000, 1),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
            "max_ms": round(max(values) * 1000, 1), "keys": len(values)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=20, help="help open/close pairs per condition")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not (SAMPLE_PROJECT / "project.yaml").is_file():
        raise SystemExit(f"{SAMPLE_PROJECT} is missing: run `make run` first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "project"
        shutil.copytree(SAMPLE_PROJECT, folder, ignore=shutil.ignore_patterns("tui-state.yaml", "training", "model"))
        raw = asyncio.run(measure(folder, args.presses))
    rows = {f"{condition}, {key}": summary(raw[condition][key]) for condition in ("idle", "training") for key in ("?", "esc")}
    rows |= {condition: summary(raw[condition]["?"] + raw[condition]["esc"]) for condition in ("idle", "training")}
    machine = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tui.json").write_text(json.dumps({"machine": machine, "rows": rows,
                                                   "training_throughout": raw["training_throughout"]}, indent=2))
    lines = ["| condition | keys | median | p95 | max |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {r['keys']} | {r['median_ms']} ms | {r['p95_ms']} ms | {r['max_ms']} ms |" for name, r in rows.items()]
    (args.out / "tui.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
