"""What ``maskgate benchmark`` times under a builds folder, checked before anything runs."""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from .paired import MIN_ROUNDS
from .report import BenchmarkReport, rows_from
from .run import BenchmarkError, Configuration, Plan, time_configurations


def plan_benchmark(builds: str | Path, *, threads: tuple[int, ...] = (1, 2), profiles: tuple[str, ...] | None = None,
                   only: tuple[tuple[str, str], ...] | None = None, rounds: int = 30, block: int = 4,
                   prefer: str = "cpu", reference: bool = True,
                   config_file: Path | None = None) -> tuple[Plan, list[str]]:
    """The plan, and notes on what it leaves out and why. Every format x precision whose
    three models (detector at the profile's canvas, mask, pose) are under ``builds`` is timed,
    per profile; ``only`` narrows to those (format, precision) pairs."""
    from maskgate.classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL
    from maskgate.detector import DEFAULT_DETECTOR
    from maskgate.profiles import PROFILES, canvas_name
    from maskgate.runtimes.select import readable_bundles

    if rounds < MIN_ROUNDS:
        raise BenchmarkError(f"--rounds {rounds}: at least {MIN_ROUNDS} rounds give a 95 % interval for a ratio")
    if block < 1 or not threads or min(threads) < 1:
        raise BenchmarkError("each round needs at least one run and one thread")
    unknown = [p for p in profiles or () if p not in PROFILES]
    if unknown:
        raise BenchmarkError(f"--profiles {','.join(unknown)}: unknown profile; choose from {', '.join(PROFILES)}")
    bundles = readable_bundles(builds)  # a missing folder is refused here, naming the build command
    have: dict[str, set[tuple[str, str]]] = {}
    detectors: dict[str, set[tuple[str, str]]] = {}
    for _, m in bundles:
        if m.model == DEFAULT_DETECTOR:
            canvas = canvas_name((int(m.input.size[0]), int(m.input.size[1])))
            detectors.setdefault(canvas, set()).add((m.format, m.precision))
        else:
            have.setdefault(m.model, set()).add((m.format, m.precision))
    classified = have.get(DEFAULT_MASK_MODEL, set()) & have.get(DEFAULT_POSE_MODEL, set())
    notes: list[str] = []
    configurations: list[Configuration] = []
    for profile in (PROFILES[p] for p in (profiles or tuple(PROFILES))):
        at_canvas = detectors.get(profile.canvas, set())
        wanted = sorted(at_canvas & classified, key=_order)
        if only is not None:
            wanted = [w for w in wanted if w in set(only)]
        missing = sorted(at_canvas - classified)
        if missing:
            notes.append(f"{profile.name}: {', '.join(' '.join(m) for m in missing)}: detector bundles without both "
                         "classifiers at the same format and precision, not timed")
        if not wanted:
            if profiles is not None:
                raise BenchmarkError(f"{builds}: no pipeline of profile {profile.name!r} to time (a detector at "
                                     f"{profile.canvas} and both classifiers{_only(only)}); build one with 'maskgate "
                                     f"build --profile {profile.name}'")
            continue
        if reference:
            configurations.append(Configuration("pytorch", "fp32", profile.name, profile.canvas))
        configurations.extend(Configuration(f, p, profile.name, profile.canvas) for f, p in wanted)
    if not any(not c.is_reference for c in configurations):
        raise BenchmarkError(f"{builds}: no pipeline to time (a detector and both classifiers of one format and "
                             f"precision{_only(only)}); build them with 'maskgate build --out {builds}'")
    if reference and importlib.util.find_spec("torch") is None:
        configurations = [c for c in configurations if not c.is_reference]
        notes.append("no PyTorch here (a camera install): no reference rows; the builds are compared with their fp32 "
                     "siblings only (pip install the [torch] extra for the reference)")
    return Plan(Path(builds), tuple(configurations), tuple(threads), rounds, block, prefer, config_file), notes


def _order(pair: tuple[str, str]) -> tuple[int, int]:
    from maskgate.formats import FORMAT_NAMES, PRECISIONS

    fmt, precision = pair
    return (FORMAT_NAMES.index(fmt) if fmt in FORMAT_NAMES else len(FORMAT_NAMES),
            PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS))


def _only(only) -> str:
    return f" among --only {','.join(':'.join(o) for o in only)}" if only else ""


def run_benchmark(plan: Plan, *, notes: list[str] | None = None,
                  on_round: Callable[[int, int, int], None] | None = None) -> BenchmarkReport:
    timed = time_configurations(plan, on_round=on_round)
    return BenchmarkReport(str(plan.builds), plan.rounds, plan.block, rows_from(timed), list(notes or []))
