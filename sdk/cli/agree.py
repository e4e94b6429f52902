"""``maskgate agree REFERENCE OTHER``: the pipeline's results on two machines, face by face
(a camera or an emulated ARM CPU against the workstation)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("agree", help="compare 'maskgate run --json' results of two machines, face by face",
                       description="Matches the faces of REFERENCE and OTHER (JSON lines of 'maskgate run SOURCE "
                       "--builds DIR --json', images keyed by file name) by box IoU and reports the share of "
                       "reference faces found, extra faces, mask-label and yaw-class agreement on matched faces, and "
                       "score, box and landmark differences. Exit 1 when below --min-found or --min-mask.")
    p.add_argument("reference", help="results of the trusted machine (the workstation)")
    p.add_argument("other", help="results of the machine under test (the camera)")
    p.add_argument("--iou", type=float, default=0.5, help="box IoU for a match (default 0.5)")
    p.add_argument("--min-found", type=float, default=0.99, help="share of reference faces found (default 0.99)")
    p.add_argument("--min-mask", type=float, default=0.995,
                   help="share of matched faces with the same mask label (default 0.995)")
    p.add_argument("--json", metavar="FILE", help="write the agreement as JSON here")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..check.agreement import agreement, load_results
    from ..files import atomic_write

    result = agreement(load_results(args.reference), load_results(args.other), iou=args.iou)
    print(f"{args.other} against {args.reference}: {result.describe()}")
    for name, frame, box in result.missed[:10]:
        print(f"  missed: {name} frame {frame} box {[round(v) for v in box]}")
    if args.json:
        atomic_write(Path(args.json), json.dumps(result.to_dict(), indent=1))
    problems = []
    if result.found < args.min_found:
        problems.append(f"found {result.found:.2%} < {args.min_found:.2%}")
    if result.mask_agreement < args.min_mask:
        problems.append(f"mask agreement {result.mask_agreement:.2%} < {args.min_mask:.2%}")
    if problems:
        print("DISAGREES: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0
