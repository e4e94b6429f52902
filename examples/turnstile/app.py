"""A turnstile camera app to start from: the SDK's TurnstileApp with your gate hardware.

    python examples/turnstile/app.py 0 --config examples/turnstile/turnstile.toml

`on_gate` is where a firmware team drives the relay and the display: it is called the
moment the smoothed decision opens the gate (once per passage) or refuses for a new
reason; here it prints. `on_passage` gets the summary once the person has left.
Events reach the site (MQTT, webhooks, spooled on the camera first) as configured in
`[turnstile.publish]` or with `--publish`.
The pipeline runs from build bundles (`maskgate build`), each model on the best device
the runtime layer finds; no torch is needed on the camera (`pip install -e ".[device]"`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from maskgate.turnstile import Decision, GateEvent, Passage, TurnstileApp, load_config  # noqa: E402

MESSAGES = {Decision.OPEN: "welcome", Decision.NO_MASK: "please wear a mask",
            Decision.LOOK_AT_CAMERA: "please look at the camera",
            Decision.CANNOT_CHECK: "please step up to the camera"}


def on_gate(gate: GateEvent) -> None:
    """Replace with your relay / display calls: open the relay on "open", show the message on both."""
    relay = "open" if gate.action == "open" else "closed"
    print(f"frame {gate.frame:6d} at {gate.time:7.2f} s  {gate.decision.value:14s} relay {relay:6s} "
          f"{MESSAGES[gate.decision]} ({gate.reason})", flush=True)


def on_passage(passage: Passage) -> None:
    """The passage's summary, once the person has left: a log line here (no relay action)."""
    opened = f"opened at frame {passage.opened_frame}" if passage.opened_frame is not None else "did not open"
    print(f"passage {passage.start:7.2f} s to {passage.end:7.2f} s  {passage.decision.value:14s} {opened}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="camera index, video file, or rtsp:// / http:// URL")
    parser.add_argument("--config", default=str(Path(__file__).with_name("turnstile.toml")))
    parser.add_argument("--builds", help="override the config's builds folder")
    parser.add_argument("--publish", action="append", metavar="URL",
                        help="also send every event to the site: mqtt://HOST:PORT, http(s)://HOST/PATH "
                        "(adds to [turnstile.publish] targets)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.source, path=args.config, builds=args.builds,
                         publish={"targets": tuple(args.publish or ())})
    summary = TurnstileApp(config, on_gate=on_gate, on_passage=on_passage).run()
    print(f"{summary.frames} frames, {summary.passages} passages in {summary.seconds:.1f} s, "
          f"stopped by {summary.stopped_by}", file=sys.stderr)
    if summary.errors:  # the exit codes of 'maskgate turnstile' and 'maskgate run'
        return 2 if summary.frames == 0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
