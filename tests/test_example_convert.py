"""The conversion example a user adapts: their checkpoint, one format, one bundle."""
from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxscript")

ROOT = Path(__file__).resolve().parents[1]


def test_convert_checkpoint_example_makes_one_verified_bundle(tmp_path, monkeypatch):
    weights = ROOT / "sdk" / "weights" / "mask_mobilenetv2.pt"
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint.py", "--model", "mask_mobilenetv2", "--weights", str(weights),
                                      "--format", "onnx", "--precision", "fp32", "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "examples" / "convert_checkpoint.py"), run_name="__main__")
    assert done.value.code == 0
    manifest = json.loads((tmp_path / "mask_mobilenetv2-onnx-fp32" / "manifest.json").read_text())
    assert manifest["format"] == "onnx" and manifest["precision"] == "fp32"
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == ["mask_mobilenetv2-onnx-fp32"]


def test_convert_checkpoint_example_refuses_a_missing_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint.py", "--model", "mask_mobilenetv2", "--weights",
                                      str(tmp_path / "nope.pt"), "--format", "onnx"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(ROOT / "examples" / "convert_checkpoint.py"), run_name="__main__")
    assert done.value.code == 2
    assert "no such file" in capsys.readouterr().err
