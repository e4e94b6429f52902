"""``maskgate benchmark``: the per-frame speed of every build against the reference, paired."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .options import add_prefer_option, counts, whole


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    from maskgate.formats import FORMAT_NAMES, PRECISIONS

    pairs = []
    for item in (t.strip() for t in text.split(",") if t.strip()):
        fmt, _, precision = item.partition(":")
        if fmt not in FORMAT_NAMES or precision not in PRECISIONS:
            raise argparse.ArgumentTypeError(f"expected a comma list of FORMAT:PRECISION ({'|'.join(FORMAT_NAMES)} : "
                                             f"{'|'.join(PRECISIONS)}) such as tflite:int8, got {item!r}")
        pairs.append((fmt, precision))
    if not pairs:
        raise argparse.ArgumentTypeError(f"expected a comma list of FORMAT:PRECISION such as tflite:int8, got {text!r}")
    return tuple(pairs)


def add_parser(sub) -> None:
    from maskgate.config import DEFAULT_BUILDS
    from maskgate.profiles import PROFILES

    from ..bench.paired import MIN_ROUNDS, SLOWER_MARGIN
    from .options import names_of

    p = sub.add_parser(
        "benchmark", help="per-frame speed of every format x precision against the PyTorch reference, paired",
        description="Times the whole pipeline (detect, align, classify) per 640x480 camera frame with one face for "
        "the PyTorch fp32 reference and every format x precision under --builds, per profile and thread count, each "
        "in its own process. Every configuration runs the same frame a few times in each round (the fastest "
        "counts), in a shuffled order, so each round gives one ratio per pair; the speed-ups and their 95 % "
        "intervals come from those ratios, and a "
        f"reduced-precision build is flagged SLOWER only when its whole interval against its fp32 sibling lies more "
        f"than {SLOWER_MARGIN:.0%} below 1x (repeatable on a busy machine). Exit 0, or 1 when a configuration could "
        "not run.")
    p.add_argument("--builds", default=DEFAULT_BUILDS, help=f"the builds folder (default {DEFAULT_BUILDS})")
    p.add_argument("--threads", type=counts, default=(1, 2), help="comma list of thread counts (default 1,2)")
    p.add_argument("--profiles", type=names_of(tuple(PROFILES)),
                   help=f"comma list of {','.join(PROFILES)} (default: each whose detector bundles are there)")
    p.add_argument("--only", type=_pairs, metavar="FORMAT:PRECISION,...", help="time only these builds")
    p.add_argument("--rounds", type=whole(at_least=MIN_ROUNDS, what="paired rounds"),
                   default=30, help=f"paired rounds (default 30, at least {MIN_ROUNDS})")
    p.add_argument("--runs-per-round", type=whole(what="runs per round"), default=4, metavar="N",
                   help="runs of the round's frame per configuration; the fastest is its time (default 4)")
    p.add_argument("--no-reference", action="store_true", help="leave the PyTorch reference out (ratios vs fp32 only)")
    add_prefer_option(p, help="device preference of the builds (default cpu: the figures of 'maskgate build')")
    p.add_argument("--json", metavar="FILE", help="write every record as JSON here ('-': on stdout, no table)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..bench import plan_benchmark, run_benchmark
    from ..bench.report import table
    from ..config import active_config
    from ..files import atomic_write, writable_file
    from ..progress import progress_bar

    if args.json and args.json != "-":
        writable_file(args.json, what="the benchmark records", flag="--json")
    plan, notes = plan_benchmark(args.builds, threads=args.threads, profiles=args.profiles, only=args.only,
                                 rounds=args.rounds, block=args.runs_per_round, prefer=args.prefer or "cpu",
                                 reference=not args.no_reference, config_file=active_config().path)
    bar = progress_bar(total=len(plan.threads) * (plan.rounds + 1), unit="round",
                       desc=f"benchmark: {len(plan.configurations)} configurations x {len(plan.threads)} thread counts")
    try:
        report = run_benchmark(plan, notes=notes, on_round=lambda threads, r, rounds: bar.update(1))
    finally:
        bar.close()
    if args.json == "-":
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(table(report))
        if args.json:
            atomic_write(Path(args.json), json.dumps(report.to_dict(), indent=1))
            print(f"records: {args.json}", file=sys.stderr)
    return 1 if any(row.timed.error for row in report.rows) else 0
