"""The fleet over the site's MQTT broker (the one ``[turnstile.publish]`` already names).

- Each agent keeps its status retained on ``<prefix>/<site>/<camera>/agent``: a site (or
  ``maskgate fleet status``) reads every camera's last word at once, even of one that is off.
- Each agent reads the others' statuses: a release more than its plan's ``max_failures``
  cameras found bad (refused by their check, rolled back) is halted for the rest of the
  fleet without anyone at the workstation; the signed plan is the same, the cameras just
  stop taking it.
- ``maskgate rollout --notify`` sends a poll notice on ``<prefix>/<site>/fleet/poll``: the
  agents poll at once instead of at their next ``poll_s``. A notice only wakes them: what to
  take still comes from the signed metadata, so a forged one makes a camera poll, nothing more.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from ..config.publish import PublishConfig, Target

log = logging.getLogger(__name__)
STATUS_CHANNEL = "agent"
POLL_CHANNEL = "poll"


def status_topic(prefix: str, site: str, camera: str) -> str:
    return f"{prefix}/{site}/{camera}/{STATUS_CHANNEL}"


def poll_topic(prefix: str, site: str) -> str:
    # "fleet" is not a camera name's topic level: cameras publish on <site>/<camera>/<channel>
    return f"{prefix}/{site}/fleet/{POLL_CHANNEL}"


def mqtt_target(publish: PublishConfig | None) -> Target | None:
    return next((t for t in (publish.targets if publish is not None else ()) if t.kind == "mqtt"), None)


class FleetLink:
    """One agent's connection to the broker: ``report`` its status, ``failures`` of a release
    across the others, ``on_poll`` called on a poll notice. Connects in the background; a broker
    that is down only delays the status (the newest is sent on connect)."""

    def __init__(self, publish: PublishConfig, *, on_poll: Callable[[], None] = lambda: None):
        from ..publish.mqtt import make_client

        target = mqtt_target(publish)
        if target is None:
            raise ValueError("no mqtt target in [turnstile.publish] targets")
        self.target, self.publish = target, publish
        prefix = publish.mqtt.topic_prefix
        self.topic = status_topic(prefix, publish.site, publish.camera)
        self._others = status_topic(prefix, publish.site, "+")
        self._poll = poll_topic(prefix, publish.site)
        self.on_poll = on_poll  # may be set before start()
        self._lock = threading.Lock()
        self._statuses: dict[str, dict] = {}  # camera -> its retained status
        self._last: str | None = None
        self.connected = threading.Event()
        self._client, self.problem = make_client(target, publish.mqtt, client_id=f"maskgate-{publish.site}-"
                                                 f"{publish.camera}-agent")
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_: self.connected.clear()
        self._client.on_message = self._on_message

    def start(self) -> FleetLink:
        if not self.problem:
            self._client.connect_async(self.target.host, self.target.port, keepalive=self.publish.mqtt.keepalive_s)
            self._client.loop_start()
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            self.problem = f"the broker refused the connection: {reason_code}"
            return
        self.problem = ""
        client.subscribe([(self._others, 1), (self._poll, 1)])
        with self._lock:
            last = self._last
        if last is not None:
            client.publish(self.topic, last, qos=1, retain=True)
        self.connected.set()

    def _on_message(self, client, userdata, message):
        if message.topic == self._poll:
            self.on_poll()
            return
        try:
            status = json.loads(message.payload)
        except ValueError:
            return
        camera = message.topic.split("/")[-2]
        if isinstance(status, dict) and camera != self.publish.camera:
            with self._lock:
                self._statuses[camera] = status

    def report(self, status: dict) -> None:
        body = json.dumps(status, separators=(",", ":"))
        with self._lock:
            self._last = body
        if self.connected.is_set():
            self._client.publish(self.topic, body, qos=1, retain=True)

    def failures(self, version: str) -> dict[str, str]:
        """The other cameras that found ``version`` bad, and why (from their retained statuses)."""
        with self._lock:
            statuses = dict(self._statuses)
        return {camera: str(s["bad"][version]) for camera, s in statuses.items()
                if isinstance(s.get("bad"), dict) and version in s["bad"]}

    def close(self) -> None:
        if not self.problem:
            with self._lock:
                last = self._last
            if last is not None and self.connected.is_set():
                self._client.publish(self.topic, last, qos=1, retain=True).wait_for_publish(timeout=2)
            self._client.disconnect()
            self._client.loop_stop()
