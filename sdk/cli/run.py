"""``maskgate run SOURCE``: faces, landmarks and aligned crops from images, videos, cameras."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2

from ..classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL
from ..draw import annotate
from ..errors import InputError, SourceError
from ..files import writable_folder
from ..pipeline import AlignConfig, Pipeline
from ..sources import IMAGE_SUFFIXES, TruncatedVideoError, iter_frames
from .options import (
    add_detector_options,
    add_trust_options,
    model_of,
    preference,
    size,
    threads_count,
    trust_from,
    whole,
)


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the pipeline on an image, a folder, a video or a camera index")
    p.add_argument("source", help="image file, folder of images, video file, or camera index (0, 1, ...)")
    p.add_argument("--json", action="store_true", help="print one JSON object per face on stdout")
    p.add_argument("--save", metavar="DIR", help="write annotated images (and aligned crops with --save-crops) here")
    p.add_argument("--save-crops", action="store_true", help="with --save, also write each aligned face crop")
    p.add_argument(
        "--align", choices=("eye_roll", "similarity"), default="eye_roll", help="alignment method (default eye_roll)"
    )
    p.add_argument("--crop-size", type=size, default=(128, 128), help="aligned crop WIDTHxHEIGHT (default 128x128)")
    p.add_argument("--max-frames", type=whole(what="frames"),
                   default=None, help="stop after this many frames of a video or camera")
    p.add_argument(
        "--mask-model",
        type=model_of("mask", allow_none=True),
        default=DEFAULT_MASK_MODEL,
        help=f"mask classifier (default {DEFAULT_MASK_MODEL}; 'none' to skip)",
    )
    p.add_argument("--mask-weights", help="a state dict from 'maskgate train mask' instead of the shipped weights")
    p.add_argument(
        "--pose-model",
        type=model_of("pose", allow_none=True),
        default=DEFAULT_POSE_MODEL,
        help=f"yaw classifier (default {DEFAULT_POSE_MODEL}; 'none' to skip)",
    )
    p.add_argument("--pose-weights", help="a state dict from 'maskgate train pose' instead of the shipped weights")
    p.add_argument(
        "--builds",
        metavar="DIR",
        help="run the bundles in DIR (from 'maskgate build --out DIR') instead of "
        "the PyTorch reference; each model on the best build and device found (no torch needed)",
    )
    p.add_argument("--prefer", type=preference, metavar="KINDS", help="with --builds: device preference, e.g. "
                   "npu,gpu,cpu (the default; or MASKGATE_DEVICE); kinds left out follow unless --strict")
    p.add_argument("--strict", action="store_true", help="with --builds: only the preferred device kinds, no fallback")
    p.add_argument("--threads", type=threads_count, help="with --builds: CPU threads per model")
    p.add_argument("--profile", choices=("general", "turnstile"),
                   help="with --builds: the detector canvas, general (640x480, the default: every face down to 20 px) "
                   "or turnstile (320x256, from 'maskgate build --profile turnstile')")
    add_trust_options(p)
    add_detector_options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    if args.save_crops and not args.save:
        raise InputError("--save-crops writes the crops beside the annotated images: give --save DIR too")
    save_dir = writable_folder(args.save, what="annotated images", flag="--save") if args.save else None
    skipped: list[str] = []

    def on_skip(err: SourceError) -> None:
        skipped.append(str(err))
        print(f"maskgate: skipped {err}", file=sys.stderr)

    frames = iter_frames(args.source, on_skip=on_skip)
    first = next(frames, None)  # open the source before loading the model: bad input fails fast
    if first is None:
        raise SourceError(f"{args.source}: no frames")
    pipeline = _open_pipeline(args)
    if not args.json:
        where = (", ".join(f"{role} {sel.describe_runtime()}" for role, sel in pipeline.selections.items())
                 if pipeline.selections else f"{args.detector} on {pipeline.device}")
        print(f"{where}; canvas {pipeline.detector.spec.input.size[0]}x{pipeline.detector.spec.input.size[1]}, "
              f"min score {pipeline.detector.options.score_threshold}")
        absent = sorted({r.split(":")[0] for sel in pipeline.selections.values() for r in sel.skipped_kinds})
        if absent:
            print(f"  no usable {', '.join(absent)} on this machine ('maskgate backends' says why)")
        for sel in pipeline.selections.values():
            for reason in sel.fallbacks:
                print(f"  {sel.model}: passed over {reason}")
    n_frames = n_faces = 0
    truncated = None
    with pipeline:
        try:
            for frame in _chain(first, frames):
                if args.max_frames is not None and n_frames >= args.max_frames:
                    break
                faces = pipeline(frame.image)
                n_frames += 1
                n_faces += len(faces)
                if args.json:
                    for face in faces:
                        print(json.dumps({"source": frame.source, "frame": frame.index, **face.to_dict()}), flush=True)
                else:
                    _print_summary(frame, faces, pipeline.detector.runner.last_inference_ms)
                if save_dir is not None:
                    _save(save_dir, frame, faces, crops=args.save_crops)
        except TruncatedVideoError as exc:  # the frames before the cut were run: say so, as turnstile does
            truncated = exc
            print(f"maskgate: error: {exc}", file=sys.stderr)
    if not args.json:
        print(
            f"{n_frames} frame(s), {n_faces} face(s)"
            + (f", {len(skipped)} unreadable file(s) skipped" if skipped else "")
            + (", the video was cut short" if truncated else "")
        )
    return 1 if skipped or truncated else 0


def _open_pipeline(args) -> Pipeline:
    from ..errors import InputError

    # A bundle fixes its weights and input size; the selector's options need bundles.
    reference_only = {
        "--weights": args.weights,
        "--mask-weights": args.mask_weights,
        "--pose-weights": args.pose_weights,
        "--input-size": args.input_size,
        "--device": None if args.device == "auto" else args.device,
    }
    builds_only = {"--prefer": args.prefer, "--strict": args.strict or None, "--threads": args.threads,
                   "--profile": args.profile,
                   "--verify-key": args.verify_key, "--allow-failed-builds": args.allow_failed_builds}
    clash = [flag for flag, value in (reference_only if args.builds else builds_only).items() if value is not None]
    if clash:
        raise InputError(f"{', '.join(clash)} {'do' if len(clash) > 1 else 'does'} not apply "
                         + ("to --builds (a bundle fixes its weights and input size; build again with them, or use "
                            "--prefer for the device)" if args.builds else "without --builds (the PyTorch reference)"))
    align = AlignConfig(method=args.align, size=args.crop_size)
    mask_model = None if args.mask_model == "none" else args.mask_model
    pose_model = None if args.pose_model == "none" else args.pose_model
    if args.builds:
        return Pipeline.from_builds(args.builds, detector=args.detector, mask_model=mask_model, pose_model=pose_model,
                                    prefer=args.prefer, strict=args.strict, threads=args.threads,
                                    score_threshold=args.min_score, align=align, trust=trust_from(args),
                                    profile=args.profile or "general")
    return Pipeline.reference(
        detector=args.detector,
        weights=args.weights,
        device=args.device,
        score_threshold=args.min_score,
        input_size=args.input_size,
        align=align,
        mask_model=mask_model,
        mask_weights=args.mask_weights,
        pose_model=pose_model,
        pose_weights=args.pose_weights,
    )


def _chain(first, rest):
    yield first
    yield from rest


def _print_summary(frame, faces, ms) -> None:
    where = (
        frame.source if frame.index == 0 and not frame.source.startswith("camera:") else f"{frame.source}#{frame.index}"
    )
    print(f"{where}: {len(faces)} face(s) [{ms:.1f} ms]")
    for i, face in enumerate(faces, 1):
        x1, y1, x2, y2 = face.box
        extra = ""
        if face.mask:
            extra += f" {face.mask['label']} ({face.mask['prob']:.2f})"
        if face.pose:
            extra += f" {face.pose['label']} ({face.pose['probs'][face.pose['yaw_bin']]:.2f})"
        print(
            f"  {i}: box=({x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}) {x2 - x1:.0f}x{y2 - y1:.0f}px "
            f"score={face.score:.3f} roll={face.roll_degrees:+.1f}deg{extra}"
        )


def _save(save_dir: Path, frame, faces, *, crops: bool) -> None:
    is_image = Path(frame.source).suffix.lower() in IMAGE_SUFFIXES
    stem = Path(frame.source).stem if is_image else f"{Path(frame.source.replace(':', '')).stem}_{frame.index:06d}"
    _write(save_dir / f"{stem}.jpg", annotate(frame.image, faces))
    if crops:
        for i, face in enumerate(faces):
            if face.crop is not None:
                _write(save_dir / f"{stem}_face{i}.jpg", face.crop)


def _write(path: Path, image) -> None:
    if not cv2.imwrite(str(path), image):
        raise SourceError(f"{path}: could not be written (is the folder writable and the name valid?)")
