"""On-device check, run by .ci/run inside a torch-free environment: the pipeline from
bundles built by the main environment runs on the sample pictures, every model on the
fp32 and the int8 build of each requested format, and torch is never imported.

usage: python .ci/device_check.py BUILDS FORMAT[,FORMAT...] EXPECTED_JSON
EXPECTED_JSON holds the main environment's results on the same builds (faces per
picture and their mask labels); the device must give the same.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def run(builds: str, formats: tuple[str, ...]) -> dict:
    import cv2

    from sdk import Pipeline

    pictures = sorted(Path(__file__).resolve().parents[1].glob("examples/images/*.jpg"))
    results = {}
    for fmt in formats:
        for precision in ("fp32", "int8"):
            with Pipeline.from_builds(builds, prefer="cpu", formats=(fmt,), precisions=(precision,)) as pipeline:
                runtime = sorted({s.describe_runtime() for s in pipeline.selections.values()})
                for path in pictures:
                    faces = pipeline(cv2.imread(str(path)))
                    results[f"{fmt}-{precision}/{path.name}"] = sorted(f.mask["label"] for f in faces)
            print(f"{fmt} {precision}: {runtime}")
    return results


def main() -> int:
    builds, formats, expected_file = sys.argv[1], tuple(sys.argv[2].split(",")), sys.argv[3]
    got = run(builds, formats)
    if "--write" in sys.argv:
        Path(expected_file).write_text(json.dumps(got, indent=1))
        return 0
    expected = json.loads(Path(expected_file).read_text())
    problems = [f"{key}: expected {expected.get(key)}, got {value}" for key, value in got.items() if expected.get(key) != value]
    if "torch" in sys.modules:
        problems.append("torch was imported in the device environment")
    faces = sum(len(v) for v in got.values())
    print(f"device check ({sys.executable}): {len(got)} picture runs, {faces} faces; "
          f"{'OK' if not problems else 'FAILED'}")
    for problem in problems:
        print("  " + problem)
    return 1 if problems or faces == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
