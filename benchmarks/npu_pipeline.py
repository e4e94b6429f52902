"""The whole pipeline (detector + mask + pose) from NPU bundles, run in the vendors' simulators,
against the same pipeline from fp32 builds, over the test split of a data folder's scenes.

For each (format, chip) among the NPU bundles in --npu, the three models run from that chip's
bundles only (``prefer="npu-sim"``, strict); the reference runs the fp32 bundles of --reference
on the CPU. Faces are matched at IoU >= 0.5; the table gives the share of the reference's faces
found, and on the faces both find the share with the same mask label and the same yaw class.
Exit 1 when a chip's pipeline is below the int8 gates (maskgate.check.gates.pipeline_gates:
faces found to min_recall, same mask label to min_top1, by their 95 % upper bounds).

    python benchmarks/npu_pipeline.py --reference builds --npu npu-builds [--data ../shared/data] [--json FILE]

The simulators take 0.2-3 s a frame: 121 scenes take minutes per chip.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

MODELS = ("retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip")


def scene_frames(data: Path, split: str, limit: int | None):
    from maskgate.datasets.crops import split_of
    from maskgate.sources import read_image

    files = sorted((data / "scenes" / "images").iterdir())
    chosen = [f for f in files if split_of(f.relative_to(data).as_posix()) == split][:limit]
    return [(f.name, read_image(f)) for f in chosen]


def run(pipeline, frames) -> dict[str, list]:
    return {name: pipeline(frame) for name, frame in frames}


def chips(npu: Path) -> dict[tuple[str, str], list[Path]]:
    """(format, chip) -> its bundle folders, for chips with a bundle of each model."""
    from maskgate.runtimes.select import readable_bundles

    found = defaultdict(dict)
    for folder, manifest in readable_bundles(npu):
        if manifest.soc:
            found[(manifest.format, manifest.soc)][manifest.model] = folder
    return {key: [by_model[m] for m in MODELS] for key, by_model in sorted(found.items())
            if all(m in by_model for m in MODELS)}


def _passed(folder: Path) -> bool:
    from maskgate.converters.bundle import read_manifest

    return bool((read_manifest(folder).verdict or {}).get("passed"))


def agreement(reference: dict[str, list], other: dict[str, list], gate) -> dict:
    """The row of one chip: its faces against the reference's, and the gates they miss."""
    from maskgate.check.gates import pipeline_gates
    from maskgate.compare import FaceAgreement, compare_faces

    total = FaceAgreement()
    for name, ref in reference.items():
        total.add(compare_faces([f.to_dict() for f in ref], [f.to_dict() for f in other[name]]))
    return {"reference_faces": total.reference, "found": total.found,
            "found_share": total.found / max(total.reference, 1), "same_mask": total.same_mask,
            "same_mask_share": total.same_mask / max(total.found, 1), "same_yaw_class": total.same_yaw,
            "same_yaw_share": total.same_yaw / max(total.found, 1),
            "below_gates": [g.describe() for g in pipeline_gates(gate, total) if not g.passed]}


def main() -> int:
    from maskgate import Pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="builds with fp32 bundles of the three models")
    parser.add_argument("--npu", type=Path, required=True, help="builds with RKNN / QNN bundles")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="at most this many scenes")
    parser.add_argument("--json", type=Path, help="write the table here")
    parser.add_argument("--allow-failed-builds", action="store_true",
                        help="also run NPU bundles whose build recorded them below their gates (marked in the table)")
    args = parser.parse_args()

    frames = scene_frames(args.data, args.split, args.limit)
    start = time.perf_counter()
    with Pipeline.from_builds(args.reference, prefer="cpu", precisions=("fp32",), formats=("onnx",)) as pipeline:
        reference = run(pipeline, frames)
    rows = [{"build": "fp32 (ONNX Runtime, CPU)", "seconds": round(time.perf_counter() - start, 1),
             "reference_faces": sum(len(v) for v in reference.values())}]
    from maskgate.check.gates import configured_gates
    from maskgate.runtimes.trust import TrustPolicy, configured_trust

    trust = TrustPolicy(allow_failed_builds=True) if args.allow_failed_builds else configured_trust()
    gates = configured_gates()
    for (fmt, chip), folders in chips(args.npu).items():
        with tempfile.TemporaryDirectory() as tmp:
            for folder in folders:  # this chip's bundles alone, so the selector cannot mix chips
                (Path(tmp) / folder.name).symlink_to(folder.resolve())
            start = time.perf_counter()
            with Pipeline.from_builds(tmp, prefer="npu-sim", strict=True, trust=trust) as pipeline:
                results = run(pipeline, frames)
            below = [f.name.split("-")[0] for f in folders if not _passed(f)]
            label = f"{fmt} int8 {chip}" + (f" (below gate: {','.join(below)})" if below else "")
            rows.append({"build": label, "seconds": round(time.perf_counter() - start, 1),
                         **agreement(reference, results, gates.gate("int8", fmt, what=label))})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"{len(frames)} {args.split}-split scenes of {args.data}")
    print(f"{'build':44} {'faces found':>16} {'same mask':>16} {'same yaw class':>16} {'seconds':>8}")
    print(f"{rows[0]['build']:44} {rows[0]['reference_faces']:>16} {'-':>16} {'-':>16} {rows[0]['seconds']:>8}")
    for r in rows[1:]:
        print(f"{r['build']:44} {r['found']:>6}/{r['reference_faces']:<4} {r['found_share']:>5.1%} "
              f"{r['same_mask']:>6}/{r['found']:<4} {r['same_mask_share']:>5.1%} "
              f"{r['same_yaw_class']:>6}/{r['found']:<4} {r['same_yaw_share']:>5.1%} {r['seconds']:>8}")
    if args.json:
        args.json.write_text(json.dumps({"scenes": len(frames), "rows": rows}, indent=1))
    for r in rows[1:]:
        if r["below_gates"]:
            print(f"{r['build']}: below the int8 gates: {'; '.join(r['below_gates'])}", file=sys.stderr)
    return 0 if not any(r.get("below_gates") for r in rows) else 1


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
