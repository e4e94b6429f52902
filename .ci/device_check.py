"""On-device check, run by .ci/run inside a torch-free environment: the pipeline from
bundles built by the main environment runs on the sample pictures and the shipped
held-out set (calibration/default/verify), every model on the fp32 and the int8 build of
each requested format, and its faces, mask labels and yaw classes are held against the
PyTorch fp32 reference's on the same pictures; torch is never imported.

usage: python .ci/device_check.py BUILDS FORMAT[,FORMAT...] REFERENCE_JSON
       python .ci/device_check.py BUILDS - REFERENCE_JSON --write   (main environment, with torch)

--write runs the PyTorch reference pipeline and stores its faces (box, mask label, yaw
class) per picture. Without it, each build must find the reference's faces (IoU >= 0.5)
and give their labels within its precision's gates, the checker's own (sdk.check.gates,
shares held by their 95 % upper bound as on golden sets): fp32 every face and label, and
no other face; int8 >= 98 % of the faces, >= 99 % of their mask labels and yaw classes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PICTURES = sorted(ROOT.glob("examples/images/*.jpg")) + sorted(ROOT.glob("calibration/default/verify/*.jpg"))
IOU = 0.5


def faces_of(pipeline) -> dict:
    import cv2

    return {path.name: [{"box": [round(float(v), 2) for v in f.box], "mask": f.mask["label"], "yaw": f.pose["label"]}
                        for f in pipeline(cv2.imread(str(path)))] for path in PICTURES}


def reference() -> dict:
    from sdk import Pipeline

    with Pipeline.reference(device="cpu") as pipeline:
        return faces_of(pipeline)


def compare(reference_faces: dict, got: dict) -> tuple[int, int, int, int, int]:
    """(reference faces, found, with the same mask label, with the same yaw class, faces the
    reference does not have)."""
    import numpy as np

    from sdk.metrics import match_greedy

    wanted = found = same_mask = same_yaw = extra = 0
    for name, ref in reference_faces.items():
        mine = got[name]
        ref_boxes = np.array([f["box"] for f in ref], np.float64).reshape(-1, 4)
        got_boxes = np.array([f["box"] for f in mine], np.float64).reshape(-1, 4)
        match = match_greedy(ref_boxes, got_boxes, np.ones(len(mine)), IOU)
        pairs = [(ref[i], mine[j]) for i, j in enumerate(match) if j >= 0]
        wanted, found, extra = wanted + len(ref), found + len(pairs), extra + len(mine) - len(pairs)
        same_mask += sum(a["mask"] == b["mask"] for a, b in pairs)
        same_yaw += sum(a["yaw"] == b["yaw"] for a, b in pairs)
    return wanted, found, same_mask, same_yaw, extra


def check(builds: str, formats: tuple[str, ...], reference_faces: dict) -> list[str]:
    from sdk import Pipeline
    from sdk.check import gates

    problems = []
    for fmt in formats:
        for precision in ("fp32", "int8"):
            with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,)) as pipeline:
                runtime = sorted({s.describe_runtime() for s in pipeline.selections.values()})
                wanted, found, same_mask, same_yaw, extra = compare(reference_faces, faces_of(pipeline))
            print(f"{fmt} {precision} ({'; '.join(runtime)}): {found}/{wanted} reference faces; of those, "
                  f"{same_mask} with the same mask label, {same_yaw} with the same yaw class; {extra} other face(s)")
            gate = gates.DEFAULT_GATES[precision]
            results = (gates.apply(gate, cosine=None, top1=None, recall=found / wanted, landmark_nme=None,
                                   recall_samples=wanted)
                       + [g for share in (same_mask, same_yaw) for g in gates.apply(
                           gate, cosine=None, top1=share / max(found, 1), recall=None, landmark_nme=None,
                           top1_samples=found)])
            failed = [g.describe() for g in results if not g.passed]
            if precision == "fp32" and extra:
                failed.append(f"{extra} face(s) the reference does not find")
            if failed:
                problems.append(f"{fmt} {precision} below its gates: {'; '.join(failed)}")
    return problems


def main() -> int:
    builds, formats, reference_file = sys.argv[1], tuple(sys.argv[2].split(",")), Path(sys.argv[3])
    if "--write" in sys.argv:
        faces = reference()
        reference_file.write_text(json.dumps(faces, indent=1))
        print(f"reference: {sum(len(v) for v in faces.values())} faces on {len(faces)} pictures -> {reference_file}")
        return 0
    reference_faces = json.loads(reference_file.read_text())
    problems = check(builds, formats, reference_faces)
    if "torch" in sys.modules:
        problems.append("torch was imported in the device environment")
    faces = sum(len(v) for v in reference_faces.values())
    if faces == 0:
        problems.append("the reference found no face: nothing was compared")
    print(f"device check ({sys.executable}): {len(formats) * 2} builds x {len(PICTURES)} pictures against "
          f"{faces} reference faces; {'OK' if not problems else 'FAILED'}")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
