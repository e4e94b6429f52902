"""``maskgate benchmark``'s measurement: every configuration timed in the same rounds.

For each thread count: one worker process per configuration (``maskgate.bench.worker``),
all loaded and warmed up first; then rounds, in each of which every configuration runs the
round's frame a few times, one configuration after another in an order shuffled per round
(the builds compared for a flag back to back; a fixed seed: two runs shuffle alike). A round
gives each configuration one time (the fastest of its runs) and two configurations one
paired ratio (``maskgate.bench.paired``), so the speed-ups and the SLOWER flags are not at
the mercy of what the machine did in between.
"""
from __future__ import annotations

import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MaskGateError
from .paired import PairedRatio, paired_prefix
from .rounds import WARMUP_ROUNDS, extend_open, in_rounds

#: seconds a worker may take to load its models (an OpenVINO compile, torch's import) or a block
LOAD_TIMEOUT_S = 300
BLOCK_TIMEOUT_S = 120


SETTLE_S = 0.01
IDLE_NS_PER_MS = 100_000  # under 0.1 ms of CPU in 1 ms of wall time: the worker is idle


def _cpu_ns(pid: int) -> int | None:
    """CPU time used so far by every thread of process ``pid`` (Linux's schedstat), in ns."""
    try:
        tasks = list(os.scandir(f"/proc/{pid}/task"))
    except OSError:
        return None
    total = 0
    for task in tasks:
        try:
            with open(f"{task.path}/schedstat") as stat:
                total += int(stat.read().split()[0])
        except (OSError, ValueError):  # a thread that ended meanwhile
            continue
    return total


class BenchmarkError(MaskGateError):
    """A benchmark that cannot run as asked (no bundles to time, a worker that failed)."""


@dataclass(frozen=True)
class Configuration:
    """What one worker runs: the PyTorch reference at a canvas, or one format x precision's pipeline."""

    format: str  # "pytorch" for the reference
    precision: str
    profile: str
    canvas: str  # the detector's, WxH

    @property
    def is_reference(self) -> bool:
        return self.format == "pytorch"

    @property
    def name(self) -> str:
        if self.is_reference:
            return f"pytorch fp32 reference {self.canvas}"
        return f"{self.format} {self.precision}" + ("" if self.profile == "general" else f" {self.profile}")

    @property
    def group(self) -> str:
        """The builds compared with each other for a flag: one format's precisions in one profile."""
        return f"{self.format} {self.profile}"

    def worker_args(self) -> list[str]:
        if self.is_reference:
            return ["--reference", self.canvas]
        return ["--pipeline", self.format, self.precision, self.profile]


@dataclass
class Timed:
    """One configuration at one thread count: what its worker measured."""

    configuration: Configuration
    threads: int
    where: dict[str, str] = field(default_factory=dict)  # model role -> the runtime and device it ran on
    rounds: list[float] = field(default_factory=list)  # each round's time (the fastest run of its frame), ms
    extended: int = 0  # rounds added to settle an open flag (_settle_undecided)
    totals: list[float] = field(default_factory=list)  # every timed frame's ms
    stages: dict[str, list[float]] = field(default_factory=dict)
    faces: list[int] = field(default_factory=list)
    imported_mb: float | None = None
    loaded_mb: float | None = None
    peak_rss_mb: float | None = None
    error: str | None = None

    @property
    def ms(self) -> float | None:
        return statistics.median(self.totals) if self.totals else None

    @property
    def model_mb(self) -> float | None:
        """What loading the models added to the process's peak (their weights, the runtimes' buffers)."""
        if self.loaded_mb is None or self.imported_mb is None:
            return None
        return self.loaded_mb - self.imported_mb

    def stage_ms(self) -> dict[str, float]:
        return {stage: statistics.median(values) for stage, values in self.stages.items() if values}


@dataclass(frozen=True)
class Plan:
    builds: Path
    configurations: tuple[Configuration, ...]
    threads: tuple[int, ...]
    rounds: int
    block: int  # runs of the round's frame per configuration
    prefer: str = "cpu"
    config_file: Path | None = None  # handed to the workers (their trust, their devices)


