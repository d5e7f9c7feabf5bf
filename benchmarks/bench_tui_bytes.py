"""Terminal UI over a slow link: the bytes the app writes to its terminal for each key.

Over SSH every byte the app writes crosses the link: at 1 Mbit/s 100 kB is most of a second.
A copy of the sample project (`make run` first) is opened by `simsearch tui` in a real
pseudo-terminal of each size, with and without COLORTERM=truecolor; the keys of a curation
session are typed one at a time, and the bytes the app writes until it has been quiet for
`--quiet` seconds are that key's. Writes benchmarks/results/tui-bytes.json and .md.

    .venv/bin/python benchmarks/bench_tui_bytes.py
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PROJECT = REPO / "out" / "sample" / "project"
# (what a user does, the bytes a terminal sends for it) on the curation screen
KEYS = [("next image (n)", b"n"), ("previous image (p)", b"p"), ("grid focus (tab)", b"\t"),
        ("next suggestion (right)", b"\x1b[C"), ("next suggestion (right)", b"\x1b[C"),
        ("previous suggestion (left)", b"\x1b[D"), ("flag (space)", b" "), ("undo (u)", b"u"),
        ("zoom (z)", b"z"), ("zoom back (z)", b"z"), ("background step (3)", b"3"), ("curate step (2)", b"2"),
        ("help (?)", b"?"), ("close help (esc)", b"\x1b")]


def drain(master: int, quiet: float, limit: float) -> tuple[int, float]:
    """(bytes, seconds until the last of them) read until `quiet` s pass without output."""
    count, started, last = 0, time.monotonic(), time.monotonic()
    while time.monotonic() - started < limit:
        ready, _, _ = select.select([master], [], [], quiet)
        if not ready:
            break
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        count += len(data)
        last = time.monotonic()
    return count, last - started


def session(folder: Path, size: tuple[int, int], truecolor: bool, quiet: float, tmux: bool) -> dict:
    """One run of the keys; with `tmux`, the app runs in a tmux session whose client is the
    terminal measured (what crosses SSH when tmux runs on the server)."""
    columns, rows = size
    socket = f"simsearch-bench-{os.getpid()}"
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLORTERM", "TMUX")}
    env.update(TERM="xterm-256color", SIMSEARCH_OFFLINE="1", **({"COLORTERM": "truecolor"} if truecolor else {}))
    command = [sys.executable, "-m", "simsearch", "tui", str(folder)]
    if tmux:
        # inside, tmux's own TERM; COLORTERM as the user's shell would pass it
        inner = " ".join(f"{key}={value}" for key, value in env.items() if key in ("COLORTERM", "SIMSEARCH_OFFLINE"))
        command = ["tmux", "-L", socket, "-f", "/dev/null", "new-session", f"env {inner} {' '.join(command)}"]
    process = subprocess.Popen(command, stdin=slave, stdout=slave,
                               stderr=slave, env=env, start_new_session=True, close_fds=True)
    os.close(slave)
    try:
        startup, _ = drain(master, 3.0, 120)
        os.write(master, b"2")  # the curation screen, wherever the project was left
        drain(master, quiet, 30)
        keys = []
        for label, sequence in KEYS:
            os.write(master, sequence)
            sent, seconds = drain(master, quiet, 30)
            keys.append({"key": label, "bytes": sent, "seconds": round(seconds, 2)})
        return {"size": f"{columns}x{rows}", "truecolor": truecolor, "tmux": tmux, "startup_bytes": startup, "keys": keys}
    finally:
        os.write(master, b"q")
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        os.close(master)
        if tmux:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", type=float, default=1.5, help="seconds without output that end a key (default 1.5)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not (SAMPLE_PROJECT / "project.yaml").is_file():
        sys.exit(f"{SAMPLE_PROJECT} is missing: run `make run` first")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for tmux in (False, True):
            for size in ((80, 24), (160, 50)):
                for truecolor in (False, True):
                    folder = Path(tmp) / f"project-{size[0]}-{truecolor}-{tmux}"
                    shutil.copytree(SAMPLE_PROJECT, folder)
                    runs.append(session(folder, size, truecolor, args.quiet, tmux))
                    print(runs[-1]["size"], "truecolor" if truecolor else "256 colours", "tmux" if tmux else "",
                          [(k["key"], k["bytes"]) for k in runs[-1]["keys"]], flush=True)
    result = {"benchmark": "tui-bytes", "python": platform.python_version(), "machine": platform.machine(),
              "quiet_s": args.quiet, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tui-bytes.json").write_text(json.dumps(result, indent=1))
    lines = ["# Terminal UI over a slow link: bytes written per key", "",
             f"`benchmarks/bench_tui_bytes.py`, {time.strftime('%Y-%m-%d')}, Python {platform.python_version()}: the sample "
             "project in `simsearch tui`, in a real pseudo-terminal (directly, and as a tmux client: what crosses SSH when "
             f"tmux runs on the server), TERM=xterm-256color; a key's bytes until the app is quiet for {args.quiet} s. "
             "In the sample each suggestion lies on another image, so a move in the grid changes the image too.", "",
             "| terminal | start | median key | largest key | per key (kB) |", "|---|---|---|---|---|"]
    for run in runs:
        sizes = [k["bytes"] for k in run["keys"]]
        largest = max(run["keys"], key=lambda k: k["bytes"])
        lines.append(f"| {run['size']}{', truecolor' if run['truecolor'] else ''}{', in tmux' if run['tmux'] else ''} | {run['startup_bytes'] / 1000:.0f} kB "
                     f"| {statistics.median(sizes) / 1000:.1f} kB | {largest['bytes'] / 1000:.1f} kB ({largest['key']}) | "
                     + ", ".join(f"{k['key'].split(' (')[-1].rstrip(')')} {k['bytes'] / 1000:.1f}" for k in run["keys"]) + " |")
    (args.out / "tui-bytes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
