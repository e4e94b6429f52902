"""CPU cost per video frame of the turnstile app: reuse on, reuse off, and the PyTorch reference
pipeline on every frame, side by side in one run, at 1 and 2 threads.

    python benchmarks/turnstile_cost.py --builds builds/ --data ../shared/data [--json out.json]

The figure is the process's CPU time (every thread: process_time) spent in ``TurnstileApp.run``
divided by the frames it read, the models opened beforehand (loading is not a frame's cost).
Two sources: ``file``, the app decoding the MJPEG video as it reads it (about 0.8 ms a
640x480 frame here, paid whatever the gate does), and ``memory``, the same frames decoded
beforehand and handed to the app's loop as a camera's image pipeline hands over raw frames
(the app's own cost: what reuse can save).
Each configuration runs in its own process so that thread settings do not leak. Videos
(``examples/turnstile/make_test_video.py``): the default 16 people, 38 people, close-ups,
"one face" (every frame a different person, held one frame, the ~60 people four times over:
the frame floor, reuse cannot help), "walk-up" (16 people walking up in front of a fixed
background and standing at the gate, sensor noise on every frame) and "empty" (a scene's
background with nobody in it and sensor noise, 300 frames: a turnstile with nobody in view).
A benchmark, not a test: figures for docs/benchmarks.md, never assertions.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "turnstile"))

VIDEOS = {"default-16": {"scenes": 16}, "crowd-38": {"scenes": 38},
          "close-ups": {"scenes": 12, "face_px": (300.0, 380.0, 460.0)},
          "one-face": {"scenes": 120, "hold": 1, "gap": 0},
          "walk-up": {"scenes": 16, "hold": 16, "walk_up": True, "noise": 3.0}}
CONFIGS = ("reuse", "no-reuse", "reference")


def empty_video(data: Path, out: Path, frames: int = 300) -> None:
    """A scene photo's widest band with no labelled face, scaled to 640x480, with sensor noise."""
    import cv2

    from maskgate.voc import read_voc_folder

    for scene in read_voc_folder(data / "scenes"):
        image = cv2.imread(str(scene.image_path))
        if image is None or not len(scene.boxes):
            continue
        top = int(scene.boxes[:, 3].max()) + 4  # below every face
        if image.shape[0] - top >= image.shape[0] // 3:
            background = cv2.resize(image[top:], (640, 480))
            break
    else:
        raise SystemExit(f"turnstile_cost: no scene under {data} with a face-free band")
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(frames):
        noise = rng.normal(0, 2.0, background.shape)
        writer.write(np.clip(background + noise, 0, 255).astype(np.uint8))
    writer.release()


def loop_video(video: Path, *, times: int) -> None:
    """``video`` played ``times`` over, in place (the same people again: still a new face each frame)."""
    import cv2

    frames = decoded(video)
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(times):
        for frame in frames:
            writer.write(frame)
    writer.release()


def decoded(video: Path) -> list:
    from maskgate.sources import iter_frames

    return [frame.image for frame in iter_frames(str(video))]


def measure(builds: Path, config: str, video: Path, threads: int, source: str = "file") -> dict:
    """One configuration on one video, in this process."""
    from maskgate import Pipeline
    from maskgate.turnstile import TurnstileApp, load_config

    if config == "reference":
        import torch

        torch.set_num_threads(threads)
        pipeline = Pipeline.reference(device="cpu")
    else:
        pipeline = Pipeline.from_builds(builds, prefer="cpu", threads=threads, profile="turnstile")
    with pipeline:
        app_config = load_config(str(video), builds=builds, reuse=config == "reuse", health_every_s=3600)
        app = TurnstileApp(app_config, pipeline=pipeline)
        if source == "memory":  # decoded before the clock starts; the loop reads them as it reads the stream
            frames, fps = decoded(video), 10.0
            app.stream.frames = lambda: ((index / fps, frame) for index, frame in enumerate(frames))
        began, wall = time.process_time(), time.perf_counter()
        summary = app.run()
        cpu = time.process_time() - began
        wall = time.perf_counter() - wall
    return {"config": config, "video": video.stem, "threads": threads, "source": source, "frames": summary.frames,
            "cpu_ms_per_frame": round(cpu * 1e3 / max(summary.frames, 1), 3),
            "wall_ms_per_frame": round(wall * 1e3 / max(summary.frames, 1), 3),
            "detector_skipped": summary.detector_skipped, "verdicts_reused": summary.verdicts_reused,
            "passages": summary.passages}


def in_subprocess(builds: Path, config: str, video: Path, threads: int, source: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--builds", str(builds), "--one", config, "--video", str(video),
                           "--threads", str(threads), "--sources", source], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{config} on {video.name} ({threads} threads) failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="the data folder the videos are made from (../shared/data)")
    parser.add_argument("--videos", type=Path, help="where the videos are made (default: a temporary folder)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--sources", default="file,memory", help="file (the app decodes the video), memory "
                        "(frames decoded beforehand, as a camera's image pipeline hands them over), or both")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--video", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.builds, args.one, args.video, int(args.threads.split(",")[0]), args.sources)))
        return 0
    if args.data is None:
        parser.error("--data: the data folder to make the test videos from")
    import tempfile

    from make_test_video import make_video

    folder = args.videos or Path(tempfile.mkdtemp(prefix="turnstile-cost-"))
    folder.mkdir(parents=True, exist_ok=True)
    videos = []
    for name, options in VIDEOS.items():
        video = folder / f"{name}.avi"
        if not video.is_file():
            make_video(args.data, video, builds=args.builds, **options)
            if name == "one-face":
                loop_video(video, times=4)  # the data has ~60 such people: a longer sample
        videos.append(video)
    empty = folder / "empty.avi"
    if not empty.is_file():
        empty_video(args.data, empty)
    videos.append(empty)
    records = []
    for threads in (int(t) for t in args.threads.split(",")):
        for source in args.sources.split(","):
            for video in videos:
                row = {c: in_subprocess(args.builds, c, video, threads, source) for c in CONFIGS}
                records += row.values()
                on, off, ref = (row[c]["cpu_ms_per_frame"] for c in CONFIGS)
                print(f"threads {threads}  {source:6s} {video.stem:11s} {row['reuse']['frames']:4d} frames  "
                      f"CPU ms/frame: reuse {on:7.2f}  no reuse {off:7.2f}  reference {ref:7.2f}  ->  "
                      f"reference / reuse {ref / on:5.1f}x, no reuse / reuse {off / on:4.1f}x  "
                      f"(detector skipped {row['reuse']['detector_skipped']}, "
                      f"verdicts reused {row['reuse']['verdicts_reused']})", flush=True)
            mine = {(r["video"], r["config"]): r for r in records if r["threads"] == threads and r["source"] == source}
            one, nobody = mine["one-face", "no-reuse"], mine["empty", "reuse"]
            print(f"threads {threads}  {source:6s} the empty scene costs "
                  f"{nobody['cpu_ms_per_frame'] / one['cpu_ms_per_frame']:.1%} of a one-face frame "
                  f"({nobody['cpu_ms_per_frame']:.2f} / {one['cpu_ms_per_frame']:.2f} ms); "
                  f"one face: reference / no reuse "
                  f"{mine['one-face', 'reference']['cpu_ms_per_frame'] / one['cpu_ms_per_frame']:.1f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"records": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
