"""The command line's structure: every command is listed once, defined by the module the list
names, and `simsearch --help` loads no library."""
import argparse
import importlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from simsearch import Project
from simsearch.cli.commands import COMMANDS
from simsearch.cli.main import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_help_lists_every_command_and_loads_no_library():
    code = ("import sys\n"
            "from simsearch.cli.main import build_parser\n"
            "text = build_parser([]).format_help()\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'faiss', 'numpy', 'scipy', 'skimage', 'PIL'))\n"
            "assert not heavy, heavy\n"
            "print(text)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    for name, (_, help_text) in COMMANDS.items():
        assert f"    {name}" in out and help_text.split()[0] in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_gets_its_full_parser_from_its_module(name):
    """Named on the command line, a command's parser comes from the module COMMANDS names (it has
    a handler there); the module defines only commands the list gives it."""
    module, help_text = COMMANDS[name]
    parser = _subparsers(build_parser([name]))[name]
    handler = parser.get_default("handler")
    assert handler is not None and handler.__module__ == f"simsearch.cli.{module}"
    assert parser.description == help_text
    defined = argparse.ArgumentParser().add_subparsers()
    importlib.import_module(f"simsearch.cli.{module}").add_commands(defined)
    assert {n for n in defined.choices} == {n for n, (m, _) in COMMANDS.items() if m == module}


def test_a_placeholder_is_never_run(capsys):
    """Options before the command do not hide it, and an unknown command is an argparse error."""
    assert _subparsers(build_parser(["-q", "train", "--help"]))["train"].get_default("handler") is not None
    with pytest.raises(SystemExit) as exit_info:
        build_parser(["bogus"]).parse_args(["bogus"])
    assert exit_info.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_every_option_says_what_it_does():
    """Every option of every command has a help text (or is hidden on purpose);
    --backbone names every backbone and eval's --strategies every strategy."""
    from simsearch import BACKBONES
    from simsearch.evaluate.simulate import STRATEGIES

    def undocumented(path, parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from undocumented(f"{path} {name}", child)
            elif action.option_strings and action.help is None:
                yield f"{path} {action.option_strings[0]}"

    missing = [item for name in COMMANDS for item in undocumented(name, _subparsers(build_parser([name]))[name])]
    assert not missing, missing
    options = {a.dest: a for a in _subparsers(build_parser(["eval"]))["eval"]._actions}
    assert all(name in options["backbone"].help for name in BACKBONES)
    assert all(name in options["strategies"].help for name in STRATEGIES)
    from simsearch.cli.model import plan_from_args  # eval runs both yardsticks unless told otherwise
    eval_args = ["eval", "--images", "i", "--truth", "t", "--classes", "a", "--out", "o"]
    assert plan_from_args(build_parser(eval_args).parse_args(eval_args)).strategies == [
        "similarity", "probe", "pos", "pos+neg+selflearn", "supervised"]


@pytest.mark.parametrize("option, dest, value", [("--min-cells", "min_cells", "8"), ("--pooling", "pooling", "0.2")])
def test_embedding_options_reach_every_command_that_makes_embeddings(option, dest, value):
    """--min-cells and --pooling go into the evaluation's plan (the engine's default where left
    out; the pooling's is 'auto', from each class's boxes), and every command that makes a project
    takes them; the help states the engine's default."""
    from simsearch.cli.model import plan_from_args
    from simsearch.features import geometry

    default = getattr(geometry, dest.upper())
    eval_args = ["eval", "--images", "i", "--truth", "t", "--classes", "a", "--patch-size", "32", "--out", "o"]
    assert getattr(plan_from_args(build_parser(eval_args).parse_args(eval_args)), dest) == ("auto" if dest == "pooling" else default)
    assert getattr(plan_from_args(build_parser(eval_args).parse_args(eval_args + [option, value])), dest) == float(value)
    for name in ("embed", "create", "eval"):
        action = {a.dest: a for a in _subparsers(build_parser([name]))[name]._actions}[dest]
        assert f"default {default:g}" in action.help


def test_pooling_is_the_project_s_and_an_existing_one_refuses_another(tmp_path, capsys):
    """create and embed make the project with the --pooling given; embed on it refuses another."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)).save(images / "a.png")
    for command in ("create", "embed"):
        project = tmp_path / command
        args = [command, str(images), "--project", str(project)]
        assert main(["-q", *args, "--patch-size", "32", "--backbone", "efficientnet-lite0", "--pooling", "0.2"]) == 0
        with Project.open(project) as made:
            assert made.geometry.pooling == 0.2 and made.embedding_options["pooling"] == 0.2
    assert main(["-q", "embed", str(images), "--project", str(tmp_path / "embed"), "--pooling", "0.3"]) == 2
    assert "was made with 0.2, not 0.3" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval"])
def test_classifier_copies_probe_share_and_similarity_gate_are_the_presets_unless_given(command, capsys):
    from simsearch.cli.model import chosen_training

    required = (["--project", "p"] if command == "train"
                else ["--images", "i", "--truth", "t", "--classes", "c", "--patch-size", "32", "--out", "o"])
    parse = build_parser([command]).parse_args
    assert chosen_training(parse([command, *required])).probe_share == 0.5
    assert chosen_training(parse([command, *required, "--preset", "paper"])).probe_share == 0.0
    assert chosen_training(parse([command, *required, "--preset", "paper", "--probe-share", "0.25"])).probe_share == 0.25
    with pytest.raises(SystemExit):
        parse([command, *required, "--probe-share", "1.5"])
    assert "--probe-share: expected a share from 0 to 1, got '1.5'" in capsys.readouterr().err
    assert chosen_training(parse([command, *required])).similarity_gate is True
    assert chosen_training(parse([command, *required, "--preset", "paper"])).similarity_gate is False
    assert chosen_training(parse([command, *required, "--similarity-gate", "off"])).similarity_gate is False
    paper_gated = parse([command, *required, "--preset", "paper", "--similarity-gate", "on"])
    assert chosen_training(paper_gated).similarity_gate is True
    assert chosen_training(parse([command, *required])).classifier_copies == 16
    assert chosen_training(parse([command, *required, "--classifier-copies", "4"])).classifier_copies == 4
    with pytest.raises(SystemExit):
        parse([command, *required, "--classifier-copies", "0"])
    assert "--classifier-copies: expected a whole number >= 1, got '0'" in capsys.readouterr().err

