"""``maskgate benchmark``: paired ratios that hold on a drifting machine, a real run over
real bundles, and every wrong setting refused before any worker starts."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from maskgate.bench.paired import MIN_ROUNDS, SLOWER_MARGIN, paired_ratio
from maskgate.cli import main


def test_the_interval_covers_the_true_ratio_about_as_often_as_it_says():
    """Simulated rounds with a known ratio of 1.2 and 10 % noise: the 95 % interval holds it in
    most of 200 trials, and is the same for the same times (seeded)."""
    rng = random.Random(5)
    held = 0
    for _ in range(200):
        baseline = [10 * (1 + 0.1 * rng.gauss(0, 1)) for _ in range(30)]
        candidate = [12 * (1 + 0.1 * rng.gauss(0, 1)) for _ in range(30)]
        ratio = paired_ratio(candidate, baseline)
        held += ratio.low <= 1.2 <= ratio.high
    assert 0.88 <= held / 200 <= 0.99, held
    assert paired_ratio(candidate, baseline) == paired_ratio(candidate, baseline)


def test_a_ratio_that_differs_by_frame_is_summed_not_split_at_its_median():
    """A pipeline is 0.75x as fast on frames whose person is classified and 1x on the others: with
    16 such rounds out of 30 the median of the rounds' ratios sits on one mode (1.33), with 14 on
    the other (1.0); the trimmed mean moves with the share, a few percent, not by a jump."""
    def rounds(classified: int) -> tuple[list[float], list[float]]:
        baseline = [15.0] * classified + [6.0] * (30 - classified)
        candidate = [15.0 / 0.75] * classified + [6.0] * (30 - classified)
        return candidate, baseline

    more, fewer = paired_ratio(*rounds(16)), paired_ratio(*rounds(14))
    assert abs(more.ratio - fewer.ratio) < 0.05, (more, fewer)


def _drifting(rounds: int, seed: int = 0) -> list[float]:
    """A shared machine's speed round by round: load comes and goes, up to 2x."""
    rng = random.Random(seed)
    return [1.0 + (rng.random() if rng.random() < 0.4 else 0.1 * rng.random()) for _ in range(rounds)]


def test_a_machine_that_drifts_moves_both_sides_of_a_round_and_flags_nothing():
    """The same speed, under load that doubles some rounds: timed one after the other (the
    build's way) the quartiles part; paired, the ratio stays 1."""
    load = _drifting(30)
    rng = random.Random(1)
    baseline = [10.0 * f * (1 + 0.02 * rng.random()) for f in load]
    candidate = [10.0 * f * (1 + 0.02 * rng.random()) for f in load]
    ratio = paired_ratio(candidate, baseline)
    assert not ratio.slower and not ratio.faster and ratio.low <= 1.0 + 0.02 and ratio.high >= 1.0 - 0.02
    assert ratio.high - ratio.low < 0.03  # the load cancelled: an interval as narrow as the 2 % jitter
    # the same candidate timed in a later, busier minute: paired with its baseline's rounds it is still the same
    later = [c * 1.6 for c in candidate]
    assert paired_ratio(later, [b * 1.6 for b in baseline]).slower is False


def test_a_build_slower_by_a_clear_margin_is_flagged_and_one_within_it_is_not():
    load = _drifting(30, seed=2)
    rng = random.Random(3)
    baseline = [5.0 * f * (1 + 0.05 * rng.random()) for f in load]
    slow = [5.0 * 1.3 * f * (1 + 0.05 * rng.random()) for f in load]
    assert paired_ratio(slow, baseline).slower
    near = [5.0 * (1 + SLOWER_MARGIN / 2) * f * (1 + 0.01 * rng.random()) for f in load]
    assert not paired_ratio(near, baseline).slower
    fast = [5.0 * 0.5 * f for f in load]
    result = paired_ratio(fast, baseline)
    assert result.faster and 1.9 < result.speedup[0] < 2.2 and result.describe().startswith("2.")
    assert not result.slower and paired_ratio(slow, baseline).describe().endswith(" SLOWER")


def test_too_few_or_unpaired_rounds_are_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_ROUNDS}"):
        paired_ratio([1.0] * (MIN_ROUNDS - 1), [1.0] * (MIN_ROUNDS - 1))
    with pytest.raises(ValueError, match="round by round"):
        paired_ratio([1.0] * 8, [1.0] * 7)


