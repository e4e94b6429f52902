"""The turnstile's settings from a TOML (or JSON) file, under flags that override them.

    [turnstile]
    builds = "builds"
    roi = [160, 60, 320, 400]        # x, y, width, height of the gate area
    events = "events.jsonl"
    [turnstile.rules]
    frontal_yaw_classes = [1, 2, 3, 4]
    min_mask_prob = 0.5
    window = 5
    [turnstile.stream]
    max_backoff_s = 8.0
    [turnstile.publish]              # see maskgate.publish.targets
    targets = ["mqtt://broker.site:1883"]
    site = "hq"
    camera = "gate-1"
    spool = "/var/lib/maskgate/spool"

A malformed ``[turnstile.publish]`` does not stop the gate: the config carries the problem
(said once when the app starts) and a spool-only publish config, so events are kept.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import read_config
from ..errors import InputError, PublishError
from ..publish import PublishConfig, publish_config
from .app import TurnstileConfig
from .decision import GateRules
from .stream import StreamOptions

_PATHS = ("builds", "events", "video_out", "verify_key")


def load_config(source: str, *, path: str | Path | None = None, **overrides) -> TurnstileConfig:
    """``TurnstileConfig`` for ``source`` from the file at ``path`` (if any), then
    ``overrides`` (None values ignored; ``rules`` / ``stream`` dicts update field by field)."""
    table: dict = {}
    if path is not None:
        table = _read(Path(path))
    publish, problem = _publish(table.pop("publish", None), overrides.pop("publish", None) or {},
                                where=f"[turnstile.publish] in {path}" if path is not None else "--publish")
    rules = {
        **table.pop("rules", {}),
        **{k: v for k, v in (overrides.pop("rules", None) or {}).items() if v is not None},
    }
    stream = {
        **table.pop("stream", {}),
        **{k: v for k, v in (overrides.pop("stream", None) or {}).items() if v is not None},
    }
    values = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    where = str(path) if path is not None else "the turnstile options"
    try:
        for key in _PATHS:
            if values.get(key) is not None:
                values[key] = Path(values[key])
        if values.get("roi") is not None:
            values["roi"] = tuple(int(v) for v in values["roi"])
            if len(values["roi"]) != 4 or values["roi"][2] <= 0 or values["roi"][3] <= 0:
                raise ValueError(f"roi must be x, y, width, height with a positive size, got {values['roi']}")
        if "frontal_yaw_classes" in rules:
            rules["frontal_yaw_classes"] = tuple(int(v) for v in rules["frontal_yaw_classes"])
        return TurnstileConfig(source=str(source), rules=GateRules(**rules), stream=StreamOptions(**stream),
                               publish=publish, publish_problem=problem, **values)
    except (TypeError, ValueError) as exc:
        known = [f.name for f in dataclasses.fields(TurnstileConfig)
                 if f.name not in ("source", "rules", "stream", "publish_problem")]
        raise InputError(f"{where}: {exc}; [turnstile] takes {', '.join(known)}, [turnstile.rules] takes "
                         f"{', '.join(f.name for f in dataclasses.fields(GateRules))}, [turnstile.stream] takes "
                         f"{', '.join(f.name for f in dataclasses.fields(StreamOptions))}") from exc


def _read(path: Path) -> dict:
    where, data = read_config(path)
    table = data.get("turnstile")
    if not isinstance(table, dict):
        raise InputError(f"{where}: no [turnstile] table; see examples/turnstile/turnstile.toml")
    return dict(table)


def _publish(table: dict | None, flags: dict, *, where: str) -> tuple[PublishConfig | None, str | None]:
    """(publish config, problem): None without a [turnstile.publish] table or publish flags; for
    a malformed one, the problem and a config with no targets on the spool it names (if that
    much parses), so the camera keeps its events until the file is fixed."""
    flags = {k: v for k, v in flags.items() if v is not None and v != ()}
    if table is None and not flags:
        return None, None
    if table is not None and not isinstance(table, dict):
        return PublishConfig(), f"{where}: must be a table, got {type(table).__name__}"
    if table is not None and flags.get("targets"):  # --publish adds to the file's targets
        listed = table.get("targets") or []
        listed = [listed] if isinstance(listed, str) else list(listed)
        flags["targets"] = tuple(dict.fromkeys([*listed, *flags["targets"]]))
    try:
        return publish_config(table, where=where, **flags), None
    except PublishError as exc:
        keep = {k: v for k, v in {**(table or {}), **flags}.items() if k in ("site", "camera", "spool")}
        try:
            fallback = publish_config(keep, where=where)
        except PublishError:
            fallback = PublishConfig()
        return fallback, str(exc)
