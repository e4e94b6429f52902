"""Per-frame speed of every build against the reference, measured so that it can be repeated.

``plan_benchmark`` says what ``maskgate benchmark`` would time under a builds folder;
``run_benchmark`` times it (``maskgate.bench.run``: a worker process per configuration,
paired rounds) and returns a ``BenchmarkReport`` (``maskgate.bench.report``). The ratios and
the SLOWER flags come from ``maskgate.bench.paired``.
"""
from __future__ import annotations

from .paired import SLOWER_MARGIN, PairedRatio, paired_ratio
from .plan import plan_benchmark, run_benchmark
from .report import BenchmarkReport, BenchRow
from .run import BenchmarkError, Configuration, Plan

__all__ = ["SLOWER_MARGIN", "BenchRow", "BenchmarkError", "BenchmarkReport", "Configuration", "PairedRatio", "Plan",
           "paired_ratio", "plan_benchmark", "run_benchmark"]
