"""``maskgate check BUNDLE_OR_BUILD_DIR``: integrity, fidelity against the fp32 reference
stored in each bundle, latency, and per-precision gates; exit 0 only when all pass."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="verify bundles against their fp32 reference (works without torch)")
    p.add_argument("path", help="a bundle folder, or a builds folder from 'maskgate build --out'")
    p.add_argument("--prefer", metavar="KINDS", help="device preference, e.g. npu,gpu,cpu (default; or MASKGATE_DEVICE)")
    p.add_argument("--threads", type=int, help="CPU threads per model (default: the runtime's)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per bundle after 5 warm-up runs (default 50)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON here")
    for name, what in (("min-top1", "classifier top-1 agreement"), ("min-recall", "share of reference detections found"),
                       ("min-cosine", "classifier output cosine similarity"),
                       ("max-landmark-nme", "landmark error / inter-ocular distance")):
        p.add_argument(f"--{name}", type=float, help=f"gate on {what}, for every precision (default per precision)")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..check import DEFAULT_GATES, check_builds
    from ..check.checker import REPORT_SCHEMA_VERSION

    overrides = {"min_top1": args.min_top1, "min_recall": args.min_recall, "min_cosine": args.min_cosine,
                 "max_landmark_nme": args.max_landmark_nme}
    results = check_builds(args.path, progress=True, prefer=args.prefer, threads=args.threads, runs=args.runs,
                           gate_overrides=overrides)
    _print_table(results)
    if args.json:
        report = {"schema_version": REPORT_SCHEMA_VERSION, "path": str(args.path), "passed": all(results),
                  "gates": {k: v.with_overrides(**overrides).__dict__ for k, v in DEFAULT_GATES.items()},
                  "bundles": [r.to_dict() for r in results]}
        Path(args.json).write_text(json.dumps(report, indent=1))
    failed = [r for r in results if not r]
    for r in failed:
        print(f"FAILED {r.name or r.bundle}: " + "; ".join(r.failures()), file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} bundle(s) passed")
    return 0 if not failed else 1


def _print_table(results) -> None:
    rows = [("bundle", "runtime", "fidelity", "p50 ms", "p90 ms", "result")]
    for r in results:
        if r.top1_agreement is not None:
            fidelity = f"top-1 {r.top1_agreement:.1%} (n={r.samples})"
        elif r.detections:
            d = r.detections
            fidelity = f"det {d['found']}/{d['reference']}, nme {d['landmark_nme'] or 0:.3f}"
        else:
            fidelity = "-"
        lat = r.latency_ms or {}
        rows.append((r.name or Path(r.bundle).name, r.runtime or "-", fidelity, f"{lat['p50']:.2f}" if lat else "-",
                     f"{lat['p90']:.2f}" if lat else "-", "pass" if r else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
