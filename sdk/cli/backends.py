"""``maskgate backends``: every runtime, its version, each accelerator and whether it is usable."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("backends", help="list the runtimes, their devices (npu, gpu, cpu) and why any is unusable")
    p.add_argument("--json", action="store_true", help="print one JSON object per runtime")
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
    return 0
