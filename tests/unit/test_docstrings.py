"""The examples in the public API's docstrings run (those marked +SKIP need a project or data)."""
import doctest
import importlib

import pytest

import simsearch


def _modules() -> list[str]:
    return sorted(set(simsearch._PUBLIC.values()))


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples_run(module_name):
    module = importlib.import_module(f"simsearch.{module_name}")
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, module.__name__, globs={**vars(module)}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in simsearch.{module_name}"


def test_every_public_name_has_a_docstring():
    import inspect

    bare = [name for name in simsearch.__all__
            if (inspect.isclass(getattr(simsearch, name)) or inspect.isfunction(getattr(simsearch, name)))
            and not inspect.getdoc(getattr(simsearch, name))]
    assert not bare, bare
