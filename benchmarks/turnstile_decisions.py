"""Right decisions on a labelled turnstile video: the app's passages against the labels that
``examples/turnstile/make_test_video.py`` wrote beside the video.

Each labelled passage (a person held at the gate for some frames) is matched to the app's
passage that overlaps it most; it counts as right when that passage's decision is the
expected one (OPEN for a masked face looking at the camera, NO_MASK for a bare face,
LOOK_AT_CAMERA for a masked face turned away). A person with no passage at all is a miss.
Figures per face width on the frame, so close-ups (300-460 px) show apart from the 140 px
faces of the default video. Each builds folder runs once per ``--profile`` (default: the
turnstile profile's 320x256 detector and the general 640x480 one, where the folder has them).

    python examples/turnstile/make_test_video.py ../shared/data clip.avi --scenes 16 --builds builds/
    python examples/turnstile/make_test_video.py ../shared/data close.avi --scenes 16 --face-px 300,380,460 \\
        --builds builds/
    python benchmarks/turnstile_decisions.py clip.avi close.avi --builds builds/ [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def labelled_passages(video: Path) -> tuple[list[dict], float]:
    """The labels beside ``video`` and the video's frame rate (to turn frames into stream time)."""
    labels_path = Path(f"{video}.labels.json")
    if not labels_path.is_file():
        raise SystemExit(f"turnstile_decisions: {labels_path}: no labels; make the video with "
                         "examples/turnstile/make_test_video.py")
    labels = json.loads(labels_path.read_text())
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    return labels, fps


def score(labels: list[dict], passages: list[dict], fps: float) -> list[dict]:
    """One row per labelled passage: what the app decided for it (None: no passage)."""
    rows = []
    for index, label in enumerate(labels):
        first = label["first_frame"]
        last = labels[index + 1]["first_frame"] - 1 if index + 1 < len(labels) else first + label.get("frames", 10)
        span = (first / fps, last / fps)
        overlaps = [min(span[1], p["end"]) - max(span[0], p["start"]) for p in passages]
        best = int(np.argmax(overlaps)) if overlaps and max(overlaps) >= 0 else None
        decided = passages[best]["decision"] if best is not None else None
        rows.append({"scene": label["scene"], "face_px": label.get("face_px", 140.0), "expected": label["expected"],
                     "decided": decided, "right": decided == label["expected"]})
    return rows


def run_app(video: Path, builds: Path, *, threads: int, prefer: str | None,
            profile: str) -> tuple[list[dict], list[float]]:
    from maskgate.turnstile import TurnstileApp, TurnstileConfig

    passages: list[dict] = []
    latencies: list[float] = []

    def on_passage(passage) -> None:
        passages.append(passage.to_dict())
        if passage.stages_ms:
            latencies.append(sum(passage.stages_ms.values()))

    app = TurnstileApp(TurnstileConfig(source=str(video), builds=builds, threads=threads, prefer=prefer,
                                       profile=profile), on_passage=on_passage)
    app.run()
    return passages, latencies


def main() -> int:
    from maskgate.cli.options import threads_count

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", type=Path, nargs="+", help="videos made by examples/turnstile/make_test_video.py")
    parser.add_argument("--builds", type=Path, action="append", required=True,
                        help="a builds folder to run the app from (repeat to compare)")
    parser.add_argument("--profile", action="append", choices=("turnstile", "general"),
                        help="detector profile to run (repeat; default both)")
    parser.add_argument("--threads", type=threads_count, default=1)
    parser.add_argument("--prefer", default="cpu")
    parser.add_argument("--json", type=Path, help="write every row and total here")
    args = parser.parse_args()
    report = []
    for builds, profile in [(b, p) for b in args.builds for p in (args.profile or ["turnstile", "general"])]:
        for video in args.videos:
            labels, fps = labelled_passages(video)
            passages, latencies = run_app(video, builds, threads=args.threads, prefer=args.prefer, profile=profile)
            rows = score(labels, passages, fps)
            runtime = next((p["runtime"] for p in passages if p.get("runtime")), None)
            by_width: dict[float, list[dict]] = {}
            for row in rows:
                by_width.setdefault(row["face_px"], []).append(row)
            detector = runtime and runtime["detector"]
            print(f"{builds} ({profile} profile, detector {detector}) on {video.name}: "
                  f"{sum(r['right'] for r in rows)}/{len(rows)} right, "
                  f"{sum(r['decided'] is None for r in rows)} without a passage, {len(passages)} passages; "
                  f"median passage frame {np.median(latencies) if latencies else float('nan'):.1f} ms")
            for width, group in sorted(by_width.items()):
                wrong = [f"{r['scene']}: {r['expected']} -> {r['decided']}" for r in group if not r["right"]]
                print(f"  {width:.0f} px: {sum(r['right'] for r in group)}/{len(group)} right"
                      + (f" ({'; '.join(wrong)})" if wrong else ""))
            report.append({"builds": str(builds), "profile": profile, "video": str(video), "runtime": runtime,
                           "rows": rows,
                           "right": sum(r["right"] for r in rows), "passages_labelled": len(rows),
                           "passages_found": len(passages)})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