def test_the_benchmark_times_the_reference_and_builds_in_paired_rounds(quantized_builds, tmp_path, capsys):
    """A real run: the reference and two OpenVINO pipelines, each in its own worker process."""
    out = tmp_path / "bench.json"
    code = main(["benchmark", "--builds", str(quantized_builds), "--only", "openvino:fp32,openvino:int8",
                 "--profiles", "general", "--threads", "1", "--rounds", str(MIN_ROUNDS), "--runs-per-round", "2",
                 "--json", str(out)])
    table = capsys.readouterr().out
    assert code == 0, table
    report = json.loads(out.read_text())
    records = {(r["format"], r["precision"]): r for r in report["records"]}
    assert set(records) == {("pytorch", "fp32"), ("openvino", "fp32"), ("openvino", "int8")}
    for record in records.values():
        assert record["error"] is None and record["threads"] == 1 and record["canvas"] == "640x480"
        assert len(record["rounds_ms"]) == MIN_ROUNDS and record["ms"] > 0 and record["peak_rss_mb"] > 50
        assert set(record["stages_ms"]) == {"preprocess", "detect", "postprocess", "align", "classify"}
        assert all(n == 1 for n in record["faces"])  # one face per frame, found by every configuration
    int8, fp32 = records[("openvino", "int8")], records[("openvino", "fp32")]
    assert int8["vs_fp32"]["rounds"] == MIN_ROUNDS and fp32["vs_fp32"] is None
    vs_reference = int8["vs_reference"]
    assert vs_reference["speedup_low"] <= vs_reference["speedup"] <= vs_reference["speedup_high"]
    assert "openvino int8 on openvino/CPU" in int8["where"]["detector"]
    assert report["machine"]["cores"] >= 1 and "resampled in pairs" in report["rule"]
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["threads", "configuration", "canvas"]
    assert any(line.split()[1:4] == ["openvino", "int8", "640x480"] for line in lines)


