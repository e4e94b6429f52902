"""A site's load on one broker: many simulated cameras publishing passage events and health to
one Mosquitto on loopback, counted by the site listener.

    python benchmarks/site_load.py [--cameras 50] [--rate 5] [--minutes 10] [--restarts 2]
        [--json out.json]

Each camera is a real ``maskgate.publish.Publisher`` (its own durable spool, its own MQTT
client, QoS 1) publishing ``--rate`` passage events a second and its retained health once a
second; all cameras run in one child process, the listener (``examples/site/listener.py``,
persistent session, dedupe by id) in this one, the broker in its own. With ``--restarts N``
the broker is stopped (SIGTERM, as a service manager does) N times during the run, 5 s
each, at even intervals. After the run the cameras stop publishing and get up to 120 s to
empty their spools.

Reported: events published (returned by the spool) and received once by the listener, lost
(published, never received), duplicates dropped, delivery latency (arrival minus the
event's wall-clock time: p50, p99, max), and the CPU time of the broker, the cameras' process
and the listener over the run, as a share of one core. A benchmark, not a test: bounded,
loopback only, figures go in docs/benchmarks.md, never in assertions.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "site"))


def _cpu_s(pid: int) -> float:
    """utime + stime of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cameras(url: str, count: int, rate: float, seconds: float, spools: Path) -> dict:
    """The child process: ``count`` publishers, ``rate`` events/s each for ``seconds``."""
    from maskgate.publish import Publisher, publish_config, wall_time

    publishers = [Publisher(publish_config(targets=(url,), site="load", camera=f"cam{i:03d}",
                                           spool=spools / f"cam{i:03d}"), role="load", log=lambda line: None).start()
                  for i in range(count)]
    published = [0] * count
    start = time.monotonic()
    next_health = start
    tick = 1.0 / rate
    period = 0
    while time.monotonic() - start < seconds:
        for i, publisher in enumerate(publishers):
            if publisher.publish("events", {"event": "passage", "wall_time": wall_time(),
                                                      "decision": "OPEN", "n": published[i]}) is not None:
                published[i] += 1
        if time.monotonic() >= next_health:
            for publisher in publishers:
                publisher.health({"fps": 15.0})
            next_health += 1.0
        period += 1
        time.sleep(max(0.0, start + period * tick - time.monotonic()))
    publishing_s = time.monotonic() - start
    deadline = time.monotonic() + 120
    left = None
    while time.monotonic() < deadline:
        left = sum(p.spool.stats().depth for p in publishers)
        if left == 0:
            break
        time.sleep(0.2)
    for publisher in publishers:
        publisher.close(drain_s=0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"published": sum(published), "per_camera": published, "left_in_spools": left,
            "publishing_s": round(publishing_s, 1), "cpu_s": usage.ru_utime + usage.ru_stime}


def run(args) -> dict:
    from listener import SiteListener
    from mosquitto import Mosquitto

    folder = Path(tempfile.mkdtemp(prefix="site-load-"))
    broker = Mosquitto(folder / "broker").start()
    listener = SiteListener(broker.url, client_id="site-load-listener").start()
    time.sleep(0.5)
    listener_cpu0 = time.process_time()
    broker_cpu = 0.0
    broker_cpu0 = _cpu_s(broker.process.pid)
    seconds = args.minutes * 60
    child = subprocess.Popen([sys.executable, __file__, "--cameras-process", broker.url, "--cameras", str(args.cameras),
                              "--rate", str(args.rate), "--seconds", str(seconds), "--spools", str(folder / "spools")],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    began = time.monotonic()
    restarts_at = [seconds * (k + 1) / (args.restarts + 1) for k in range(args.restarts)]
    for at in restarts_at:
        time.sleep(max(0.0, began + at - time.monotonic()))
        broker_cpu += _cpu_s(broker.process.pid) - broker_cpu0
        broker.stop()
        print(f"broker stopped at {time.monotonic() - began:.0f} s", file=sys.stderr)
        time.sleep(5)
        broker.start()
        broker_cpu0 = _cpu_s(broker.process.pid)
    out, _ = child.communicate()
    wall = time.monotonic() - began
    broker_cpu += _cpu_s(broker.process.pid) - broker_cpu0
    camera = json.loads(out.strip().splitlines()[-1])
    listener.received.wait_for(lambda r: len(r.events) >= camera["published"], 30)
    listener_cpu = time.process_time() - listener_cpu0
    received = listener.received
    listener.stop()
    broker.stop()
    latency = np.array(received.latency_s or [np.nan]) * 1e3
    per_camera = {}
    for event in received.events:
        per_camera[event["camera"]] = per_camera.get(event["camera"], 0) + 1
    in_order = all(
        [e["seq"] for e in received.events if e["camera"] == cam] ==
        sorted(e["seq"] for e in received.events if e["camera"] == cam) for cam in per_camera)
    return {
        "cameras": args.cameras, "rate_per_camera": args.rate, "minutes": args.minutes,
        "broker_restarts": args.restarts,
        "published": camera["published"], "received": len(received.events),
        "lost": camera["published"] - len(received.events), "duplicates_dropped": received.duplicates,
        "left_in_spools": camera["left_in_spools"], "in_order_per_camera": in_order,
        "latency_ms": {"p50": round(float(np.percentile(latency, 50)), 1),
                       "p99": round(float(np.percentile(latency, 99)), 1), "max": round(float(np.max(latency)), 1)},
        "cpu_share_of_one_core": {"broker": round(broker_cpu / wall, 3), "cameras": round(camera["cpu_s"] / wall, 3),
                                  "listener": round(listener_cpu / wall, 3)},
        "wall_s": round(wall, 1),
    }


def main() -> int:
    from maskgate.cli.options import number, whole

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=whole(what="cameras"), default=50)
    parser.add_argument("--rate", type=number(what="events per second", above=0),
                        default=5.0, help="passage events per second per camera")
    parser.add_argument("--minutes", type=number(what="minutes", above=0), default=10.0)
    parser.add_argument("--restarts", type=whole(at_least=0, what="restarts"),
                        default=0, help="stop and restart the broker this many times")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cameras-process", metavar="URL", help=argparse.SUPPRESS)  # internal: the child
    parser.add_argument("--seconds", type=number(what="seconds", above=0), help=argparse.SUPPRESS)
    parser.add_argument("--spools", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cameras_process:
        print(json.dumps(cameras(args.cameras_process, args.cameras, args.rate, args.seconds, args.spools)))
        return 0
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
