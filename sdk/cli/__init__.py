"""The ``maskgate`` command line."""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import MaskGateError
from . import (
    agree,
    backends,
    build,
    check,
    compare,
    crops,
    evaluate,
    evaluate_classifiers,
    models,
    run,
    setup,
    sign,
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
    agree,
    sign,
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


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="maskgate", description="MaskGate: masked-face pipeline for turnstile cameras"
    )
    parser.add_argument("--version", action="version", version=f"maskgate {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log what MaskGate passes over quietly (folders under --builds that are not bundles, say)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        from ..console import set_verbose

        set_verbose(True)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("maskgate: %(name)s: %(message)s"))
        logger = logging.getLogger("maskgate")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
