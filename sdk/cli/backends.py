"""``maskgate backends``: every runtime, its version, each accelerator and whether it is usable;
with ``--builds DIR``, where each bundle's operations really run on each usable accelerator."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("backends", help="list the runtimes, their devices (npu, gpu, cpu) and why any is unusable")
    p.add_argument("--json", action="store_true", help="print one JSON object per runtime")
    p.add_argument("--builds", metavar="DIR", help="also open every bundle here on every usable accelerator of its "
                   "format and show the share of its operations that ran there (the placement)")
    p.set_defaults(func=main)


def main(args) -> int:
    from maskgate.runtimes.registry import statuses

    found = statuses()
    if args.json:
        for status in found:
            print(json.dumps(status.to_dict()))
        return 0
    for status in found:
        title = f"{status.name} {status.version or ''}".strip()
        formats = f" [runs {', '.join(status.formats)} bundles]" if status.formats else " [reference models]"
        plugin = f" (plugin {status.plugin})" if status.plugin else ""
        print(f"{title}{formats}{plugin}")
        if not status.installed:
            print(f"  not usable: {status.reason}")
            continue
        if status.reason:
            print(f"  problem: {status.reason}")
        for a in sorted(
            status.accelerators,
            key=lambda a: ("npu", "gpu", "cpu").index(a.kind) if a.kind in ("npu", "gpu", "cpu") else 9,
        ):
            mark = "yes" if a.usable else "no "
            print(f"  {a.kind:3s} {mark} {a.name}" + (f": {a.reason}" if a.reason else ""))
    if args.builds:
        _placements(args.builds, json_lines=args.json)
    return 0


def _placements(builds: str, *, json_lines: bool) -> None:
    """Each bundle opened (verified) on each usable accelerator of its format's backends."""
    from maskgate.converters.bundle import read_verified
    from maskgate.runtimes.backend import OpenOptions
    from maskgate.runtimes.registry import all_backends
    from maskgate.runtimes.select import readable_bundles

    backends = [(b, b.status()) for b in all_backends()]
    if not json_lines:
        print(f"placement of the bundles in {builds}:")
    for folder, manifest in readable_bundles(builds):
        for backend, status in backends:
            if manifest.format not in backend.formats or not status.installed:
                continue
            for accelerator in (a for a in status.accelerators if a.usable):
                where = f"{backend.name}/{accelerator.name} ({accelerator.kind})"
                try:
                    verified = read_verified(folder)
                    with backend.open(folder, verified.manifest, accelerator,
                                      options=OpenOptions(verified=verified)) as runner:
                        placement = runner.placement
                except Exception as exc:  # one bundle that will not open is a line, not the end
                    text = f"cannot open it: {type(exc).__name__}: {exc}"
                    placement = None
                else:
                    text = placement.describe() + f" ({placement.share:.0%})" if placement else "not measured"
                if json_lines:
                    print(json.dumps({"bundle": folder.name, "runtime": where,
                                      "placement": placement.to_dict() if placement else None, "text": text}))
                else:
                    print(f"  {folder.name} on {where}: {text}")
