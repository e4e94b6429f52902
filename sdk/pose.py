"""Yaw from the five landmarks, and its six classes.

No head-pose ground truth exists in the project's data, so yaw labels are derived:
``cv2.solvePnP`` fits a generic 3D five-point face to the detected landmarks, and the
yaw is the left-right turn of the fitted face. Every figure built on these labels is a
figure against landmark-derived labels, not against measured head pose.

Sign: positive yaw means the face turns towards the image's right (the nose moves
right). Mirroring an image negates the yaw, so class k becomes class ``n - 1 - k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .align import five_points
from .errors import InputError

# Generic adult face, millimetres, camera axes (x right, y down, z away from the camera),
# nose tip at the origin; order as the detector's landmarks (image-left eye first).
FACE_MODEL_3D = np.array(
    [
        [-31.0, -33.0, 30.0],  # left eye (as seen)
        [31.0, -33.0, 30.0],  # right eye
        [0.0, 0.0, 0.0],  # nose tip
        [-24.0, 30.0, 22.0],  # left mouth corner
        [24.0, 30.0, 22.0],  # right mouth corner
    ]
)

# Landmark order after a horizontal flip: the two eyes and the two mouth corners swap.
MIRROR_ORDER = (1, 0, 2, 4, 3)


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Yaw in degrees from five landmarks (pixels), via PnP against FACE_MODEL_3D.

    The PnP solver is not exactly symmetric (about 0.4 degrees apart on real faces), so
    the estimate is averaged with the negated estimate of the mirrored landmarks: a
    mirrored face then gets exactly the negated yaw and the mirrored class.
    """
    pts = five_points(landmarks)
    # The yaw ignores where the face is, so mirroring about x = 0 (width 1) is enough.
    return 0.5 * (_pnp_yaw(pts) - _pnp_yaw(mirror_landmarks(pts, 1)))


def fit_head_pose(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PnP fit of FACE_MODEL_3D to five landmarks: (rvec, tvec, camera matrix).

    The camera sits at the landmarks' centre with a focal length eight times the face
    scale (about a face 50 cm from a normal lens); both are unchanged by mirroring.
    """
    pts = five_points(landmarks)
    center = (pts.min(0) + pts.max(0)) / 2
    scale = max(float(np.linalg.norm(pts[1] - pts[0])), 0.25 * float(np.ptp(pts[:, 1])), 1e-3)
    focal = 8.0 * scale
    camera = np.array([[focal, 0, center[0]], [0, focal, center[1]], [0, 0, 1]], np.float64)
    ok, rvec, tvec = cv2.solvePnP(FACE_MODEL_3D, pts, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise InputError(f"solvePnP found no pose for landmarks {pts.tolist()}")
    return rvec, tvec, camera


def _pnp_yaw(pts: np.ndarray) -> float:
    rvec, _, _ = fit_head_pose(pts)
    rotation, _ = cv2.Rodrigues(rvec)
    forward = rotation @ np.array([0.0, 0.0, -1.0])  # from the face towards the camera
    return float(np.degrees(np.arctan2(forward[0], -forward[2])))


def mirror_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally flipped image (x -> width - 1 - x, left/right swapped)."""
    pts = five_points(landmarks).copy()
    pts[:, 0] = (width - 1) - pts[:, 0]
    return pts[list(MIRROR_ORDER)]


@dataclass(frozen=True)
class YawBins:
    """Six (or any even number of) yaw classes, symmetric about 0 degrees.

    ``edges`` are the inner boundaries in degrees, ascending; the outer classes are open.
    Symmetric edges make mirroring a relabelling: class k <-> class n - 1 - k.
    """

    edges: tuple[float, ...] = (-40.0, -20.0, 0.0, 20.0, 40.0)

    def __post_init__(self):
        e = np.asarray(self.edges, np.float64)
        if len(e) < 1 or np.any(np.diff(e) <= 0):
            raise ValueError(f"yaw bin edges must be ascending, got {self.edges}")
        if not np.allclose(e, -e[::-1]):
            raise ValueError(
                f"yaw bin edges must be symmetric about 0 so that mirroring maps classes, got {self.edges}"
            )

    @property
    def count(self) -> int:
        return len(self.edges) + 1

    @property
    def names(self) -> tuple[str, ...]:
        bounds = ["-90", *(f"{v:+g}" for v in self.edges), "+90"]
        return tuple(f"yaw[{lo},{hi})" for lo, hi in zip(bounds[:-1], bounds[1:]))

    def classify(self, yaw_degrees: float) -> int:
        # A yaw exactly on an edge goes to the class on the side away from 0, so that
        # mirroring (which negates yaw) maps every class, edges included, to its mirror.
        edges = np.asarray(self.edges)
        if yaw_degrees >= 0:
            return int(np.searchsorted(edges, yaw_degrees, side="right"))
        return int(np.searchsorted(edges, yaw_degrees, side="left"))

    def mirror(self, yaw_bin: int) -> int:
        return self.count - 1 - int(yaw_bin)
