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
    """Flagged only when the timings' middle halves do not overlap: a p50 a little above the
    sibling's, inside the spread, is noise (it flipped between two runs of the same build)."""
    def result(fmt, precision, ms, spread=1.0):
        return BuildResult(f"m-{fmt}-{precision}", "m", fmt, precision, "p", "built", size_bytes=1,
                           fidelity=Agreement("classification", 4, top1_agreement=1.0),
                           latency=Latency(ms, ms, ms, ms - spread, ms + spread, runs=20, warmup=5, threads=1),
                           check=_golden_check_passed())

    results = [result("onnx", "fp32", 20.0), result("onnx", "int8", 25.0), result("tflite", "fp32", 20.0),
               result("tflite", "int8", 10.0), result("openvino", "fp32", 20.0, 2.0),
               result("openvino", "int8", 21.0, 2.0)]
    text = table(results)
    assert "0.80x SLOWER" in text and "2.00x" in text
    assert "0.95x" in text and "0.95x SLOWER" not in text  # inside the spread
    assert "25.00 (24.00-26.00)" in text and "'extra'" in text and "middle halves" in text
    assert "slower than its fp32 sibling on the same runtime: m-onnx-int8" in text
    json_path, html_path = write_report(tmp_path, results, config=BuildConfig(out=tmp_path), seconds=1.0)
    data = json.loads(json_path.read_text())
    assert data["slower_than_fp32"] == ["m-onnx-int8"]
    assert [round(b["speedup_vs_fp32"], 3) for b in data["bundles"]] == [1.0, 0.8, 1.0, 2.0, 1.0, 0.952]
    page = html_path.read_text()
    assert page.count("<tr class=slow>") == 1 and "the colour is the" in page
