"""What the site sees of its fleet: every agent's retained status read from the broker
(``maskgate fleet status``), one line per camera and a summary; and the poll notice
``maskgate rollout --notify`` sends."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ..config.publish import MqttOptions, parse_target
from ..errors import InputError, PublishError
from .link import poll_topic, status_topic


@dataclass(frozen=True)
class CameraStatus:
    site: str
    camera: str
    status: dict

    @property
    def state(self) -> str:
        """on probation | rolled back | refused | error | running | no release."""
        s = self.status
        if s.get("probation"):
            return "probation"
        rollback = s.get("rollback") or {}
        if rollback and rollback.get("release") in (s.get("bad") or {}):
            return "rolled back"
        last = s.get("last_check") or {}
        if last and not last.get("passed") and last.get("release") in (s.get("bad") or {}):
            return "refused"
        if s.get("error"):
            return "error"
        return "running" if s.get("release") else "no release"

    def line(self, *, now: float | None = None) -> str:
        s, now = self.status, time.time() if now is None else now
        models = s.get("models") or {}
        shown = ", ".join(f"{m.get('model') or name}: {_where(m)}" for name, m in sorted(models.items())) or "no models"
        extra = []
        rollback = s.get("rollback")
        if rollback:
            extra.append(f"rolled back {rollback.get('release')}: {rollback.get('reason')}")
        for version, why in sorted((s.get("bad") or {}).items()):
            if not rollback or version != rollback.get("release"):
                extra.append(f"refused {version}: {why}")
        if s.get("error"):
            extra.append(f"error: {s['error']}")
        if s.get("halted_by_fleet"):
            extra.append("halted by the fleet: " + ", ".join(s["halted_by_fleet"]))
        age = now - float(s.get("at_unix") or now)
        return (f"{self.site}/{self.camera}: {s.get('release') or '-'} (slot {s.get('slot') or '-'}) {self.state}; "
                f"{shown}; {age:.0f} s ago" + "".join(f"; {e}" for e in extra))


def _where(model: dict) -> str:
    runtime = str(model.get("runtime") or "?").split(" (")[0]
    share = model.get("placement_share")
    return runtime + (f", {share:.0%} of ops on {model.get('device')}" if share is not None else "")


def summary(cameras: list[CameraStatus]) -> str:
    releases = Counter(c.status.get("release") or "none" for c in cameras)
    states = Counter(c.state for c in cameras)
    on = ", ".join(f"{n} on {r}" for r, n in sorted(releases.items(), key=lambda kv: (-kv[1], kv[0])))
    rest = ", ".join(f"{n} {s}" for s, n in sorted(states.items()) if s != "running")
    return f"{len(cameras)} camera(s): {on or 'none'}" + (f"; {rest}" if rest else "")


def broker_target(broker: str, *, flag: str = "--broker", site: str | None = None):
    """The site's broker (an mqtt:// or mqtts:// URL) and the site's name in its topics, checked
    before any work: 'release --notify' found a wrong URL only after the release was written."""
    from ..config.publish import site_name

    try:
        target = parse_target(broker)
    except PublishError as exc:  # its text begins "publish target 'URL': "
        detail = str(exc).split(": ", 1)[-1] if broker.startswith("mqtt") else "an mqtt:// or mqtts:// URL"
        raise InputError(f"{flag} {broker}: {detail}") from None
    if target.kind != "mqtt":
        raise InputError(f"{flag} {broker}: an mqtt:// or mqtts:// URL")
    if site is not None and site != "+":
        try:
            site_name(site)
        except ValueError as exc:
            raise InputError(f"--site: {exc}") from None
    return target


def _client(broker: str, options: MqttOptions, role: str):
    from ..publish.mqtt import make_client

    target = broker_target(broker)
    client, problem = make_client(target, options, client_id=f"maskgate-fleet-{role}-{time.time_ns() % 10**9}")
    if problem:
        raise PublishError(problem)
    return client, target


def _connect(client, target, options: MqttOptions, timeout_s: float) -> None:
    connected, refused = threading.Event(), []

    def on_connect(client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            refused.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(target.host, target.port, keepalive=options.keepalive_s)
    except OSError as exc:
        raise PublishError(f"cannot connect to the broker {target.host}:{target.port} "
                           f"({exc.strerror or exc})") from exc
    client.loop_start()
    if not connected.wait(timeout_s) or refused:
        client.loop_stop()
        raise PublishError(f"the broker {target.host}:{target.port} "
                           + (f"refused the connection: {refused[0]}" if refused else
                              f"did not answer within {timeout_s:g} s"))


def read_fleet(broker: str, *, site: str = "+", options: MqttOptions | None = None,
               wait_s: float = 2.0) -> list[CameraStatus]:
    """Every camera's retained agent status under ``site`` ("+": every site): retained messages
    arrive at once after the subscription; the read ends after ``wait_s``, or 0.5 s after the last."""
    options = options or MqttOptions()
    client, target = _client(broker, options, "status")
    found: dict[tuple[str, str], dict] = {}
    last = [time.monotonic()]

    def on_message(client, userdata, message):
        parts = message.topic.split("/")
        try:
            status = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(status, dict) and len(parts) >= 3:
            found[(parts[-3], parts[-2])] = status
            last[0] = time.monotonic()

    client.on_message = on_message
    _connect(client, target, options, timeout_s=10)
    try:
        client.subscribe(status_topic(options.topic_prefix, site, "+"), qos=1)
        start = last[0] = time.monotonic()
        while time.monotonic() - start < wait_s and not (found and time.monotonic() - last[0] > 0.5):
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return [CameraStatus(s, c, status) for (s, c), status in sorted(found.items())]


def notify(broker: str, *, site: str, options: MqttOptions | None = None) -> None:
    """Tell the site's agents to poll now (not retained: a notice, not a state)."""
    options = options or MqttOptions()
    client, target = _client(broker, options, "notify")
    _connect(client, target, options, timeout_s=10)
    try:
        notice = json.dumps({"poll": True, "at_unix": time.time()})
        info = client.publish(poll_topic(options.topic_prefix, site), notice, qos=1)
        info.wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()
