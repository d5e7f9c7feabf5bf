"""The kill test (benchmarks/killtest.py) in the suite: each action of a curation session, and
`simsearch run` from a run file (training, processing and exports), killed with SIGKILL once at
a seeded random moment and at two seeded file events; the benchmark kills at every file event
and many more moments."""
import sys

import pytest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from killtest import kill_test, planted_inputs  # noqa: E402


@pytest.mark.slow
def test_every_action_survives_sigkill_and_completes_when_run_again(tmp_path):
    images, csv_file = planted_inputs(tmp_path)
    results = kill_test(tmp_path / "work", images, csv_file, kills_per_action=1, seed=1, events_per_action=2,
                        say=lambda line: None)
    assert results["failures"] == []
    assert set(results["actions"]) == {"create", "import", "suggest", "flag", "confirm", "background",
                                       "background-confirm", "noisy", "run"}
    assert len(results["actions"]["run"]["file_events"]) >= 20  # the watcher saw the run's files appear
    assert results["kills"] >= 12  # most runs were really killed, not finished before the moment came
