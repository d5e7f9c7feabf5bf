"""`python -m simsearch_tui [PROJECT_OR_DATASET]`: the SimSearch terminal UI (same as `simsearch tui`)."""
import argparse
import logging

import simsearch

from .app import SimSearchApp
from .terminal import prepare_graphics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simsearch_tui", description="SimSearch terminal UI")
    parser.add_argument("target", nargs="?", help="a project folder, or images (folder, glob, list file) for a new project")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_args(argv)
    run(args.target, args.device)
    return 0


def run(target, device: str = "auto") -> None:
    # log lines would draw over the screen: the app sends them to PROJECT/tui.log instead
    logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    simsearch.keep_freed_memory()
    prepare_graphics()
    SimSearchApp(target, device=device).run()


if __name__ == "__main__":
    raise SystemExit(main())
