"""Frame checks, letterboxing and tensor conversion, driven by a model's InputSpec."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError
from .specs import InputSpec


def as_bgr_frame(frame: object) -> np.ndarray:
    """Check a camera frame and return it as a contiguous BGR uint8 HxWx3 array.

    Grayscale (HxW or HxWx1) and BGRA (HxWx4) frames are converted; anything else is
    refused with an InputError that says what was expected.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array (BGR uint8 HxWx3), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 (BGR 0..255), got dtype {frame.dtype}; convert it first")
    if frame.ndim in (2, 3) and (frame.shape[0] == 0 or frame.shape[1] == 0):
        raise InputError(f"frame is empty (shape {frame.shape})")  # before OpenCV sees it: it asserts on empty input
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2BGR)
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise InputError(f"frame must be HxWx3 BGR (or HxW gray, HxWx4 BGRA), got shape {frame.shape}")
    return np.ascontiguousarray(frame)


@dataclass(frozen=True)
class Letterbox:
    """Where the frame sits on the model's canvas: canvas = frame * scale, top-left aligned."""

    scale: float
    frame_size: tuple[int, int]  # (width, height) of the original frame
    canvas_size: tuple[int, int]  # (width, height) of the model input

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Map canvas pixel coordinates (..., 2k) back to frame pixels."""
        return xy / self.scale


def letterbox(frame: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, Letterbox]:
    """Scale ``frame`` to fit the spec's canvas, keeping the aspect ratio.

    Frames are scaled up as well as down: the detector's smallest anchors are 16 px, so
    small photos must grow for their faces to be found. Padding is the mean colour, which
    becomes zero after normalisation.
    """
    frame = as_bgr_frame(frame)
    h, w = frame.shape[:2]
    cw, ch = spec.size
    scale = min(cw / w, ch / h)
    nw, nh = max(1, min(cw, round(w * scale))), max(1, min(ch, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(frame, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else frame
    if (nw, nh) == (cw, ch):  # a frame of the canvas's shape (a 640x480 camera): nothing to pad
        return resized, Letterbox(scale=nw / w, frame_size=(w, h), canvas_size=(cw, ch))
    pad = np.clip(np.round(np.array(spec.mean if spec.color == "BGR" else spec.mean[::-1], np.float64)), 0, 255)
    # OpenCV pads in one pass; numpy broadcasting the colour over the canvas took 0.36 ms of a
    # 0.5 ms letterbox at 320x256.
    canvas = cv2.copyMakeBorder(resized, 0, ch - nh, 0, cw - nw, cv2.BORDER_CONSTANT, value=[float(v) for v in pad])
    # The scale actually applied may differ from the requested one by rounding.
    return canvas, Letterbox(scale=nw / w, frame_size=(w, h), canvas_size=(cw, ch))


def to_tensor(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A BGR uint8 image of the spec's size -> a batch-of-one float tensor for the model."""
    h, w = image_bgr.shape[:2]
    if (w, h) != tuple(spec.size):
        raise InputError(f"image is {w}x{h}, the model expects {spec.size[0]}x{spec.size[1]}; letterbox it first")
    image = image_bgr if spec.color == "BGR" else image_bgr[:, :, ::-1]
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    # One pass per channel straight into the output layout (the same float32 arithmetic as
    # (x - mean) / std, 6x faster on a 640x480 frame than converting, then transposing).
    if spec.layout == "NCHW":
        x = np.empty((1, 3, h, w), np.float32)
        for c in range(3):
            np.subtract(image[:, :, c], mean[c], out=x[0, c], dtype=np.float32)
            if std[c] != 1:
                np.divide(x[0, c], std[c], out=x[0, c])
        return x
    x = np.empty((1, h, w, 3), np.float32)
    np.subtract(image, mean, out=x[0], dtype=np.float32)
    if np.any(std != 1):
        np.divide(x[0], std, out=x[0])
    return x
