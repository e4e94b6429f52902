"""The turnstile camera app (``maskgate turnstile``, ``examples/turnstile``): the pipeline
from build bundles on a camera, video or stream, the person at the gate, a smoothed
decision (NO_FACE, LOOK_AT_CAMERA, NO_MASK, CANNOT_CHECK, OPEN), a gate event the moment
the gate acts and one summary event per passage."""
from __future__ import annotations

from .app import RunSummary, TurnstileApp, TurnstileConfig
from .config import load_config
from .decision import (
    Decision,
    GateEvent,
    GateRules,
    GateStateMachine,
    Observation,
    Passage,
    choose_person_at_gate,
    observe,
    person_at_gate,
)
from .stream import FrameStream, StreamOptions

__all__ = ["Decision", "FrameStream", "GateEvent", "GateRules", "GateStateMachine", "Observation", "Passage",
           "RunSummary", "StreamOptions", "TurnstileApp", "TurnstileConfig", "choose_person_at_gate",
           "load_config", "observe", "person_at_gate"]
