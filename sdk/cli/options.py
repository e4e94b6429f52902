"""Arguments shared by several commands."""
from __future__ import annotations

import argparse

from ..detector import DEFAULT_DETECTOR


def size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"input size must be at least 32x32, got {text!r}")
    return w, h


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a score between 0 and 1, got {text}")
    return value


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"registered detector (default {DEFAULT_DETECTOR}; see 'maskgate models')",
    )
    parser.add_argument(
        "--weights", help="a biubug6 RetinaFace checkpoint (.pth) to use instead of the packaged weights"
    )
    parser.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--min-score", type=probability, default=None, help="face score threshold (default 0.5)")
    parser.add_argument("--input-size", type=size, default=None, help="detector canvas WIDTHxHEIGHT (default 640x480)")


def add_trust_options(p) -> None:
    """--verify-key / --allow-failed-builds: which bundles may run (maskgate.runtimes.trust)."""
    p.add_argument("--verify-key", metavar="FILE", help="run only bundles signed with this key (Ed25519 public key or "
                   "HMAC secret; default: [trust] verify_key in maskgate.toml / MASKGATE_CONFIG)")
    p.add_argument(
        "--allow-failed-builds",
        action="store_true",
        default=None,
        help="also run bundles that failed their gates when built, or were never checked (not for production)",
    )


def trust_from(args):
    from maskgate.runtimes.trust import configured_trust

    return configured_trust(verify_key=args.verify_key, allow_failed_builds=args.allow_failed_builds)
