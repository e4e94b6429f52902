"""``maskgate build``: the reference models -> verified bundles for every format and precision."""
from __future__ import annotations

import time
from pathlib import Path

from .options import names_of, needs, size, torch_device, whole


def add_parser(sub) -> None:
    from maskgate.config import DEFAULT_BUILDS
    from maskgate.formats import DEFAULT_FORMATS, FORMAT_NAMES, PRECISIONS, REPAIRABLE_FORMATS, ConvertOptions
    from maskgate.profiles import DEFAULT_PROFILE, PROFILES

    from ..builder import DEFAULT_MODELS

    p = sub.add_parser(
        "build",
        help="export and quantize the models to ONNX / OpenVINO / TFLite bundles, each checked against fp32",
        description="Builds one bundle per model x format x precision (default: 3 x 3 x 3 = 27) under --out, each with "
        "manifest.json (sha256 of every file) and golden reference data, then runs every bundle on held-out inputs "
        "beside the fp32 PyTorch reference and through the checker (golden fidelity, latency p50/p90, "
        "per-precision gates; "
        "task metrics with --data). Finished bundles with unchanged inputs are reused. Writes report.json and "
        "report.html (report-turnstile.* for --profile turnstile).",
    )
    p.add_argument(
        "--models",
        type=lambda t: tuple(x.strip() for x in t.split(",") if x.strip()),
        default=DEFAULT_MODELS,
        help=f"comma list of registered models (default {','.join(DEFAULT_MODELS)})",
    )
    p.add_argument("--formats", type=names_of(FORMAT_NAMES), default=DEFAULT_FORMATS,
                   help=f"comma list of {','.join(FORMAT_NAMES)} (default {','.join(DEFAULT_FORMATS)}; the NPU "
                   "formats are built per chip, see --rknn-targets and --qnn-socs)")
    p.add_argument(
        "--precisions", type=names_of(PRECISIONS), default=PRECISIONS, help=f"comma list of {','.join(PRECISIONS)}"
    )
    p.add_argument(
        "--calib",
        type=Path,
        help="calibration images: a folder (recursive), a video, or a data folder with "
        "faces/ and scenes/ (its train split); default: the set shipped in calibration/default",
    )
    p.add_argument(
        "--verify",
        type=Path,
        help="held-out images for the fidelity figures (a data folder: its test split); "
        "default: the shipped held-out set",
    )
    p.add_argument("--data", type=Path, help="labelled data for task metrics per bundle (mask accuracy and ROC, yaw "
                   "accuracy, detection recall by face size): a data folder like ../shared/data (its test split) or a "
                   "crop set from 'maskgate crops'")
    p.add_argument("--data-limit", type=whole(what="source images"),
                   metavar="N", help="at most N source images of faces/ and of scenes/ each")
    p.add_argument("--diagnose", action="store_true",
                   help="name the worst layers of every lossy int8 build (those below their gate always are)")
    p.add_argument("--accuracy-aware", action="store_true",
                   help=f"an int8 build of {', '.join(REPAIRABLE_FORMATS)} below its "
                   "gate: re-quantize with the worst 2, 4, 8, ... layers in float until the gate passes; the manifest "
                   "and report say what was kept in float")
    p.add_argument("--check-runs", type=whole(what="timed runs"),
                   default=20, help="timed runs per bundle in its check (default 20)")
    p.add_argument("--out", type=Path, default=DEFAULT_BUILDS, help=f"output folder (default ./{DEFAULT_BUILDS})")
    p.add_argument("--samples", type=whole(what="calibration samples"),
                   default=128, help="calibration samples per model (default 128)")
    p.add_argument("--verify-samples", type=whole(what="held-out inputs"),
                   default=300, help="held-out inputs per model (default 300)")
    p.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULT_PROFILE,
                   help="what the detector is for: " + "; ".join(f"{p.name} ({p.canvas}): {p.use}"
                                                                 for p in PROFILES.values())
                   + f" (default {DEFAULT_PROFILE}); bundles of both profiles live side by side in one folder")
    p.add_argument("--detector-size", type=size, default=None,
                   help="fixed detector input WIDTHxHEIGHT, each a multiple of 32 (default: the profile's canvas)")
    p.add_argument(
        "--mask-weights", help="a mask classifier state dict from 'maskgate train' instead of the shipped one"
    )
    p.add_argument(
        "--pose-weights", help="a pose classifier state dict from 'maskgate train' instead of the shipped one"
    )
    p.add_argument("--detector-weights", help="a biubug6 RetinaFace checkpoint (.pth) for the detector")
    ConvertOptions.add_flags(p)  # each format's converter options (maskgate.formats)
    p.add_argument(
        "--reference-device", type=torch_device, default="auto",
        help="device of the fp32 PyTorch reference (default auto: GPU if present)"
    )
    p.add_argument("--sign-key", type=Path, metavar="FILE", help="sign every bundle that was checked with this key "
                   "(Ed25519 private key or HMAC secret, 'maskgate keygen'); cameras verify with [trust] verify_key")
    p.add_argument("--force", action="store_true", help="rebuild bundles even when a finished one matches")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args) -> int:
    from maskgate.formats import ConvertOptions

    from ..builder import BuildConfig, build
    from ..builder.report import table, write_report
    from ..profiles import canvas_variant
    from ..registry import get_spec

    needs(args, flag="--data DIR", given="--data-limit", value=args.data)
    from maskgate.formats import REPAIRABLE_FORMATS

    from ..errors import InputError

    # Both act on int8 builds only (--accuracy-aware on those of a repairable format): without one they did nothing.
    if (args.diagnose or args.accuracy_aware) and "int8" not in args.precisions:
        raise InputError(f"{'--diagnose' if args.diagnose else '--accuracy-aware'} acts on int8 builds: add int8 to "
                         f"--precisions ({','.join(args.precisions)})")
    if args.accuracy_aware and not set(REPAIRABLE_FORMATS) & set(args.formats):
        raise InputError(f"--accuracy-aware re-quantizes the int8 builds of {', '.join(REPAIRABLE_FORMATS)}: add "
                         f"one to --formats ({','.join(args.formats)})")
    weights = {}
    for model in args.models:
        spec = get_spec(model)  # unknown names fail here, before any work
        given = args.detector_weights if spec.task == "face_detection" else (
            args.mask_weights if "mask" in spec.tags else args.pose_weights if "pose" in spec.tags else None)
        if given:
            weights[model] = given
    options = ConvertOptions.from_flags(args)
    profile_fields = {"detector_size": args.detector_size} if args.detector_size else {}
    config = BuildConfig.for_profile(args.profile, models=args.models, formats=args.formats,
                         precisions=args.precisions, out=args.out,
                         calib=args.calib, verify=args.verify, samples=args.samples, verify_samples=args.verify_samples,
                         **profile_fields, weights=weights, reference_device=args.reference_device,
                         data=args.data, data_limit=args.data_limit, check_runs=args.check_runs,
                         diagnose=args.diagnose, accuracy_aware=args.accuracy_aware,
                         force=args.force, sign_key=args.sign_key, options=options)
    start = time.perf_counter()
    results = build(config, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    print(table(results))
    # A build of another canvas (a profile's) keeps its own report beside the general one.
    variant = canvas_variant(config.detector_size)
    stem = "report" if not variant else f"report-{args.profile}" if args.detector_size is None else f"report-{variant}"
    json_path, html_path = write_report(args.out, results, config=config, seconds=seconds, stem=stem)
    built = sum(r.status == "built" for r in results)
    reused = sum(r.status == "reused" for r in results)
    failed = sum(r.error is not None for r in results)
    below_gate = sum(r.error is None and not r.passed for r in results)
    print(
        f"\n{len(results)} bundles in {args.out} ({built} built, {reused} reused, {failed} failed, {below_gate} below "
        f"their gates) in {seconds:.0f} s; report: {html_path}"
    )
    return 1 if failed or below_gate else 0

