"""The frames every benchmark times: a camera's view of one person at a gate.

Each single-face picture of the shipped held-out set (``calibration/default/verify``, the
test split) scaled to a 160 px tall face and centred on a grey 640x480 canvas, as a gate
camera sees the person in front of it. Shipped, so the figures mean the same on a fresh
machine and on a camera.
"""
from __future__ import annotations

import numpy as np

FACE_HEIGHT = 160
CANVAS = (640, 480)  # width, height: the general profile's frame


def camera_frames(limit: int | None = None) -> list[np.ndarray]:
    import cv2

    from maskgate.calibration import DEFAULT_DIR

    frames = []
    width, height = CANVAS
    for path in sorted((DEFAULT_DIR / "verify").glob("faces_*.jpg"))[:limit]:
        face = cv2.imread(str(path))
        if face is None:
            continue
        scale = FACE_HEIGHT / face.shape[0]
        face = cv2.resize(face, (max(1, int(face.shape[1] * scale)), FACE_HEIGHT))[:, :400]
        canvas = np.full((height, width, 3), 114, np.uint8)
        y, x = (height - face.shape[0]) // 2, (width - face.shape[1]) // 2
        canvas[y:y + face.shape[0], x:x + face.shape[1]] = face
        frames.append(canvas)
    return frames
