"""A turnstile camera app to start from: the SDK's TurnstileApp with your gate hardware.

    python examples/turnstile/app.py 0 --config examples/turnstile/turnstile.toml

`on_passage` is where a firmware team drives the relay and the display; here it prints.
The pipeline runs from build bundles (`maskgate build`), each model on the best device
the runtime layer finds; no torch is needed on the camera (`pip install -e ".[device]"`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sdk.turnstile import Decision, Passage, TurnstileApp, load_config  # noqa: E402

MESSAGES = {Decision.OPEN: "welcome", Decision.NO_MASK: "please wear a mask",
            Decision.LOOK_AT_CAMERA: "please look at the camera"}


def on_passage(passage: Passage) -> None:
    """Replace with your relay / display calls."""
    relay = "open" if passage.decision is Decision.OPEN else "closed"
    print(f"{passage.start:8.2f} s  {passage.decision.value:15s} relay {relay:6s} {MESSAGES[passage.decision]} "
          f"(P(mask) {passage.mask_prob}, {passage.yaw_class})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="camera index, video file, or rtsp:// / http:// URL")
    parser.add_argument("--config", default=str(Path(__file__).with_name("turnstile.toml")))
    parser.add_argument("--builds", help="override the config's builds folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.source, path=args.config, builds=args.builds)
    summary = TurnstileApp(config, on_passage=on_passage).run()
    print(f"{summary.frames} frames, {summary.passages} passages, stopped by {summary.stopped_by or 'end of stream'}",
          file=sys.stderr)
    return 1 if summary.errors else 0


if __name__ == "__main__":
    sys.exit(main())
