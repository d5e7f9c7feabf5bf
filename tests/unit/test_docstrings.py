"""The examples in the public API's docstrings run (those marked +SKIP need a project or data),
and every public class and function has one."""
import doctest
import importlib
import inspect
import re

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
    bare = [name for name in simsearch.__all__
            if (inspect.isclass(getattr(simsearch, name)) or inspect.isfunction(getattr(simsearch, name)))
            and not inspect.getdoc(getattr(simsearch, name))]
    assert not bare, bare


def _examples_section(doc: str) -> str:
    """The body of a numpydoc docstring's Examples section, up to the next section ('' if none)."""
    match = re.search(r"^Examples\n-{3,}\n(.*?)(?=^[^\n]+\n-{3,}\n|\Z)", doc, re.M | re.S)
    return match.group(1) if match else ""


def test_every_public_class_and_function_has_an_example():
    """Every class and function of `simsearch.__all__` has, in its own docstring (not one it
    inherits), an Examples section with at least one `>>>` line, which the test above runs;
    constants (BACKBONES, ...) cannot carry a docstring and are shown in their module's."""
    missing = [f"simsearch.{simsearch._PUBLIC[name]}.{name}" for name in simsearch.__all__
               if (inspect.isclass(getattr(simsearch, name)) or inspect.isfunction(getattr(simsearch, name)))
               and ">>>" not in _examples_section(inspect.cleandoc(getattr(simsearch, name).__doc__ or ""))]
    assert not missing, f"no Examples section with a >>> line: {missing}"
