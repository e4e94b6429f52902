"""The turnstile's settings: ``[turnstile]`` of the MaskGate config (``maskgate.config``, the one
reader, which also holds the ``[trust]`` the app runs under), under flags that override them.
``examples/turnstile/turnstile.toml`` shows every table.

A malformed value in ``[turnstile.publish]`` does not stop the gate: the config carries the
problem (said once when the app starts) and a spool-only publish config, so events are kept.
An unknown key there, as anywhere in the file, is refused before the app starts.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import MaskGateConfig, active_config, use_config
from ..config.publish import PublishConfig, parse_target
from ..config.tables import ConfigError
from ..config.turnstile import TurnstileConfig
from ..errors import InputError

_PATHS = ("builds", "events", "video_out", "verify_key", "heartbeat")


def load_config(source: str | None = None, *, path: str | Path | None = None, config: MaskGateConfig | None = None,
                **overrides) -> TurnstileConfig:
    """``TurnstileConfig`` for ``source``: ``[turnstile]`` of ``config`` (default: the process's
    config; ``path``: make the file there the process's config first, as ``--config`` does, so
    its ``[trust]`` and ``[devices]`` hold too), then ``overrides`` (None values ignored;
    ``rules`` / ``stream`` / ``publish`` dicts update field by field)."""
    if path is not None:
        use_config(path)
    config = config if config is not None else active_config()
    base = config.turnstile
    rules = {k: v for k, v in (overrides.pop("rules", None) or {}).items() if v is not None}
    stream = {k: v for k, v in (overrides.pop("stream", None) or {}).items() if v is not None}
    publish = overrides.pop("publish", None) or {}
    values = {k: v for k, v in overrides.items() if v is not None}
    if source is not None:
        values["source"] = str(source)
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(TurnstileConfig)})
    if unknown:
        raise InputError(f"the turnstile options: unknown option(s) {unknown}")
    try:
        for key in _PATHS:
            if key in values:
                values[key] = Path(values[key])
        if "roi" in values:
            values["roi"] = tuple(int(v) for v in values["roi"])
            if len(values["roi"]) != 4:
                raise ValueError(f"roi must be x, y, width, height, got {list(values['roi'])}")
        if "frontal_yaw_classes" in rules:
            rules["frontal_yaw_classes"] = tuple(int(v) for v in rules["frontal_yaw_classes"])
        turnstile = dataclasses.replace(
            base, rules=dataclasses.replace(base.rules, **rules), stream=dataclasses.replace(base.stream, **stream),
            publish=_with_flags(base.publish, publish), **values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the turnstile options (over {config.where}): {exc}") from None
    if turnstile.source is None:
        raise ConfigError(f"no source: give SOURCE (a camera index, a video, an rtsp:// or http:// URL) or "
                          f"[turnstile] source in {config.where}")
    return turnstile


def _with_flags(base: PublishConfig | None, flags: dict) -> PublishConfig | None:
    """``--publish`` (adds to the file's targets), ``--site``, ``--camera``, ``--spool`` over the
    ``[turnstile.publish]`` config; a flag that cannot be used is refused (the operator typed it now)."""
    flags = {k: v for k, v in flags.items() if v is not None and v != ()}
    if not flags:
        return base
    base = base if base is not None else PublishConfig()
    targets = list(base.targets)
    for url in flags.pop("targets", ()):
        target = parse_target(url)
        if target.name not in {t.name for t in targets}:
            targets.append(target)
    if "spool" in flags:
        flags["spool"] = Path(flags["spool"])
    return dataclasses.replace(base, targets=tuple(targets), **flags)
