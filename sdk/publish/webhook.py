"""Webhook target: each event POSTed as JSON, in order, signed with a shared secret.

Headers: ``X-MaskGate-Id`` and ``X-MaskGate-Seq`` (the event's id and per-camera sequence
number, for dedupe), ``X-MaskGate-Timestamp`` (unix seconds) and, with a secret,
``X-MaskGate-Signature: sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>``: a
receiver checks it with ``verify_signature`` (the timestamp bounds replays). Any 2xx is an
acknowledgement. A 4xx that is about the event (400, 409, 413, 415, 422, ...: ``REFUSALS``)
refuses that one event: after a few such answers it becomes a dead letter
(``maskgate.publish.spool``) and the events after it go on. A 4xx about the target (401 and 403:
the secrets disagree; 404, 405, 410: the wrong URL; 408, 429: busy), a 5xx, a timeout or a lost
connection holds every event back, retried with backoff, in order, until the target is fixed:
turning each of them into a dead letter would empty the spool into a pile to replay.
A secret whose variable is not set leaves the target unavailable (its events wait).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import random
import ssl
import time

from ..config.publish import Target, WebhookOptions
from ..errors import PublishError
from .sink import EventRefused, Sink, TargetStatus, TargetUnavailable
from .spool import SpooledEvent

#: statuses that refuse the one event sent (its body), not the camera or the URL
REFUSALS = frozenset({400, 409, 411, 412, 413, 414, 415, 417, 422, 424, 431})
SIGNATURE_HEADER = "X-MaskGate-Signature"
TIMESTAMP_HEADER = "X-MaskGate-Timestamp"


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    return "sha256=" + hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, headers, secret: bytes, *, tolerance_s: float = 300.0,
                     now: float | None = None) -> bool:
    """Whether a webhook request is from a camera holding ``secret``: the signature matches
    the body and timestamp, and the timestamp is within ``tolerance_s`` of ``now``."""
    try:
        timestamp = int(headers.get(TIMESTAMP_HEADER, ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, secret, timestamp), str(headers.get(SIGNATURE_HEADER, "")))


class WebhookSink(Sink):
    def __init__(self, target: Target, options: WebhookOptions):
        super().__init__(target.name)
        self.target = target
        self.options = options
        self._failures = 0
        self._reason = ""
        self._reconnects = 0
        self._ok = False
        self.retry_s = options.first_backoff_s

    def _connection(self) -> http.client.HTTPConnection:
        if self.target.tls:
            context = ssl.create_default_context(cafile=str(self.options.ca_file) if self.options.ca_file else None)
            return http.client.HTTPSConnection(self.target.host, self.target.port, timeout=self.options.timeout_s,
                                               context=context)
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.options.timeout_s)

    def deliver(self, events: list[SpooledEvent], *, timeout_s: float) -> int | None:
        try:
            secret = self.options.secret()  # read each time: a missing variable is an outage, not a crash
        except PublishError as exc:
            self._fail(str(exc))
            raise TargetUnavailable(str(exc)) from None
        last = None
        connection = self._connection()
        try:
            for event in events:
                problem, status = self._post(connection, event, secret)
                if problem and status in REFUSALS:
                    self._ok, self._reason = True, f"refused event {event.id}: {problem}"  # it answers: it is up
                    raise EventRefused(event.seq, problem, acked=last)
                if problem:
                    self._fail(problem)
                    if last is None:
                        raise TargetUnavailable(problem)
                    break
                last = event.seq
                self.delivered += 1
                if not self._ok:
                    self._reconnects += self._failures > 0
                self._ok, self._failures, self._reason = True, 0, ""
                self.retry_s = self.options.first_backoff_s
        finally:
            connection.close()
        return last

    def _post(self, connection: http.client.HTTPConnection, event: SpooledEvent, secret: bytes | None
              ) -> tuple[str, int]:
        """("", status) when acknowledged, else (what went wrong, the HTTP status or 0)."""
        body = event.body.encode()
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-MaskGate-Id": event.id, "X-MaskGate-Seq": str(event.seq),
                   TIMESTAMP_HEADER: str(stamp)}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, secret, stamp)
        try:
            connection.request("POST", self.target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), 0
        if 200 <= response.status < 300:
            return "", response.status
        return f"HTTP {response.status} {response.reason}".strip(), response.status

    def _fail(self, reason: str) -> None:
        self._ok = False
        self._failures += 1
        self._reason = reason
        # Exponential backoff with jitter, so a fleet does not retry in step after an outage.
        base = min(self.options.max_backoff_s, self.options.first_backoff_s * 2 ** (self._failures - 1))
        self.retry_s = base * random.uniform(0.75, 1.25)

    def status(self) -> TargetStatus:
        return TargetStatus(self.name, self._ok, self._reason, self._reconnects, self.delivered)
