"""The ``maskgate`` command line."""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MaskGateError
from . import (
    agent,
    agree,
    backends,
    benchmark,
    build,
    check,
    compare,
    crops,
    evaluate,
    evaluate_classifiers,
    fleet,
    models,
    release,
    run,
    setup,
    sign,
    spool,
    synth,
    train,
    tune_detector,
    turnstile,
)

COMMANDS = (
    run,
    turnstile,
    build,
    check,
    benchmark,
    agree,
    sign,
    release,
    agent,
    fleet,
    spool,
    backends,
    setup,
    models,
    evaluate_classifiers,
    evaluate,
    crops,
    synth,
    train,
    tune_detector,
    compare,
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the options are listed, not the
    whole usage (30 lines for 'maskgate build') above it."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} ('{self.prog} --help' lists what it takes)\n")


def _unrecognized(command: argparse.ArgumentParser, extra: list[str]) -> str:
    """The arguments a command does not take, each unknown option with the nearest it does take."""
    import difflib

    known = [s for action in command._actions for s in action.option_strings if s.startswith("--")]
    parts = []
    for arg in extra:
        near = difflib.get_close_matches(arg.split("=", 1)[0], known, n=1) if arg.startswith("--") else []
        parts.append(f"{arg} (did you mean {near[0]}?)" if near else arg)
    return "unrecognized arguments: " + " ".join(parts)


CONFIG_HELP = ("the MaskGate config file (TOML: [devices], [gates.*], [trust], [data], [turnstile]); default "
               "MASKGATE_CONFIG, else ./maskgate.toml")


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = Parser(prog="maskgate", description="MaskGate: masked-face pipeline for turnstile cameras")
    parser.add_argument("--version", action="version", version=f"maskgate {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log what MaskGate passes over quietly (folders under --builds that are not bundles, say)",
    )
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():  # after the command too; SUPPRESS keeps one given before it
        command_parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=CONFIG_HELP)
        command_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                    help="as 'maskgate --verbose COMMAND'")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = commands.choices[args.command]
        command.error(_unrecognized(command, extra))
    from ..config import restore_config

    before = None
    undo_verbose = _verbose() if args.verbose else None
    try:
        before = _read_config(args.config)
        return int(args.func(args) or 0)
    except MaskGateError as exc:
        print(f"maskgate: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into head, say; not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("maskgate: interrupted", file=sys.stderr)
        return 130
    finally:
        restore_config(before)
        if undo_verbose is not None:
            undo_verbose()


def _verbose():
    """--verbose for this command: native chatter let through and MaskGate's debug log on stderr.
    Returns what undoes it, so that an in-process caller (an app, a test) gets its logging back."""
    from .. import console

    was_verbose = console.VERBOSE
    console.set_verbose(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("maskgate: %(name)s: %(message)s"))
    logger = logging.getLogger("maskgate")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)
        console.set_verbose(was_verbose)

    return undo


def _read_config(path: str | None):
    """The process's config, read and checked before any work (a typo stops the command here);
    returns the config chosen before, which ``main`` restores when the command ends."""
    from maskgate.runtimes.devices import check_device_environment

    from ..config import active_config, chosen_config, use_config
    from ..registry import list_models

    before = use_config(path) if path is not None else chosen_config()
    models = list_models()
    active_config().check_models(models)
    check_device_environment(models)  # MASKGATE_DEVICE and its per-model variables
    return before


def entry() -> None:
    """The ``maskgate`` console command: ``main``, then an exit that a camera read still under way
    in OpenCV cannot turn into an abort (native_calls.py)."""
    from ..native_calls import leave

    code = main()
    leave(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
