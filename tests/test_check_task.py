"""``maskgate check --data``: task metrics on labelled data, the whole pipeline per format
and precision, the HTML report, and gates from the config file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from maskgate.check.task import classifier_metrics, summary


@pytest.fixture(scope="module")
def onnx_builds(make_builds):
    return make_builds("task-builds", formats=("onnx",), precisions=("fp32",))


@pytest.fixture(scope="module")
def task_data(onnx_builds, shared_data):
    from maskgate.check.task import TaskData

    return TaskData.load(shared_data, builds=onnx_builds, limit=25)


@pytest.mark.shared_data
def test_task_data_is_the_test_split_cut_by_the_fp32_detector_build(task_data):
    from maskgate.datasets.crops import split_of

    assert "retinaface_mnet025: onnx fp32" in task_data.cut_by
    assert len(task_data.scenes) == 25 and len(task_data.crops) > 40
    assert set(task_data.crops.split) == {"test"}
    assert all(split_of(s.image_path.relative_to(task_data.source).as_posix()) == "test" for s in task_data.scenes)


@pytest.mark.shared_data
def test_mask_metrics_of_the_fp32_build_equal_the_reference_classifiers(onnx_builds, task_data):
    """The same crops through the PyTorch reference give the same figures: the build's task
    metric measures the build, and the metric code is the one training reports use."""
    from maskgate.classifier import CropClassifier
    from maskgate.deployed import open_classifier

    build, _ = open_classifier(onnx_builds, "mask_mobilenetv2")
    reference = CropClassifier.reference("mask_mobilenetv2", device="cpu")
    got, want = classifier_metrics(build, task_data.crops), classifier_metrics(reference, task_data.crops)
    build.close()
    reference.close()
    assert got["kind"] == "mask" and got["n"] == want["n"] > 40
    assert got["accuracy"] == want["accuracy"] and got["confusion"] == want["confusion"]
    assert got["roc_auc"] == pytest.approx(want["roc_auc"], abs=1e-3) and got["accuracy"] > 0.9
    roc = got["roc"]
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert np.all(np.diff(roc["tpr"]) >= 0)  # a ROC curve never goes down
    assert summary(got).startswith("acc ")


@pytest.mark.shared_data
def test_check_with_data_reports_task_metrics_pipelines_and_html(onnx_builds, shared_data, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from maskgate.cli import main

    report, page = tmp_path / "check.json", tmp_path / "check.html"
    assert main(["check", str(onnx_builds), "--runs", "2", "--data", str(shared_data), "--data-limit", "25",
                 "--json", str(report), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "whole pipeline on the labelled scenes" in out and "3 of 3 bundle(s) passed" in out
    data = json.loads(report.read_text())
    kinds = {b["model"]: b["task_metrics"]["kind"] for b in data["bundles"]}
    assert kinds == {"retinaface_mnet025": "detection", "mask_mobilenetv2": "mask", "pose_mobilenetv2_skip": "yaw"}
    detector = next(b["task_metrics"] for b in data["bundles"] if b["model"] == "retinaface_mnet025")
    assert detector["images"] == 25 and sum(row["faces"] for row in detector["buckets"]) > 50
    assert 0.7 < detector["recall"] <= 1.0
    yaw = next(b["task_metrics"] for b in data["bundles"] if b["model"] == "pose_mobilenetv2_skip")
    assert len(yaw["per_class_accuracy"]) == 6 and "landmark-derived" in yaw["labels"]
    (pipeline,) = data["pipelines"]
    assert (pipeline["format"], pipeline["precision"]) == ("onnx", "fp32")
    assert 0 < pipeline["correct"] <= pipeline["found"] <= pipeline["faces"]
    assert pipeline["accuracy_of_all"] == pytest.approx(pipeline["correct"] / pipeline["faces"])
    text = page.read_text()
    assert text.count("<img ") == 4  # latency, accuracy per precision, mask ROC, recall by size
    assert "Mask classifier ROC" in text and "Whole pipeline" in text and "Yaw classes" in text
    # each bundle's gates with its figure beside them, and the rule that held a share to its gate
    assert "<span class=pass>pass</span> min_top1 1 of 32 (&gt;= 1)" in text and "95 % Wilson upper bound" in text
    assert [b["model"] for b in data["bundles"]] == ["retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip"]


@pytest.mark.shared_data
def test_task_data_needs_a_detector_to_cut_crops(onnx_builds, shared_data, tmp_path):
    import shutil

    from maskgate.check.task import TaskData
    from maskgate.errors import BundleError

    only_mask = tmp_path / "only-mask"
    shutil.copytree(onnx_builds / "mask_mobilenetv2-onnx-fp32", only_mask / "mask_mobilenetv2-onnx-fp32")
    with pytest.raises(BundleError, match="needs a detector bundle"):
        TaskData.load(shared_data, builds=only_mask, limit=5)


def test_gates_from_the_config_file(onnx_builds, tmp_path, monkeypatch, capsys):
    from maskgate.check.gates import DEFAULT_GATES, configured_gates
    from maskgate.cli import main

    config = tmp_path / "maskgate.toml"
    config.write_text("[gates.fp32]\nmax_landmark_nme = 0.0\n[gates.int8]\nmin_recall = 0.9\n")
    monkeypatch.setenv("MASKGATE_CONFIG", str(config))
    gates = configured_gates()
    int8 = gates.gate("int8", "onnx", what="b")
    assert int8.min_recall == 0.9 and int8.min_top1 == DEFAULT_GATES["int8"].min_top1
    assert configured_gates({"min_recall": 0.5}).gate("int8", what="b").min_recall == 0.5  # flags win over the file
    # An fp32 gate from the file no build can meet (landmarks identical to the reference's to the
    # last bit) fails the detector; the flag puts it back.
    detector = str(onnx_builds / "retinaface_mnet025-onnx-fp32")
    assert main(["check", detector, "--runs", "1"]) == 1
    assert "(<= 0)" in capsys.readouterr().err
    assert main(["check", detector, "--runs", "1", "--max-landmark-nme", "0.01"]) == 0
    from maskgate.config import reset_config

    config.write_text("[gates.int9]\nmin_top1 = 0.5\n")
    reset_config()  # the file is read once per process: a new one is a new process's
    assert main(["check", str(onnx_builds), "--runs", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown precision; [gates] holds a table per precision" in err and str(config) in err
    config.write_text("[gates.int8]\nmin_top = 0.5\n")
    reset_config()
    assert main(["check", str(onnx_builds), "--runs", "1"]) == 2
    assert "[gates.int8] min_top: unknown key; [gates.int8] takes min_cosine" in capsys.readouterr().err
