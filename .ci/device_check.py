"""On-device check, run by .ci/run inside a torch-free environment: the pipeline from
bundles built by the main environment runs on the sample pictures, every model on the
fp32 and the int8 build of each requested format, and its faces, mask labels and yaw
classes are held against the PyTorch fp32 reference's on the same pictures; torch is
never imported.

usage: python .ci/device_check.py BUILDS FORMAT[,FORMAT...] REFERENCE_JSON
       python .ci/device_check.py BUILDS - REFERENCE_JSON --write   (main environment, with torch)

--write runs the PyTorch reference pipeline and stores its faces (box, mask label, yaw
class) per picture. Without it, each build must find the reference's faces (IoU >= 0.5)
and give their labels: fp32 builds every one of them and no other face; int8 builds
within the int8 gates (>= 98 % of the faces, >= 99 % of their labels).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PICTURES = sorted(ROOT.glob("examples/images/*.jpg"))
IOU = 0.5


def faces_of(pipeline) -> dict:
    import cv2

    return {path.name: [{"box": [round(float(v), 2) for v in f.box], "mask": f.mask["label"], "yaw": f.pose["label"]}
                        for f in pipeline(cv2.imread(str(path)))] for path in PICTURES}


def reference() -> dict:
    from sdk import Pipeline

    with Pipeline.reference(device="cpu") as pipeline:
        return faces_of(pipeline)


def compare(reference_faces: dict, got: dict) -> tuple[int, int, int, int]:
    """(reference faces, found, same mask label and yaw class, faces the reference does not have)."""
    import numpy as np

    from sdk.metrics import match_greedy

    wanted = found = same = extra = 0
    for name, ref in reference_faces.items():
        mine = got[name]
        ref_boxes = np.array([f["box"] for f in ref], np.float64).reshape(-1, 4)
        got_boxes = np.array([f["box"] for f in mine], np.float64).reshape(-1, 4)
        match = match_greedy(ref_boxes, got_boxes, np.ones(len(mine)), IOU)
        wanted += len(ref)
        matched = [j for j in match if j >= 0]
        found += len(matched)
        same += sum(ref[i]["mask"] == mine[j]["mask"] and ref[i]["yaw"] == mine[j]["yaw"]
                    for i, j in enumerate(match) if j >= 0)
        extra += len(mine) - len(matched)
    return wanted, found, same, extra


def check(builds: str, formats: tuple[str, ...], reference_faces: dict) -> list[str]:
    from sdk import Pipeline
    from sdk.check.gates import DEFAULT_GATES

    problems = []
    for fmt in formats:
        for precision in ("fp32", "int8"):
            with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,)) as pipeline:
                runtime = sorted({s.describe_runtime() for s in pipeline.selections.values()})
                wanted, found, same, extra = compare(reference_faces, faces_of(pipeline))
            gate = DEFAULT_GATES[precision]
            print(f"{fmt} {precision} ({'; '.join(runtime)}): {found}/{wanted} reference faces, {same} with the same "
                  f"mask label and yaw class, {extra} other face(s)")
            if precision == "fp32" and (found, same, extra) != (wanted, wanted, 0):
                problems.append(f"{fmt} fp32 is not the reference's pipeline: {found}/{wanted} found, {same} same "
                                f"label, {extra} extra")
            elif found < gate.min_recall * wanted or same < gate.min_top1 * found:
                problems.append(f"{fmt} {precision} below the {precision} gates: {found}/{wanted} found, "
                                f"{same}/{found} same label")
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
