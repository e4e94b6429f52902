"""MQTT target (paho-mqtt): events at QoS 1 on ``<prefix>/<site>/<camera>/<channel>``, a
retained health message, and a retained last will ``{"status": "offline"}`` on the health
topic, so a site sees a camera that died.

paho keeps every QoS 1 message it was given until the broker acknowledges it, and sends
it again, in order, after a reconnect; this target gives it each spooled event once, at
most ``max_inflight`` x 5 at a time, and reports the acknowledged prefix to the spool.
The same client speaks MQTT 3.1.1 and 5, over TLS (``mqtts://``) and with a username and
password, to Mosquitto, EMQX, HiveMQ or any other broker.

The target is up only while the broker acknowledges: connected, but with no PUBACK for
``ack_timeout_s``, it counts as down (said once), its events waiting in the spool. Under
MQTT 5 a PUBACK with a failure code (0x87 not authorized, say) refuses that one event, which
becomes a dead letter after a few tries. A password variable that is not set leaves the
target unavailable, its events spooled, until a run that has it.
"""
from __future__ import annotations

import json
import socket
import threading
import time

from ..config.publish import MqttOptions, Target
from ..errors import DependencyError, PublishError
from .sink import EventRefused, Sink, TargetStatus, TargetUnavailable
from .spool import SpooledEvent

CONNECT_GRACE_S = 10.0  # the first connection attempt's time to answer before it counts as an outage


def _paho():
    try:
        from paho.mqtt import client
    except ModuleNotFoundError as exc:
        raise DependencyError("paho-mqtt", extra="publish", purpose="publishing to an MQTT broker") from exc
    return client


def make_client(target: Target, options: MqttOptions, *, client_id: str, will: tuple[str, str] | None = None):
    """A paho client for ``target`` as the site's options say (protocol, TLS, username), not
    connected; and why its credentials are missing ("" when they are not): such a client waits."""
    mqtt = _paho()
    protocol = mqtt.MQTTv5 if options.protocol == "5" else mqtt.MQTTv311
    kwargs = {} if protocol == mqtt.MQTTv5 else {"clean_session": True}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
    client.max_inflight_messages_set(options.max_inflight)
    client.reconnect_delay_set(min_delay=1, max_delay=8)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    problem = ""
    if options.username is not None:
        try:
            client.username_pw_set(options.username, options.password())
        except PublishError as exc:  # this target waits; the camera and the other targets go on
            problem = str(exc)
    if target.tls:
        client.tls_set(ca_certs=str(options.ca_file) if options.ca_file else None,
                       certfile=str(options.cert_file) if options.cert_file else None,
                       keyfile=str(options.key_file) if options.key_file else None)
    return client, problem


def offline_message(site: str, camera: str, reason: str) -> str:
    return json.dumps({"status": "offline", "site": site, "camera": camera, "reason": reason})


