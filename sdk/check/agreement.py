"""Cross-machine agreement: the pipeline's results on one machine (a camera, an emulated ARM
CPU) against another's (the workstation), face by face.

Results are the JSON lines of ``maskgate run SOURCE --json`` (one object per face: source,
frame, box, score, landmarks, mask, pose). Faces of the same image and frame are compared as
every build is compared with the reference (``maskgate.compare.compare_faces``: matched by box
IoU, >= 0.5 by default, greedily by the other run's score; landmark error over the eye
distance); the report gives how many of the reference's faces were found, how many extra, and
over the matched ones how often the mask label and the yaw class are the same, with score,
box and landmark differences.
Images are keyed by file name, so the two runs may read them from different folders.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..compare import FaceAgreement, compare_faces
from ..errors import InputError


@dataclass
class Agreement:
    images: int = 0
    reference_faces: int = 0
    other_faces: int = 0
    matched: int = 0
    extra: int = 0  # faces the other run found that the reference did not
    same_mask: int = 0
    same_yaw: int = 0
    score_diff: dict = field(default_factory=dict)  # |score difference|: median, p95, max
    box_iou: dict = field(default_factory=dict)  # IoU of matched boxes: median, min
    landmark_nme: dict = field(default_factory=dict)  # landmark error (maskgate.compare.landmark_nme): median, max
    missed: list = field(default_factory=list)  # (image, frame, reference box) of reference faces not found

    @property
    def found(self) -> float:
        return self.matched / self.reference_faces if self.reference_faces else 1.0

    @property
    def mask_agreement(self) -> float:
        return self.same_mask / self.matched if self.matched else 1.0

    @property
    def yaw_agreement(self) -> float:
        return self.same_yaw / self.matched if self.matched else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "found": round(self.found, 5), "mask_agreement": round(self.mask_agreement, 5),
                "yaw_agreement": round(self.yaw_agreement, 5)}

    def describe(self) -> str:
        return (f"{self.matched}/{self.reference_faces} reference faces found ({self.found:.2%}), {self.extra} extra; "
                f"mask label same on {self.mask_agreement:.2%}, yaw class on {self.yaw_agreement:.2%} of matched; "
                f"|score diff| median {self.score_diff.get('median', 0):.4f} max {self.score_diff.get('max', 0):.4f}; "
                f"landmark NME median {self.landmark_nme.get('median', 0):.4f} "
                f"max {self.landmark_nme.get('max', 0):.4f}")


def load_results(path: str | Path) -> dict[tuple[str, int], list[dict]]:
    """{(image file name, frame): faces} from a ``maskgate run --json`` file."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        why = "not text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise InputError(f"{path}: cannot read results ({why}); write them with "
                         "'maskgate run SOURCE --builds DIR --json > FILE'") from exc
    faces: dict[tuple[str, int], list[dict]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            face = json.loads(line)
            key = (Path(face["source"]).name, int(face.get("frame", 0)))
            faces.setdefault(key, []).append(face)
            _ = face["box"], face["score"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a face of 'maskgate run --json' ({exc}); expected an object "
                             "with source, frame, box, score, landmarks, mask and pose") from exc
    return faces


def agreement(reference: dict, other: dict, *, iou: float = 0.5, images: set | None = None) -> Agreement:
    """How far ``other`` (results of :func:`load_results`) agrees with ``reference``.
    ``images``: the (name, frame) keys both runs read (default: every key either has; a key
    with no face in a run counts as that run finding none)."""
    result, total = Agreement(), FaceAgreement()
    keys = images if images is not None else set(reference) | set(other)
    result.images = len({name for name, _ in keys})
    for key in sorted(keys):
        ref = reference.get(key, [])
        part = compare_faces(ref, other.get(key, []), iou=iou)
        total.add(part)
        result.missed += [(key[0], key[1], ref[i]["box"]) for i in part.missed]
    result.reference_faces, result.other_faces, result.matched = total.reference, total.other, total.found
    result.extra, result.same_mask, result.same_yaw = total.extra, total.same_mask, total.same_yaw
    result.score_diff = _spread(total.score_diffs)
    result.box_iou = ({"median": round(float(np.median(total.ious)), 4), "min": round(float(np.min(total.ious)), 4)}
                      if total.ious else {})
    result.landmark_nme = _spread(total.nmes)
    return result


def _spread(values: list[float]) -> dict:
    if not values:
        return {}
    return {"median": round(float(np.median(values)), 5), "p95": round(float(np.percentile(values, 95)), 5),
            "max": round(float(np.max(values)), 5)}
