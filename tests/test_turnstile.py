"""The turnstile app: the decision state machine, and ``maskgate turnstile`` on a video of
held-out scenes (one event per passage, decisions matching the labels), a truncated or
corrupt video, SIGTERM, the config file and the annotated video."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sdk.pipeline import FaceResult
from sdk.turnstile import Decision, GateRules, GateStateMachine, Observation, observe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "turnstile"))


def _face(width: float, *, x: float = 100.0, mask: str = "mask", prob: float = 0.9, yaw_bin: int = 2) -> FaceResult:
    return FaceResult(box=(x, 100.0, x + width, 100.0 + width), score=0.9, landmarks=((0.0, 0.0),) * 5, roll_degrees=0.0,
                      mask={"label": mask, "prob": prob}, pose={"label": f"yaw{yaw_bin}", "yaw_bin": yaw_bin, "probs": []})


def test_observe_takes_the_largest_face_in_the_roi():
    rules = GateRules(min_face_px=40)
    small, big, outside = _face(50, mask="no_mask", prob=0.8), _face(90), _face(150, x=500, mask="no_mask")
    obs = observe([small, big, outside], rules=rules, time=0.0, roi=(0, 0, 400, 400))
    assert obs.decision is Decision.OPEN and obs.mask_prob == pytest.approx(0.9)
    assert observe([small], rules=rules, time=0.0).decision is Decision.NO_MASK
    assert observe([small], rules=rules, time=0.0).mask_prob == pytest.approx(0.2)  # P(mask), not P(label)
    assert observe([_face(30)], rules=rules, time=0.0).decision is Decision.NO_FACE  # too far from the gate
    assert observe([_face(90, yaw_bin=5)], rules=rules, time=0.0).decision is Decision.LOOK_AT_CAMERA
    assert observe([_face(90, yaw_bin=0, mask="no_mask")], rules=rules, time=0.0).decision is Decision.LOOK_AT_CAMERA


def _run(decisions: str, rules: GateRules = GateRules(window=3, gap_frames=3)):
    """Feed a string of frames (. no face, O open, M no mask, L look) and collect the passages."""
    codes = {".": Decision.NO_FACE, "O": Decision.OPEN, "M": Decision.NO_MASK, "L": Decision.LOOK_AT_CAMERA}
    machine, passages = GateStateMachine(rules), []
    for i, c in enumerate(decisions):
        passage = machine.update(Observation(codes[c], float(i), mask_prob=0.9 if c == "O" else 0.1))
        if passage:
            passages.append(passage)
    last = machine.finish()
    return passages + ([last] if last else [])


def test_one_passage_per_person_with_flicker_smoothed_away():
    passages = _run("....OOOMOOO......MMMMM.....")
    assert [p.decision for p in passages] == [Decision.OPEN, Decision.NO_MASK]
    assert passages[0].opened_at is not None and passages[1].opened_at is None
    assert passages[0].frames == 7 and passages[0].start == 4.0


def test_a_single_frame_does_not_open_the_gate_and_a_refusal_then_open_is_open():
    assert _run("...O.......") == []  # one frame never makes a majority of 3
    (passage,) = _run("LLLLOOOO....")
    assert passage.decision is Decision.OPEN  # asked to look, looked, masked: the gate opened
    (passage,) = _run("OMMMMM")  # stream ends mid-passage: closed by finish()
    assert passage.decision is Decision.NO_MASK


def test_a_short_gap_does_not_split_a_passage():
    assert len(_run("MMMM..MMMM......")) == 1
    assert len(_run("MMMM......MMMM......")) == 2


# -- the app on real videos ------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_builds(make_builds):
    return make_builds("turnstile-builds", formats=("onnx",), precisions=("fp32",), check_runs=2)


@pytest.fixture(scope="module")
def gate_video(onnx_builds, shared_data, tmp_path_factory):
    from make_test_video import make_video

    video = tmp_path_factory.mktemp("video") / "gate.avi"
    labels = make_video(shared_data, video, scenes=12, hold=10, gap=8, fps=10.0, builds=onnx_builds)
    return video, labels


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.shared_data
def test_turnstile_writes_one_event_per_passage_matching_the_labels(onnx_builds, gate_video, tmp_path, capsys):
    from sdk.cli import main

    video, labels = gate_video
    events, out = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    assert main(["turnstile", str(video), "--builds", str(onnx_builds), "--events", str(events),
                 "--video-out", str(out)]) == 0
    records = _events(events)
    passages = [r for r in records if r["event"] == "passage"]
    assert records[-1]["event"] == "stop" and records[-1]["passages"] == len(passages)
    assert {x["label"] for x in labels} == {"with_mask", "without_mask"}
    matched = 0
    for shown in labels:  # each person at the gate gives exactly one event, while they are shown
        start = shown["first_frame"] / 10.0
        mine = [p for p in passages if start - 0.05 <= p["time"] <= start + 1.0]
        assert len(mine) == 1, (shown, mine)
        matched += mine[0]["decision"] == shown["expected"]
    assert len(passages) == len(labels)
    assert matched / len(labels) >= 0.8, (matched, len(labels))
    first = passages[0]
    assert set(first) >= {"time", "decision", "mask_prob", "yaw_class", "runtime", "stages_ms"}
    assert "onnx fp32" in first["runtime"]["detector"] and set(first["stages_ms"]) == {
        "preprocess", "detect", "postprocess", "align", "classify"}
    import cv2

    written = cv2.VideoCapture(str(out))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == records[-1]["frames"]
    written.release()


@pytest.mark.shared_data
def test_a_truncated_or_corrupt_video_ends_with_an_error_event(onnx_builds, gate_video, tmp_path, capsys):
    from sdk.cli import main

    video, _ = gate_video
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    events = tmp_path / "events.jsonl"
    assert main(["turnstile", str(truncated), "--builds", str(onnx_builds), "--events", str(events)]) == 1
    records = _events(events)
    errors = [r for r in records if r["event"] == "error"]
    assert len(errors) == 1 and "truncated or corrupt" in errors[0]["message"] and records[-1]["event"] == "stop"
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(os.urandom(4096))
    events2 = tmp_path / "events2.jsonl"
    assert main(["turnstile", str(garbage), "--builds", str(onnx_builds), "--events", str(events2)]) == 1
    records = _events(events2)
    assert records[0]["event"] == "error" and "garbage.avi" in records[0]["message"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.shared_data
def test_sigterm_finishes_the_event_file(onnx_builds, gate_video, tmp_path):
    video, _ = gate_video
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    maskgate = Path(sys.executable).parent / "maskgate"
    proc = subprocess.Popen([str(maskgate), "turnstile", str(video), "--builds", str(onnx_builds),
                             "--events", str(events), "--threads", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if events.is_file() and '"passage"' in events.read_text():
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the app ended before it could be stopped: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    records = _events(events)  # every line whole JSON
    assert records[-1]["event"] == "stop" and records[-1]["stopped_by"] == "SIGTERM"
    assert 0 < records[-1]["frames"] < 12 * 18 + 8


def test_config_file_then_flags(tmp_path):
    from sdk.errors import InputError
    from sdk.turnstile import load_config

    path = tmp_path / "turnstile.toml"
    path.write_text('[turnstile]\nbuilds = "b"\nroi = [10, 20, 300, 400]\n[turnstile.rules]\nwindow = 7\n'
                    'frontal_yaw_classes = [2, 3]\n[turnstile.stream]\nmax_backoff_s = 2.0\n')
    config = load_config("0", path=path, rules={"window": 3, "min_mask_prob": None})
    assert config.builds == Path("b") and config.roi == (10, 20, 300, 400) and config.stream.max_backoff_s == 2.0
    assert config.rules.window == 3 and config.rules.frontal_yaw_classes == (2, 3)  # the flag wins, the file fills in
    path.write_text("[turnstile]\nwindwo = 3\n")
    with pytest.raises(InputError, match="turnstile.toml.*takes builds"):
        load_config("0", path=path)
    path.write_text("[other]\n")
    with pytest.raises(InputError, match="no \\[turnstile\\] table"):
        load_config("0", path=path)
    with pytest.raises(InputError, match="positive size"):
        load_config("0", roi=(0, 0, 0, 10))


def test_a_missing_builds_folder_is_a_clear_error(tmp_path, capsys):
    from sdk.cli import main

    video = tmp_path / "v.avi"
    video.write_bytes(b"x")
    assert main(["turnstile", str(video), "--builds", str(tmp_path / "nope")]) == 2
    assert "run 'maskgate build" in capsys.readouterr().err


@pytest.mark.shared_data
def test_the_example_app_drives_its_relay_once_per_passage(onnx_builds, gate_video, tmp_path):
    video, labels = gate_video
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "turnstile" / "app.py"), str(video),
                           "--builds", str(onnx_builds)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    relay_lines = [line for line in done.stdout.splitlines() if " relay " in line]
    assert len(relay_lines) == len(labels)
    assert (tmp_path / "turnstile-events.jsonl").is_file()  # the example config's event file


def test_a_dropped_http_stream_is_reopened_with_backoff(tmp_path):
    """A real HTTP video stream through OpenCV/FFmpeg: the first connection is cut halfway,
    the second plays to the end, then the server is gone: one reconnection with frames
    from both connections, then a clear error once the reconnections run out."""
    import http.server
    import threading

    from sdk.errors import SourceError
    from sdk.turnstile import FrameStream, StreamOptions

    video = tmp_path / "clip.avi"
    writer = cv2_writer(video)
    for i in range(60):
        writer.write(np.full((240, 320, 3), i * 4, np.uint8))
    writer.release()
    data = video.read_bytes()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            requests.append(self.path)
            if len(requests) > 2:
                self.send_error(404)
                return
            body = data if len(requests) == 2 else data[: len(data) // 2]
            self.send_response(200)
            self.send_header("Content-Type", "video/x-msvideo")
            self.send_header("Content-Length", str(len(data)))  # the cut connection promised it all
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
    stream = FrameStream(url, StreamOptions(first_backoff_s=0.05, max_backoff_s=0.1, max_reconnects=1,
                                            read_timeout_s=2.0))
    seen = []
    try:
        with pytest.raises(SourceError, match="stopped delivering frames and 1 reconnection"):
            for _, frame in stream.frames():
                seen.append(int(frame[0, 0, 0]))
                time.sleep(0.002)
    finally:
        server.shutdown()
    assert stream.live and stream.stats.reconnects >= 1 and len(requests) >= 3
    assert seen and max(seen) >= 200  # frames from the second, whole connection reached the end
    assert stream.stats.frames + stream.stats.dropped >= 60


def cv2_writer(path):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (320, 240))
    assert writer.isOpened()
    return writer
