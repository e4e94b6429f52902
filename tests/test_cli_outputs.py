"""An output the user cannot write (a read-only mount, no permission, a file in the way)
ends the command at once with exit 2 and one line naming the path and the flag, before any
work: no traceback, nothing half-written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMMANDS = {
    "build --out": ["build", "--out", "{bad}/out", "--models", "mask_mobilenetv2", "--formats", "onnx",
                    "--precisions", "fp32"],
    "run --save": ["run", "examples/images", "--save", "{bad}/annotated"],
    "check --html": ["check", "{builds}", "--html", "{bad}/report.html"],
    "check --json": ["check", "{builds}", "--json", "{bad}/report.json"],
    "turnstile --events": ["turnstile", "examples/images", "--builds", "{builds}", "--events", "{bad}/events.jsonl"],
    "turnstile --video-out": ["turnstile", "examples/images", "--builds", "{builds}", "--video-out", "{bad}/out.mp4"],
}


def _unwritable_places(tmp_path: Path) -> dict[str, Path]:
    """A path under a regular file (anywhere), and a folder the kernel refuses even to root
    (/sys, where this machine has it so)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    places = {"file in the way": blocker}
    probe = Path("/sys/maskgate-write-probe")
    try:
        probe.mkdir()
    except OSError:
        places["refused by the system"] = Path("/sys")
    else:
        probe.rmdir()
    return places


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_output_is_one_line_and_exit_2(command, tmp_path):
    exe = Path(sys.executable).with_name("maskgate")
    for why, bad in _unwritable_places(tmp_path).items():
        args = [a.format(bad=bad, builds=tmp_path / "no-builds") for a in COMMANDS[command]]
        done = subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MASKGATE_CONFIG": ""})
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (command, why, done.stderr[-1500:])
        assert len(lines) == 1 and lines[0].startswith("maskgate: error: "), (command, why, lines)
        flag = command.split()[1]
        assert str(bad) in lines[0] and flag in lines[0] and "cannot write" in lines[0], lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # nothing else was written


