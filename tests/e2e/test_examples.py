"""The example scripts run as a user runs them (their own process, the bundled sample)."""
import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_script_loop_runs_the_whole_loop_with_the_public_api(tmp_path):
    """examples/script_loop.py, which the README's "Python API" points to: curation from
    annotated boxes, the probe, processing and exports; a second run reuses what is there."""
    command = [sys.executable, str(REPO / "examples" / "script_loop.py"), "--out", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    assert "embedded 12 images" in first.stdout and "training (probe): done" in first.stdout, first.stdout
    manifest = json.loads((tmp_path / "results" / "manifest.json").read_text())
    assert manifest["detections"] > 0 and f"{manifest['detections']} detections in 12 images" in first.stdout
    assert (tmp_path / "results" / "detections.csv").is_file()
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1:3] == first.stdout.splitlines()[1:3]  # the same curation, kept
