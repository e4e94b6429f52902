"""Events that leave the camera (maskgate.publish): the durable spool, publish settings, the
webhook signature, and delivery through a real Mosquitto broker on loopback and a local
HTTP receiver. The turnstile app's own delivery (broker outage, SIGKILL, metrics) is in
test_site.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from maskgate.errors import PublishError
from maskgate.publish import Publisher, Spool, publish_config, verify_signature
from tests.conftest import ROOT
from tests.strict_skips import missing

sys.path.insert(0, str(ROOT / "examples" / "site"))


@pytest.fixture
def broker(tmp_path):
    """A private Mosquitto on a free port of 127.0.0.1 (its own config and persistence folder)."""
    from mosquitto import Mosquitto, MosquittoMissing

    try:
        broker = Mosquitto(tmp_path / "broker")
    except MosquittoMissing as exc:
        missing("Mosquitto", str(exc))
    broker.start()
    yield broker
    broker.stop()


def listener_for(broker):
    from listener import SiteListener

    return SiteListener(broker.url, client_id=f"listener-{uuid.uuid4().hex[:8]}")


# -- the spool ---------------------------------------------------------------------------------------

def _event(i: int):
    return lambda event_id, seq: {"event": "passage", "i": i, "id": event_id, "seq": seq}


def test_the_spool_numbers_events_on_across_a_reopen_and_hands_them_out_in_order(tmp_path):
    spool = Spool(tmp_path)
    spool.register("a")
    first = [spool.append("events", _event(i)) for i in range(3)]
    assert [e.seq for e in first] == [1, 2, 3] and len({e.id for e in first}) == 3
    spool.ack("a", 2)
    spool.close()
    spool = Spool(tmp_path)
    spool.register("a")
    assert spool.append("events", _event(3)).seq == 4  # never reused, even after deletes
    assert [e.seq for e in spool.pending("a")] == [3, 4]
    assert spool.stats().depth == 2 and spool.stats().pending == {"a": 2}


def test_an_event_leaves_the_spool_only_when_every_target_has_it(tmp_path):
    spool = Spool(tmp_path)
    spool.register("mqtt")
    spool.append("events", _event(0))
    spool.register("webhook")  # added later: it still gets what the spool holds
    spool.append("events", _event(1))
    assert [e.seq for e in spool.pending("webhook")] == [1, 2]
    spool.ack("mqtt", 2)
    assert spool.stats().depth == 2 and spool.stats().pending == {"mqtt": 0, "webhook": 2}
    spool.ack("webhook", 1)
    assert spool.stats().depth == 1
    spool.ack("webhook", 2)
    assert spool.stats().depth == 0


def test_a_full_spool_drops_by_its_policy_and_counts_it(tmp_path):
    oldest = Spool(tmp_path / "a", max_events=5)
    for i in range(8):
        oldest.append("events", _event(i))
    oldest.register("t")
    assert [e.seq for e in oldest.pending("t")] == [4, 5, 6, 7, 8] and oldest.stats().dropped_full == 3
    newest = Spool(tmp_path / "b", max_events=5, on_full="drop_newest")
    kept = [newest.append("events", _event(i)) for i in range(8)]
    assert [e.seq for e in kept if e] == [1, 2, 3, 4, 5] and kept[5:] == [None] * 3
    assert newest.stats().dropped_full == 3
    aged = Spool(tmp_path / "c", max_age_s=0.2)
    aged.append("events", _event(0))
    time.sleep(0.3)
    aged.append("events", _event(1))
    assert aged.stats().depth == 1 and aged.stats().dropped_age == 1


def test_an_event_the_spool_returned_survives_sigkill(tmp_path):
    """A child appends events and prints each sequence number once append returned; it is
    killed with SIGKILL mid-stream: every number it printed is in the spool afterwards."""
    child = textwrap.dedent(f"""
        import sys
        from maskgate.publish import Spool
        spool = Spool({str(tmp_path)!r})
        for i in range(100000):
            event = spool.append("events", lambda event_id, seq: {{"i": i, "id": event_id, "seq": seq}})
            print(event.seq, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    printed = [int(proc.stdout.readline()) for _ in range(40)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    spool = Spool(tmp_path)
    spool.register("t")
    stored = {e.seq for e in spool.pending("t", limit=100000)}
    assert set(printed) <= stored and len(stored) >= 40


# -- settings and signatures -------------------------------------------------------------------------

@pytest.mark.parametrize("settings, expected", [
    ({"targets": ["ftp://broker"]}, "expected mqtt://HOST:PORT"),
    ({"targets": ["mqtt://user:secret@broker:1883"]}, "no credentials in the URL"),
    ({"targets": ["mqtt://broker:port"]}, "the port is not a number"),
    ({"site": "hq/east"}, "site must be a non-empty name"),
    ({"targets": "mqtt://b", "qos": 2}, r"unknown key\(s\) \['qos'\]"),
    ({"mqtt": {"protocol": "4"}}, "mqtt protocol must be '3.1.1' or '5'"),
    ({"on_full": "block"}, "on_full must be one of"),
])
def test_malformed_publish_settings_name_what_is_wrong(settings, expected):
    with pytest.raises(PublishError, match=expected):
        publish_config(settings)


def test_targets_parse_with_their_default_ports():
    config = publish_config({"targets": ["mqtt://b", "mqtts://b", "https://hooks.example/in?x=1"], "site": "hq",
                             "camera": "g1"})
    assert [(t.kind, t.port, t.tls) for t in config.targets] == [("mqtt", 1883, False), ("mqtt", 8883, True),
                                                                  ("webhook", 443, True)]
    assert config.targets[2].path == "/in?x=1" and config.topic("events") == "maskgate/hq/g1/events"


def test_a_webhook_signature_holds_only_for_its_body_secret_and_time():
    from maskgate.publish.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

    body, secret, now = b'{"event":"passage"}', b"s3cret", time.time()
    headers = {TIMESTAMP_HEADER: str(int(now)), SIGNATURE_HEADER: sign(body, secret, int(now))}
    assert verify_signature(body, headers, secret, now=now)
    assert not verify_signature(body + b" ", headers, secret, now=now)
    assert not verify_signature(body, headers, b"other", now=now)
    assert not verify_signature(body, headers, secret, now=now + 3600)  # a replay an hour later


# -- delivery ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_events_published_while_the_broker_is_down_arrive_in_order_after_it_restarts(broker, tmp_path, protocol):
    config = publish_config({"targets": [broker.url], "site": "hq", "camera": "g1", "spool": str(tmp_path / "spool"),
                             "mqtt": {"protocol": protocol}})
    lines = []
    with listener_for(broker) as listener:
        publisher = Publisher(config, log=lines.append).start()
        try:
            for i in range(10):
                publisher.publish("events", {"event": "passage", "i": i})
            assert listener.received.wait_for(lambda r: len(r.events) >= 10, 30)
            broker.stop()
            for i in range(10, 30):
                publisher.publish("events", {"event": "passage", "i": i})
            time.sleep(1.0)
            status = publisher.status()
            assert status["spool"]["depth"] == 20 and not status["targets"][broker.url]["connected"]
            broker.start()
            assert listener.received.wait_for(lambda r: len(r.events) >= 30, 60), publisher.status()
        finally:
            publisher.close()
    got = listener.received.of_camera("hq", "g1")
    assert [e["i"] for e in got] == list(range(30)) and [e["seq"] for e in got] == list(range(1, 31))
    assert any("unavailable" in line for line in lines) and any("taking events again" in line for line in lines)
    assert Spool(tmp_path / "spool").stats().depth == 0


def test_health_is_retained_and_a_clean_stop_marks_the_camera_offline(broker, tmp_path):
    config = publish_config({"targets": [broker.url], "site": "hq", "camera": "g2", "spool": str(tmp_path / "s")})
    publisher = Publisher(config, log=lambda line: None).start()
    deadline = time.monotonic() + 10
    while not publisher.status()["targets"][broker.url]["connected"] and time.monotonic() < deadline:
        time.sleep(0.05)
    publisher.health({"fps": 12.5})
    time.sleep(0.5)
    with listener_for(broker) as late:  # connects after the message was sent: gets the retained one
        deadline = time.monotonic() + 10
        while ("hq", "g2") not in late.health and time.monotonic() < deadline:
            time.sleep(0.05)
        assert late.health[("hq", "g2")]["status"] == "online" and late.health[("hq", "g2")]["fps"] == 12.5
        publisher.close(reason="SIGTERM")
        deadline = time.monotonic() + 10
        while late.health[("hq", "g2")]["status"] != "offline" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert late.health[("hq", "g2")] == {"status": "offline", "site": "hq", "camera": "g2", "reason": "SIGTERM"}


def test_a_webhook_failing_with_500s_gets_every_event_signed_and_in_order(tmp_path, monkeypatch):
    from listener import WebhookReceiver

    monkeypatch.setenv("GATE_SECRET", "s3cret")
    with WebhookReceiver(secret=b"s3cret", fail_first=4) as receiver:
        config = publish_config({"targets": [receiver.url], "site": "hq", "camera": "g3",
                                 "spool": str(tmp_path / "spool"),
                                 "webhook": {"secret_env": "GATE_SECRET", "first_backoff_s": 0.05}})
        lines = []
        publisher = Publisher(config, log=lines.append).start()
        try:
            for i in range(12):
                publisher.publish("events", {"event": "passage", "i": i})
            assert publisher.drain(60), publisher.status()
        finally:
            publisher.close()
    got = receiver.received.of_camera("hq", "g3")
    assert [e["i"] for e in got] == list(range(12)) and receiver.bad_signatures == 0
    assert receiver.requests >= 16  # the 4 failures were retried
    assert any("HTTP 500" in line for line in lines)


def test_a_target_failing_in_the_middle_of_a_batch_keeps_the_rest(tmp_path):
    """Ten events wait in the spool, so they go out as one batch; the receiver takes three,
    fails the next three requests, then takes the rest: only what it took leaves the spool."""
    from listener import WebhookReceiver

    with WebhookReceiver(secret=None, failing={4, 5, 6}) as receiver:
        config = publish_config({"targets": [receiver.url], "site": "hq", "camera": "g4",
                                 "spool": str(tmp_path / "spool"), "webhook": {"first_backoff_s": 0.05}})
        publisher = Publisher(config, log=lambda line: None)
        for i in range(10):
            publisher.publish("events", {"event": "passage", "i": i})
        publisher.start()
        try:
            assert publisher.drain(30), publisher.status()
        finally:
            publisher.close()
    assert [e["i"] for e in receiver.received.of_camera("hq", "g4")] == list(range(10))


def test_a_receiver_that_does_not_trust_the_signature_gets_nothing_acknowledged(tmp_path, monkeypatch):
    from listener import WebhookReceiver

    monkeypatch.setenv("GATE_SECRET", "wrong")
    with WebhookReceiver(secret=b"s3cret") as receiver:
        config = publish_config({"targets": [receiver.url], "spool": str(tmp_path / "spool"),
                                 "webhook": {"secret_env": "GATE_SECRET", "first_backoff_s": 0.05}})
        publisher = Publisher(config, log=lambda line: None).start()
        try:
            publisher.publish("events", {"event": "passage"})
            assert not publisher.drain(1.5)
        finally:
            publisher.close(drain_s=0)
    assert receiver.bad_signatures >= 1 and receiver.received.events == []
    assert Spool(tmp_path / "spool").stats().depth == 1  # kept for when the secrets agree


def test_a_missing_secret_variable_makes_the_target_wait_with_its_events(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    config = publish_config({"targets": ["http://127.0.0.1:9/x"], "spool": str(tmp_path),
                             "webhook": {"secret_env": "NO_SUCH_SECRET"}})
    said: list[str] = []
    publisher = Publisher(config, log=said.append).start()
    try:
        publisher.publish("events", {"event": "passage"})
        assert not publisher.drain(1.5)
        (state,) = publisher.status()["targets"].values()
        assert not state["connected"] and "NO_SUCH_SECRET is not set" in state["reason"]
    finally:
        publisher.close(drain_s=0)
    assert sum("NO_SUCH_SECRET is not set" in line for line in said) == 1, said
    assert Spool(tmp_path).stats().depth == 1 and os.environ.get("NO_SUCH_SECRET") is None


def _site_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 it signed (PEM files), as a site's PKI would give."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "site test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
              .not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_mqtts_with_a_password_delivers_and_a_wrong_password_is_named(tmp_path, monkeypatch, protocol):
    from listener import SiteListener
    from mosquitto import Mosquitto, MosquittoMissing

    ca, cert, key = _site_ca(tmp_path / "pki")
    try:
        broker = Mosquitto(tmp_path / "broker", tls=(ca, cert, key), users={"gate-1": "right", "site": "listen"})
    except MosquittoMissing as exc:
        missing("Mosquitto", str(exc))
    settings = {"targets": [broker.url], "site": "hq", "camera": "gate-1",
                "mqtt": {"protocol": protocol, "username": "gate-1", "password_env": "GATE_PW", "ca_file": str(ca)}}
    assert broker.url.startswith("mqtts://")
    with broker, SiteListener(broker.url, client_id="tls-listener", username="site", password="listen",
                              ca_file=ca) as listener:
        monkeypatch.setenv("GATE_PW", "right")
        publisher = Publisher(publish_config({**settings, "spool": str(tmp_path / "a")}), log=lambda line: None)
        publisher.start()
        try:
            for i in range(3):
                publisher.publish("events", {"event": "passage", "i": i})
            assert publisher.drain(30), publisher.status()
        finally:
            publisher.close()
        assert listener.received.wait_for(lambda r: len(r.events) == 3, 30)
        monkeypatch.setenv("GATE_PW", "wrong")
        lines = []
        refused = Publisher(publish_config({**settings, "spool": str(tmp_path / "b")}), log=lines.append).start()
        try:
            refused.publish("events", {"event": "passage"})
            assert not refused.drain(3)
            reason = refused.status()["targets"][broker.url]["reason"]
        finally:
            refused.close(drain_s=0)
    assert "refused the connection" in reason and ("authorized" in reason.lower() or "password" in reason.lower())
    assert len(lines) == 1 and "unavailable (the broker refused the connection" in lines[0]


# -- a target that refuses one event, or stops acknowledging (issue 29, lines 4, 11, 12) --------------

def test_a_refused_webhook_event_becomes_a_dead_letter_and_the_rest_go_on(tmp_path, capsys):
    """A receiver answers 422 to one event (as a payload validator would): after
    dead_letter_after tries it is a dead letter, every later event arrives in order, and once
    the receiver takes it, ``maskgate spool --replay`` sends it."""
    from listener import WebhookReceiver

    from maskgate.cli import main

    strict_about = {"i": 2}
    with WebhookReceiver(secret=None, refuse=lambda e: 422 if e.get("i") == strict_about["i"] else None) as receiver:
        said: list[str] = []
        config = publish_config({"targets": [receiver.url], "site": "hq", "camera": "g5", "dead_letter_after": 3,
                                 "spool": str(tmp_path / "spool"), "webhook": {"first_backoff_s": 0.05}})
        publisher = Publisher(config, log=said.append).start()
        try:
            for i in range(6):
                publisher.publish("events", {"event": "passage", "i": i})
            assert publisher.drain(30), publisher.status()
            assert [e["i"] for e in receiver.received.of_camera("hq", "g5")] == [0, 1, 3, 4, 5]
            (dead,) = publisher.spool.dead()
            assert dead.tries == 3 and "HTTP 422" in dead.reason and publisher.status()["spool"]["dead"] == 1
            assert sum("dead letter" in line for line in said) == 1, said
            strict_about["i"] = None  # the receiver is fixed
            assert main(["spool", str(tmp_path / "spool"), "--replay", "all"]) == 0
            deadline = time.monotonic() + 20
            while publisher.spool.dead() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert publisher.spool.dead() == []
        finally:
            publisher.close()
    assert sorted(e["i"] for e in receiver.received.of_camera("hq", "g5")) == list(range(6))
    assert "queued 1 dead letter" in capsys.readouterr().out


def test_a_broker_refusing_one_message_does_not_hold_back_the_next(tmp_path):
    """MQTT 5, a broker whose ACL lets the camera write events but not its check verdict: the
    refused PUBACK (Not authorized) makes the verdict a dead letter; the events go on."""
    from mosquitto import Mosquitto, MosquittoMissing

    try:
        broker = Mosquitto(tmp_path / "broker", acl="topic write maskgate/+/+/events\n"
                                                    "topic readwrite maskgate/+/+/health\n"
                                                    "topic read maskgate/#\n")
    except MosquittoMissing as exc:
        missing("Mosquitto", str(exc))
    with broker, listener_for(broker) as listener:
        config = publish_config({"targets": [broker.url], "site": "hq", "camera": "g6", "dead_letter_after": 2,
                                 "spool": str(tmp_path / "spool"), "mqtt": {"protocol": "5"}})
        publisher = Publisher(config, log=lambda line: None).start()
        try:
            publisher.publish("check", {"event": "check", "passed": True})
            for i in range(5):
                publisher.publish("events", {"event": "passage", "i": i})
            assert publisher.drain(30), publisher.status()
            (dead,) = publisher.spool.dead()
            assert dead.channel == "check" and "Not authorized" in dead.reason
            deadline = time.monotonic() + 10
            while len(listener.received.of_camera("hq", "g6")) < 5 and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            publisher.close()
    assert [e["i"] for e in listener.received.of_camera("hq", "g6")] == list(range(5))


def test_a_connected_broker_that_stops_acknowledging_counts_as_down(tmp_path, broker):
    """The broker stopped (SIGSTOP: its socket stays open, nothing answers): within
    ack_timeout_s the target is down (said once), events wait; SIGCONT: they all arrive."""
    with listener_for(broker) as listener:
        said: list[str] = []
        config = publish_config({"targets": [broker.url], "site": "hq", "camera": "g7",
                                 "spool": str(tmp_path / "spool"), "mqtt": {"ack_timeout_s": 2.0}})
        publisher = Publisher(config, log=said.append).start()
        try:
            publisher.publish("events", {"event": "passage", "i": 0})
            assert publisher.drain(20)
            os.kill(broker.process.pid, signal.SIGSTOP)
            try:
                for i in range(1, 4):
                    publisher.publish("events", {"event": "passage", "i": i})
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and next(iter(publisher.status()["targets"].values()))["connected"]:
                    time.sleep(0.2)
                (state,) = publisher.status()["targets"].values()
                assert not state["connected"] and "no PUBACK" in state["reason"], state
                assert sum("unavailable" in line and "PUBACK" in line for line in said) == 1, said
                assert publisher.spool.stats().depth == 3
            finally:
                os.kill(broker.process.pid, signal.SIGCONT)
            assert publisher.drain(60), publisher.status()
        finally:
            publisher.close()
        deadline = time.monotonic() + 10
        while len(listener.received.of_camera("hq", "g7")) < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [e["i"] for e in listener.received.of_camera("hq", "g7")] == [0, 1, 2, 3]
    assert any("taking events again" in line for line in said), said


def test_a_missing_password_variable_holds_its_target_only(tmp_path, broker, monkeypatch):
    """The MQTT password's variable is not set: that target waits (one line), the webhook
    takes every event; the next run, with the variable set, delivers the broker's share."""
    from listener import WebhookReceiver
    from mosquitto import Mosquitto

    secured = Mosquitto(tmp_path / "secured", users={"gate": "pw-7f3a9c"})
    monkeypatch.delenv("GATE_MQTT_PASSWORD", raising=False)
    with secured, WebhookReceiver(secret=None) as receiver:
        table = {"targets": [secured.url, receiver.url], "site": "hq", "camera": "g8",
                 "spool": str(tmp_path / "spool"), "mqtt": {"username": "gate", "password_env": "GATE_MQTT_PASSWORD"}}
        said: list[str] = []
        publisher = Publisher(publish_config(table), log=said.append).start()
        try:
            for i in range(3):
                publisher.publish("events", {"event": "passage", "i": i})
            deadline = time.monotonic() + 15
            while len(receiver.received.of_camera("hq", "g8")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert [e["i"] for e in receiver.received.of_camera("hq", "g8")] == [0, 1, 2]
            states = publisher.status()["targets"]
            assert not states[secured.url]["connected"] and "GATE_MQTT_PASSWORD is not set" in \
                states[secured.url]["reason"]
            assert sum("GATE_MQTT_PASSWORD" in line for line in said) == 1, said
        finally:
            publisher.close(drain_s=0)
        assert Spool(tmp_path / "spool").stats().depth == 3  # kept for the broker
        monkeypatch.setenv("GATE_MQTT_PASSWORD", "pw-7f3a9c")
        from listener import SiteListener

        with SiteListener(secured.url, client_id="listener-g8", username="gate",
                          password="pw-7f3a9c") as listener:
            publisher = Publisher(publish_config(table), log=lambda line: None).start()
            try:
                assert publisher.drain(30), publisher.status()
            finally:
                publisher.close()
            deadline = time.monotonic() + 10
            while len(listener.received.of_camera("hq", "g8")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        assert [e["i"] for e in listener.received.of_camera("hq", "g8")] == [0, 1, 2]
