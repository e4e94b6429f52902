"""The turnstile app talking to its site, as a process on a live stream, with a real Mosquitto
on loopback: a 30 s broker outage mid-stream, SIGKILL and restart, a malformed
[turnstile.publish], an unreachable broker, Prometheus metrics, and ``maskgate check
--publish``. Issue 19's acceptance."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from maskgate.publish import Spool
from tests.conftest import ROOT
from tests.streams import FPS, GAP, HOLD, paced_http_stream
from tests.test_publish import broker, listener_for  # noqa: F401 (the broker fixture)

MASKGATE = Path(sys.executable).parent / "maskgate"
SITE, CAMERA = "hq", "gate-1"
FIRST_PAUSE = GAP + 3 * (HOLD + GAP)  # the stream holds after three people


def start_app(source: str, builds: Path, tmp_path: Path, *extra: str, spool: Path | None = None,
              events: Path | None = None) -> subprocess.Popen:
    spool = spool or tmp_path / "spool"
    events = events or tmp_path / "events.jsonl"
    return subprocess.Popen([str(MASKGATE), "turnstile", source, "--builds", str(builds), "--events", str(events),
                             "--threads", "1", "--site", SITE, "--camera", CAMERA, "--spool", str(spool), *extra],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def wait_until(condition, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the app ended while waiting for {what}: {proc.stderr.read()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout_s:.0f} s")


def wait_for_a_passage_at_the_site(listener, proc: subprocess.Popen) -> None:
    wait_until(lambda: any(e["event"] == "passage" for e in listener.received.of_camera(SITE, CAMERA)), 600,
               "passage at the site", proc)


def passages(path: Path) -> int:
    return sum(r["event"] == "passage" for r in records(path))


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> str:
    """Send ``sig`` (None: let it end by itself) and collect its stderr."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return err


