"""The build's 'vs fp32' column: each reduced-precision bundle timed against its fp32
sibling in the same rounds, so that a SLOWER flag says something about the bundle, not
about what the machine did between two checks.

Once every bundle is verified, each model x format's bundles are opened side by side (one
runtime, one process) and run on their golden input in rounds (``maskgate.bench.rounds``):
each round runs every one of them ``BLOCK`` times, in a shuffled order, and gives each
reduced-precision bundle one ratio to its fp32 sibling; ``maskgate.bench.paired`` turns
the rounds into the ratio, its 95 % interval and the flag; a bundle whose interval holds
the margin gets up to 3 more sets of rounds with its sibling (``extend_open``). Bundles checked in a
simulator (NPU formats) are not timed: a simulator's speed says nothing about the chip's.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import MaskGateError
from ..formats import get_format
from .config import BuildResult

log = logging.getLogger(__name__)

ROUNDS = 12
BLOCK = 3  # inferences per bundle per round: the fastest is the round's time


def pair_with_fp32(results: list[BuildResult], *, threads: int, progress: bool = True) -> None:
    """Set ``vs_fp32`` on every reduced-precision result whose fp32 sibling (same model and
    format) built; a group that cannot be timed is logged and left without the figure."""
    from ..progress import progress as progress_bar

    groups: dict[tuple[str, str], list[BuildResult]] = {}
    for r in results:
        if r.error is None and not get_format(r.format).simulated:
            groups.setdefault((r.model, r.format), []).append(r)
    pairs = [(members, fp32) for members in groups.values()
             for fp32 in [next((r for r in members if r.precision == "fp32"), None)]
             if fp32 is not None and len(members) > 1]
    if not pairs:
        return
    for members, fp32 in progress_bar(pairs, desc="timing vs fp32", total=len(pairs), enabled=progress,
                                      unit="group"):
        try:
            times = _timed_in_rounds(members, threads=threads)
        except (MaskGateError, RuntimeError, ValueError, OSError) as exc:
            log.warning("%s %s: the paired timing against fp32 failed (%s); no 'vs fp32' figure",
                        fp32.model, fp32.format, exc)
            continue
        from ..bench.paired import paired_prefix

        for r in members:
            if r is not fp32:
                r.vs_fp32 = paired_prefix(times[r.target], times[fp32.target])


def _timed_in_rounds(members: list[BuildResult], *, threads: int) -> dict[str, list[float]]:
    import numpy as np

    from maskgate.runtimes.select import open_best
    from maskgate.runtimes.trust import configured_trust

    from ..bench.rounds import extend_open, in_rounds
    from ..check.checker import golden_inputs

    trust = dataclasses.replace(configured_trust(), allow_failed_builds=True)  # timed whatever its gates said
    with contextlib.ExitStack() as stack:
        contenders: dict[str, Callable[[int], float]] = {}
        for r in members:
            selection = open_best(Path(r.path), r.model, threads=threads, formats=(r.format,),
                                  precisions=(r.precision,), trust=trust, checking=True)
            runner = stack.enter_context(selection.runner)
            inputs = golden_inputs(Path(r.path), selection.manifest)
            feed = {selection.manifest.input.name: np.ascontiguousarray(inputs[:1])}
            contenders[r.target] = _block(runner, feed)
        done = in_rounds(contenders, rounds=ROUNDS, seed=len(members))
        fp32 = next(r.target for r in members if r.precision == "fp32")
        pairs = [(r.target, fp32) for r in members if r.precision != "fp32"]

        def run_more(names: list[str], extension: int) -> dict[str, list[float]]:
            more = in_rounds({n: contenders[n] for n in names}, rounds=ROUNDS, seed=len(members) + 1 + extension)
            return more.times

        extend_open(done.times, pairs, run_more)  # a bundle about as slow as the margin: more rounds
    return done.times


def _block(runner, feed: dict) -> Callable[[int], float]:
    def run(_round: int) -> float:
        times = []
        for _ in range(BLOCK):
            start = time.perf_counter()
            runner.infer(feed)
            times.append(time.perf_counter() - start)
        return min(times) * 1e3  # load only adds time: the fastest of the block is the steadiest
    return run