def _refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_wrong_settings_are_refused_before_any_worker_starts(quantized_builds, tmp_path, capsys):
    assert "FORMAT:PRECISION" in _refused(["benchmark", "--only", "onxx:int8"], capsys)
    assert "whole numbers of at least 1" in _refused(["benchmark", "--threads", "0,2"], capsys)
    assert "expected a comma list of general, turnstile" in _refused(["benchmark", "--profiles", "turnstyle"], capsys)

    def refused(*args) -> str:
        assert main(["benchmark", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        return err

    assert "--rounds: expected paired rounds, a whole number >= 6, got '3'" in _refused(["benchmark", "--rounds", "3"],
                                                                                        capsys)
    from maskgate.bench import plan_benchmark
    from maskgate.bench.run import BenchmarkError

    with pytest.raises(BenchmarkError, match="at least 6 rounds"):  # a library caller gets the same floor
        plan_benchmark(quantized_builds, rounds=3)
    assert "no such builds folder" in refused("--builds", str(tmp_path / "none"))
    assert "is a folder" in refused("--builds", str(quantized_builds), "--json", str(tmp_path))
    # an onnx pipeline is not in these builds; the turnstile profile has no detector here
    assert "no pipeline to time" in refused("--builds", str(quantized_builds), "--only", "onnx:int8")
    assert "maskgate build --profile turnstile" in refused("--builds", str(quantized_builds), "--profiles", "turnstile")


def test_rounds_run_each_group_back_to_back_in_shuffled_orders_and_drop_a_failing_contender():
    from maskgate.bench.rounds import WARMUP_ROUNDS, in_rounds

    calls: list[tuple[int, str]] = []

    def contender(name: str, fails_at: int | None = None):
        def run(r: int) -> float:
            if r == fails_at:
                raise RuntimeError(f"{name} died")
            calls.append((r, name))
            return float(len(name))
        return run

    names = ["onnx fp32", "onnx int8", "tflite fp32", "tflite int8", "tflite fp16"]
    contenders = {n: contender(n, fails_at=4 if n == "tflite fp16" else None) for n in names}
    done = in_rounds(contenders, rounds=8, seed=1, errors=(RuntimeError,), group_of=lambda n: n.split()[0])
    assert {n: len(t) for n, t in done.times.items()} == {**{n: 8 for n in names[:4]}, "tflite fp16": 4 - WARMUP_ROUNDS}
    assert str(done.errors["tflite fp16"]) == "tflite fp16 died" and set(done.errors) == {"tflite fp16"}
    orders = set()
    for r in range(8 + WARMUP_ROUNDS):
        order = [name for k, name in calls if k == r]
        formats = [name.split()[0] for name in order]
        assert formats == sorted(formats, key=formats.index)  # a group's members adjacent, in either order
        orders.add(tuple(order))
    assert len(orders) > 2  # shuffled from round to round
    again: list = []
    calls, first = again, calls
    in_rounds(contenders, rounds=8, seed=1, errors=(RuntimeError,), group_of=lambda n: n.split()[0])
    assert again == first  # the same seed, the same schedule: two runs compare like with like


def test_a_build_whose_interval_holds_the_margin_gets_more_rounds_with_its_sibling():
    """The extension's scheduling, on workers that answer like real ones with made-up times: a
    build 1.3x slower is decided in the first rounds, one about as slow as the margin is given
    more rounds together with its fp32 sibling, in step, and none beyond the cap."""
    from maskgate.bench.rounds import EXTENSIONS
    from maskgate.bench.run import Configuration, Plan, Timed, _settle_undecided

    rng = random.Random(7)

    class Answering:  # what the orchestrator reads from a worker process: a block's times
        def __init__(self, precision: str, ms: float, noise: float):
            self.timed = Timed(Configuration("onnx", precision, "general", "640x480"), 1)
            self.ms, self.noise = ms, noise

        def ask(self, command: str, timeout: float) -> dict:
            frame, count = (int(x) for x in command.split()[1:])
            jitter = 1 + self.noise * (0.5 + 0.5 * ((frame * 7919) % 13) / 13)  # the same frame, the same cost
            times = [self.ms * jitter * (1 + 0.05 * rng.random()) for _ in range(count)]
            return {"total": times, "stages": {}}

        def settle(self) -> None:
            pass

    plan = Plan(Path("builds"), (), (1,), rounds=30, block=2)
    fp32, clear, near = Answering("fp32", 10.0, 0.3), Answering("int8", 13.0, 0.3), Answering("fp16", 10.5, 0.3)
    for worker in (fp32, clear, near):
        worker.timed.rounds = [_block_time(worker, r) for r in range(1, 31)]
    _settle_undecided([fp32, clear, near], plan, seed=1)
    assert clear.timed.extended == 0 and len(clear.timed.rounds) == 30
    assert 0 < near.timed.extended <= EXTENSIONS * 30 and fp32.timed.extended == near.timed.extended
    assert len(near.timed.rounds) == len(fp32.timed.rounds) == 30 + near.timed.extended


def _block_time(worker, frame: int) -> float:
    return min(worker.ask(f"run {frame} 2", 1)["total"])


def test_a_sibling_left_out_of_the_extra_rounds_still_pairs_round_by_round():
    """The build's timing: fp32 and an open fp16 get more rounds, a clearly faster int8 does not;
    every pair is then taken over the rounds both ran (a build crashed on 12 against 24 rounds)."""
    from maskgate.bench.paired import paired_prefix
    from maskgate.bench.rounds import extend_open, in_rounds

    rng = random.Random(3)
    cost = {"fp32": 10.0, "fp16": 10.5, "int8": 7.0}

    def timed(name: str):
        return lambda r: cost[name] * (1 + 0.3 * ((r * 31) % 7) / 7) * (1 + 0.04 * rng.random())

    contenders = {name: timed(name) for name in cost}
    times = in_rounds(contenders, rounds=12).times
    extend_open(times, [("fp16", "fp32"), ("int8", "fp32")],
                lambda names, extension: in_rounds({n: contenders[n] for n in names}, rounds=12).times)
    assert len(times["int8"]) == 12 < len(times["fp32"]) == len(times["fp16"])
    assert paired_prefix(times["int8"], times["fp32"]).faster
    assert paired_prefix(times["fp16"], times["fp32"]).rounds == len(times["fp32"])