class MqttSink(Sink):
    retry_s = 0.2  # paho reconnects by itself; deliver() waits for it

    def __init__(self, target: Target, options: MqttOptions, *, client_id: str, health_topic: str | None,
                 site: str, camera: str, topic_of):
        """``health_topic``: where the retained last will goes (None: no will, for one-shot
        clients such as ``maskgate check --publish``); ``topic_of(channel)``: the topic of a channel."""
        super().__init__(target.name)
        self.target, self.options = target, options
        self._topic_of = topic_of
        self._health_topic = health_topic
        self._site, self._camera = site, camera
        will = None if health_topic is None else (health_topic, offline_message(site, camera, "connection lost"))
        self._client, self._credentials_problem = make_client(target, options, client_id=client_id, will=will)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_connect_fail = self._on_connect_fail
        self._cond = threading.Condition()
        self._connected = False
        self._ever_connected = False
        self._reason = "connecting"
        self._started = time.monotonic()
        self._reconnects = 0
        self._info_of: dict = {}  # seq -> paho's MQTTMessageInfo, for events handed to paho
        self._sent_at: dict[int, float] = {}  # seq -> when it was handed to paho (the PUBACK clock)
        self._refused: dict[int, str] = {}  # mid -> the failure reason code of its PUBACK (MQTT 5)
        self._acking = True  # False: connected, but no PUBACK within ack_timeout_s
        self._state: str | None = None  # the last health message, sent again on (re)connect

    # -- paho's callbacks (its network thread) --------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        with self._cond:
            if reason_code.is_failure:
                self._reason = f"the broker refused the connection: {reason_code}"
                self._cond.notify_all()
                return
            if self._ever_connected:
                self._reconnects += 1
            self._connected, self._ever_connected, self._reason = True, True, ""
            now = time.monotonic()  # paho sends what is in flight again: the PUBACK clock starts over
            self._sent_at = {seq: now for seq in self._sent_at}
            self._cond.notify_all()
        if self._state is not None and self._health_topic is not None:
            client.publish(self._health_topic, self._state, qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        with self._cond:
            if self._connected:  # a refused CONNECT also ends here: keep the refusal as the reason
                self._reason = "connection lost" if str(reason_code) == "Unspecified error" else \
                    f"disconnected ({reason_code})"
            self._connected = False
            self._cond.notify_all()

    def _on_connect_fail(self, client, userdata):
        reason = f"cannot connect to {self.target.host}:{self.target.port} ({self._probe()})"
        with self._cond:
            self._reason = reason
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code=None, properties=None):
        with self._cond:  # paho marks the message's info published; wake deliver() to look
            if reason_code is not None and getattr(reason_code, "is_failure", False):
                self._refused[mid] = f"the broker refused it: {reason_code}"
            self._acking = True
            self._cond.notify_all()

    def _probe(self) -> str:
        """Why a TCP connection to the broker fails (refused, unknown host, timeout)."""
        try:
            socket.create_connection((self.target.host, self.target.port), timeout=2).close()
        except OSError as exc:
            return exc.strerror or str(exc)
        return "the port answers, MQTT does not"

    # -- the Sink contract ----------------------------------------------------------------------
    def start(self) -> None:
        self._started = time.monotonic()
        if self._credentials_problem:
            self._reason = self._credentials_problem
            return
        self._client.connect_async(self.target.host, self.target.port, keepalive=self.options.keepalive_s)
        self._client.loop_start()

    def deliver(self, events: list[SpooledEvent], *, timeout_s: float) -> int | None:
        if self._credentials_problem:
            raise TargetUnavailable(self._credentials_problem)
        if self._first_connection_pending(timeout_s):
            return None  # no outage to report before the first attempt has an answer
        events = events[: self.options.max_inflight * 5]
        mqtt = _paho()
        for event in events:  # each event goes to paho once, while connected; paho resends it after a reconnect
            if event.seq in self._info_of:
                continue
            if not self._connected:
                break
            # The check channel is the camera's latest verdict: retained, as health is.
            info = self._client.publish(self._topic_of(event.channel), event.body, qos=1,
                                        retain=event.channel == "check")
            if info.rc == mqtt.MQTT_ERR_NO_CONN:
                break  # lost the connection just now: paho may still send it, and so will we (a duplicate)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            self._info_of[event.seq] = info
            self._sent_at[event.seq] = time.monotonic()
        deadline = time.monotonic() + timeout_s
        last = None
        with self._cond:
            for event in events:
                info = self._info_of.get(event.seq)
                while info is not None and not info.is_published() and time.monotonic() < deadline:
                    self._cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
                if info is None or not info.is_published():
                    break
                del self._info_of[event.seq]
                self._sent_at.pop(event.seq, None)
                refused = self._refused.pop(info.mid, None)
                if refused is not None:
                    raise EventRefused(event.seq, refused, acked=last)
                last = event.seq
                self.delivered += 1
            if last is None and not self._connected:
                raise TargetUnavailable(self._reason or "not connected")
            waited = time.monotonic() - min(self._sent_at.values(), default=time.monotonic())
            if last is None and waited > self.options.ack_timeout_s:
                self._acking = False
                raise TargetUnavailable(f"connected, but no PUBACK from {self.target.host}:{self.target.port} "
                                        f"for {waited:.0f} s (the broker is not acknowledging)")
        return last

    def _first_connection_pending(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the first connection attempt's answer; True while it is
        still pending and younger than CONNECT_GRACE_S (after that it counts as an outage)."""
        with self._cond:
            deadline = time.monotonic() + timeout_s
            while not self._connected and self._reason == "connecting" and time.monotonic() < deadline:
                self._cond.wait(0.1)
            if self._connected or self._reason != "connecting":
                return False
            if time.monotonic() - self._started < CONNECT_GRACE_S:
                return True
            self._reason = f"no answer from {self.target.host}:{self.target.port} within {CONNECT_GRACE_S:.0f} s"
            return False

    def publish_state(self, channel: str, body: str) -> None:
        self._state = body
        if self._connected:
            self._client.publish(self._topic_of(channel), body, qos=1, retain=True)

    def status(self) -> TargetStatus:
        if self._connected and not self._acking:
            return TargetStatus(self.name, False, f"no PUBACK within {self.options.ack_timeout_s:g} s (connected, "
                                "not acknowledging)", self._reconnects, self.delivered)
        return TargetStatus(self.name, self._connected, self._reason, self._reconnects, self.delivered)

    def close(self, *, offline_reason: str | None = None) -> None:
        if offline_reason is not None and self._health_topic is not None and self._connected:
            info = self._client.publish(self._health_topic, offline_message(self._site, self._camera, offline_reason),
                                        qos=1, retain=True)
            if info.rc == 0:
                info.wait_for_publish(timeout=2)
        if not self._credentials_problem:
            self._client.disconnect()
            self._client.loop_stop()
