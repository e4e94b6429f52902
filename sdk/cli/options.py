"""Arguments shared by several commands."""
from __future__ import annotations

import argparse
import math
import re

from ..detector import DEFAULT_DETECTOR


def size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f"input size must be at least 32x32, got {text!r}")
    return w, h


def whole(*, at_least: int = 1, what: str = "a count"):
    """A whole-number option's type, refused below ``at_least`` as the command line is read
    (``--max-frames 0`` ran nothing and said nothing; ``--epochs 0`` quietly took the default)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < at_least:
            raise argparse.ArgumentTypeError(f"expected {what}, a whole number >= {at_least}, got {text!r}")
        return value
    return parse


def number(*, what: str, at_least: float | None = None, above: float | None = None, at_most: float | None = None):
    """A finite number option's type with its range (``at_least`` / ``above``, ``at_most``)."""
    bounds = [f">= {at_least:g}" if at_least is not None else "", f"> {above:g}" if above is not None else "",
              f"<= {at_most:g}" if at_most is not None else ""]
    accepted = " and ".join(b for b in bounds if b)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (not math.isfinite(value) or (at_least is not None and value < at_least)
                or (above is not None and value <= above) or (at_most is not None and value > at_most)):
            raise argparse.ArgumentTypeError(f"expected {what}, a number {accepted}, got {text!r}")
        return value
    return parse


def share(what: str):
    """A share or score between 0 and 1."""
    return number(what=what, at_least=0.0, at_most=1.0)


def port(*, any_free: bool = False):
    """A TCP port option's type: 1-65535, or 0 too (any free port) where ``any_free``."""
    lowest = 0 if any_free else 1

    def parse(text: str) -> int:
        if not text.strip().isdigit() or not lowest <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"expected a TCP port, a whole number from {lowest} to 65535"
                                             + (" (0: any free one)" if any_free else "") + f", got {text!r}")
        return int(text)
    return parse


probability = share("a score")


def torch_device(text: str) -> str:
    """``--device`` of run, eval, crops and train (and build's --reference-device): a PyTorch
    device; whether a GPU is there is known only when the model is placed."""
    if text.lower() in ("auto", "cpu", "gpu", "cuda") or re.fullmatch(r"cuda:\d+", text.lower()):
        return text
    raise argparse.ArgumentTypeError(f"expected a PyTorch device: auto, cpu, cuda or cuda:N, got {text!r}")


def model_of(role: str, *, allow_none: bool = False):
    """``--detector`` / ``--mask-model`` / ``--pose-model``: a registered model of that role,
    checked as the command line is read (so the error names the flag)."""
    def parse(text: str) -> str:
        from ..errors import ModelError
        from ..registry import get_spec, list_models

        if allow_none and text == "none":
            return text
        try:
            spec = get_spec(text)
        except ModelError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if not _plays(spec, role):
            fitting = [n for n in list_models() if _plays(get_spec(n), role)]
            raise argparse.ArgumentTypeError(f"{text} is not a {role} model; the {role} models are "
                                             f"{', '.join(fitting)}" + (" (or none)" if allow_none else ""))
        return text
    return parse


def _plays(spec, role: str) -> bool:
    return spec.task == "face_detection" if role == "detector" else spec.task == "classification" and role in spec.tags


def preference(text: str) -> str:
    """``--prefer``'s type: a device preference, checked as the command line is read."""
    from maskgate.runtimes.devices import parse_preference

    from ..errors import InputError

    try:
        parse_preference(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace(" (from argument)", "")) from None
    return text


def names_of(choices: tuple[str, ...]):
    """A comma list option's type: each name one of ``choices``, repeats dropped, none empty."""
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(choices)}, got {text!r}")
        return items
    return parse


#: ``--threads N``: CPU threads per model, 1 or more.
threads_count = whole(what="CPU threads per model")


def counts(text: str) -> tuple[int, ...]:
    """A comma list of whole numbers of at least 1 (thread counts, say)."""
    try:
        items = tuple(dict.fromkeys(int(t) for t in text.split(",") if t.strip()))
    except ValueError:
        items = ()
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of whole numbers of at least 1 such as 1,2, "
                                         f"got {text!r}")
    return items


def needs(args, *, flag: str, given: str | tuple[str, ...], value, why: str = "") -> None:
    """Refuse the options of ``given`` set on the command line where ``flag`` is not (``value``
    None): they would do nothing, and the run would look as if they had (``--data-limit``
    without ``--data``). ``why``: what ``flag`` is for, said in the refusal."""
    from ..errors import InputError

    idle = [g for g in ((given,) if isinstance(given, str) else given)
            if getattr(args, g.lstrip("-").replace("-", "_")) is not None]
    if idle and value is None:
        one = len(idle) == 1
        raise InputError(f"{', '.join(idle)} appl{'ies' if one else 'y'} only with {flag}"
                         + (f" ({why})" if why else "") + f"; add {flag} or leave {idle[0] if one else 'them'} out")


class _Renamed(argparse.Action):
    """An option this command does not take under that name: refused with the name it has here."""

    def __init__(self, option_strings, dest, *, instead: str, why: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.instead, self.why = instead, why

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is {self.why}; here it is {self.instead}")


def add_prefer_option(parser: argparse.ArgumentParser, *, help: str) -> None:
    """``--prefer KINDS``, the runtime's device preference; ``--device`` is refused with that
    name (it is the PyTorch device of run, eval, crops and train)."""
    parser.add_argument("--prefer", type=preference, metavar="KINDS", help=help)
    parser.add_argument("--device", action=_Renamed, instead="--prefer KINDS (e.g. --prefer npu,cpu)",
                        why="the PyTorch device of run, eval, crops and train")


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detector",
        type=model_of("detector"),
        default=DEFAULT_DETECTOR,
        help=f"registered detector (default {DEFAULT_DETECTOR}; see 'maskgate models')",
    )
    parser.add_argument(
        "--weights", help="a biubug6 RetinaFace checkpoint (.pth) to use instead of the packaged weights"
    )
    parser.add_argument("--device", type=torch_device, default="auto",
                        help="auto (GPU if present), cpu, cuda or cuda:N (default auto)")
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
