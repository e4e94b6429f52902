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

from maskgate.pipeline import FaceResult
from maskgate.turnstile import Decision, GateRules, GateStateMachine, Observation, observe
from tests.streams import FPS, GAP, HOLD, paced_http_stream

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "turnstile"))


def _face(width: float, *, x: float = 100.0, mask: str = "mask", prob: float = 0.9, yaw_bin: int = 2) -> FaceResult:
    probs = [0.02] * 6
    probs[yaw_bin] = 0.9
    return FaceResult(box=(x, 100.0, x + width, 100.0 + width), score=0.9, landmarks=((0.0, 0.0),) * 5,
                      roll_degrees=0.0, mask={"label": mask, "prob": prob},
                      pose={"label": f"yaw{yaw_bin}", "yaw_bin": yaw_bin, "probs": probs})


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


def test_the_gate_fails_closed_when_a_verdict_is_missing_or_not_a_number():
    """Fault 2 of issue 14: a face whose mask result is missing (no mask model, a classifier
    that failed, a crop that could not be cut) opened the gate."""
    import dataclasses

    rules = GateRules(min_face_px=40)
    nan = float("nan")
    refused = {
        "no mask result": dataclasses.replace(_face(90), mask=None),
        "NaN P(mask)": _face(90, prob=nan),
        "infinite P(mask)": _face(90, prob=float("inf")),
        "P(mask) above 1": _face(90, prob=1.5),
        "no_mask with NaN": _face(90, mask="no_mask", prob=nan),
        "an unknown mask label": _face(90, mask="mask_weared_incorrect", prob=0.99),
        "no pose result": dataclasses.replace(_face(90), pose=None),
        "NaN pose probabilities": dataclasses.replace(_face(90), pose={"label": "yaw2", "yaw_bin": 2,
                                                                      "probs": [nan] * 6}),
        "a pose result without a class": dataclasses.replace(_face(90), pose={"label": "yaw2"}),
    }
    opened = [what for what, face in refused.items()
              if observe([face], rules=rules, time=0.0).decision is Decision.OPEN]
    assert opened == [], f"the gate opened with {opened}"
    for what, face in refused.items():
        obs = observe([face], rules=rules, time=0.0)
        assert obs.decision is Decision.CANNOT_CHECK, (what, obs.decision)
        assert "verdict" in obs.reason, (what, obs.reason)
    # OPEN needs more than half of the window: a tie, or two masked frames among five, keep it shut.
    assert [g.decision for g in _run("MMOO", GateRules(window=4, gap_frames=3))[0]] == [Decision.NO_MASK]
    assert [g.action for g in _run("MMOOO....", GateRules(window=4, gap_frames=3))[0]] == ["refuse", "open"]
    assert [(g.decision, g.frame) for g in _run("LMOO?O", GateRules(window=5, gap_frames=3))[0]] == [
        (Decision.NO_MASK, 3), (Decision.CANNOT_CHECK, 4), (Decision.OPEN, 5)]  # 3 of 5 say OPEN at frame 5
    nan_box = dataclasses.replace(_face(90), box=(nan, 100.0, nan, 190.0))
    assert observe([nan_box], rules=rules, time=0.0).decision is Decision.NO_FACE
    # A site without a pose model turns the look check off explicitly; the mask is still required.
    no_pose_check = GateRules(min_face_px=40, frontal_yaw_classes=())
    assert observe([refused["no pose result"]], rules=no_pose_check, time=0.0).decision is Decision.OPEN
    assert observe([refused["no mask result"]], rules=no_pose_check, time=0.0).decision is Decision.CANNOT_CHECK
    for bad in (0.0, nan, -0.5, 1.5):  # 0 would open for everyone, NaN for no one knows whom
        with pytest.raises(ValueError, match="min_mask_prob"):
            GateRules(min_mask_prob=bad)


CODES = {".": "NO_FACE", "O": "OPEN", "M": "NO_MASK", "L": "LOOK_AT_CAMERA", "?": "CANNOT_CHECK"}


