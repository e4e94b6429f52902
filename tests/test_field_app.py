"""The turnstile app in the field (issue 29, lines 5, 6, 8, 12): the relay before any write, the
gate deciding on a full disk and over a damaged spool, the metrics endpoint guarded (token,
loopback, idle timeout, connection cap), and no secret in anything the app writes."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from maskgate.publish.spool import SPOOL_FILE
from tests.conftest import ROOT
from tests.test_publish import broker as broker  # noqa: F401 (the broker fixture)
from tests.test_spool_faults import tmpfs

MASKGATE = Path(sys.executable).parent / "maskgate"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.shared_data
def test_the_relay_acts_before_anything_of_its_event_is_written(gate_builds, gate_video, tmp_path):
    import sqlite3

    from maskgate.config.publish import PublishConfig
    from maskgate.turnstile import TurnstileApp, TurnstileConfig

    video, labels = gate_video
    events, spool = tmp_path / "events.jsonl", tmp_path / "spool"
    seen_before: list[tuple[int, int]] = []  # (gate events already in the file, spooled) at each callback
    latencies: list[float] = []

    def spooled(frame: int) -> int:
        if not (spool / SPOOL_FILE).is_file():
            return 0
        db = sqlite3.connect(f"file:{spool / SPOOL_FILE}?mode=ro", uri=True)
        try:
            bodies = [json.loads(body) for (body,) in db.execute("SELECT body FROM events")]
        finally:
            db.close()
        return sum(b.get("event") == "gate" and b.get("frame") == frame for b in bodies)

    def on_gate(gate) -> None:
        latencies.append(time.perf_counter() - gate.decided_at)
        in_file = sum(r["event"] == "gate" and r["frame"] == gate.frame for r in _records(events))
        seen_before.append((in_file, spooled(gate.frame)))

    config = TurnstileConfig(source=str(video), builds=gate_builds, events=events,
                             publish=PublishConfig(spool=spool))
    summary = TurnstileApp(config, on_gate=on_gate).run()
    gates = [r for r in _records(events) if r["event"] == "gate"]
    assert summary.opened >= 4 and len(seen_before) == len(gates) > 0
    assert all(before == (0, 0) for before in seen_before), seen_before
    assert all(spooled(g["frame"]) == 1 for g in gates)  # and right after, each one is there
    assert max(latencies) < 0.05  # the relay's cue comes at the decision, not after a disk's fsync


@pytest.mark.shared_data
def test_the_gate_decides_on_over_a_full_disk_and_writes_again_when_there_is_space(gate_builds, gate_video,
                                                                                  tmp_path, capsys):
    from maskgate.config.publish import PublishConfig
    from maskgate.turnstile import TurnstileApp, TurnstileConfig

    video, labels = gate_video
    gates: list = []
    with tmpfs(tmp_path / "disk", "512k") as disk:
        events, filler = disk / "events.jsonl", disk / "filler"

        def relay(gate) -> None:
            gates.append(gate)
            if len(gates) == 2:  # the disk fills up mid-run (a log beside the spool, say)
                with open(filler, "wb") as handle, contextlib.suppress(OSError):
                    handle.write(b"\0" * (1 << 20))
            if len(gates) == 6:  # and is freed again
                filler.unlink()

        config = TurnstileConfig(source=str(video), builds=gate_builds, events=events,
                                 publish=PublishConfig(spool=disk / "spool"))
        summary = TurnstileApp(config, on_gate=relay).run()
        written = _records(events)
    said = capsys.readouterr().err
    assert summary.passages == len(labels) and summary.opened >= 4  # every decision made, every relay cue given
    assert len(gates) == summary.opened + summary.refused
    assert summary.events_unwritten > 0 and summary.unspooled > 0, summary
    assert said.count("cannot write events") == 1 and "No space left" in said, said[-3000:]  # once, not per event
    assert "writing events again" in said and "writing again" in said, said[-3000:]
    assert written and written[-1]["event"] == "stop" and written[-1]["events_unwritten"] == summary.events_unwritten
    assert written[-1]["unspooled"] == summary.unspooled


@pytest.mark.shared_data
def test_a_damaged_spool_is_set_aside_and_the_site_gets_the_events(gate_builds, gate_video, broker,  # noqa: F811
                                                                  tmp_path):
    from tests.test_publish import listener_for
    from tests.test_site import start_app, stop

    video, labels = gate_video
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / SPOOL_FILE).write_bytes(b"SQLite format 3\0" + os.urandom(40_000))
    with listener_for(broker) as listener:
        proc = start_app(str(video), gate_builds, tmp_path, "--publish", broker.url, spool=spool)
        err = stop(proc, None)
        deadline = time.monotonic() + 30
        events = _records(tmp_path / "events.jsonl")
        while len(listener.received.of_camera("hq", "gate-1")) < len(events) and time.monotonic() < deadline:
            time.sleep(0.2)
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert list(spool.glob("spool.damaged-*.sqlite3")) and "set aside" in err
    assert [e["id"] for e in listener.received.of_camera("hq", "gate-1")] == [r["id"] for r in events]


# -- the metrics endpoint -------------------------------------------------------------------------------

def _scrape(port: int, header: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": header} if header
                                     else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:  # not listening (yet)
        return 0


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.shared_data
def test_metrics_take_a_token_refuse_the_network_without_one_and_survive_held_connections(gate_builds, gate_video,
                                                                                          tmp_path):
    from mosquitto import free_port

    from tests.streams import FPS, paced_http_stream
    from tests.test_site import start_app, stop, wait_until

    video, labels = gate_video
    config = tmp_path / "site.toml"
    config.write_text('[turnstile]\nmetrics_token_env = "GATE_METRICS_TOKEN"\n')
    code = subprocess.run([str(MASKGATE), "turnstile", str(video), "--builds", str(gate_builds), "--metrics-port",
                           "0", "--metrics-address", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert code.returncode == 2 and "need a token" in code.stderr and "--metrics-insecure" in code.stderr
    port = free_port()
    token = "tok-3b9c2e17a5"
    os.environ["GATE_METRICS_TOKEN"] = token
    try:
        with paced_http_stream(video, fps=FPS, hold_at_end=True) as (url, release):
            proc = start_app(url, gate_builds, tmp_path, "--config", str(config), "--metrics-port", str(port))
            try:
                wait_until(lambda: _scrape(port) == 401, 300, "the metrics endpoint", proc)
                assert _scrape(port, f"Bearer {token}") == 200 and _scrape(port, "Bearer nope") == 401
                basic = base64.b64encode(f"prometheus:{token}".encode()).decode()
                assert _scrape(port, f"Basic {basic}") == 200
                import resource

                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))  # the test holds 1000 sockets
                before = _open_fds(proc.pid)
                held = []
                for _ in range(1000):  # half-open scrapers that never send a request
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    held.append(sock)
                time.sleep(0.5)
                assert _scrape(port, f"Bearer {token}") == 200  # still served, at once
                assert _open_fds(proc.pid) < before + 64, (before, _open_fds(proc.pid))  # bounded by the cap
                time.sleep(6.5)  # the idle timeout closes what the cap let in
                assert _open_fds(proc.pid) <= before + 4
                for sock in held:
                    sock.close()
            finally:
                err = stop(proc)
    finally:
        del os.environ["GATE_METRICS_TOKEN"]
    assert token not in err


@pytest.mark.shared_data
def test_no_secret_appears_in_anything_the_app_writes(gate_builds, gate_video, tmp_path):
    """An MQTT password, a webhook secret, a site HMAC key and a metrics token, all in use in one
    run with --verbose: none of them is in stdout, stderr, the events, the spool, the retained
    health or the metrics."""
    import shutil

    from listener import WebhookReceiver
    from mosquitto import Mosquitto, free_port

    from tests.streams import FPS, paced_http_stream
    from tests.test_site import wait_until

    secrets = {"GATE_MQTT_PASSWORD": "mqtt-pw-5f1e9a", "GATE_HOOK_SECRET": "hook-secret-77c2d0",
               "GATE_METRICS_TOKEN": "metrics-tok-9e4a11"}
    hmac_key = tmp_path / "site.secret"
    assert subprocess.run([str(MASKGATE), "keygen", "--hmac", str(hmac_key)]).returncode == 0
    builds = tmp_path / "builds"
    shutil.copytree(gate_builds, builds, ignore=shutil.ignore_patterns("last-check.json"))
    for bundle in builds.iterdir():
        if (bundle / "manifest.json").is_file():
            assert subprocess.run([str(MASKGATE), "sign", str(bundle), "--key", str(hmac_key)],
                                  capture_output=True).returncode == 0
    video, _ = gate_video
    broker = Mosquitto(tmp_path / "broker", users={"gate": secrets["GATE_MQTT_PASSWORD"]})  # noqa: F811
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text(f'[trust]\nverify_key = "{hmac_key}"\n[turnstile]\nmetrics_token_env = "GATE_METRICS_TOKEN"\n'
                      '[turnstile.publish.mqtt]\nusername = "gate"\npassword_env = "GATE_MQTT_PASSWORD"\n'
                      '[turnstile.publish.webhook]\nsecret_env = "GATE_HOOK_SECRET"\n')
    events = tmp_path / "events.jsonl"
    with broker, WebhookReceiver(secret=secrets["GATE_HOOK_SECRET"].encode()) as receiver, \
            paced_http_stream(video, fps=FPS, hold_at_end=True) as (url, release):
        proc = subprocess.Popen([str(MASKGATE), "--verbose", "turnstile", url, "--builds", str(builds), "--config",
                                 str(config), "--events", str(events), "--publish", broker.url, "--publish",
                                 receiver.url, "--spool", str(tmp_path / "spool"), "--metrics-port", str(port),
                                 "--health-every", "0.5", "--site", "hq", "--camera", "gate-1"],
                                env={**os.environ, **secrets, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: len(receiver.received.of_camera("hq", "gate-1")) >= 6, 600, "events at the site", proc)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                             headers={"Authorization": f"Bearer {secrets['GATE_METRICS_TOKEN']}"})
            metrics = urllib.request.urlopen(request, timeout=10).read().decode()
            import paho.mqtt.subscribe as subscribe

            health = subscribe.simple("maskgate/hq/gate-1/health", hostname="127.0.0.1", port=broker.port,
                                      retained=True, auth={"username": "gate",
                                                           "password": secrets["GATE_MQTT_PASSWORD"]}).payload.decode()
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=120)
    assert receiver.bad_signatures == 0
    outputs = {"stdout": out, "stderr": err, "events": events.read_text(), "metrics": metrics, "health": health,
               "spool": (tmp_path / "spool" / SPOOL_FILE).read_bytes().decode("latin-1"),
               "webhook bodies": json.dumps(receiver.received.events)}
    leaked = [(where, name) for where, text in outputs.items() for name, value in
              [*secrets.items(), ("HMAC key", hmac_key.read_text().strip())] if value in text]
    assert not leaked, leaked
    assert "health" in err and len(out) > 0  # the run said things: the check above had something to read


def test_the_metrics_server_holds_at_most_its_cap_of_connections_and_still_answers():
    """1000 clients that connect and say nothing, well within the idle timeout: the server keeps
    at most max_connections of them (the test process holds the 1000 client ends itself) and a
    scrape is answered."""
    from maskgate.turnstile.metrics_server import MetricsServer

    server = MetricsServer(lambda: ("text/plain", b"maskgate_up 1\n"), port=0, idle_timeout_s=60.0,
                           max_connections=16)
    try:
        before = _open_fds(os.getpid())
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(1000)]
        time.sleep(1.0)
        assert _scrape(server.port) == 200
        accepted = _open_fds(os.getpid()) - before - len(held)
        assert accepted <= 16 + 4, accepted  # not one descriptor per idle client
        for sock in held:
            sock.close()
    finally:
        server.close()
