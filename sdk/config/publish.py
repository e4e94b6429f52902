"""Where a camera's events go, and how: publish targets parsed from URLs, and the settings
of ``[turnstile.publish]`` (or ``--publish``, ``--site``, ``--camera``, ``--spool``).

A key the table does not take is refused like any other in the config file; a value that
cannot be used (a target of another scheme, a site name with a '/') does not stop the gate:
the config carries the problem (``PublishConfig.problem``, said once when the app starts) and
a config with no targets on the spool it names, so events are kept until the file is fixed.

    mqtt://HOST[:1883]     an MQTT broker (mqtts:// for TLS, port 8883 by default)
    http(s)://HOST/PATH    a webhook: each event POSTed as JSON, signed with a shared secret

Credentials never sit in the URL or the file: ``password_env`` / ``secret_env`` name the
environment variables that hold them.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ..errors import PublishError
from .tables import ConfigError

DEFAULT_SPOOL = Path("maskgate-spool")
TOPIC_PREFIX = "maskgate"
#: what a camera publishes: spooled channels (events, check) and its retained health
CHANNELS = ("events", "check")
FULL_POLICIES = ("drop_oldest", "drop_newest")


def env_secret(variable: str | None, *, what: str, key: str, table: str, empty_ok: bool = False) -> str | None:
    """The value of the environment ``variable`` a setting names for a secret (None: no variable
    named); one not set (or empty, unless ``empty_ok``) is a PublishError naming it and the key."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if value is None or (not value and not empty_ok):
        raise PublishError(f"the {what} variable {variable} is not set; export it, or drop {key} from {table}")
    return value


@dataclass(frozen=True)
class MqttOptions:
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password_env: str | None = None  # the environment variable holding the password
    ca_file: Path | None = None  # TLS: the broker's CA (mqtts:// without it: the system's CAs)
    cert_file: Path | None = None  # TLS client certificate and key, where the broker asks for one
    key_file: Path | None = None
    keepalive_s: int = 30
    topic_prefix: str = TOPIC_PREFIX
    max_inflight: int = 20  # QoS 1 messages sent before their acknowledgement
    # A broker that keeps the connection but acknowledges nothing for this long counts as down.
    ack_timeout_s: float = 10.0

    def __post_init__(self):
        if self.protocol not in ("3.1.1", "5"):
            raise ValueError(f"mqtt protocol must be '3.1.1' or '5', got {self.protocol!r}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mqtt cert_file and key_file go together")
        if self.keepalive_s < 5 or self.max_inflight < 1 or self.ack_timeout_s <= 0:
            raise ValueError("mqtt keepalive_s must be >= 5, max_inflight >= 1 and ack_timeout_s > 0")
        if not self.topic_prefix or any(c in self.topic_prefix for c in "#+"):
            raise ValueError(f"mqtt topic_prefix must be a topic without wildcards, got {self.topic_prefix!r}")

    def password(self) -> str | None:
        return env_secret(self.password_env, what="MQTT password", key="password_env",
                          table="[turnstile.publish.mqtt]", empty_ok=True)


@dataclass(frozen=True)
class WebhookOptions:
    secret_env: str | None = None  # the environment variable holding the HMAC secret
    ca_file: Path | None = None  # https:// with a private CA
    timeout_s: float = 5.0
    first_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def __post_init__(self):
        if self.timeout_s <= 0 or self.first_backoff_s <= 0 or self.max_backoff_s < self.first_backoff_s:
            raise ValueError("webhook timeout_s and first_backoff_s must be > 0, max_backoff_s >= first_backoff_s")

    def secret(self) -> bytes | None:
        value = env_secret(self.secret_env, what="webhook secret", key="secret_env",
                           table="[turnstile.publish.webhook]")
        return None if value is None else value.encode()


@dataclass(frozen=True)
class Target:
    """One place events go: ``kind`` mqtt or webhook, and where."""

    url: str
    kind: Literal["mqtt", "webhook"]
    host: str
    port: int
    tls: bool
    path: str = "/"

    @property
    def name(self) -> str:
        """How logs, health and the spool's cursors name it (never a credential)."""
        return self.url


def parse_target(url: str) -> Target:
    """``mqtt://host:port``, ``mqtts://...``, ``http(s)://host/path`` -> Target, or a
    PublishError that says what a target looks like."""
    text = str(url).strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    expected = "expected mqtt://HOST:PORT, mqtts://HOST:PORT or http(s)://HOST/PATH"
    if scheme not in ("mqtt", "mqtts", "http", "https") or not parts.hostname:
        raise PublishError(f"publish target {text!r}: {expected}")
    if parts.username or parts.password:
        raise PublishError(f"publish target {text!r}: no credentials in the URL; set username and password_env "
                           "in [turnstile.publish.mqtt] (or secret_env for a webhook)")
    try:
        port = parts.port
    except ValueError:
        raise PublishError(f"publish target {text!r}: the port is not a number; {expected}") from None
    tls = scheme in ("mqtts", "https")
    if scheme.startswith("mqtt"):
        if parts.path not in ("", "/"):
            raise PublishError(f"publish target {text!r}: an MQTT target has no path (topics come from "
                               "--site and --camera)")
        return Target(url=f"{scheme}://{parts.hostname}:{port or (8883 if tls else 1883)}", kind="mqtt",
                      host=parts.hostname, port=port or (8883 if tls else 1883), tls=tls)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    port = port or (443 if tls else 80)
    return Target(url=f"{scheme}://{parts.hostname}:{port}{path}", kind="webhook", host=parts.hostname, port=port,
                  tls=tls, path=path)


