"""The turnstile's per-frame CPU savings that hold with or without reuse: FFmpeg decodes on
``[turnstile.stream] decode_threads`` (1), and OpenCV's small image work runs on one
thread while the app runs. What they save is measured in benchmarks/turnstile_cost.py;
these tests hold what they must not change."""
from __future__ import annotations

import cv2
import numpy as np
import pytest


def test_one_decoding_thread_reads_the_same_frames(gate_video):
    from maskgate.config.turnstile import StreamOptions
    from maskgate.turnstile.stream import FrameStream

    video, _ = gate_video
    one = [f for _, f in FrameStream(str(video), StreamOptions(decode_threads=1)).frames()]
    default = [f for _, f in FrameStream(str(video), StreamOptions(decode_threads=None)).frames()]
    assert len(one) == len(default) > 100
    assert all(np.array_equal(a, b) for a, b in zip(one, default))


def test_decode_threads_below_one_is_refused(tmp_path):
    from maskgate.errors import InputError
    from maskgate.turnstile import load_config

    path = tmp_path / "turnstile.toml"
    path.write_text("[turnstile.stream]\ndecode_threads = 0\n")
    with pytest.raises(InputError, match=r"turnstile.toml: \[turnstile.stream\]: decode_threads must be >= 1"):
        load_config("0", path=path)
    path.write_text("[turnstile.stream]\ndecode_threads = 2\n")
    assert load_config("0", path=path).stream.decode_threads == 2


def test_opencv_runs_on_one_thread_while_the_app_runs_and_is_given_back(gate_builds, gate_video, tmp_path):
    from maskgate import Pipeline
    from maskgate.turnstile import TurnstileApp, load_config

    video, _ = gate_video
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)  # what a host app might have set
    seen = []
    try:
        config = load_config(str(video), builds=gate_builds, max_frames=40)
        with Pipeline.from_builds(gate_builds, prefer="cpu") as pipeline:
            TurnstileApp(config, pipeline=pipeline, on_gate=lambda event: seen.append(cv2.getNumThreads())).run()
        assert seen and set(seen) == {1}
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)
