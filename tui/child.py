"""Long engine work in a child process (`python -m simsearch ... --progress json`), so that the
UI keeps its interpreter to itself and keys answer while the CPU works: the child gets every core
but one, its progress comes back one JSON object per line, its error as the engine's message."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Iterator

import simsearch

log = logging.getLogger("simsearch.tui.child")


class EngineChild:
    """One `simsearch` command at a time; `stop()` ends it from another thread (what it finished
    is saved: checkpoints, cached maps)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.stopped = False

    def run(self, arguments: list[str]) -> Iterator[dict]:
        """The command's progress events; raises SimSearchError with its message if it fails
        (not when stopped)."""
        threads = str(max(1, (os.cpu_count() or 2) - 1))
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        self.stopped = False
        self.process = subprocess.Popen([sys.executable, "-m", "simsearch", "-q", *arguments, "--progress", "json"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env)
        try:
            for line in self.process.stdout:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue  # not an event
            code = self.process.wait()
            errors = self.process.stderr.read().strip()
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.process = None
        if code and not self.stopped:
            log.warning("simsearch %s: exit code %s: %s", arguments[0], code, errors)
            lines = [line.strip() for line in errors.splitlines()]
            message = next((line[7:] for line in lines if line.startswith("error: ")), f"{arguments[0]} stopped (exit code {code})")
            hint = next((line[6:] for line in lines if line.startswith("hint: ")), "the details are in the log")
            raise simsearch.SimSearchError(message, hint=hint)

    def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
