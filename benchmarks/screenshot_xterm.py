"""A screenshot of the terminal UI as a graphics terminal shows it: xterm with Sixel (`-ti vt340`)
on a virtual screen (Xvfb), the Curate screen of a project, saved as PNG.

    python benchmarks/screenshot_xterm.py out/sample/project docs/screenshots/curate-xterm-sixel.png

Needs xterm, Xvfb, xdotool, xwd and xwdtopnm (Debian: apt-get install xterm xvfb xdotool x11-apps
netpbm); says so and exits when one is missing. The project is copied first (the UI writes its
place into it)."""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

TOOLS = ("xterm", "Xvfb", "xdotool", "xwd", "xwdtopnm")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project")
    parser.add_argument("out")
    parser.add_argument("--columns", type=int, default=150)
    parser.add_argument("--rows", type=int, default=45)
    parser.add_argument("--display", default=":97")
    args = parser.parse_args()
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install xterm xvfb xdotool x11-apps netpbm", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="ss-xterm-"))
    project = work / "project"
    shutil.copytree(args.project, project)
    env = dict(os.environ, DISPLAY=args.display)
    screen = subprocess.Popen(["Xvfb", args.display, "-screen", "0", "1600x1000x24"], stderr=subprocess.DEVNULL)
    terminal = None
    try:
        time.sleep(2)
        command = f"cd {Path.cwd()} && COLORTERM=truecolor {sys.executable} -m simsearch tui {project}"
        terminal = subprocess.Popen(
            ["xterm", "-ti", "vt340", "-xrm", "XTerm*decTerminalID: vt340", "-xrm", "XTerm*numColorRegisters: 256",
             "-fa", "DejaVu Sans Mono", "-fs", "9", "-geometry", f"{args.columns}x{args.rows}+0+0", "-e", command], env=env)
        time.sleep(20)  # the UI starts, asks the terminal about Sixel, opens the project
        subprocess.run(["xdotool", "type", "2"], env=env, check=True)  # the Curate screen
        time.sleep(8)
        window = subprocess.run(["xdotool", "search", "--class", "xterm"], env=env, capture_output=True, text=True).stdout.split()[0]
        shot = subprocess.run(f"xwd -silent -id {window} | xwdtopnm", shell=True, env=env, capture_output=True, check=True).stdout
        Image.open(io.BytesIO(shot)).save(args.out, optimize=True)
        print(f"saved {args.out}")
    finally:
        if terminal is not None:
            terminal.terminate()
        screen.terminate()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
