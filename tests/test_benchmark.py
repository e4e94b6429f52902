"""``maskgate benchmark``: paired ratios that hold on a drifting machine, a real run over
real bundles, and every wrong setting refused before any worker starts."""
from __future__ import annotations

import json
import random

import pytest

from maskgate.bench.paired import MIN_ROUNDS, SLOWER_MARGIN, median_interval_ranks, paired_ratio
from maskgate.cli import main


def _binomial_tail(n: int, k: int) -> float:
    from math import comb

    return sum(comb(n, i) for i in range(k)) / 2 ** n


@pytest.mark.parametrize("n", [6, 7, 12, 30, 61])
def test_the_interval_ranks_are_the_sign_tests_widest_95_percent_ones(n):
    k = median_interval_ranks(n)
    assert k >= 1 and _binomial_tail(n, k) <= 0.025 < _binomial_tail(n, k + 1)


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


def test_too_few_or_unpaired_rounds_are_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_ROUNDS}"):
        paired_ratio([1.0] * (MIN_ROUNDS - 1), [1.0] * (MIN_ROUNDS - 1))
    with pytest.raises(ValueError, match="round by round"):
        paired_ratio([1.0] * 8, [1.0] * 7)


def test_the_benchmark_times_the_reference_and_builds_in_paired_rounds(quantized_builds, tmp_path, capsys):
    """A real run: the reference and two OpenVINO pipelines, each in its own worker process."""
    out = tmp_path / "bench.json"
    code = main(["benchmark", "--builds", str(quantized_builds), "--only", "openvino:fp32,openvino:int8",
                 "--profiles", "general", "--threads", "1", "--rounds", str(MIN_ROUNDS), "--frames-per-round", "1",
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
    assert report["machine"]["cores"] >= 1 and "sign test" in report["rule"]
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

    assert "at least 6 rounds" in refused("--builds", str(quantized_builds), "--rounds", "3")
    assert "no such builds folder" in refused("--builds", str(tmp_path / "none"))
    assert "is a folder" in refused("--builds", str(quantized_builds), "--json", str(tmp_path))
    # an onnx pipeline is not in these builds; the turnstile profile has no detector here
    assert "no pipeline to time" in refused("--builds", str(quantized_builds), "--only", "onnx:int8")
    assert "maskgate build --profile turnstile" in refused("--builds", str(quantized_builds), "--profiles", "turnstile")
