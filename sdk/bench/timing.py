"""Timing a pipeline frame by frame: the one loop behind every per-frame figure."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


def time_frames(pipeline, frames: Sequence[np.ndarray], *, classify: Callable | None = None
                ) -> tuple[list[float], dict[str, list[float]]]:
    """Each frame's ms through ``pipeline`` (``classify``: its chooser of the faces to
    classify, None for every face), and each stage's ms (``maskgate.pipeline.STAGES``)."""
    from maskgate.pipeline import STAGES

    totals: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for frame in frames:
        timings: dict = {}
        begin = time.perf_counter()
        pipeline(frame, timings=timings, classify=classify)
        totals.append((time.perf_counter() - begin) * 1e3)
        for stage in STAGES:
            stages[stage].append(timings.get(stage, 0.0))
    return totals, stages


def pipeline_figures(pipeline, frames: Sequence[np.ndarray], *, warmup: int = 3, classify: Callable | None = None
                     ) -> dict:
    """Median ms per frame and per stage after ``warmup`` frames, in this process."""
    for frame in frames[:warmup]:
        pipeline(frame, classify=classify)
    totals, stages = time_frames(pipeline, frames, classify=classify)
    return {"ms": statistics.median(totals), "stages": {s: statistics.median(v) for s, v in stages.items()}}
