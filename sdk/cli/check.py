"""``maskgate check BUNDLE_OR_BUILD_DIR``: integrity, fidelity against the fp32 reference
stored in each bundle, latency, and per-precision gates; exit 0 only when all pass."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import add_prefer_option, needs, number, share, threads_count, whole


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="verify bundles against their fp32 reference (works without torch)")
    p.add_argument("path", help="a bundle folder, or a builds folder from 'maskgate build --out'")
    add_prefer_option(p, help="device preference, e.g. npu,gpu,cpu (default; or MASKGATE_DEVICE)")
    p.add_argument("--threads", type=threads_count, help="CPU threads per model (default: the runtime's)")
    p.add_argument("--runs", type=whole(what="timed runs"),
                   default=50, help="timed runs per bundle after 5 warm-up runs (default 50)")
    p.add_argument("--data", metavar="DIR", help="labelled data for task metrics: a data folder like ../shared/data "
                   "(faces/ + scenes/) or a crop set from 'maskgate crops'")
    p.add_argument("--split", choices=("test", "val", "train"), help="split of --data (default test)")
    p.add_argument("--data-limit", type=whole(what="source images"),
                   metavar="N", help="at most N source images of faces/ and of scenes/ each")
    p.add_argument("--verify-key", metavar="FILE", help="require every bundle to be signed with this key (Ed25519 "
                   "public key or HMAC secret; default: [trust] verify_key in maskgate.toml / MASKGATE_CONFIG)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON here")
    p.add_argument("--html", metavar="FILE", help="write an HTML report with plots here")
    for name, what, kind in (
        ("min-top1", "classifier top-1 agreement", share("a share")),
        ("min-recall", "share of reference detections found", share("a share")),
        ("min-cosine", "classifier output cosine similarity", share("a similarity")),
        ("max-landmark-nme", "landmark error / inter-ocular distance", number(what="an error", at_least=0)),
    ):
        p.add_argument(f"--{name}", type=kind, help=f"gate on {what}, for every precision "
                       "(default per precision, or [gates.<precision>] in maskgate.toml / MASKGATE_CONFIG)")
    p.add_argument("--publish", action="append", metavar="URL",
                   help="send the check's summary to the site: mqtt://HOST:PORT (retained, QoS 1, on "
                   "maskgate/SITE/CAMERA/check) or http(s)://HOST/PATH; repeatable. Kept in --spool until delivered")
    p.add_argument("--site", help="this site's name (with --publish; default site)")
    p.add_argument("--camera", help="this camera's name (with --publish; default camera)")
    p.add_argument("--spool", metavar="DIR", help="the event spool (default ./maskgate-spool; the turnstile app's "
                   "spool sends what is left in it)")
    p.set_defaults(func=main)


def main(args) -> int:
    from maskgate.runtimes.trust import configured_trust

    from ..check import check_builds
    from ..check.checker import CheckReport, check_pipelines
    from ..check.gates import configured_gates
    from ..files import atomic_write, writable_file

    for flag, path in (("--json", args.json), ("--html", args.html)):  # not after every check has run
        if path:
            writable_file(path, what="the check report", flag=flag)
    needs(args, flag="--data DIR", given=("--split", "--data-limit"), value=args.data)
    needs(args, flag="--publish URL", given=("--site", "--camera", "--spool"), value=args.publish,
          why="the check's summary sent to the site")
    trust = configured_trust(verify_key=args.verify_key)  # a bad key or config fails here, before any work
    publish = None
    if args.publish:  # a bad target fails here, before any work
        from ..publish import publish_config

        publish = publish_config(targets=tuple(args.publish), site=args.site or "site",
                                 camera=args.camera or "camera", spool=args.spool, where="--publish")
    overrides = {"min_top1": args.min_top1, "min_recall": args.min_recall, "min_cosine": args.min_cosine,
                 "max_landmark_nme": args.max_landmark_nme}
    gates = configured_gates(overrides)  # a bad config file fails here, before any work
    task_data = None
    if args.data:
        from ..check.task import TaskData

        task_data = TaskData.load(args.data, builds=args.path, split=args.split or "test", limit=args.data_limit,
                                  prefer=args.prefer, threads=args.threads, progress=True)
        print(f"task data: {task_data.describe()}; crops cut by {task_data.cut_by}")
    results = check_builds(args.path, progress=True, prefer=args.prefer, threads=args.threads, runs=args.runs,
                           gate_overrides=overrides, task_data=task_data, trust=trust)
    report = CheckReport(str(args.path), results, gates.to_dict(),
                         data=task_data.describe() if task_data else None)
    if task_data is not None:
        report.pipelines = check_pipelines(
            args.path, task_data, prefer=args.prefer, threads=args.threads, progress=True
        )
    _print_table(results, threads=args.threads)
    if report.pipelines:
        _print_pipelines(report.pipelines)
    if args.json:
        atomic_write(Path(args.json), json.dumps(report.to_dict(), indent=1))
    if args.html:
        from ..check.html import check_html

        atomic_write(Path(args.html), check_html(report))
        print(f"wrote {args.html}")
    for r in results:
        if r.rebuild is not None and not r.rebuild.identical:
            print(f"note {r.name}: {r.rebuild.describe()}; its figures are the rebuilt model's")
    failed = [r for r in results if not r]
    for r in failed:
        print(f"FAILED {r.name or r.bundle}: " + "; ".join(r.failures()), file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} bundle(s) passed")
    _record(args.path, report, publish)
    return 0 if not failed else 1


def _record(path, report, publish) -> None:
    """Keep the check's summary beside the builds (the turnstile app's health and metrics read
    it) and, with --publish, send it to the site."""
    from maskgate.converters.manifest import MANIFEST

    from ..publish.fleet import check_summary, write_last_check

    summary = check_summary(report.to_dict())
    # Kept for a builds folder only: a file added inside a bundle would change what its manifest covers.
    is_builds = Path(path).is_dir() and not (Path(path) / MANIFEST).is_file()
    problem = write_last_check(path, summary) if is_builds else None
    if problem:
        print(f"note: the check's summary is not kept beside the builds ({problem})", file=sys.stderr)
    if publish is None:
        return
    from ..publish import Publisher, wall_time

    publisher = Publisher(publish, role="check", will=False).start()
    try:
        publisher.publish("check", {"event": "check", "wall_time": wall_time(), **summary})
        delivered = publisher.drain(10.0)
    finally:
        publisher.close(drain_s=0, reason=None)
    where = ", ".join(t.name for t in publish.targets)
    if delivered:
        print(f"check sent to {where} ({publish.topic('check')})")
    else:
        print(f"check not yet taken by {where}: kept in the spool {publish.spool}; the next run that publishes "
              "from it sends it", file=sys.stderr)


def _print_pipelines(pipelines: list[dict]) -> None:
    print("\nwhole pipeline on the labelled scenes (a face counts when found AND its mask label is right):")
    for p in pipelines:
        if p.get("error"):
            print(f"  {p['format']:>8s} {p['precision']}: {p['error']}")
            continue
        print(f"  {p['format']:>8s} {p['precision']}: {p['correct']}/{p['faces']} faces >= {p['min_face_px']:g}px "
              f"= {p['accuracy_of_all']:.2%} (found {p['found']}, mask right on {p['accuracy_of_found']:.2%} of found)")


def _print_table(results, *, threads: int | None) -> None:
    from ..bench.report import usable_cores
    from ..check.task import summary

    with_task = any(r.task_metrics for r in results)
    rows = [("bundle", "runtime", "fidelity", *(("task metric",) if with_task else ()), "p50 ms", "p90 ms", "result")]
    for r in results:
        if r.top1_agreement is not None:
            fidelity = f"top-1 {r.top1_agreement:.1%} (n={r.samples})"
        elif r.detections is not None:
            d = r.detections
            fidelity = f"det {d.found}/{d.reference}, nme {d.landmark_nme or 0:.3f}"
        else:
            fidelity = "-"
        lat = r.latency_ms
        task = (summary(r.task_metrics),) if with_task else ()
        rows.append(
            (
                r.name or Path(r.bundle).name,
                r.runtime or "-",
                fidelity,
                *task,
                f"{lat.p50:.2f}" if lat else "-",
                f"{lat.p90:.2f}" if lat else "-",
                "pass" if r else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))
    # The build times at 1 thread: without this line the same bundle looked 2x apart in the two tables.
    used = (f"{threads} thread(s) per model (--threads)" if threads else
            f"the runtime's own thread count (all {usable_cores()} cores here; --threads N to set it)")
    print(f"p50/p90: one inference, on {used}; 'maskgate build' times at 1 thread ('maskgate check --threads 1' "
          "gives its figures)")
