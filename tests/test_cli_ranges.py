"""Every number a command takes is refused out of its range as the command line is read, in one
line with exit 2, before any work: ``--max-frames 0`` ran nothing and said nothing, ``--epochs 0``
quietly took the default, ``--lr -1`` and ``--epochs 0`` of tune-detector crashed in PyTorch,
``--crop-min-score 2`` and ``eval-detector --iou 0`` ran to the end on nonsense."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskgate.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]

# (command line, the flag's bad value, what the refusal says is accepted)
REFUSED = [
    (["run", "x.jpg"], ["--max-frames", "0"], "frames, a whole number >= 1, got '0'"),
    (["crops", "--out", "o"], ["--margin", "-1"], "a number >= 0 and <= 2"),
    (["crops", "--out", "o"], ["--crop-min-score", "2"], "a score, a number >= 0 and <= 1"),
    (["eval-detector", "scenes"], ["--iou", "0"], "a box overlap, a number > 0 and <= 1"),
    (["eval-detector", "scenes"], ["--min-width", "-1"], "a face width in pixels, a number >= 0"),
    (["eval-detector", "scenes"], ["--limit", "0"], "images, a whole number >= 1"),
    (["eval"], ["--min-face-px", "nan"], "a number >= 0, got 'nan'"),
    (["check", "builds"], ["--runs", "0"], "timed runs, a whole number >= 1"),
    (["check", "builds"], ["--data-limit", "-2"], "source images, a whole number >= 1"),
    (["check", "builds"], ["--min-top1", "2"], "a share, a number >= 0 and <= 1"),
    (["check", "builds"], ["--max-landmark-nme", "-0.1"], "a number >= 0"),
    (["build"], ["--samples", "0"], "calibration samples, a whole number >= 1"),
    (["build"], ["--verify-samples", "x"], "held-out inputs, a whole number >= 1, got 'x'"),
    (["build"], ["--check-runs", "0"], "timed runs"),
    (["build"], ["--reference-device", "tpu"], "a PyTorch device: auto, cpu, cuda or cuda:N, got 'tpu'"),
    (["crops", "--out", "o"], ["--device", "npu"], "a PyTorch device"),
    (["benchmark"], ["--rounds", "2"], "paired rounds, a whole number >= 6"),
    (["benchmark"], ["--runs-per-round", "0"], "runs per round"),
    (["agree", "a", "b"], ["--min-found", "1.5"], "a share of faces"),
    (["agree", "a", "b"], ["--iou", "2"], "a box overlap"),
    (["fleet", "status", "--broker", "mqtt://127.0.0.1:1"], ["--wait", "-1"], "seconds, a number > 0"),
    (["release", "builds", "--version", "1", "--out", "r", "--key", "k"], ["--percent", "150"],
     "a percentage of the cameras, a number >= 0 and <= 100"),
    (["rollout", "r", "1", "--key", "k"], ["--percent", "-5"], "a percentage of the cameras"),
    (["rollout", "r", "1", "--key", "k"], ["--max-failures", "-1"], "cameras, a whole number >= 0"),
    (["synth", "--crops", "c", "--templates", "t", "--out", "o"], ["--grid", "-1"], "faces, a whole number >= 0"),
    (["train", "mask", "--out", "o"], ["--epochs", "0"], "epochs, a whole number >= 1"),
    (["train", "mask", "--out", "o"], ["--batch-size", "0"], "a batch size"),
    (["train", "mask", "--out", "o"], ["--lr", "0"], "a learning rate, a number > 0 and <= 1"),
    (["train", "mask", "--out", "o"], ["--seed", "-1"], "a seed, a whole number >= 0"),
    (["tune-detector", "--out", "o"], ["--epochs", "0"], "epochs"),
    (["tune-detector", "--out", "o"], ["--lr", "-1"], "a learning rate"),
    (["turnstile", "v.mp4"], ["--window", "0"], "frames, a whole number >= 1"),
    (["turnstile", "v.mp4"], ["--min-mask-prob", "0"], "a probability, a number > 0 and <= 1"),
    (["turnstile", "v.mp4"], ["--health-every", "0"], "seconds, a number > 0"),
    (["turnstile", "v.mp4"], ["--metrics-port", "70000"], "a TCP port, a whole number from 0 to 65535"),
    (["turnstile", "v.mp4"], ["--max-reconnects", "-1"], "reconnections, a whole number >= 0"),
]


@pytest.mark.parametrize("command, flag, accepted", REFUSED, ids=[f"{c[0]} {f[0]} {f[1]}" for c, f, _ in REFUSED])
def test_a_number_out_of_range_is_refused_as_the_command_line_is_read(command, flag, accepted, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the folder stays empty
    with pytest.raises(SystemExit) as exit_info:
        main([*command, *flag])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"argument {flag[0]}: expected " in err and accepted in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_edges_of_each_range_are_taken():
    parse = build_parser().parse_args
    assert parse(["turnstile", "v.mp4", "--max-reconnects", "0", "--metrics-port", "0"]).max_reconnects == 0
    assert parse(["synth", "--crops", "c", "--templates", "t", "--out", "o", "--grid", "0"]).grid == 0
    assert parse(["rollout", "r", "1", "--key", "k", "--percent", "100"]).percent == 100.0
    assert parse(["rollout", "r", "1", "--key", "k", "--percent", "0", "--max-failures", "0"]).max_failures == 0
    assert parse(["benchmark", "--rounds", "6"]).rounds == 6
    assert parse(["check", "b", "--min-top1", "1", "--min-recall", "0"]).min_top1 == 1.0
    assert parse(["turnstile", "v.mp4", "--min-mask-prob", "1"]).min_mask_prob == 1.0


def test_a_region_of_interest_and_the_frontal_classes_are_checked_as_the_command_line_is_read(capsys):
    for flag in (["--roi", "1,2,3"], ["--roi", "0,0,-5,10"], ["--roi=-1,0,5,5"], ["--frontal", "1,2,9"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["turnstile", "v.mp4", *flag])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"argument {flag[0].split('=')[0]}: expected " in err, err
    assert build_parser().parse_args(["turnstile", "v.mp4", "--frontal", ""]).frontal == ()  # pose not checked


def test_a_region_of_interest_from_the_config_file_is_checked_too(tmp_path, capsys):
    config = tmp_path / "t.toml"
    for roi, says in (("[1, 2, 3]", "[turnstile] roi = [1, 2, 3]: expected 4 values"),
                      ("[0, 0, -5, 10]", "roi must be x, y, width, height (x, y >= 0, a positive size), got [0, 0")):
        config.write_text(f"[turnstile]\nroi = {roi}\n")
        assert main(["turnstile", str(tmp_path / "v.mp4"), "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


def _tiny_data(folder: Path) -> Path:
    """A data folder of one face picture: enough for 'maskgate train' to cut crops from."""
    image = np.full((160, 160, 3), 128, np.uint8)
    cv2.circle(image, (80, 80), 50, (180, 170, 160), -1)
    for label in ("with_mask", "without_mask"):
        (folder / "faces" / label).mkdir(parents=True)
        cv2.imwrite(str(folder / "faces" / label / "a.jpg"), image)
    return folder


@pytest.mark.parametrize("flags, says", [
    (["--freeze-stages", "99"], "--freeze-stages 99: mask_mobilenetv2's backbone has stages 0..4"),
    (["--init", "synthetic", "--source-freeze-stages", "9", "--templates", "t"], "masks.cfg: not found"),
    (["--init", "synthetic"], "--init synthetic needs the mask templates"),
    (["--model", "pose_mobilenetv2_skip"], "is not a mask model"),
    (["--init", "face"], "--init face loads the detector's MobileNetV1-0.25 body"),
    (["--init-weights", "missing.pth"], "missing.pth: no such checkpoint (--init-weights)"),
    (["--init", "none", "--init-weights", "w.pth"], "--init-weights starts the backbone of --init imagenet"),
])
def test_train_refuses_its_settings_before_cutting_any_crop(flags, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    data = _tiny_data(tmp_path / "data")
    assert main(["train", "mask", "--data", str(data), "--out", "out", *flags]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # the crops were cut (and saved there) only after the check


def test_example_and_benchmark_scripts_refuse_numbers_out_of_range(tmp_path):
    for script, flags, says in (
        ("examples/turnstile/make_test_video.py", ["data", "v.mp4", "--fps", "0"], "frames per second"),
        ("examples/turnstile/make_test_video.py", ["data", "v.mp4", "--scenes", "0"], "scenes, a whole number"),
        ("benchmarks/site_load.py", ["--cameras", "0"], "cameras, a whole number >= 1"),
        ("benchmarks/detector_vs_peer.py", ["--frames", "0"], "frames, a whole number >= 1"),
        ("scripts/arm64_check.py", ["builds", "--limit", "0"], "images, a whole number >= 1"),
    ):
        done = subprocess.run([sys.executable, str(ROOT / script), *flags], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2 and says in done.stderr, (script, done.stderr)
        assert list(tmp_path.iterdir()) == []
