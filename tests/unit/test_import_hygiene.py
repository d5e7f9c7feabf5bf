import subprocess
import sys


def test_engine_never_imports_textual():
    code = (
        "import sys, simsearch, simsearch.cli, simsearch.project\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_image', 'tui', 'simsearch_tui'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_simsearch_loads_no_heavy_library_and_every_public_name_resolves():
    """`import simsearch` is cheap (torch, FAISS, scipy and scikit-image load on first use);
    every name of __all__ resolves, `simsearch.train` is the function (not the training
    package), and the overview in the package docstring lists exactly the public names."""
    code = (
        "import re, sys, simsearch\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'faiss', 'scipy', 'skimage', 'numpy'))\n"
        "assert not heavy, heavy\n"
        "import simsearch.training.loop\n"
        "assert callable(simsearch.train) and simsearch.train is simsearch.training.loop.train\n"
        "assert all(getattr(simsearch, name) is not None for name in simsearch.__all__)\n"
        "overview = simsearch.__doc__.split('The public API')[1].split('`import simsearch`')[0]\n"
        "listed = set(re.findall(r'`(\\w+)`', overview))\n"
        "assert listed == set(simsearch.__all__), (listed ^ set(simsearch.__all__))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