def _run(decisions: str, rules: GateRules = GateRules(window=3, gap_frames=3)):
    """Feed a string of frames (. no face, O open, M no mask, L look, ? cannot check);
    returns (gate events, passages)."""
    from maskgate.turnstile import GateEvent

    machine, gates, passages = GateStateMachine(rules), [], []
    for i, c in enumerate(decisions):
        obs = Observation(Decision[CODES[c]], i / 10, mask_prob=0.9 if c == "O" else 0.1, reason=f"frame {i} says {c}",
                          frame=i)
        for event in machine.update(obs):
            (gates if isinstance(event, GateEvent) else passages).append(event)
    last = machine.finish()
    return gates, passages + ([last] if last else [])


def test_the_gate_opens_when_the_decision_first_says_open_not_when_the_person_leaves():
    """Fault 1 of issue 14: the relay cue came when the passage ended, after the person had
    left; 200 frames of a masked person in front of the camera produced nothing."""
    rules = GateRules(window=5, gap_frames=5)
    gates, passages = _run("...." + "O" * 200, rules)  # arrives at frame 4 and stays
    assert [(g.action, g.frame) for g in gates] == [("open", 6)]  # the 3rd masked frame: majority of 5
    assert gates[0].frame - 4 < rules.window and gates[0].reason == "frame 6 says O"
    assert gates[0].passage_start == pytest.approx(0.4)
    (passage,) = passages  # the stream ended: the summary comes with it, the gate did not wait for it
    assert passage.decision is Decision.OPEN and passage.opened_frame == 6
    gates, passages = _run("...." + "O" * 20 + "." * 4 + "O" * 20 + "." * 10, rules)
    assert [g.action for g in gates] == ["open"]  # a short gap is the same passage: it never opens twice
    assert len(passages) == 1


def test_refusals_are_announced_when_their_reason_changes_and_a_refusal_then_open_is_open():
    gates, passages = _run("LLLLMMMMOOOO....")
    assert [(g.action, g.decision, g.frame) for g in gates] == [
        ("refuse", Decision.LOOK_AT_CAMERA, 1), ("refuse", Decision.NO_MASK, 5), ("open", Decision.OPEN, 9)]
    (passage,) = passages
    assert passage.decision is Decision.OPEN and passage.opened_frame == 9
    gates, passages = _run("?????.....")
    assert [g.decision for g in gates] == [Decision.CANNOT_CHECK] and passages[0].decision is Decision.CANNOT_CHECK
    assert passages[0].reason == "frame 1 says ?"


def test_one_passage_per_person_with_flicker_smoothed_away():
    gates, passages = _run("....OOOMOOO......MMMMM.....")
    assert [p.decision for p in passages] == [Decision.OPEN, Decision.NO_MASK]
    assert passages[0].opened_at is not None and passages[1].opened_at is None
    assert passages[0].frames == 7 and passages[0].start == pytest.approx(0.4)
    assert [(g.action, g.frame) for g in gates] == [("open", 5), ("refuse", 18)]


def test_a_single_frame_does_not_open_the_gate():
    assert _run("...O.......") == ([], [])  # one frame never makes a majority of 3
    gates, (passage,) = _run("OMMMMM")  # stream ends mid-passage: closed by finish()
    assert passage.decision is Decision.NO_MASK and [g.action for g in gates] == ["refuse"]


def test_a_short_gap_does_not_split_a_passage():
    assert len(_run("MMMM..MMMM......")[1]) == 1
    assert len(_run("MMMM......MMMM......")[1]) == 2


# -- the app on real videos ------------------------------------------------------------------

# gate_builds and gate_video (12 test-split people, HOLD frames each, GAP between) are in conftest.py.


