"""The kill test at scale (see benchmarks/killtest.py): every action of a curation session and
`simsearch run` killed with SIGKILL at seeded random moments and at every file event, checked
and completed; writes benchmarks/results/kill.md and kill.json.

    SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_kill.py --kills 8
"""
import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from killtest import REPO, kill_test, planted_inputs, write_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=8, help="runs per action killed at random moments (default 8), besides one at each file event")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        images, csv_file = planted_inputs(Path(tmp))
        results = kill_test(Path(tmp) / "work", images, csv_file, args.kills, seed=args.seed)
    write_report(results, REPO / "benchmarks" / "results" / "kill")
    print((REPO / "benchmarks" / "results" / "kill.md").read_text())


if __name__ == "__main__":
    main()
