"""`simsearch tui`: the terminal UI, from its own package (installed with the `tui` extra)."""
from __future__ import annotations


from simsearch.cli.commands import add_device, add_parser, add_quiet, add_target, target_of
from simsearch.util.errors import ConfigError


def add_commands(sub) -> None:
    tui = add_parser(sub, "tui")
    add_target(tui, default=None, metavar="PROJECT_OR_DATASET",
               help="a project folder, or images (folder, glob, list file) for the new-project wizard (default: here)")
    add_device(tui)
    add_quiet(tui)
    tui.set_defaults(handler=cmd_tui)


def cmd_tui(args, quiet: bool) -> int:
    try:  # the UI package, loaded only here: the engine never imports textual
        from simsearch_tui.__main__ import run
    except ModuleNotFoundError as error:
        if error.name not in ("simsearch_tui", "textual", "textual_image"):
            raise
        raise ConfigError(f"the terminal UI is not installed ({error.name} is missing)",
                          hint="pip install 'simsearch[tui]'") from None
    run(target_of(args), args.device)
    return 0
