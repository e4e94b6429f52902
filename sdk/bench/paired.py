"""Paired timing: is one build slower than another on this machine, by more than noise?

A shared machine's speed drifts by tens of percent within a minute, so two builds timed one
after the other differ by whatever the machine did in between; a flag drawn from such
timings flips from run to run. Here the two are timed in rounds: in each round both run the
same input, one right after the other (in an order that changes from round to round), and
drift moves both sides of a round together; each round gives one ratio.

The figure is the trimmed mean of the rounds' log ratios (``TRIM`` of the rounds dropped at
each end, those that a burst of load hit on one side only), and its 95 % interval comes from
resampling the rounds (a seeded bootstrap: the same times give the same interval). Not the
median: a pipeline's ratio differs from frame to frame (a frame whose person is classified
leans on the classifiers' ratio, one without on the detector's), and the median of such a
mix jumps between its modes from one run to the next, where a mean moves with the mix.
SLOWER only when the whole interval lies more than ``SLOWER_MARGIN`` beyond the sibling's time.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: slower by less than this is not worth a flag, and sits where a flag would flip between runs
SLOWER_MARGIN = 0.05
CONFIDENCE = 0.95
#: fewer rounds than this say too little about the spread to give an interval
MIN_ROUNDS = 6
RESAMPLES = 2000
#: the share of rounds dropped at each end: a round that a burst of load hit on one side only
TRIM = 0.2
SEED = 0


@dataclass(frozen=True)
class PairedRatio:
    """``candidate``'s time over ``baseline``'s in the same rounds: above 1, slower."""

    ratio: float
    low: float  # its interval (CONFIDENCE)
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
        """The same, as baseline over candidate (above 1, faster): the figure, low, high."""
        return 1 / self.ratio, 1 / self.high, 1 / self.low

    def describe(self) -> str:
        figure, low, high = self.speedup
        return f"{figure:.2f}x ({low:.2f}-{high:.2f})" + (" SLOWER" if self.slower else "")

    def to_dict(self) -> dict:
        figure, low, high = self.speedup
        return {"time_ratio": self.ratio, "time_ratio_low": self.low, "time_ratio_high": self.high,
                "speedup": figure, "speedup_low": low, "speedup_high": high, "rounds": self.rounds,
                "slower": self.slower, "margin": SLOWER_MARGIN, "confidence": CONFIDENCE}


def paired_ratio(candidate: Sequence[float], baseline: Sequence[float]) -> PairedRatio:
    """The ratio of two builds' times taken in the same rounds (``candidate[i]`` and
    ``baseline[i]`` in round i)."""
    if len(candidate) != len(baseline):
        raise ValueError(f"paired times: {len(candidate)} rounds against {len(baseline)}; pair round by round")
    if len(candidate) < MIN_ROUNDS:
        raise ValueError(f"paired times: {len(candidate)} rounds; at least {MIN_ROUNDS} give an interval")
    logs = np.log(np.asarray(candidate, float) / np.asarray(baseline, float))
    picks = np.random.default_rng(SEED).integers(0, len(logs), size=(RESAMPLES, len(logs)))
    resampled = _trimmed_mean(logs[picks])
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.exp(np.percentile(resampled, [tail, 100 - tail]))
    return PairedRatio(ratio=float(np.exp(_trimmed_mean(logs[None, :])[0])), low=float(low), high=float(high),
                       rounds=len(logs))


def _trimmed_mean(logs: np.ndarray) -> np.ndarray:
    """Each row's mean after dropping its TRIM share of lowest and of highest values."""
    cut = int(TRIM * logs.shape[1])
    kept = np.sort(logs, axis=1)[:, cut:logs.shape[1] - cut]
    return kept.mean(axis=1)


def paired_prefix(candidate: Sequence[float], baseline: Sequence[float]) -> PairedRatio | None:
    """``paired_ratio`` over the rounds both ran (a build given more rounds to settle its flag
    has more than a sibling that did not need them; rounds are appended in step, so the common
    prefix pairs round by round); None with fewer than MIN_ROUNDS of them."""
    n = min(len(candidate), len(baseline))
    return paired_ratio(candidate[:n], baseline[:n]) if n >= MIN_ROUNDS else None
