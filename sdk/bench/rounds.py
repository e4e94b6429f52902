"""Rounds: every contender once per round, in an order shuffled from round to round.

The one schedule behind every paired figure (``maskgate benchmark``'s worker processes, the
build's in-process 'vs fp32' column): each contender is a callable that runs its block for
round ``r`` and returns the block's time; what the schedule guarantees is that every
round's times were taken within moments of each other, by every contender still running.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

#: round 0 is run and dropped: first calls pay for caches, lazy allocations, thread start-up
WARMUP_ROUNDS = 1


@dataclass
class RoundTimes:
    times: dict[str, list[float]] = field(default_factory=dict)  # contender -> its time in each kept round
    errors: dict[str, Exception] = field(default_factory=dict)  # contender -> why it stopped


def in_rounds(contenders: Mapping[str, Callable[[int], float]], *, rounds: int, seed: int = 0,
              errors: tuple[type[Exception], ...] = (), after_round: Callable[[int], None] | None = None,
              group_of: Callable[[str], str] | None = None) -> RoundTimes:
    """``rounds`` kept rounds (after ``WARMUP_ROUNDS``) of every contender. One that raises one of
    ``errors`` is left out of the rounds after, its error kept; its earlier rounds stay, so
    pairs with it use the rounds both ran. The order is shuffled with ``seed``: runs repeat it.
    ``group_of``: contenders of one group (the builds compared with each other) run back to back
    within a round, the groups and each group's members in shuffled orders: the pairs that
    decide a flag are then timed within a fraction of a second of each other, not a round apart."""
    out = RoundTimes({name: [] for name in contenders})
    live = list(contenders)
    order = random.Random(seed)
    group = group_of or (lambda name: name)
    for r in range(rounds + WARMUP_ROUNDS):
        groups: dict[str, list[str]] = {}
        for name in live:
            groups.setdefault(group(name), []).append(name)
        keys = sorted(groups)
        order.shuffle(keys)
        schedule = []
        for key in keys:
            members = groups[key]
            order.shuffle(members)
            schedule.extend(members)
        for name in schedule:
            try:
                elapsed = contenders[name](r)
            except errors as exc:
                out.errors[name] = exc
                live.remove(name)
                continue
            if r >= WARMUP_ROUNDS:
                out.times[name].append(elapsed)
        if after_round is not None:
            after_round(r)
    return out


#: at most this many more sets of rounds for a build whose flag the rounds so far leave open
EXTENSIONS = 3


def extend_open(times: dict[str, list[float]], pairs: Sequence[tuple[str, str]],
                run_more: Callable[[list[str], int], Mapping[str, list[float]]], *,
                extensions: int = EXTENSIONS) -> None:
    """More rounds for each (candidate, baseline) pair of ``pairs`` whose flag is still open (its
    interval holds the margin itself: a build about as much slower as the margin, which one run's
    luck would flag and the next not). ``run_more(names, extension)`` times those contenders in
    more rounds together; what it returns is appended to ``times`` in step, so pairs stay round
    by round. Up to ``extensions`` times, until each interval falls on one side."""
    from .paired import SLOWER_MARGIN, paired_prefix

    def open_(candidate: list[float], baseline: list[float]) -> bool:
        ratio = paired_prefix(candidate, baseline)
        return ratio is not None and ratio.low <= 1 + SLOWER_MARGIN <= ratio.high

    for extension in range(extensions):
        batches: dict[str, list[str]] = {}
        for candidate, baseline in pairs:
            if candidate in times and baseline in times and open_(times[candidate], times[baseline]):
                batches.setdefault(baseline, []).append(candidate)
        if not batches:
            return
        for baseline, candidates in batches.items():
            names = [baseline, *candidates]
            more = run_more(names, extension)
            n = min(len(more.get(name, [])) for name in names)
            for name in names:
                times[name].extend(more[name][:n])
