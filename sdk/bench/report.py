"""``maskgate benchmark``'s results: one row per configuration and thread count, the table
a person reads and the JSON a script compares between versions."""
from __future__ import annotations

import platform
from dataclasses import dataclass, field

from .paired import CONFIDENCE, SLOWER_MARGIN, PairedRatio
from .run import Configuration, Timed, paired

GENERAL = "general"


@dataclass
class BenchRow:
    configuration: Configuration
    threads: int
    timed: Timed
    vs_reference: PairedRatio | None = None  # against the PyTorch reference at 640x480, same threads
    vs_reference_same_canvas: PairedRatio | None = None  # a turnstile row: the reference at its own canvas
    vs_fp32: PairedRatio | None = None  # a reduced-precision row: its fp32 sibling (same format, profile)

    @property
    def slower(self) -> bool:
        return self.vs_fp32 is not None and self.vs_fp32.slower

    def to_dict(self) -> dict:
        c, t = self.configuration, self.timed
        return {"format": c.format, "precision": c.precision, "profile": c.profile, "canvas": c.canvas,
                "threads": self.threads, "ms": t.ms, "stages_ms": t.stage_ms(), "rounds_ms": t.rounds,
                "extended_rounds": t.extended,
                "peak_rss_mb": t.peak_rss_mb, "model_rss_mb": t.model_mb, "where": t.where, "faces": t.faces,
                "vs_reference": _dict(self.vs_reference),
                "vs_reference_same_canvas": _dict(self.vs_reference_same_canvas),
                "vs_fp32": _dict(self.vs_fp32), "slower": self.slower, "error": t.error}


def _dict(ratio: PairedRatio | None) -> dict | None:
    return ratio.to_dict() if ratio is not None else None


@dataclass
class BenchmarkReport:
    builds: str
    rounds: int
    block: int
    rows: list[BenchRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def slower(self) -> list[BenchRow]:
        return [row for row in self.rows if row.slower]

    def to_dict(self) -> dict:
        return {"builds": self.builds, "rounds": self.rounds, "runs_per_round": self.block,
                "machine": {"cpu": _cpu_name(), "cores": usable_cores(), "python": platform.python_version()},
                "rule": RULE, "records": [row.to_dict() for row in self.rows], "notes": self.notes,
                "slower": [f"{r.configuration.name} ({r.threads} thread(s))" for r in self.slower]}


RULE = ("ratios are paired: every configuration runs the same frame in each round, in a shuffled order, its "
        "fastest run the round's time; shown is the rounds' ratio (a trimmed mean) and its "
        f"{CONFIDENCE:.0%} interval (rounds resampled in pairs). SLOWER: a reduced-precision build whose whole "
        f"interval against its fp32 sibling lies more than {SLOWER_MARGIN:.0%} below 1x; one whose interval holds that "
        "line gets more rounds with its sibling (up to 3 more sets) until it falls on one side, and is not flagged if "
        "it never does.")


def rows_from(timed: list[Timed]) -> list[BenchRow]:
    """Each configuration with its ratios against the partners timed in the same rounds."""
    by_threads: dict[int, list[Timed]] = {}
    for t in timed:
        by_threads.setdefault(t.threads, []).append(t)
    rows = []
    for t in timed:
        c, mates = t.configuration, by_threads[t.threads]
        general_ref = next((o for o in mates if o.configuration.is_reference and o.configuration.profile == GENERAL),
                           None)
        own_ref = next((o for o in mates if o.configuration.is_reference and o.configuration.canvas == c.canvas), None)
        fp32 = next((o for o in mates if (o.configuration.format, o.configuration.precision, o.configuration.profile)
                     == (c.format, "fp32", c.profile)), None)
        rows.append(BenchRow(c, t.threads, t, vs_reference=paired(t, general_ref),
                             vs_reference_same_canvas=paired(t, own_ref) if c.profile != GENERAL else None,
                             vs_fp32=paired(t, fp32) if c.precision != "fp32" else None))
    return rows


def _ratio(ratio: PairedRatio | None) -> str:
    return ratio.describe() if ratio is not None else "-"


HEADER = ["threads", "configuration", "canvas", "ms/frame", "vs reference", "vs fp32", "preprocess", "detect",
          "postprocess", "align", "classify", "peak MB (+models)"]


def table(report: BenchmarkReport) -> str:
    body = []
    for row in report.rows:
        t = row.timed
        if t.error or t.ms is None:
            body.append([str(row.threads), row.configuration.name, row.configuration.canvas, "not run", "-", "-",
                         "", "", "", "", "", ""])
            continue
        stages = t.stage_ms()
        growth = f" (+{t.model_mb:.0f})" if t.model_mb is not None else ""
        vs_ref = _ratio(row.vs_reference)
        if row.vs_reference_same_canvas is not None:
            vs_ref += f"; {_ratio(row.vs_reference_same_canvas)} at {row.configuration.canvas}"
        vs_fp32 = _ratio(row.vs_fp32)
        if row.vs_fp32 is not None and row.vs_fp32.rounds > report.rounds:
            vs_fp32 += f", {row.vs_fp32.rounds} rounds"
        body.append([str(row.threads), row.configuration.name, row.configuration.canvas, f"{t.ms:.2f}", vs_ref,
                     vs_fp32, *(f"{stages.get(s, 0.0):.2f}" for s in
                                ("preprocess", "detect", "postprocess", "align", "classify")),
                     f"{t.peak_rss_mb:.0f}{growth}" if t.peak_rss_mb is not None else "-"])
    widths = [max(len(x) for x in col) for col in zip(HEADER, *body)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()
             for cells in [HEADER, ["-" * w for w in widths], *body]]
    failed = [f"{r.configuration.name} ({r.threads} thread(s)): {r.timed.error}" for r in report.rows if r.timed.error]
    slower = [f"{r.configuration.name} ({r.threads} thread(s)): {r.vs_fp32.describe()}"
              for r in report.slower if r.vs_fp32 is not None]
    legend = (f"ms/frame: median of {report.rounds} rounds x {report.block} runs (a 640x480 frame with one face, "
              f"another each round), stages in ms; vs reference, vs fp32: speed-up (above 1x, faster) with its "
              f"interval. {RULE}")
    return "\n".join(lines + ["", legend]
                     + (["", "SLOWER than the fp32 sibling: " + "; ".join(slower)] if slower else [])
                     + report.notes + ([""] + ["not run: " + f for f in failed] if failed else []))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
