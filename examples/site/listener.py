"""A site listener: the events of every camera on one broker, duplicates dropped by id, in the
order they first arrived; printed as JSON lines or appended to a file. Also a webhook
receiver that checks each request's signature.

    python examples/site/listener.py mqtt://127.0.0.1:1883 [--out events.jsonl]
    python examples/site/listener.py --webhook-port 8080 --secret-env MASKGATE_WEBHOOK_SECRET

The MQTT listener holds a persistent session (clean session off, a fixed client id) and
subscribes at QoS 1, so what the broker accepted while the listener was away is delivered
when it comes back (the broker keeps it, across its own restarts with persistence on).
"""
from __future__ import annotations

import argparse
import http.server
import json
import os
import sys
import threading
import time
from pathlib import Path

from maskgate.cli.options import port
from maskgate.publish import parse_target, verify_signature


class Received:
    """Events seen once each (by id), in first-arrival order, per camera; thread-safe."""

    def __init__(self, out: Path | None = None, *, echo: bool = False):
        self._lock = threading.Condition()
        self.ids: set[str] = set()
        self.events: list[dict] = []  # first arrivals
        self.latency_s: list[float] = []  # arrival minus the event's wall_time
        self.duplicates = 0
        self._out = open(out, "a", encoding="utf-8") if out else None
        self._echo = echo

    def add(self, record: dict) -> bool:
        """Keep ``record`` unless its id was seen; whether it was new."""
        arrived = time.time()
        with self._lock:
            if record.get("id") in self.ids:
                self.duplicates += 1
                return False
            self.ids.add(record.get("id"))
            self.events.append(record)
            sent = _unix(record.get("wall_time"))
            if sent is not None:
                self.latency_s.append(arrived - sent)
            if self._out is not None:
                self._out.write(json.dumps(record) + "\n")
                self._out.flush()
            if self._echo:
                print(json.dumps(record), flush=True)
            self._lock.notify_all()
        return True

    def of_camera(self, site: str, camera: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e.get("site") == site and e.get("camera") == camera]

    def wait_for(self, predicate, timeout_s: float) -> bool:
        """Wait until ``predicate(self)`` holds, at most ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        if self._out is not None:
            self._out.close()


def _unix(wall_time: str | None) -> float | None:
    import datetime

    if not wall_time:
        return None
    try:
        return datetime.datetime.strptime(wall_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


class SiteListener:
    """Subscribes to ``<prefix>/+/+/events`` (and ``check``, and the retained ``health``)."""

    def __init__(self, url: str, *, prefix: str = "maskgate", client_id: str = "maskgate-site-listener",
                 out: Path | None = None, echo: bool = False, username: str | None = None,
                 password: str | None = None, ca_file: str | Path | None = None):
        from paho.mqtt import client as mqtt

        self.target = parse_target(url)
        self.prefix = prefix
        self.received = Received(out, echo=echo)
        self.health: dict[tuple[str, str], dict] = {}  # (site, camera) -> last health message
        self.checks = Received()
        self.connects = 0
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self._client.reconnect_delay_set(min_delay=1, max_delay=4)
        if username is not None:
            self._client.username_pw_set(username, password)
        if self.target.tls:
            self._client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            return
        self.connects += 1
        client.subscribe([(f"{self.prefix}/+/+/{channel}", 1) for channel in ("events", "check", "health")])

    def _on_message(self, client, userdata, message):
        try:
            record = json.loads(message.payload)
        except ValueError:
            print(f"listener: not JSON on {message.topic}", file=sys.stderr)
            return
        _, site, camera, channel = message.topic.split("/")[-4:]
        if channel == "health":
            self.health[(site, camera)] = record
        elif channel == "check":
            self.checks.add(record)
        else:
            self.received.add(record)

    def start(self) -> SiteListener:
        self._client.connect(self.target.host, self.target.port, keepalive=10)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self.received.close()

    def __enter__(self) -> SiteListener:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class WebhookReceiver:
    """A local HTTP receiver of the cameras' webhook POSTs: checks each signature (with
    ``secret``), answers 500 to the first ``fail_first`` requests and to the request numbers
    (1-based) in ``failing`` (to show the cameras retry), answers ``refuse(event)`` (an HTTP
    status, e.g. 422, or None to take it) as a receiver validating payloads would, keeps the
    events once each."""

    def __init__(self, *, secret: bytes | None, port: int = 0, fail_first: int = 0, failing=(), refuse=None):
        self.refuse = refuse
        self.received = Received()
        self.requests = 0
        self.bad_signatures = 0
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests += 1
                if secret is not None and not verify_signature(body, self.headers, secret):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.requests <= fail_first or receiver.requests in failing:
                    self.send_response(500)
                elif receiver.refuse is not None and receiver.refuse(json.loads(body)):
                    self.send_response(receiver.refuse(json.loads(body)))
                else:
                    receiver.received.add(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/maskgate"

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("broker", nargs="?", help="mqtt://HOST:PORT")
    parser.add_argument("--out", type=Path, help="append each new event here as a JSON line")
    parser.add_argument("--prefix", default="maskgate")
    parser.add_argument("--client-id", default="maskgate-site-listener")
    parser.add_argument("--username")
    parser.add_argument("--password-env", help="the variable holding the broker password")
    parser.add_argument("--ca-file", help="the broker's CA, for mqtts://")
    parser.add_argument("--webhook-port", type=port(any_free=True),
                        help="instead: receive webhooks on this port of 127.0.0.1")
    parser.add_argument("--secret-env", help="the variable holding the webhook secret (signatures are checked)")
    args = parser.parse_args()
    if args.webhook_port is not None:
        secret = os.environ[args.secret_env].encode() if args.secret_env else None
        with WebhookReceiver(secret=secret, port=args.webhook_port) as receiver:
            receiver.received._echo = True
            print(f"receiving on {receiver.url}", file=sys.stderr)
            threading.Event().wait()
        return 0
    if not args.broker:
        parser.error("give a broker URL, or --webhook-port")
    password = os.environ[args.password_env] if args.password_env else None
    with SiteListener(args.broker, prefix=args.prefix, client_id=args.client_id, out=args.out, echo=True,
                      username=args.username, password=password, ca_file=args.ca_file):
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
