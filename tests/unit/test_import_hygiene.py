import ast
import subprocess
import sys
from pathlib import Path


def test_engine_never_imports_textual():
    code = (
        "import sys, simsearch, simsearch.cli.main, simsearch.project.project\n"
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


# the engine's layers, bottom to top: a module may import from its own layer and those below
LAYERS = ["util", "io", "features", "search", "project", "curation", "training", "inference", "evaluate", "cli"]
ENGINE = Path(__file__).resolve().parents[2] / "simsearch"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ENGINE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, text: str) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names) of every import in a file's text, at any depth (lazy ones too)."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, name, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "simsearch" or len(parts) < 2 or parts[1] not in LAYERS:
        return None
    return LAYERS.index(parts[1])


def _layer_violations(sources: dict[Path, str]) -> list[str]:
    violations = []
    for path, text in sources.items():
        own = _layer(_module_name(path))
        for line, imported, names in _imported_modules(path, text):
            where = f"{path.relative_to(ENGINE.parent)}:{line} imports {imported}"
            if imported == "simsearch" and set(names) <= {"__version__"}:
                continue  # the package root's version string (the root imports nothing at load)
            if imported == "simsearch" or (imported.startswith("simsearch.") and _layer(imported) is None):
                violations.append(f"{where}: outside the layers {LAYERS}")
            elif _layer(imported) is not None and own is not None and _layer(imported) > own:
                violations.append(f"{where}: layer {LAYERS[_layer(imported)]} is above {LAYERS[own]}")
    return violations


def test_every_engine_module_sits_in_a_layer_and_imports_only_downwards():
    """The physical layers (README, "Layout"): util -> io -> features -> search -> project ->
    curation -> training -> inference -> evaluate -> cli. No module imports from a higher layer,
    lazy imports inside functions included, and no module lives outside a layer."""
    files = sorted(ENGINE.rglob("*.py"))
    loose = [str(p.relative_to(ENGINE)) for p in files
             if p.parent == ENGINE and p.name not in ("__init__.py", "__main__.py")]
    assert not loose, f"modules outside the layers: {loose}"
    assert sorted(p.name for p in ENGINE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
    assert _layer_violations({path: path.read_text() for path in files}) == []


def test_the_layer_check_catches_an_upward_import():
    """The check itself can fail: a store that imports the curation session, or the package
    root, is reported."""
    store = ENGINE / "project" / "store.py"
    text = store.read_text() + "\nfrom ..curation.session import Curation\nfrom simsearch import Project\n"
    found = _layer_violations({store: text})
    assert any("curation.session: layer curation is above project" in v for v in found), found
    assert any("imports simsearch: outside the layers" in v for v in found), found


def _direct_writes(path: Path, text: str) -> list[str]:
    """Calls that write a file other than through simsearch.util.files: write_text/write_bytes,
    open(..., 'w'), and np.save / imwrite / .save(...) whose target is not the `tmp` path that
    `atomic_path` hands out (or an in-memory `buffer`)."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        receiver = node.func.value if isinstance(node.func, ast.Attribute) else None
        target = node.args[0] if node.args else None
        to_tmp = any(isinstance(n, ast.Name) and n.id in ("tmp", "buffer")  # buffer: in memory
                     for arg in node.args[:2] for n in ast.walk(arg))
        if name in ("write_text", "write_bytes") and not (isinstance(receiver, ast.Name) and receiver.id == "tmp"):
            found.append(f"{path.name}:{node.lineno} {name}")
        elif name == "open" and any(isinstance(a, ast.Constant) and isinstance(a.value, str) and "w" in a.value
                                    for a in [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]):
            found.append(f"{path.name}:{node.lineno} open for writing")
        elif name in ("save", "imwrite", "savez", "savez_compressed", "to_file") and target is not None and not to_tmp \
                and getattr(receiver, "id", getattr(receiver, "attr", None)) not in ("index", "checkpoints", "flat_field"):  # atomic inside
            found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_every_file_is_written_through_the_atomic_writer():
    """One way to write a file, in the engine and the UI: simsearch.util.files (whole or not at
    all). Docstring examples
    are text, not code, and are not scanned; util/files.py itself is the writer."""
    writes = [w for path in sorted([*ENGINE.rglob("*.py"), *(ENGINE.parent / "tui").rglob("*.py")]) if path.name != "files.py"
              for w in _direct_writes(path, path.read_text())]
    assert writes == []
    assert sorted(_direct_writes(Path("x.py"), "open(p, 'w').write('a')\nImage.new('L', (1, 1)).save(out / 'a.png')\n")) == [
        "x.py:1 open for writing", "x.py:2 save"]


def test_project_settings_are_read_only_through_project_properties():
    """The raw settings dict of project.yaml is the Project's own: outside simsearch/project/ no
    module reads `project.settings` (it asks for `file_channels`, `displayed`, `scales`, ...)."""
    import re

    raw = re.compile(r"project\.settings\b|\.settings\[\"|\.settings\.get\(\"")
    files = [*ENGINE.rglob("*.py"), *(ENGINE.parent / "tui").rglob("*.py")]
    readers = [f"{path.relative_to(ENGINE.parent)}:{number}" for path in files if path.parent.name != "project"
               for number, line in enumerate(path.read_text().splitlines(), start=1) if raw.search(line)]
    assert readers == []
