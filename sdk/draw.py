"""Annotated frames for people to look at (``maskgate run --save``)."""
from __future__ import annotations

import cv2
import numpy as np

# BGR colours of the five landmarks: left eye, right eye, nose, left and right mouth.
LANDMARK_COLORS = ((255, 128, 0), (0, 200, 255), (255, 0, 255), (0, 255, 0), (0, 0, 255))


def annotate(frame: np.ndarray, faces) -> np.ndarray:
    out = frame.copy()
    thick = max(1, round(min(frame.shape[:2]) / 300))
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        # Green: mask on; red: no mask; yellow: not classified.
        color = (0, 255, 255) if not face.mask else (0, 200, 0) if face.mask.get("label") == "mask" else (0, 0, 255)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        radius = max(1, round((x2 - x1) / 30))
        for (x, y), color in zip(face.landmarks, LANDMARK_COLORS):
            cv2.circle(out, (int(round(x)), int(round(y))), radius, color, -1)
        label = f"{face.score:.2f}"
        if face.mask:
            label += f" {face.mask.get('label', '')}"
        if face.pose:
            label += f" {face.pose.get('label', '')}"  # as in the JSON: yaw[+0,+20)
        cv2.putText(out, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * thick, color, thick)
    return out