def in_order_once(got: list[dict]) -> None:
    seqs = [e["seq"] for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs


@pytest.mark.shared_data
def test_a_30_s_broker_outage_mid_stream_loses_no_event(gate_builds, gate_video, broker, tmp_path):  # noqa: F811
    video, labels = gate_video
    events = tmp_path / "events.jsonl"
    with listener_for(broker) as listener, \
            paced_http_stream(video, fps=FPS, pause_after=FIRST_PAUSE, hold_at_end=True) as (url, release):
        proc = start_app(url, gate_builds, tmp_path, "--publish", broker.url, "--health-every", "1")
        try:
            wait_for_a_passage_at_the_site(listener, proc)
            broker.stop()
            stopped = time.monotonic()
            release.set()  # the rest of the people pass while the broker is away
            wait_until(lambda: passages(events) >= len(labels), 300, "every passage decided", proc)
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
            waiting = Spool(tmp_path / "spool").stats().depth
            assert waiting >= len(labels) - 3, f"only {waiting} events waited in the spool"
            broker.start()
            decided = {r["id"] for r in records(events)}
            wait_until(lambda: decided <= listener.received.ids, 120, "every decided event at the site", proc)
            err = stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        wait_until(lambda: any(e["event"] == "stop" for e in listener.received.of_camera(SITE, CAMERA)), 30,
                   "the stop event at the site")
    assert proc.returncode == 0, err[-3000:]
    written = records(events)
    got = listener.received.of_camera(SITE, CAMERA)
    assert [e["id"] for e in got] == [r["id"] for r in written]  # every event, once, in the camera's order
    in_order_once(got)
    assert sum(e["event"] == "passage" for e in got) == len(labels)
    assert err.count("unavailable") == 1 and "taking events again" in err
    assert "spool" in err and " DOWN: " in err  # the health lines said so while it was away
    assert listener.health[(SITE, CAMERA)]["status"] == "offline"
    assert listener.health[(SITE, CAMERA)]["reason"] == "SIGTERM"


@pytest.mark.shared_data
def test_events_decided_before_a_sigkill_arrive_after_the_restart(gate_builds, gate_video, broker, tmp_path):  # noqa: F811
    video, labels = gate_video
    events = tmp_path / "events.jsonl"
    with listener_for(broker) as listener, \
            paced_http_stream(video, fps=FPS, pause_after=FIRST_PAUSE, hold_at_end=True) as (url, release):
        first = start_app(url, gate_builds, tmp_path, "--publish", broker.url)
        try:
            wait_for_a_passage_at_the_site(listener, first)
            at_site = passages(events)
            broker.stop()
            release.set()
            wait_until(lambda: passages(events) >= at_site + 3, 300, "three passages while the broker is away", first)
        finally:
            stop(first, signal.SIGKILL)
        decided = records(events)
        assert decided and decided[-1]["event"] != "stop"  # killed: no clean end
        assert not {r["id"] for r in decided} <= listener.received.ids  # some were only in the spool
        broker.start()
        second = start_app(url, gate_builds, tmp_path, "--publish", broker.url)
        try:
            wait_until(lambda: {r["id"] for r in decided} <= listener.received.ids, 120,
                       "the events decided before the kill", second)
        finally:
            err = stop(second)
    got = listener.received.of_camera(SITE, CAMERA)
    in_order_once(got)
    assert [e["id"] for e in got[:len(decided)]] == [r["id"] for r in decided]
    later = [r for r in records(events)[len(decided):]]
    assert later and min(r["seq"] for r in later) > max(r["seq"] for r in decided), err[-2000:]


@pytest.mark.shared_data
def test_a_malformed_publish_table_or_a_dead_broker_leave_the_gate_deciding(gate_builds, gate_video, tmp_path):
    video, labels = gate_video
    config = tmp_path / "turnstile.toml"
    config.write_text('[turnstile]\nevents = "unused.jsonl"\n[turnstile.publish]\ntargets = ["ftp://broker"]\n'
                      'spool = "overridden-by-the-flag"\n')
    bad = start_app(str(video), gate_builds, tmp_path, "--config", str(config), "--max-frames", "80",
                    events=tmp_path / "bad.jsonl")
    err = stop(bad, None)
    assert bad.returncode == 0, err[-3000:]
    said = [line for line in err.splitlines() if "[turnstile.publish]" in line]
    assert len(said) == 1 and "expected mqtt://HOST:PORT" in said[0] and "deciding on" in said[0], err[-3000:]
    assert "Traceback" not in err and passages(tmp_path / "bad.jsonl") >= 2
    assert Spool(tmp_path / "spool").stats().depth == len(records(tmp_path / "bad.jsonl"))  # kept for later

    from mosquitto import free_port

    dead = start_app(str(video), gate_builds, tmp_path, "--publish", f"mqtt://127.0.0.1:{free_port()}",
                     "--max-frames", "80", "--health-every", "0.05", spool=tmp_path / "dead-spool",
                     events=tmp_path / "dead.jsonl")
    err = stop(dead, None)
    assert dead.returncode == 0, err[-3000:]
    assert err.count("unavailable") == 1 and "Connection refused" in err and "Traceback" not in err
    assert passages(tmp_path / "dead.jsonl") >= 2
    health = [line for line in err.splitlines() if line.startswith("health:")]
    assert health and "DOWN: " in health[-1] and "spool " in health[-1], err[-2000:]
    assert Spool(tmp_path / "dead-spool").stats().depth == len(records(tmp_path / "dead.jsonl"))


@pytest.mark.shared_data
def test_metrics_are_served_while_the_gate_runs(gate_builds, gate_video, broker, tmp_path):  # noqa: F811
    from mosquitto import free_port
    from prometheus_client.parser import text_string_to_metric_families

    video, labels = gate_video
    port = free_port()
    events = tmp_path / "events.jsonl"
    with paced_http_stream(video, fps=FPS, pause_after=FIRST_PAUSE) as (url, release):
        proc = start_app(url, gate_builds, tmp_path, "--publish", broker.url, "--metrics-port", str(port),
                         "--health-every", "0.5")
        try:
            wait_until(lambda: passages(events) >= 2, 600, "two passages", proc)
            time.sleep(1.5)  # a health period: the publish and runtime figures are refreshed then
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        finally:
            stop(proc)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)

    def value(name, **labels):
        return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))

    frames = value("maskgate_frames_total")
    assert frames > 0 and value("maskgate_frame_latency_seconds_count") == frames
    for stage in ("preprocess", "detect", "postprocess", "align", "classify"):
        assert value("maskgate_stage_latency_seconds_count", stage=stage) == frames
    assert value("maskgate_passages_total") >= 2 and value("maskgate_gate_events_total") >= 1
    assert value("maskgate_fps") > 0
    assert {s.labels["role"] for s in samples["maskgate_model_info"]} == {"detector", "mask", "pose"}
    assert value("maskgate_publish_connected", target=broker.url) == 1
    assert value("maskgate_publish_delivered_total", target=broker.url) >= 2
    assert "maskgate_spool_depth" in samples and "maskgate_spool_oldest_age_seconds" in samples


def test_maskgate_check_publishes_its_verdict_to_the_site(gate_builds, broker, tmp_path):  # noqa: F811
    from maskgate.cli import main
    from maskgate.publish.fleet import LAST_CHECK_FILE

    with listener_for(broker) as listener:
        code = main(["check", str(gate_builds), "--runs", "2", "--publish", broker.url, "--site", SITE,
                     "--camera", CAMERA, "--spool", str(tmp_path / "spool")])
        assert listener.checks.wait_for(lambda r: len(r.events) >= 1, 30)
    (check,) = listener.checks.events
    assert code == 0 and check["passed"] is True and check["camera"] == CAMERA and check["bundles"] >= 6
    assert check["failed"] == {} and all(check["runtimes"].values())
    kept = json.loads((gate_builds / LAST_CHECK_FILE).read_text())
    assert kept["passed"] is True and kept["checked_at"] == check["checked_at"]
    with listener_for(broker) as late:  # retained: a site that connects later sees it too
        assert late.checks.wait_for(lambda r: len(r.events) >= 1, 30)
