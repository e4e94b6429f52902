"""Temporal reuse on the turnstile path (issue 31, lines 1 and 2): with reuse on, the gate makes
the same decisions on the same frames as with it off, on the test videos and on the videos
made to catch a reuse that skips what it must not (people standing still, two people in quick
succession, a person putting a mask on at the gate, people walking up in front of a fixed
background with sensor noise), while skipping most of the detector's still frames and most of
the classifier runs."""
from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.shared_data
sys.path.insert(0, str(ROOT / "examples" / "turnstile"))

VIDEOS = {  # name: make_video options
    "default-16": {"scenes": 16},
    "crowd-38": {"scenes": 38},
    "close-ups": {"scenes": 12, "face_px": (300.0, 380.0, 460.0)},
    "standing-still": {"scenes": 6, "hold": 80},
    "quick-succession": {"scenes": 12, "gap": 1},
    "mask-swap": {"scenes": 12, "swap_masks": True},
    # people walking up in front of a fixed background, sensor noise on every frame: the one
    # whose first frames at min_face_px change a 32x24 thumbnail's mean by less than 1 of 255
    "walk-up": {"scenes": 12, "hold": 16, "walk_up": True, "noise": 3.0},
}


@pytest.fixture(scope="module")
def videos(gate_builds, shared_data, tmp_path_factory):
    from make_test_video import make_video

    folder = tmp_path_factory.mktemp("reuse-videos")
    out = {}
    for name, options in VIDEOS.items():
        video = folder / f"{name}.avi"
        out[name] = (video, make_video(shared_data, video, builds=gate_builds, **options))
    return out


def _run(video, builds, events, *reuse: str) -> list[dict]:
    from maskgate.cli import main

    assert main(["turnstile", str(video), "--builds", str(builds), "--events", str(events), *reuse]) == 0
    return [json.loads(line) for line in events.read_text().splitlines()]


def _decisions(records: list[dict]) -> list[tuple]:
    """What the gate did, frame by frame: each gate event's action, decision and frame, each
    passage's decision and the frame it opened on."""
    return [(r["action"], r["decision"], r["frame"]) if r["event"] == "gate" else (r["decision"], r["opened_frame"])
            for r in records if r["event"] in ("gate", "passage")]


@pytest.mark.parametrize("name", list(VIDEOS))
def test_reuse_gives_the_same_decisions_on_the_same_frames(name, videos, gate_builds, tmp_path, capsys):
    video, labels = videos[name]
    off = _run(video, gate_builds, tmp_path / "off.jsonl", "--no-reuse")
    capsys.readouterr()
    on = _run(video, gate_builds, tmp_path / "on.jsonl")
    said = capsys.readouterr().err
    assert _decisions(on) == _decisions(off), name
    # people come and go (at gap 1 they follow each other within one passage)
    assert any(r["event"] == "passage" for r in on) and any(r["event"] == "gate" for r in on)
    stop = on[-1]
    assert stop["event"] == "stop" and stop["frames"] == off[-1]["frames"]
    summary = next(line for line in said.splitlines() if line.startswith("turnstile:"))
    skipped, reused = _counts(summary)
    print(f"{name}: {stop['frames']} frames, detector skipped on {skipped}, verdicts reused on {reused}")
    # reuse did something: the comparison is not vacuous. At gap 1 there is one empty frame between
    # people, and the still check needs a detected empty frame before it can skip the next one.
    assert reused > 0 and (skipped > 0 or VIDEOS[name].get("gap") == 1), summary
    if name == "mask-swap":
        assert any(x["swap"] for x in labels)


def _counts(summary: str) -> tuple[int, int]:
    import re

    found = re.search(r"detector skipped (\d+), verdicts reused (\d+)", summary)
    assert found, summary
    return int(found[1]), int(found[2])


def test_still_with_people_false_runs_the_detector_whenever_someone_is_in_view(videos, gate_builds, tmp_path,
                                                                              capsys):
    """``still_with_people = false``: the still check answers only after a frame with nobody,
    so it skips fewer frames, and the gate still decides the same on the same frames."""
    video, _ = videos["walk-up"]
    off = _run(video, gate_builds, tmp_path / "off.jsonl", "--no-reuse")
    capsys.readouterr()
    on = _run(video, gate_builds, tmp_path / "on.jsonl")
    skipped_with_people, _ = _counts(capsys.readouterr().err)
    config = tmp_path / "maskgate.toml"
    config.write_text("[turnstile.reuse_rules]\nstill_with_people = false\n")
    empty_only = _run(video, gate_builds, tmp_path / "empty-only.jsonl", "--config", str(config))
    skipped_empty_only, _ = _counts(capsys.readouterr().err)
    assert _decisions(empty_only) == _decisions(off) == _decisions(on)
    assert 0 < skipped_empty_only < skipped_with_people
