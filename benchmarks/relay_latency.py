"""How long the gate's relay waits for its cue: from the moment the decision is made (the
deciding frame's observation) to the ``on_gate`` callback, beside how long the same gate
event then takes to be spooled for the site (SQLite, synchronous=FULL), written to the
events file and printed: what the relay waited for before the callback came first.

    python examples/turnstile/make_test_video.py ../shared/data clip.avi --scenes 16 --builds builds/
    python benchmarks/relay_latency.py clip.avi --builds builds/ [--repeat 3] [--threads 1] [--json out.json]

The spool and the events file go to ``--work`` (default: a temporary folder on the same disk
as the builds), so their fsyncs are the disk's own.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_once(video: Path, builds: Path, work: Path, *, threads: int) -> dict[str, list[float]]:
    from maskgate.config.publish import PublishConfig
    from maskgate.turnstile import TurnstileApp, TurnstileConfig

    relay: list[float] = []
    written: list[float] = []
    pending: dict[int, float] = {}

    def on_gate(gate) -> None:
        relay.append((time.perf_counter() - gate.decided_at) * 1e3)
        pending[gate.frame] = gate.decided_at

    def on_event(record: dict) -> None:  # called once the event is spooled, written and handed on
        if record["event"] == "gate" and record["frame"] in pending:
            written.append((time.perf_counter() - pending.pop(record["frame"])) * 1e3)

    config = TurnstileConfig(source=str(video), builds=builds, threads=threads, events=work / "events.jsonl",
                             publish=PublishConfig(spool=work / "spool"), health_every_s=3600)
    TurnstileApp(config, on_gate=on_gate, on_event=on_event).run()
    return {"relay_ms": relay, "written_ms": written}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--builds", type=Path, default=ROOT / "builds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, help="where the spool and the events file go")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"relay_ms": [], "written_ms": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.work or args.builds.parent) as work:
            for key, values in run_once(args.video, args.builds, Path(work), threads=args.threads).items():
                figures[key] += values
    summary = {key: {"events": len(v), "median": round(float(np.median(v)), 4),
                     "p99": round(float(np.percentile(v, 99)), 4), "max": round(float(np.max(v)), 4)}
               for key, v in figures.items() if v}
    for key, label in (("relay_ms", "decision -> on_gate (the relay)"),
                       ("written_ms", "decision -> spooled, written, printed (the old order's wait)")):
        if key in summary:
            s = summary[key]
            print(f"{label}: median {s['median']:.3f} ms, p99 {s['p99']:.3f} ms, max {s['max']:.3f} ms "
                  f"over {s['events']} gate events")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
