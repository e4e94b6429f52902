"""The build summary: table, report.json and report.html (with its plot where matplotlib is)."""
import json

from maskgate.builder import BuildConfig, BuildResult
from maskgate.builder.report import table, write_report
from maskgate.check.checker import BundleCheck, Latency
from maskgate.check.gates import GateResult
from maskgate.compare import Agreement


def _golden_check_passed() -> BundleCheck:
    """The checker's result of a bundle that passed its golden gates."""
    return BundleCheck("p", integrity="ok", gates=[GateResult("min_top1", 1.0, 0.99, True, 32, 1.0)])


def _results():
    from maskgate.builder.verify import held_out_gates

    fidelity = Agreement("classification", 10, top1_agreement=0.9)
    ok = BuildResult("m-onnx-int8", "m", "onnx", "int8", "p", "built", size_bytes=2_500_000, seconds=1.0,
                     fidelity=fidelity, latency=Latency(1.5, 2.0, 2.1, 1.4, 1.6, runs=20, warmup=5, threads=1),
                     check=_golden_check_passed(),
                     gates=held_out_gates("int8", fidelity))  # the build's own gating of its held-out figures
    bad = BuildResult("m-tflite-int8", "m", "tflite", "int8", "q", "failed", error="ConversionError: boom")
    return [ok, bad]


def test_table_and_reports(tmp_path):
    text = table(_results())
    assert "top-1 90.00% (n=10)" in text and "2.50 MB" in text and "FAILED" in text and "boom" in text
    # Built but below its gate on the held-out inputs: FAIL, with the figure that failed.
    assert "FAIL" in text.splitlines()[2] and "held-out min_top1 0.9 (>= 0.99)" in text
    json_path, html_path = write_report(tmp_path, _results(), config=BuildConfig(out=tmp_path), seconds=12.0)
    data = json.loads(json_path.read_text())
    assert [b["status"] for b in data["bundles"]] == ["built", "failed"] and data["config"]["out"] == str(tmp_path)
    assert data["passed"] is False and [b["passed"] for b in data["bundles"]] == [False, False]
    assert data["bundles"][0]["fidelity"] == {"samples": 10, "max_abs_diff": 0.0, "top1_agreement": 0.9,
                                              "detections_reference": None, "detections_found": None,
                                              "detections_extra": None, "detection_recall": None}
    page = html_path.read_text()
    assert "m-tflite-int8: ConversionError: boom" in page and "<table>" in page
    # the gates beside their figures: the held-out one that failed, the golden one (with its bound) that passed
    assert "<span class=bad>FAIL</span> held out: min_top1 0.9 (&gt;= 0.99)" in page
    assert "<span class=pass>pass</span> golden: min_top1 1 of 32 (&gt;= 0.99, 95 % upper bound 1)" in page
    assert "95 % Wilson upper bound" in page
    from maskgate.builder.report import _entries

    assert _entries(_results())[0]["gate"] == 0.99  # drawn as the gate line of the accuracy plot
    assert not list(tmp_path.glob(".*partial"))


def test_a_reduced_precision_build_slower_than_its_fp32_sibling_is_flagged(tmp_path):
    """Flagged from the paired rounds only (builder.speed): the whole interval of its time over
    the sibling's beyond the margin. A median a little above 1 within the interval is not, and
    the separate checks' p50s (which flipped between two runs of the same build) play no part."""
    from maskgate.bench.paired import PairedRatio

    def result(fmt, precision, ms, ratio=None):
        return BuildResult(f"m-{fmt}-{precision}", "m", fmt, precision, "p", "built", size_bytes=1,
                           fidelity=Agreement("classification", 4, top1_agreement=1.0),
                           latency=Latency(ms, ms, ms, ms - 1, ms + 1, runs=20, warmup=5, threads=1),
                           check=_golden_check_passed(), vs_fp32=PairedRatio(*ratio, rounds=12) if ratio else None)

    results = [result("onnx", "fp32", 20.0), result("onnx", "int8", 18.0, (1.25, 1.2, 1.3)),
               result("tflite", "fp32", 20.0), result("tflite", "int8", 10.0, (0.5, 0.48, 0.52)),
               result("openvino", "fp32", 20.0), result("openvino", "int8", 30.0, (1.05, 1.01, 1.08))]
    text = table(results)
    assert "0.80x (0.77-0.83) SLOWER" in text and "2.00x (1.92-2.08)" in text
    # within the margin (interval from 1.01): not flagged, whatever the separate p50s said (30 against 20 ms)
    assert "0.95x (0.93-0.99)" in text and "0.95x (0.93-0.99) SLOWER" not in text
    assert "19.00-21.00" in text and "'extra'" in text and "same 12 rounds" in text
    assert "slower than its fp32 sibling on the same runtime: m-onnx-int8" in text
    json_path, html_path = write_report(tmp_path, results, config=BuildConfig(out=tmp_path), seconds=1.0)
    data = json.loads(json_path.read_text())
    assert data["slower_than_fp32"] == ["m-onnx-int8"]
    assert [b["speedup_vs_fp32"] and round(b["speedup_vs_fp32"], 3) for b in data["bundles"]] == [
        None, 0.8, None, 2.0, None, 0.952]
    assert data["bundles"][1]["vs_fp32"]["slower"] is True and data["bundles"][1]["vs_fp32"]["rounds"] == 12
    page = html_path.read_text()
    assert page.count("<tr class=slow>") == 1 and "the colour is the" in page
