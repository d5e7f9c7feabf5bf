"""`python -m tui PROJECT`: the curation screen of the SimSearch terminal UI."""
import sys

from .app import SimSearchApp

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m tui PROJECT_FOLDER")
    SimSearchApp(sys.argv[1]).run()
