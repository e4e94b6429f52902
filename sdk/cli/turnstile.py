"""``maskgate turnstile SOURCE``: the turnstile camera app (see sdk/turnstile)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from .options import add_prefer_option, needs, number, port, threads_count, whole


def _ints(text: str) -> tuple[int, ...]:
    import argparse

    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _roi(text: str) -> tuple[int, ...]:
    """``--roi X,Y,W,H``: a corner on the frame and a positive size."""
    import argparse

    roi = _ints(text)
    if len(roi) != 4 or min(roi[:2]) < 0 or min(roi[2:]) <= 0:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H: a corner (x, y >= 0) and a positive size in pixels, "
                                         f"got {text!r}")
    return roi


def _yaw_classes(text: str) -> tuple[int, ...]:
    """``--frontal K,K,...``: yaw classes 0-5 (none: the site does not check the head pose)."""
    import argparse

    classes = _ints(text)
    if any(not 0 <= k <= 5 for k in classes):
        raise argparse.ArgumentTypeError(f"expected yaw classes 0-5 such as 1,2,3,4 (or '' for none), got {text!r}")
    return tuple(dict.fromkeys(classes))


def add_parser(sub) -> None:
    p = sub.add_parser("turnstile", help="the turnstile app: one JSON event per person passing a camera",
                       description="Runs the pipeline from build bundles on a camera, a video or an RTSP/HTTP stream, "
                       "takes the largest face in the region of interest as the person at the gate, smooths the "
                       "decision (NO_FACE, LOOK_AT_CAMERA, NO_MASK, CANNOT_CHECK, OPEN) over several frames, writes a "
                       "gate event the moment the gate opens or refuses, and one summary event per passage. "
                       "Settings come from the config file ([turnstile] and [trust]: --config FILE, MASKGATE_CONFIG "
                       "or ./maskgate.toml), then these flags.")
    p.add_argument("source", nargs="?", help="camera index (0, 1, ...), video file, or rtsp:// / http:// URL "
                   "(default: [turnstile] source of the config file)")
    p.add_argument("--builds", metavar="DIR", help="bundles from 'maskgate build --out DIR' (default ./builds)")
    add_prefer_option(p, help="device preference, e.g. npu,gpu,cpu")
    p.add_argument("--threads", type=threads_count, help="CPU threads per model")
    p.add_argument("--profile", choices=("turnstile", "general"),
                   help="detector canvas: turnstile (320x256, the default; from 'maskgate build --profile turnstile') "
                   "or general (640x480); without bundles of it the other is run, with a warning")
    p.add_argument("--roi", type=_roi, metavar="X,Y,W,H", help="region of interest: only faces centred in it count")
    p.add_argument("--events", metavar="FILE", help="append one JSON line per passage (and errors, and the run's end)")
    p.add_argument("--video-out", metavar="FILE", help="write an annotated video (mp4v) here")
    p.add_argument("--window", type=whole(what="frames"), help="frames the decision is smoothed over (default 5)")
    p.add_argument("--gap", type=whole(what="frames"),
                   dest="gap_frames", help="frames without a face that end a passage (default 5)")
    p.add_argument("--min-face-px", type=number(what="a face width in pixels", at_least=0),
                   help="faces narrower than this are not at the gate (default 48)")
    p.add_argument("--min-mask-prob", type=number(what="a probability", above=0, at_most=1),
                   help="P(mask) needed to open (default 0.5)")
    p.add_argument(
        "--frontal", type=_yaw_classes, metavar="K,K,...", help="yaw classes (0-5) frontal enough (default 1,2,3,4)"
    )
    p.add_argument(
        "--health-every", type=number(what="seconds", above=0),
        dest="health_every_s", help="seconds between health lines (default 10)"
    )
    p.add_argument("--publish", action="append", metavar="URL",
                   help="send every event to the site, spooled on disk first, at least once and in order: "
                   "mqtt://HOST:PORT or mqtts:// (QoS 1 on maskgate/SITE/CAMERA/events, retained health), "
                   "http(s)://HOST/PATH (a signed webhook POST); repeatable; adds to [turnstile.publish] targets")
    p.add_argument("--site", help="this site's name in topics and events (default: [turnstile.publish] site)")
    p.add_argument("--camera", help="this camera's name in topics and events")
    p.add_argument("--spool", metavar="DIR", help="the on-camera event spool (default ./maskgate-spool)")
    p.add_argument("--metrics-port", type=port(any_free=True),
                   metavar="PORT", help="serve Prometheus metrics on this port (off by "
                   "default)")
    p.add_argument("--metrics-address", metavar="ADDR", help="address the metrics listen on (default 127.0.0.1; "
                   "0.0.0.0 for a site's Prometheus, with a token: [turnstile] metrics_token_env)")
    p.add_argument("--metrics-insecure", action="store_true", default=None,
                   help="serve metrics on a non-loopback address without a token (anyone on the network reads them)")
    p.add_argument("--max-frames", type=whole(what="frames"), help="stop after this many frames")
    p.add_argument("--heartbeat", metavar="FILE", help="rewrite this JSON file every health period (pid, release, fps, "
                   "errors): what the release agent's probation watches ([turnstile] heartbeat)")
    p.add_argument("--max-reconnects", type=whole(at_least=0, what="reconnections"),
                   help="live sources: give up after this many reconnections")
    p.add_argument("--no-reuse", dest="reuse", action="store_false", default=None,
                   help="run the detector and the classifiers on every frame ([turnstile] reuse = false); the "
                   "decisions are the same, the cost is not")
    from .options import add_trust_options

    add_trust_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from ..files import writable_file
    from ..turnstile import TurnstileApp, load_config

    config = load_config(  # the process's config (--config, MASKGATE_CONFIG, ./maskgate.toml): read in cli.main
        args.source, builds=args.builds, prefer=args.prefer, threads=args.threads, roi=args.roi,
        events=args.events, video_out=args.video_out, health_every_s=args.health_every_s, max_frames=args.max_frames,
        heartbeat=args.heartbeat, reuse=args.reuse,
        verify_key=args.verify_key, allow_failed_builds=args.allow_failed_builds, profile=args.profile,
        rules={"window": args.window, "gap_frames": args.gap_frames, "min_face_px": args.min_face_px,
               "min_mask_prob": args.min_mask_prob, "frontal_yaw_classes": args.frontal},
        stream={"max_reconnects": args.max_reconnects}, metrics_port=args.metrics_port,
        metrics_address=args.metrics_address, metrics_insecure=args.metrics_insecure,
        publish={"targets": tuple(args.publish or ()), "site": args.site, "camera": args.camera, "spool": args.spool})
    needs(args, flag="--metrics-port PORT (or [turnstile] metrics_port)", given=("--metrics-address",
          "--metrics-insecure"), value=config.metrics_port)
    # Outputs that cannot be written fail here in one line, not after the pipeline has started.
    if config.events is not None:
        writable_file(config.events, what="turnstile events", flag="--events")
    if config.video_out is not None:
        writable_file(config.video_out, what="the annotated video", flag="--video-out")
    if config.heartbeat is not None:
        writable_file(config.heartbeat, what="the heartbeat", flag="--heartbeat")
    from maskgate.runtimes.trust import configured_trust

    # A key that cannot be read fails here in one line, not as the first pipeline opens.
    configured_trust(verify_key=config.verify_key, allow_failed_builds=config.allow_failed_builds)
    if not Path(config.builds).is_dir():
        from ..errors import BundleError

        raise BundleError(f"{config.builds}: no builds folder; run 'maskgate build --out {config.builds}' first "
                          "(or pass --builds DIR)")

    def show(record: dict) -> None:  # gate and passage events on stdout, as written to --events
        if record["event"] in ("gate", "passage"):
            print(json.dumps(record), flush=True)

    app = TurnstileApp(config, on_event=show)
    summary = app.run()
    print(f"turnstile: {summary.frames} frames, gate opened {summary.opened} time(s), "
          f"{summary.passages} passages {summary.decisions}, "
          f"dropped {summary.dropped}, reconnects {summary.reconnects}, detector skipped {summary.detector_skipped}, "
          f"verdicts reused {summary.verdicts_reused}, stopped by {summary.stopped_by}", file=sys.stderr)
    # As 'maskgate run': 2 when nothing could be read, 1 when the stream ended with a problem.
    if summary.errors:
        return 2 if summary.frames == 0 else 1
    return 0
