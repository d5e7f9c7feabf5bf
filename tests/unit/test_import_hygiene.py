import subprocess
import sys


def test_engine_never_imports_textual():
    code = (
        "import sys, simsearch, simsearch.cli, simsearch.project\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_image', 'tui'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