def _events(path: Path) -> list[dict]:
    """The events in ``path``, each one checked against the shipped JSON Schema."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    _valid(records)
    return records


def _valid(records: list[dict]) -> None:
    from jsonschema import Draft202012Validator

    from maskgate.turnstile.events import load_schema

    validator = Draft202012Validator(load_schema())
    for record in records:
        problems = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(record)]
        assert not problems, (record, problems)


def test_the_event_schema_refuses_what_an_event_must_not_be():
    """The schema can fail: an event without wall-clock time, a passage with the old epoch-or-
    stream 'time' field, a stop without a reason it stopped, a gate that is neither open nor refuse."""
    from jsonschema import Draft202012Validator

    from maskgate.turnstile.events import event_record, load_schema

    validator = Draft202012Validator(load_schema())
    good = event_record("error", stream_time=None, message="camera 0 does not open")
    assert validator.is_valid(good) and good["wall_time"].endswith("Z")
    bad = [{k: v for k, v in good.items() if k != "wall_time"},
           {**good, "event": "passage", "time": 1.0},
           event_record("stop", stream_time=3.0, frames=1, passages=0, decisions={}, opened=0, refused=0, dropped=0,
                        reconnects=0, errors=[], stopped_by=None, seconds=1.0),
           event_record("gate", stream_time=1.0, action="close", decision="OPEN", frame=3, reason="x",
                        passage_start=0.5, mask_prob=0.9, yaw_class=None, runtime=None)]
    assert not any(validator.is_valid(b) for b in bad)


def _shown_at(labels: list[dict], frame: int) -> dict | None:
    """The person in front of the camera at ``frame`` (None between people)."""
    return next((x for x in labels if x["first_frame"] <= frame < x["first_frame"] + HOLD), None)


@pytest.mark.shared_data
def test_turnstile_acts_on_arrival_and_sums_up_each_passage_matching_the_labels(gate_builds, gate_video, tmp_path):
    from maskgate.cli import main
    from maskgate.turnstile import GateRules

    video, labels = gate_video
    events, out = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    assert main(["turnstile", str(video), "--builds", str(gate_builds), "--events", str(events),
                 "--video-out", str(out)]) == 0
    records = _events(events)
    passages = [r for r in records if r["event"] == "passage"]
    gates = [r for r in records if r["event"] == "gate"]
    assert gates, "no gate event: the gate never acted while people were in front of it"
    assert records[-1]["event"] == "stop" and records[-1]["passages"] == len(passages) == len(labels)
    assert records[-1]["opened"] == sum(g["action"] == "open" for g in gates)
    assert {x["label"] for x in labels} == {"with_mask", "without_mask"}
    window = GateRules().window
    for shown in labels:  # each person at the gate gives exactly one passage, while they are shown
        start = shown["first_frame"] / FPS
        (passage,) = [p for p in passages if start - 0.05 <= p["start"] <= start + 1.0]
        mine = [g for g in gates if _shown_at(labels, g["frame"]) is shown]
        opened = [g for g in mine if g["action"] == "open"]
        assert len(opened) <= 1 and (passage["decision"] == "OPEN") == bool(opened), (shown, mine, passage)
        assert mine and mine[0]["frame"] < shown["first_frame"] + window  # the gate acts on arrival
        if shown["label"] == "without_mask":
            assert not opened, f"the gate opened for an unmasked person: {shown}, {passage}"
            assert passage["decision"] in ("NO_MASK", "LOOK_AT_CAMERA"), (shown, passage)
        else:
            assert passage["decision"] == shown["expected"], (shown, passage)
    assert all(_shown_at(labels, g["frame"]) for g in gates)  # nothing happens when nobody is there
    first = passages[0]
    assert set(first) >= {"start", "decision", "reason", "mask_prob", "yaw_class", "runtime", "stages_ms"}
    assert all(r["stream_time"] is not None for r in records) and records[-1]["stopped_by"] == "end_of_stream"
    assert all("openvino int8" in first["runtime"][model] for model in ("detector", "mask", "pose"))
    assert set(first["stages_ms"]) == {"preprocess", "detect", "postprocess", "align", "classify"}
    assert all("openvino int8" in g["runtime"]["mask"] and g["reason"] for g in gates)
    import cv2

    written = cv2.VideoCapture(str(out))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == records[-1]["frames"]
    written.release()


@pytest.mark.shared_data
def test_the_example_app_opens_the_relay_within_window_frames_of_a_masked_arrival(gate_builds, gate_video, tmp_path):
    """Issue 14's acceptance for fault 1: the example's relay callback runs at the frame
    the gate opens, within ``window`` frames of a masked person's arrival, and never for
    an unmasked person."""
    import re

    from maskgate.turnstile import GateRules

    video, labels = gate_video
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "turnstile" / "app.py"), str(video),
                           "--builds", str(gate_builds)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    relay = [(int(m.group(1)), m.group(2)) for m in re.finditer(r"^frame +(\d+) .* relay (open|closed) ",
                                                                 done.stdout, re.M)]
    opened = [frame for frame, state in relay if state == "open"]
    window = GateRules().window
    masked = [x for x in labels if x["expected"] == "OPEN"]
    assert len(masked) >= 4
    for shown in labels:
        mine = [f for f in opened if _shown_at(labels, f) is shown]
        if shown["label"] == "without_mask":
            assert mine == [], f"relay opened for an unmasked person at frame(s) {mine}: {shown}"
        elif shown["expected"] == "OPEN":
            assert len(mine) == 1 and 0 <= mine[0] - shown["first_frame"] < window, (shown, mine)
    assert all(_shown_at(labels, f) for f in opened)
    assert len(re.findall(r"^passage ", done.stdout, re.M)) == len(labels)  # the summaries, once each person left
    assert (tmp_path / "turnstile-events.jsonl").is_file()  # the example config's event file


@pytest.mark.shared_data
def test_without_a_mask_classifier_the_gate_never_opens(gate_builds, gate_video, tmp_path):
    """Fault 2 of issue 14 end to end: a pipeline from real builds but without its mask
    model (or with one that gives no result) refuses everyone, and says why."""
    from maskgate import Pipeline
    from maskgate.turnstile import TurnstileApp, load_config

    video, labels = gate_video
    events = tmp_path / "events.jsonl"
    config = load_config(str(video), builds=gate_builds, events=events)
    with Pipeline.from_builds(gate_builds, mask_model=None, prefer="cpu") as pipeline:
        summary = TurnstileApp(config, pipeline=pipeline).run()
    records = _events(events)
    assert [r for r in records if r.get("decision") == "OPEN"] == []
    gates = [r for r in records if r["event"] == "gate"]
    assert summary.passages == len(labels) and summary.opened == 0
    assert gates and all(g["action"] == "refuse" for g in gates)
    assert any(g["decision"] == "CANNOT_CHECK" and "no mask verdict" in g["reason"] for g in gates)


@pytest.mark.shared_data
def test_a_truncated_or_corrupt_video_ends_with_an_error_event(gate_builds, gate_video, tmp_path, capsys):
    from maskgate.cli import main

    video, _ = gate_video
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    events = tmp_path / "events.jsonl"
    assert main(["turnstile", str(truncated), "--builds", str(gate_builds), "--events", str(events)]) == 1
    records = _events(events)
    errors = [r for r in records if r["event"] == "error"]
    assert len(errors) == 1 and "truncated or corrupt" in errors[0]["message"] and records[-1]["event"] == "stop"
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(os.urandom(4096))
    events2 = tmp_path / "events2.jsonl"
    # Nothing could be read: exit 2, as 'maskgate run' on the same file.
    assert main(["turnstile", str(garbage), "--builds", str(gate_builds), "--events", str(events2)]) == 2
    records = _events(events2)
    assert records[0]["event"] == "error" and "garbage.avi" in records[0]["message"]
    assert records[0]["stream_time"] is None and records[-1]["stopped_by"] == "error"
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.shared_data
def test_sigterm_finishes_the_event_file(gate_builds, gate_video, tmp_path):
    """The app runs as a process on a live stream that holds back its second half (the
    pause point), so it is still running, whatever the machine's load, when SIGTERM comes."""
    video, _ = gate_video
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    maskgate = Path(sys.executable).parent / "maskgate"
    with paced_http_stream(video, fps=FPS, pause_after=GAP + 3 * (HOLD + GAP)) as (url, release):
        proc = subprocess.Popen([str(maskgate), "turnstile", url, "--builds", str(gate_builds),
                                 "--events", str(events), "--threads", "1"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and proc.poll() is None:
                if events.is_file() and '"passage"' in events.read_text():
                    break
                time.sleep(0.2)
            assert proc.poll() is None, f"the app ended on a stream that had not: {proc.stderr.read()[-2000:]}"
            assert '"passage"' in events.read_text(), "no passage within 600 s"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err[-2000:]
    records = _events(events)  # every line whole JSON
    assert records[-1]["event"] == "stop" and records[-1]["stopped_by"] == "SIGTERM"
    assert records[-1]["passages"] >= 1 and 0 < records[-1]["frames"]


def test_config_file_then_flags(tmp_path):
    from maskgate.errors import InputError
    from maskgate.turnstile import load_config

    path = tmp_path / "turnstile.toml"
    path.write_text('[turnstile]\nbuilds = "b"\nroi = [10, 20, 300, 400]\n[turnstile.rules]\nwindow = 7\n'
                    'frontal_yaw_classes = [2, 3]\n[turnstile.stream]\nmax_backoff_s = 2.0\n')
    config = load_config("0", path=path, rules={"window": 3, "min_mask_prob": None})
    assert config.builds == Path("b") and config.roi == (10, 20, 300, 400) and config.stream.max_backoff_s == 2.0
    assert config.rules.window == 3 and config.rules.frontal_yaw_classes == (2, 3)  # the flag wins, the file fills in
    path.write_text("[turnstile]\nwindwo = 3\n")
    with pytest.raises(InputError, match=r"turnstile.toml: \[turnstile\] windwo: unknown key; .*takes source, builds"):
        load_config("0", path=path)
    path.write_text("[turnstile.rules]\nwindwo = 3\n")
    with pytest.raises(InputError, match=r"\[turnstile.rules\] windwo: unknown key; .*takes frontal_yaw_classes"):
        load_config("0", path=path)
    path.write_text("[other]\n")
    with pytest.raises(InputError, match=r"\[other\]: unknown table; the MaskGate config takes \[devices\]"):
        load_config("0", path=path)
    path.write_text("[turnstile]\n")
    assert load_config("0", path=path).builds == Path("builds")  # an empty table: every default
    with pytest.raises(InputError, match="positive size"):
        load_config("0", roi=(0, 0, 0, 10))


def test_a_missing_builds_folder_is_a_clear_error(tmp_path, capsys):
    from maskgate.cli import main

    video = tmp_path / "v.avi"
    video.write_bytes(b"x")
    assert main(["turnstile", str(video), "--builds", str(tmp_path / "nope")]) == 2
    assert "run 'maskgate build" in capsys.readouterr().err


def test_a_dropped_http_stream_is_reopened_with_backoff(tmp_path):
    """A real HTTP video stream through OpenCV/FFmpeg: the first connection is cut halfway,
    the second plays to the end, then the server is gone: one reconnection with frames
    from both connections, then a clear error once the reconnections run out."""
    import http.server
    import threading

    from maskgate.errors import SourceError
    from maskgate.turnstile import FrameStream, StreamOptions

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
    # Generous limits: the outcome depends only on what the server sends, not on how fast
    # this machine reads it (the cut and the 404 end each connection at once).
    stream = FrameStream(url, StreamOptions(first_backoff_s=0.05, max_backoff_s=0.1, max_reconnects=1,
                                            stall_s=60.0))
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


@pytest.mark.shared_data
def test_the_turnstile_path_classifies_only_the_person_at_the_gate(shared_data):
    """In a crowded frame only the face the gate decides on is aligned and classified, and
    the gate's reading is the one it makes when every face is classified."""
    from maskgate import Pipeline
    from maskgate.sources import read_image
    from maskgate.turnstile import choose_person_at_gate, person_at_gate
    from maskgate.voc import read_voc_folder

    rules = GateRules(min_face_px=20)
    crowded = [s for s in read_voc_folder(shared_data / "scenes") if len(s.boxes) >= 6][:3]
    assert crowded
    with Pipeline.reference(device="cpu") as pipeline:
        for scene in crowded:
            frame = read_image(scene.image_path)
            every, timed = pipeline(frame), {}
            gate = pipeline(frame, timings=timed, classify=choose_person_at_gate(rules=rules))
            assert [f.box for f in gate] == [f.box for f in every] and len(every) >= 4, scene.image_path
            classified = [i for i, f in enumerate(gate) if f.mask is not None]
            assert classified == [person_at_gate([f.box for f in every], rules=rules)]
            assert all(f.crop is None and f.pose is None for i, f in enumerate(gate) if i not in classified)
            want, got = observe(every, rules=rules, time=0.0), observe(gate, rules=rules, time=0.0)
            assert (got.decision, got.mask_prob, got.yaw_class) == (want.decision, want.mask_prob, want.yaw_class)