def test_builds_go_where_no_packaging_tool_writes_and_foreign_folders_pass_quietly(make_builds, tmp_path):
    """setuptools and pip fill ./build with build/lib and build/bdist.* on 'pip install .': the
    default output is ./builds, and under --builds a folder with no manifest (another tool's)
    is passed over without a word, listed only with --verbose."""
    import shutil

    from maskgate.builder import BuildConfig

    assert BuildConfig().out == Path("builds")
    built = make_builds("quiet-builds", models=("retinaface_mnet025", "mask_mobilenetv2"), formats=("onnx",),
                        precisions=("fp32",))
    builds = tmp_path / "builds"
    shutil.copytree(built, builds)
    for foreign in ("lib/maskgate", "bdist.linux-x86_64"):  # what 'pip install .' leaves in ./build
        (builds / foreign).mkdir(parents=True)
        (builds / foreign / "x.py").write_text("")
    exe = str(Path(sys.executable).with_name("maskgate"))
    command = ["run", "examples/images", "--builds", str(builds), "--pose-model", "none"]
    quiet = subprocess.run([exe, *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-1500:]
    assert "bdist" not in quiet.stderr and "lib" not in quiet.stderr and "not a usable bundle" not in quiet.stderr
    verbose = subprocess.run([exe, "--verbose", *command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert verbose.returncode == 0 and "bdist.linux-x86_64: no manifest.json" in verbose.stderr, verbose.stderr[-1500:]


def test_a_truncated_video_is_reported_by_run_as_by_turnstile(tmp_path):
    """The frames before the cut are run, then one error line (the turnstile's words for the
    same file: maskgate.sources.truncation) and exit 1, never a quiet exit 0."""
    import cv2
    import numpy as np

    pytest.importorskip("torch")
    frame = cv2.resize(cv2.imread(str(ROOT / "examples" / "images" / "scene_5.jpg")), (320, 240))
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (320, 240))
    for k in range(80):
        writer.write(np.roll(frame, k, axis=1))
    writer.release()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    exe = str(Path(sys.executable).with_name("maskgate"))
    whole = subprocess.run([exe, "run", str(video), "--mask-model", "none", "--pose-model", "none"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0 and "80 frame(s)" in whole.stdout, whole.stderr[-1000:]
    done = subprocess.run([exe, "run", str(cut), "--mask-model", "none", "--pose-model", "none"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("maskgate: error: ")]
    assert done.returncode == 1, done.stderr[-1000:]
    assert len(errors) == 1 and f"{cut}: truncated or corrupt video: ended after " in errors[0], errors
    assert "of the 80 frames its header promises" in errors[0]
    read = int(errors[0].split("ended after ")[1].split()[0])
    assert 0 < read < 79 and f"{read} frame(s)" in done.stdout


def test_a_build_prints_its_progress_table_and_summary_and_no_third_party_chatter(tmp_path):
    """TensorFlow's C++ INFO lines (oneDNN, op counts), torchao's CUDA kernels it cannot load
    and LiteRT's XNNPACK notice stayed in the console of every TFLite build; absl's notice and
    ai-edge-quantizer's bar in every fp16 one."""
    pytest.importorskip("litert_torch")
    exe = str(Path(sys.executable).with_name("maskgate"))
    done = subprocess.run([exe, "build", "--out", str(tmp_path / "b"), "--models", "mask_mobilenetv2", "--formats",
                           "tflite", "--precisions", "fp32,fp16", "--verify-samples", "4", "--check-runs", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [part for line in done.stderr.splitlines() for part in line.split("\r") if part.strip()]
    # MaskGate's progress bars (the bundles, then the paired timing against fp32), nothing else
    assert lines and all(part.startswith(("build:", "timing vs fp32:")) for part in lines), lines
    assert any(part.startswith("timing vs fp32:") for part in lines)  # fp16 was timed beside its fp32
    assert "mask_mobilenetv2  tflite" in done.stdout and "2 bundles in" in done.stdout


def test_native_info_lines_are_dropped_and_everything_else_kept(capfd):
    import os

    from maskgate import console

    with console.native_stderr_filtered():
        os.write(2, b"I0000 00:00:1796067327.092041    6210 port.cc:153] oneDNN custom operations are on.\n"
                    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"W0000 00:00:1796067327.1    6210 x.cc:1] a real warning\nERROR: a real error\n")
    err = capfd.readouterr().err
    assert err == "W0000 00:00:1796067327.1    6210 x.cc:1] a real warning\nERROR: a real error\n", err
    console.set_verbose(True)
    try:
        with console.native_stderr_filtered():
            os.write(2, b"INFO: shown with --verbose\n")
    finally:
        console.set_verbose(False)
    assert capfd.readouterr().err == "INFO: shown with --verbose\n"


def test_the_quantizers_opset_upgrade_notice_is_dropped_and_other_warnings_kept(caplog):
    import logging

    from maskgate.builder.convert import quiet_converters

    with quiet_converters():
        logging.warning("The original model opset version is 20, which does not support 16-bit integer "
                        "quantization natively. ...")
        logging.warning("a real warning")
    assert [r.getMessage() for r in caplog.records] == ["a real warning"]


def test_native_filters_overlapping_in_two_threads_restore_the_descriptor(capfd):
    """A build verifies simulator bundles in threads beside its conversions: filters that begin
    and end out of order must still leave fd 2 the console's, with every kept line."""
    import os
    import threading

    from maskgate import console

    inner_in, outer_out = threading.Event(), threading.Event()

    def lane():
        with console.native_stderr_filtered():
            inner_in.set()
            os.write(2, b"INFO: dropped\nfrom the lane\n")
            outer_out.wait(5)  # ends after the main thread's filter

    thread = threading.Thread(target=lane)
    with console.native_stderr_filtered():
        thread.start()
        inner_in.wait(5)
        os.write(2, b"from the build\n")
    outer_out.set()
    thread.join()
    os.write(2, b"after both\n")
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == ["after both", "from the build", "from the lane"], err


def test_the_data_folder_comes_from_the_flag_the_environment_or_the_config_and_is_checked(tmp_path):
    """Commands that need the labelled data take --data, MASKGATE_DATA or [data] path; a folder
    without the parts they need is refused in one line naming the missing parts."""
    exe = str(Path(sys.executable).with_name("maskgate"))
    half = tmp_path / "half"
    (half / "scenes" / "images").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MASKGATE_DATA", "MASKGATE_CONFIG")}

    def run(*args, **extra):
        done = subprocess.run([exe, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**env, **extra})
        return done.returncode, done.stderr.strip().splitlines()

    code, lines = run("eval")
    assert code == 2 and len(lines) == 1 and "--data DIR, set MASKGATE_DATA, or [data] path" in lines[0], lines
    code, lines = run("eval", MASKGATE_DATA=str(half))
    assert code == 2 and len(lines) == 1 and "(from MASKGATE_DATA)" in lines[0], lines
    assert all(p in lines[0] for p in ("faces/with_mask", "faces/without_mask", "scenes/annotations")), lines
    (tmp_path / "maskgate.toml").write_text(f'[data]\npath = "{half}"\n')
    code, lines = run("crops", "--out", str(tmp_path / "c"))
    assert code == 2 and len(lines) == 1 and "[data] path" in lines[0] and "scenes/annotations" in lines[0], lines


def test_the_test_video_maker_takes_your_own_photos_and_refuses_in_one_line(tmp_path):
    pytest.importorskip("torch")
    maker = [sys.executable, str(ROOT / "examples" / "turnstile" / "make_test_video.py")]
    done = subprocess.run([*maker, str(ROOT / "examples" / "images"), str(tmp_path / "own.avi"), "--scenes", "3"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-1500:]
    import json

    labels = json.loads((tmp_path / "own.avi.labels.json").read_text())
    assert len(labels) == 3 and all(x["label"] is None and x["expected"] is None for x in labels)
    (tmp_path / "empty").mkdir()
    (tmp_path / "half" / "scenes" / "images").mkdir(parents=True)
    for folder, said in (("empty", "neither scenes/"), ("half", "needs images/ and annotations/"),
                         ("missing", "no such folder")):
        done = subprocess.run([*maker, str(tmp_path / folder), str(tmp_path / "x.avi")], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and said in lines[0], (folder, lines)
