"""Face alignment from the five RetinaFace landmarks.

Two methods, both giving a crop of a classifier's input size:
- ``eye_roll`` (paper 2): rotate about the face centre by the eye-line angle so the eyes
  are level, then crop a square around the detection box with a margin;
- ``similarity``: a least-squares similarity transform (Umeyama) of all five points
  onto a canonical face template (the ArcFace 112x112 layout).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from .errors import InputError

AlignMethod = Literal["eye_roll", "similarity"]

# Canonical five-point template on a 112x112 face crop (ArcFace / InsightFace layout):
# left eye, right eye, nose, left and right mouth corners, as seen in the image.
FACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


@dataclass(frozen=True)
class AlignedFace:
    image: np.ndarray  # BGR uint8, size given to align_face
    matrix: np.ndarray  # 2x3 affine, frame pixels -> crop pixels
    roll_degrees: float  # eye-line angle in the frame (positive: right eye lower)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]


def eye_roll_degrees(landmarks: np.ndarray) -> float:
    """Angle of the line from the left to the right eye, in degrees (image y points down)."""
    pts = five_points(landmarks)
    dx, dy = pts[1] - pts[0]
    return float(np.degrees(np.arctan2(dy, dx)))


def eye_roll_matrix(
    box: np.ndarray, landmarks: np.ndarray, size: tuple[int, int], *, margin: float = 0.25
) -> np.ndarray:
    """Affine that levels the eyes and maps a square around the box onto ``size``."""
    box = np.asarray(box, np.float64)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)
    if side <= 0:
        raise InputError(f"face box {box.tolist()} has no area")
    out_w, out_h = size
    # cv2's positive angle turns the picture counter-clockwise on screen, which lifts a
    # lower right eye back to the level of the left one.
    matrix = cv2.getRotationMatrix2D((cx, cy), eye_roll_degrees(landmarks), min(out_w, out_h) / side)
    matrix[:, 2] += (out_w / 2 - cx, out_h / 2 - cy)
    return matrix


def similarity_matrix(
    landmarks: np.ndarray, size: tuple[int, int], template: np.ndarray = FACE_TEMPLATE_112
) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift) of the landmarks onto the template."""
    src = five_points(landmarks)
    dst = np.asarray(template, np.float64) * (np.asarray(size, np.float64) / 112.0)
    return umeyama_similarity(src, dst)


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991) least-squares similarity transform src -> dst, as a 2x3 matrix."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # a reflection: flip the weakest axis
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    if var <= 0:
        raise InputError("the five landmarks coincide: cannot align")
    scale = (s * d).sum() / var
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def align_face(
    frame: np.ndarray,
    box: np.ndarray,
    landmarks: np.ndarray,
    *,
    size: tuple[int, int],
    method: AlignMethod = "eye_roll",
    margin: float = 0.25,
) -> AlignedFace:
    """Crop one face from a BGR frame, aligned, at ``size`` (width, height)."""
    if method == "eye_roll":
        matrix = eye_roll_matrix(box, landmarks, size, margin=margin)
    elif method == "similarity":
        matrix = similarity_matrix(landmarks, size)
    else:
        raise InputError(f"unknown alignment method {method!r}; use 'eye_roll' or 'similarity'")
    crop = cv2.warpAffine(
        frame, matrix, tuple(int(v) for v in size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return AlignedFace(image=crop, matrix=matrix, roll_degrees=eye_roll_degrees(landmarks))


def five_points(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, np.float64)
    if pts.size != 10:
        raise InputError(f"expected five (x, y) landmarks, got an array of shape {pts.shape}")
    return pts.reshape(5, 2)
