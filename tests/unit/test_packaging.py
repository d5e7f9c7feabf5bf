"""What gets installed: every engine package, and the UI under its own name behind an extra."""
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_engine_package_is_installed_and_the_ui_under_its_own_name():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "simsearch").rglob("__init__.py")}
    assert set(setuptools["packages"]) == folders | {"simsearch_tui"}
    assert setuptools["package-dir"] == {"simsearch_tui": "tui"}
    dependencies = " ".join(config["project"]["dependencies"])
    assert "textual" not in dependencies  # the engine installs without the UI
    assert any(d.startswith("textual") for d in config["project"]["optional-dependencies"]["tui"])


def test_the_installed_ui_is_this_checkout_and_its_command_says_how_to_install_it(tmp_path):
    code = "import simsearch_tui, pathlib; print(pathlib.Path(simsearch_tui.__file__).parent)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()) == REPO / "tui"
    # without textual (hidden from the import system), `simsearch tui` names the extra
    hide = ("import sys, importlib.abc\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('textual', 'textual_image'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "from simsearch.cli.main import main\n"
            "sys.exit(main(['tui', '.']))\n")
    done = subprocess.run([sys.executable, "-c", hide], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "pip install 'simsearch[tui]'" in done.stderr, done.stderr


def test_cluster_runs_need_the_cluster_extra_and_say_how_to_install_it(tmp_path):
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "dask" not in " ".join(config["project"]["dependencies"])  # the single-machine path needs no Dask
    assert any(d.startswith("dask") for d in config["project"]["optional-dependencies"]["cluster"])
    hide = ("import sys, importlib.abc\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('dask', 'distributed'):\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "from simsearch.cli.main import main\n"
            f"sys.exit(main(['process', '--project', {str(tmp_path / 'none')!r}, '--out', 'x', '--cluster', 'local:2']))\n")
    done = subprocess.run([sys.executable, "-c", hide], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "pip install 'simsearch[cluster]'" in done.stderr, done.stderr
