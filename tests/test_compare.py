"""`maskgate compare` tabulates the test figures of training runs, one task at a time."""
import json

import pytest

from maskgate.cli import main
from maskgate.cli.compare import table
from maskgate.errors import SourceError


def _mask_run(acc: float) -> dict:
    stage = {"stage": "real", "config": {"epochs": 4, "freeze_stages": 1}}
    subset = {"accuracy": acc, "mask_recall": 0.5, "roc_auc": 0.75}
    return {"task": "mask", "model": "mask_mobilenetv2", "init": "imagenet", "stages": [stage], "train_seconds": 12.3,
            "test": {"all": subset, "scenes": subset, "faces_at_least_32px": subset}}


def _pose_run() -> dict:
    stage = {"stage": "real", "config": {"epochs": 6, "freeze_stages": 1}}
    subset = {"overall_accuracy": 0.25, "within_one_class": 0.5, "per_class_accuracy": [0.1, 0.2]}
    return {"task": "pose", "model": "p", "init": "none", "stages": [stage], "train_seconds": 1.0,
            "yaw_bins": {"names": ["left", "right"]}, "test": {"all": subset, "masked": subset}}


def test_mask_table_has_one_row_per_run_with_its_figures():
    rows = table([("a", _mask_run(0.9876)), ("b", _mask_run(0.5))]).splitlines()
    assert len(rows) == 4
    assert "| a | mask_mobilenetv2 | imagenet | real 4 ep (frozen 1) | 98.76 | 50.00 | 0.7500 |" in rows[2]
    assert "| 50.00 |" in rows[3]


def test_pose_table_has_a_column_per_class():
    head, _, row = table([("p1", _pose_run())]).splitlines()
    assert "CA left %" in head and "CA right %" in head
    assert row.endswith("| 25.00 | 50.00 | 25.00 | 10.00 | 20.00 | 1 |")


def test_mixed_tasks_are_refused():
    with pytest.raises(SourceError, match="one task"):
        table([("a", _mask_run(0.9)), ("p", _pose_run())])


def test_cli_names_a_folder_without_metrics(tmp_path, capsys):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "metrics.json").write_text(json.dumps(_mask_run(0.9)))
    assert main(["compare", str(tmp_path / "ok")]) == 0
    assert "| ok |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "missing")]) != 0
    assert "metrics.json" in capsys.readouterr().err
