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


def test_every_public_method_has_a_docstring():
    """Every public method, classmethod, staticmethod and property (cached or not) that a class of
    `simsearch.__all__` defines itself (in its own `vars`, names not starting with '_') has a
    docstring of its own, which `help()` shows a script user."""
    import functools

    bare = []
    for name in simsearch.__all__:
        value = getattr(simsearch, name)
        if not inspect.isclass(value):
            continue
        for attribute, member in vars(value).items():
            if attribute.startswith("_"):
                continue
            if isinstance(member, (classmethod, staticmethod)):
                function = member.__func__
            elif isinstance(member, property):
                function = member.fget
            elif isinstance(member, functools.cached_property):
                function = member.func
            elif callable(member):
                function = member
            else:
                continue
            if not (getattr(function, "__doc__", None) or "").strip():
                bare.append(f"simsearch.{simsearch._PUBLIC[name]}.{name}.{attribute}")
    assert not bare, f"{len(bare)} public method(s) or property(ies) without a docstring: {bare}"


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


def _engine_classes() -> dict[str, str]:
    """Every class the engine defines: {name: module}."""
    import inspect
    import pkgutil

    found = {}
    for info in pkgutil.walk_packages(simsearch.__path__, "simsearch."):
        if info.name.startswith("simsearch.cli") or info.name == "simsearch.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == info.name and not name.startswith("_"):
                found[name] = info.name
    return found


def test_public_signatures_use_only_public_types():
    """A script sees every type a public function or method takes or returns: an engine class
    named in the annotations of a public name is itself public (e.g. `Curation.suggestions`
    returns a SuggestionList, so SuggestionList is exported)."""
    import inspect
    import re

    engine = _engine_classes()
    hidden = {}
    for name in simsearch.__all__:
        value = getattr(simsearch, name)
        functions = [(name, value)] if inspect.isfunction(value) else []
        if inspect.isclass(value):
            for attribute, member in vars(value).items():
                member = getattr(member, "fget", None) or getattr(member, "__func__", member)
                if inspect.isfunction(member) and (not attribute.startswith("_") or attribute == "__init__"):
                    functions.append((f"{name}.{attribute}", member))
        for where, function in functions:
            signature = inspect.signature(function)
            annotations = [signature.return_annotation, *(p.annotation for p in signature.parameters.values())]
            for annotation in annotations:
                for word in re.findall(r"\b[A-Z]\w*", annotation if isinstance(annotation, str) else repr(annotation)):
                    if word in engine and word not in simsearch.__all__:
                        hidden.setdefault(word, []).append(where)
    assert not hidden, hidden
