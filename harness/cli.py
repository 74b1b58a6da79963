"""The `harness` console script: one command for the entry points (installed by scripts/setup.sh).

Usage:
    harness run [overrides ...]            # python -m harness.run: a study, or a sweep with -m
    harness run -m sweep=k_scaling launcher=slurm
    harness agreement benchmark=alpaca_eval benchmark.judge=qwen2.5-coder-0.5b-instruct
    harness analyze RUN_OR_SWEEP_DIR [options]
    harness export RUN_DIR [--evaluate]    # python -m harness.export_alpaca: AlpacaEval files
    harness run --help                     # examples, config groups and their options

Tab completion (bash): the subcommands; Hydra's overrides after `run` and `agreement`; the
options after `analyze` and `export` (file names otherwise):
    eval "$(harness run -sc install=bash)"     # bash; add the line to ~/.bashrc to keep it
    harness run -sc install=fish | source       # fish
"""

from __future__ import annotations

import os
import sys
from importlib import import_module

COMMANDS = {
    "run": "harness.run",  # Hydra
    "agreement": "harness.agreement",  # Hydra
    "analyze": "harness.analyze",  # argparse
    "export": "harness.export_alpaca",  # argparse
}
ARGPARSE = ("analyze", "export")  # their modules have build_parser()


def options(command: str) -> list[str]:
    """The option strings of an argparse subcommand, for tab completion."""
    parser = import_module(COMMANDS[command]).build_parser()
    return [s for action in parser._actions for s in action.option_strings]


def _completion_command(args: list[str]) -> str | None:
    """During Hydra's completion query (`harness -sc query=bash`), the subcommand being typed.

    Bash's hook calls the program with COMP_LINE set; the subcommand is removed from COMP_LINE
    so that Hydra completes the overrides after it.
    """
    line = os.environ.get("COMP_LINE", "")
    words = line.split(" ", 2)
    if len(words) < 3 or words[1] not in COMMANDS:
        return None
    os.environ["COMP_LINE"] = f"{words[0]} {words[2]}"
    point = int(os.environ.get("COMP_POINT", len(line)))
    os.environ["COMP_POINT"] = str(max(0, point - len(words[1]) - 1))
    return words[1]


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] in ("-sc", "--shell-completion"):
        command = _completion_command(args)
        if command is None:  # completing the subcommand itself
            print(" ".join(COMMANDS))
            return
        if command in ARGPARSE:  # bash keeps those matching the word, else completes file names
            print(" ".join(options(command)))
            return
    elif not args or args[0] not in COMMANDS:
        asked = not args or args[0] in ("-h", "--help")
        print(
            __doc__ if asked else f"harness: unknown command {args[0]!r}\n{__doc__}",
            file=sys.stdout if asked else sys.stderr,
        )
        sys.exit(0 if asked else 2)
    else:
        command = args.pop(0)
    sys.argv = [sys.argv[0], *args]  # Hydra and argparse read sys.argv
    status = import_module(COMMANDS[command]).main()
    if isinstance(status, int):  # argparse entry points return their exit status
        sys.exit(status)


if __name__ == "__main__":
    main()
