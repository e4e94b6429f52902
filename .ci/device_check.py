"""On-device check, run by .ci/run inside a torch-free environment: the pipeline from
bundles built by the main environment runs on the sample pictures and the shipped
held-out set (calibration/default/verify), every model on the fp32 and the int8 build of
each requested format, and its faces, mask labels and yaw classes are held against the
PyTorch fp32 reference's on the same pictures; torch is never imported.

usage: python .ci/device_check.py BUILDS FORMAT[,FORMAT...] REFERENCE_JSON
       python .ci/device_check.py BUILDS - REFERENCE_JSON --write   (main environment, with torch)

--write runs the PyTorch reference pipeline and stores its faces (as 'maskgate run --json'
writes them) per picture, and the OpenCV version it ran with. Without it, each build must find
the reference's faces (IoU >= 0.5, maskgate.compare.compare_faces) and give what the gate acts on, the mask label and
whether the yaw class is frontal, within its precision's gates, the checker's own
(maskgate.check.gates, shares held by their 95 % upper bound as on golden sets): fp32 every
face and answer, and no other face; int8 >= 98 % of the faces and >= 99 % of the answers.
Exact yaw classes are reported, not gated: they are 20-degree bins of a continuous angle,
and another OpenCV's resampling or another runtime's int8 kernels move a face near an
edge into the next bin (measured: OpenCV 4.11 against 5.0, one fp32 face in 145;
tflite-runtime 2.14 int8, seven, all to the neighbouring bin, none across the frontal
limit). Each build's own fidelity, on identical inputs, is what 'maskgate check' gates.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PICTURES = sorted(ROOT.glob("examples/images/*.jpg")) + sorted(ROOT.glob("calibration/default/verify/*.jpg"))


def faces_of(pipeline) -> dict:
    import cv2

    return {path.name: [face.to_dict() for face in pipeline(cv2.imread(str(path)))] for path in PICTURES}


def reference() -> dict:
    from maskgate import Pipeline

    with Pipeline.reference(device="cpu") as pipeline:
        return faces_of(pipeline)


def compare(reference_faces: dict, got: dict):
    """Over every picture (maskgate.compare.compare_faces): the reference's faces, those found,
    and of those the ones with the same mask label, the same frontal reading, the same yaw
    class; other faces."""
    from maskgate.compare import FaceAgreement, compare_faces
    from maskgate.turnstile import GateRules

    total, frontal = FaceAgreement(), GateRules().frontal_yaw_classes
    for name, ref in reference_faces.items():
        total.add(compare_faces(ref, got[name], frontal_classes=frontal))
    return total


def check(builds: str, formats: tuple[str, ...], reference_faces: dict) -> list[str]:
    from maskgate import Pipeline
    from maskgate.check import gates

    table, problems = gates.configured_gates(), []
    for fmt in formats:
        for precision in ("fp32", "int8"):
            with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,)) as pipeline:
                runtime = sorted({s.describe_runtime() for s in pipeline.selections.values()})
                c = compare(reference_faces, faces_of(pipeline))
            print(f"{fmt} {precision} ({'; '.join(runtime)}): {c.found}/{c.reference} reference faces; of those "
                  f"{c.same_mask} with the same mask label, {c.same_frontal} the same frontal reading, {c.same_yaw} "
                  f"the same yaw class; {c.extra} other face(s)")
            gate = table.gate(precision, fmt, what=f"{fmt} {precision}")
            failed = [g.describe() for g in gates.pipeline_gates(gate, c, frontal=True) if not g.passed]
            if precision == "fp32" and c.extra:
                failed.append(f"{c.extra} face(s) the reference does not find")
            if failed:
                problems.append(f"{fmt} {precision} below its gates: {'; '.join(failed)}")
    return problems


def main() -> int:
    builds, formats, reference_file = sys.argv[1], tuple(sys.argv[2].split(",")), Path(sys.argv[3])
    import cv2

    if "--write" in sys.argv:
        faces = reference()
        reference_file.write_text(json.dumps({"opencv": cv2.__version__, "faces": faces}, indent=1))
        print(f"reference (OpenCV {cv2.__version__}): {sum(len(v) for v in faces.values())} faces on {len(faces)} "
              f"pictures -> {reference_file}")
        return 0
    stored = json.loads(reference_file.read_text())
    reference_faces = stored["faces"]
    print(f"OpenCV {cv2.__version__} here, {stored['opencv']} for the reference")
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
