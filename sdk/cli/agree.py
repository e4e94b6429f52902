"""``maskgate agree REFERENCE OTHER``: the pipeline's results on two machines, face by face
(a camera or an emulated ARM CPU against the workstation)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..config.gates import SAME_BUILDS
from .options import number, share


def add_parser(sub) -> None:
    p = sub.add_parser("agree", help="compare 'maskgate run --json' results of two machines, face by face",
                       description="Matches the faces of REFERENCE and OTHER (JSON lines of 'maskgate run SOURCE "
                       "--builds DIR --json', images keyed by file name) by box IoU and reports the share of "
                       "reference faces found, extra faces, mask-label and yaw-class agreement on matched faces, and "
                       "score, box and landmark differences. Exit 1 when below --min-found or --min-mask.")
    p.add_argument("reference", help="results of the trusted machine (the workstation)")
    p.add_argument("other", help="results of the machine under test (the camera)")
    p.add_argument("--iou", type=number(what="a box overlap", above=0, at_most=1),
                   default=0.5, help="box IoU for a match (default 0.5)")
    p.add_argument("--min-found", type=share("a share of faces"),
                   help=f"share of reference faces found (default [gates.same_builds] "
                   f"min_found, else {SAME_BUILDS.min_found})")
    p.add_argument("--min-mask", type=share("a share of faces"),
                   help=f"share of matched faces with the same mask label (default "
                   f"[gates.same_builds] min_same_mask, else {SAME_BUILDS.min_same_mask})")
    p.add_argument("--json", metavar="FILE", help="write the agreement as JSON here")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..check.agreement import agreement, load_results
    from ..check.gates import configured_gates
    from ..files import atomic_write

    gate = configured_gates().same_builds  # a bad config file fails here, before any work
    min_found = gate.min_found if args.min_found is None else args.min_found
    min_mask = gate.min_same_mask if args.min_mask is None else args.min_mask
    result = agreement(load_results(args.reference), load_results(args.other), iou=args.iou)
    print(f"{args.other} against {args.reference}: {result.describe()}")
    for name, frame, box in result.missed[:10]:
        print(f"  missed: {name} frame {frame} box {[round(v) for v in box]}")
    if args.json:
        atomic_write(Path(args.json), json.dumps(result.to_dict(), indent=1))
    problems = []
    if result.found < min_found:
        problems.append(f"found {result.found:.2%} < {min_found:.2%}")
    if result.mask_agreement < min_mask:
        problems.append(f"mask agreement {result.mask_agreement:.2%} < {min_mask:.2%}")
    if problems:
        print("DISAGREES: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0
