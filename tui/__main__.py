"""`python -m tui`: the terminal UI is not built yet; it will drive the engine's public API."""
import sys

if __name__ == "__main__":
    print("The SimSearch terminal UI is not available yet; use the `simsearch` command.", file=sys.stderr)
    sys.exit(1)