def site_name(value: str) -> str:
    """A site's name as it stands in topics (ValueError naming what it takes)."""
    return _name(value, "site")


def _name(value: str, what: str) -> str:
    value = str(value)
    if not value or any(c in value for c in "/#+") or value != value.strip():
        raise ValueError(f"{what} must be a non-empty name without '/', '#', '+' or edge spaces, got {value!r}")
    return value


@dataclass(frozen=True)
class PublishConfig:
    """``[turnstile.publish]``: the targets, who this camera is, and its spool.

    ``max_events`` / ``max_age_s`` bound the spool; at the bound ``on_full`` says which
    events go (``drop_oldest``: the newest decisions matter most to a site; ``drop_newest``:
    keep the record of what came first). Every drop is counted and shown in health.
    """

    targets: tuple[Target, ...] = ()
    site: str = "site"
    camera: str = "camera"
    spool: Path = DEFAULT_SPOOL
    max_events: int = 100_000
    max_age_s: float = 7 * 24 * 3600.0
    on_full: str = "drop_oldest"
    # A target that refuses one event this many times in a row (HTTP 4xx, a negative PUBACK)
    # gets it moved to the spool's dead letters, so the events after it go on.
    dead_letter_after: int = 5
    mqtt: MqttOptions = field(default_factory=MqttOptions)
    webhook: WebhookOptions = field(default_factory=WebhookOptions)
    #: what was wrong with the table's values: said once, the gate decides on, events stay spooled
    problem: str | None = field(default=None, metadata={"flag_only": "set by MaskGate"})

    def __post_init__(self):
        _name(self.site, "site")
        _name(self.camera, "camera")
        if self.max_events < 1 or self.max_age_s <= 0 or self.dead_letter_after < 1:
            raise ValueError("max_events and dead_letter_after must be >= 1 and max_age_s > 0")
        if self.on_full not in FULL_POLICIES:
            raise ValueError(f"on_full must be one of {FULL_POLICIES}, got {self.on_full!r}")

    def topic(self, channel: str) -> str:
        """``<prefix>/<site>/<camera>/<channel>`` (events, health, check)."""
        return f"{self.mqtt.topic_prefix}/{self.site}/{self.camera}/{channel}"


def publish_config(table: dict | None = None, *, where: str = "[turnstile.publish]", **overrides) -> PublishConfig:
    """``PublishConfig`` from a ``[turnstile.publish]`` table and flags (``targets``, ``site``,
    ``camera``, ``spool``; None values ignored). Anything malformed is one PublishError
    naming the key and what it takes."""
    values = dict(table or {})
    values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
    known = _keys(PublishConfig)
    unknown = sorted(set(values) - set(known))
    try:
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}")
        targets = values.get("targets", ())
        if isinstance(targets, str):
            targets = (targets,)
        values["targets"] = tuple(parse_target(t) for t in targets)
        if len({t.name for t in values["targets"]}) != len(values["targets"]):
            raise ValueError("a target is listed twice")
        if "spool" in values:
            values["spool"] = Path(values["spool"])
        mqtt = dict(values.get("mqtt", {}))
        for key in ("ca_file", "cert_file", "key_file"):
            if mqtt.get(key) is not None:
                mqtt[key] = Path(mqtt[key])
        if "protocol" in mqtt:
            mqtt["protocol"] = str(mqtt["protocol"])
        values["mqtt"] = MqttOptions(**mqtt)
        webhook = dict(values.get("webhook", {}))
        if webhook.get("ca_file") is not None:
            webhook["ca_file"] = Path(webhook["ca_file"])
        values["webhook"] = WebhookOptions(**webhook)
        return PublishConfig(**values)
    except PublishError as exc:
        raise PublishError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise PublishError(
            f"{where}: {exc}; it takes {', '.join(known)}; [.mqtt] takes "
            f"{', '.join(f.name for f in dataclasses.fields(MqttOptions))}; [.webhook] takes "
            f"{', '.join(f.name for f in dataclasses.fields(WebhookOptions))}") from None


def _keys(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if "flag_only" not in f.metadata]


def read_publish_table(table: object, *, file: str, name: str = "turnstile.publish") -> PublishConfig:
    """``[turnstile.publish]`` from the config file: an unknown key (here or in ``.mqtt`` /
    ``.webhook``) is a ConfigError like everywhere else; values that cannot be used give a
    config that keeps events in the spool it names and says why in ``problem``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{name}] must be a table, got {type(table).__name__}")
    for where, keys, given in ((name, _keys(PublishConfig), table),
                               (f"{name}.mqtt", _keys(MqttOptions), table.get("mqtt", {})),
                               (f"{name}.webhook", _keys(WebhookOptions), table.get("webhook", {}))):
        if not isinstance(given, dict):
            raise ConfigError(f"{file}: [{where}] must be a table, got {type(given).__name__}")
        unknown = [k for k in given if k not in keys]
        if unknown:
            raise ConfigError(f"{file}: [{where}] {unknown[0]}: unknown key; [{where}] takes {', '.join(keys)}")
    try:
        return publish_config(table, where=f"[{name}] in {file}")
    except PublishError as exc:
        return spool_only(table, problem=str(exc), where=f"[{name}] in {file}")


def spool_only(values: dict, *, problem: str, where: str) -> PublishConfig:
    """A config with no targets on the spool (site, camera) ``values`` name, where they parse."""
    keep = {k: v for k, v in values.items() if k in ("site", "camera", "spool")}
    try:
        fallback = publish_config(keep, where=where)
    except PublishError:
        fallback = PublishConfig()
    return dataclasses.replace(fallback, problem=problem)
