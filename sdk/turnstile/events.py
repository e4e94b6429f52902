"""The turnstile's events: one JSON object per line, in the schema shipped beside this module
(``events.schema.json``). Every event names its kind, the schema version, the wall-clock
time it was written (UTC, ISO 8601) and the stream time it refers to (seconds from the
first frame; null when no frame was read)."""
from __future__ import annotations

import json
from pathlib import Path

from ..publish import wall_time

SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("events.schema.json")
KINDS = ("gate", "passage", "error", "models", "stop")


def event_record(kind: str, *, stream_time: float | None, **fields) -> dict:
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}; one of {KINDS}")
    return {"event": kind, "schema": SCHEMA_VERSION, "wall_time": wall_time(),
            "stream_time": None if stream_time is None else round(float(stream_time), 3), **fields}


def load_schema() -> dict:
    """The JSON Schema of an event (draft 2020-12)."""
    return json.loads(SCHEMA_FILE.read_text())
