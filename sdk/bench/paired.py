"""Paired timing: is one build slower than another on this machine, by more than noise?

A shared machine's speed drifts by tens of percent within a minute, so two builds timed one
after the other differ by whatever the machine did in between; a flag drawn from such
timings flips from run to run. Here the two are timed in rounds: in each round both run the
same frames, one right after the other (in an order that changes from round to round), and
the round gives one ratio. Drift moves both sides of a round together and cancels in the
ratio. The verdict comes from the median of those ratios and its distribution-free 95 %
interval (the sign test's order statistics, no assumption about the noise): SLOWER only
when the whole interval lies above ``1 + SLOWER_MARGIN``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: slower by less than this is not worth a flag, and sits where a flag would flip between runs
SLOWER_MARGIN = 0.05
#: the interval's coverage: at least this much (the sign test's steps are coarse)
CONFIDENCE = 0.95
#: with fewer rounds no order statistic gives a 95 % interval
MIN_ROUNDS = 6


@dataclass(frozen=True)
class PairedRatio:
    """``candidate``'s time over ``baseline``'s, round by round: above 1, the candidate is slower."""

    median: float
    low: float  # the interval of the median ratio (coverage >= CONFIDENCE)
    high: float
    rounds: int

    @property
    def slower(self) -> bool:
        return self.low > 1 + SLOWER_MARGIN

    @property
    def faster(self) -> bool:
        return self.high < 1 / (1 + SLOWER_MARGIN)

    @property
    def speedup(self) -> tuple[float, float, float]:
        """The same, as baseline over candidate (above 1, faster): median, low, high."""
        return 1 / self.median, 1 / self.high, 1 / self.low

    def describe(self) -> str:
        median, low, high = self.speedup
        return f"{median:.2f}x ({low:.2f}-{high:.2f})" + (" SLOWER" if self.slower else "")

    def to_dict(self) -> dict:
        median, low, high = self.speedup
        return {"time_ratio": self.median, "time_ratio_low": self.low, "time_ratio_high": self.high,
                "speedup": median, "speedup_low": low, "speedup_high": high, "rounds": self.rounds,
                "slower": self.slower, "margin": SLOWER_MARGIN, "confidence": CONFIDENCE}


def median_interval_ranks(n: int, confidence: float = CONFIDENCE) -> int:
    """The largest ``k`` for which the k-th smallest and k-th largest of ``n`` samples bracket
    their median with at least ``confidence`` (binomial tails of the sign test); 0 if none does."""
    tail = (1 - confidence) / 2
    below, k = 0.0, 0
    for j in range(n):  # P(fewer than j+1 samples under the median) = sum of C(n, i) / 2^n, i <= j
        below += math.comb(n, j) / 2 ** n
        if below > tail:
            break
        k = j + 1
    return k


def paired_ratio(candidate: Sequence[float], baseline: Sequence[float]) -> PairedRatio:
    """The ratio of two builds' times taken in the same rounds (``candidate[i]`` and
    ``baseline[i]`` in round i)."""
    if len(candidate) != len(baseline):
        raise ValueError(f"paired times: {len(candidate)} rounds against {len(baseline)}; pair round by round")
    if len(candidate) < MIN_ROUNDS:
        raise ValueError(f"paired times: {len(candidate)} rounds; at least {MIN_ROUNDS} give a 95 % interval")
    ratios = sorted(c / b for c, b in zip(candidate, baseline))
    n, k = len(ratios), median_interval_ranks(len(ratios))
    middle = (ratios[(n - 1) // 2] + ratios[n // 2]) / 2
    return PairedRatio(median=middle, low=ratios[k - 1], high=ratios[n - k], rounds=n)