class _Worker:
    def __init__(self, plan: Plan, configuration: Configuration, threads: int):
        self.timed = Timed(configuration, threads)
        self.log = tempfile.TemporaryFile()  # not a pipe: a chatty library would fill it and stall the worker
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        if plan.config_file is not None:
            env["MASKGATE_CONFIG"] = str(plan.config_file)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "maskgate.bench.worker", "--builds", str(plan.builds), "--threads", str(threads),
             "--prefer", plan.prefer, *configuration.worker_args()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)

    def read(self, timeout: float) -> dict:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise BenchmarkError(f"{self.timed.configuration.name}: no answer in {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError(f"{self.timed.configuration.name}: the worker ended (exit "
                                 f"{self.process.wait()}): {self.log_tail()}")
        return json.loads(line)

    def ask(self, command: str, timeout: float) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read(timeout)

    def settle(self) -> None:
        """Wait until the worker's threads stop using the CPU: a runtime's pool spins for a while
        after its last inference (ONNX Runtime, OpenMP, TBB), and would share the cores with the
        next configuration's block."""
        previous = _cpu_ns(self.process.pid)
        if previous is None:  # no /proc (not Linux): a pause longer than the usual spin
            time.sleep(SETTLE_S)
            return
        deadline = time.perf_counter() + 10 * SETTLE_S
        while time.perf_counter() < deadline:
            time.sleep(0.001)
            now = _cpu_ns(self.process.pid)
            if now is None or now - previous < IDLE_NS_PER_MS:
                return
            previous = now

    def log_tail(self, chars: int = 1500) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:].strip() or "(nothing on its stderr)"

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                message = self.ask("quit", 30)
                self.timed.peak_rss_mb = message.get("peak_rss_mb")
            except (BenchmarkError, OSError, ValueError):
                pass
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def time_configurations(plan: Plan, *, on_round: Callable[[int, int, int], None] | None = None) -> list[Timed]:
    """Every configuration of ``plan`` at each thread count, in paired rounds. A configuration
    whose worker fails (a bundle with no runtime here) is kept with its error; the rest go on.
    ``on_round(threads, round, rounds)``: progress."""
    out: list[Timed] = []
    for threads in plan.threads:
        workers = [_Worker(plan, c, threads) for c in plan.configurations]
        try:
            live = _load(workers)

            def tick(r: int, n: int = threads) -> None:
                if on_round is not None:
                    on_round(n, r, plan.rounds)

            groups = {w.timed.configuration.name: w.timed.configuration.group for w in live}
            done = in_rounds({w.timed.configuration.name: _block_of(w, plan) for w in live}, rounds=plan.rounds,
                             seed=threads, errors=(BenchmarkError, ValueError), after_round=tick,
                             group_of=groups.__getitem__)
            for worker in live:
                name = worker.timed.configuration.name
                worker.timed.rounds = done.times[name]
                if name in done.errors:
                    worker.timed.error = str(done.errors[name])
            _settle_undecided([w for w in live if w.timed.error is None], plan, seed=threads)
        finally:
            for worker in workers:
                worker.close()
        out.extend(w.timed for w in workers)
    return out


def _settle_undecided(live: list[_Worker], plan: Plan, *, seed: int) -> None:
    """Builds whose flag the rounds leave open get more rounds with their fp32 sibling
    (``maskgate.bench.rounds.extend_open``); what is still open after that is not flagged."""
    by_name = {w.timed.configuration.name: w for w in live}
    pairs = []
    for w in live:
        c = w.timed.configuration
        if c.is_reference or c.precision == "fp32":
            continue
        sibling = next((o for o in live if o.timed.configuration.group == c.group
                        and o.timed.configuration.precision == "fp32"), None)
        if sibling is not None:
            pairs.append((c.name, sibling.timed.configuration.name))
    times = {name: w.timed.rounds for name, w in by_name.items()}
    before = {name: len(t) for name, t in times.items()}

    def run_more(names: list[str], extension: int) -> dict[str, list[float]]:
        first = max(len(times[n]) for n in names) + WARMUP_ROUNDS * (extension + 1)  # frames go on
        done = in_rounds({n: _block_of(by_name[n], plan, first_frame=first) for n in names}, rounds=plan.rounds,
                         seed=seed + 1 + extension, errors=(BenchmarkError, ValueError))
        for name, exc in done.errors.items():
            by_name[name].timed.error = str(exc)
        return done.times

    extend_open(times, pairs, run_more)
    for name, worker in by_name.items():
        worker.timed.extended = len(times[name]) - before[name]


def _block_of(worker: _Worker, plan: Plan, *, first_frame: int = 0) -> Callable[[int], float]:
    """Round r's block on ``worker``: frame r (every worker the same one), ``plan.block`` times; the
    round's time is the fastest of them. Load on a shared machine only ever adds time, so the
    fastest of a few runs of one frame is the steadiest estimate of what the build costs on it;
    the rounds go through the frames, and the per-frame figures keep every run."""
    def run(r: int) -> float:
        block = worker.ask(f"run {first_frame + r} {plan.block}", BLOCK_TIMEOUT_S)
        worker.settle()
        if r >= WARMUP_ROUNDS:
            worker.timed.totals.extend(block["total"])
            for stage, values in block["stages"].items():
                worker.timed.stages.setdefault(stage, []).extend(values)
        return min(block["total"])  # what interference (another process, a spinning pool) cannot lower
    return run


def _load(workers: list[_Worker]) -> list[_Worker]:
    live = []
    for worker in workers:
        try:
            message = worker.read(LOAD_TIMEOUT_S)
        except (BenchmarkError, ValueError) as exc:
            worker.timed.error = str(exc)
            continue
        if "error" in message:
            worker.timed.error = message["error"]
            continue
        worker.timed.where = message["where"]
        worker.timed.faces = message["faces"]
        worker.timed.imported_mb, worker.timed.loaded_mb = message["imported_mb"], message["loaded_mb"]
        live.append(worker)
    return live


def paired(candidate: Timed, baseline: Timed | None) -> PairedRatio | None:
    """``candidate`` against ``baseline`` over the rounds both completed (None: nothing to pair)."""
    if baseline is None or baseline is candidate or candidate.error or baseline.error:
        return None
    return paired_prefix(candidate.rounds, baseline.rounds)
