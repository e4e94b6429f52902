"""Deployment profiles: the detector canvas a job needs, in one place.

``general`` finds every face in a 640x480 frame, down to 20 px wide (``maskgate run``,
evaluation). ``turnstile`` is for a gate camera, whose person at the gate is 100-460 px
wide: the detector runs on a quarter of the pixels (the frame scaled by 0.5), about three
times faster, with weights tuned for that canvas (``maskgate tune-detector``) so that
faces of 48 px and more are found as at 640x480 (docs/benchmarks.md, the recall table).
``maskgate build --profile turnstile`` adds its detector bundles beside the general ones
(their names end in the canvas, ``-320x256``) and ``maskgate turnstile`` picks them when
they are there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .specs import WEIGHTS_DIR

# The detector's coarsest feature map is 1/32 of the canvas. A side that is not a multiple
# of 32 makes the FPN upsample by a fraction, which TFLite's resize rounds unlike PyTorch's
# and ONNX's (measured: every TFLite build at 320x240 found 97.1 % of the reference's faces,
# at 320x256 100 %).
CANVAS_MULTIPLE = 32


@dataclass(frozen=True)
class Profile:
    name: str
    detector_size: tuple[int, int]  # width, height of the detector's fixed input
    use: str  # what the profile is for, one line
    # Detector weights tuned for this canvas, shipped in maskgate/weights ('maskgate tune-detector');
    # None: the packaged ones.
    detector_weights: str | None = None
    # Converter options this profile's builds use unless the build sets its own:
    # (format, option, value), as the ``maskgate build`` flags name them.
    convert_defaults: tuple[tuple[str, str, object], ...] = ()

    @property
    def canvas(self) -> str:
        return canvas_name(self.detector_size)

    @property
    def detector_weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.detector_weights if self.detector_weights else None


PROFILES = {
    "general": Profile("general", (640, 480), "every face in a 640x480 frame, down to 20 px (maskgate run)"),
    # 640x480 scaled by 0.5 is 320x240; 16 rows of padding make the height a multiple of 32.
    "turnstile": Profile("turnstile", (320, 256), "the person at a gate, 48-460 px wide in a 640x480 frame",
                         detector_weights="retinaface_mnet025_turnstile.pt",
                         # With the tuned weights, TFLite int8 found 97.4 % of 115 held-out detections with
                         # the widest ranges seen (gate 98 %), 99.1 % with moving-average ranges.
                         convert_defaults=(("tflite", "calibration", "moving_average"),)),
}
DEFAULT_PROFILE = "general"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}") from None


def canvas_name(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


def canvas_variant(size: tuple[int, int]) -> str:
    """How a detector canvas is named where the general one goes unsaid (bundle names, what
    ran a model, report names): "" for the general profile's canvas, else "320x256"."""
    general = PROFILES[DEFAULT_PROFILE].detector_size
    return "" if tuple(int(v) for v in size) == general else canvas_name(size)


def canvas_problem(size: tuple[int, int], *, multiple: int = CANVAS_MULTIPLE) -> str | None:
    """Why a detector canvas cannot be built (None when it can): each side a positive
    multiple of ``multiple``, with the nearest sizes that are."""
    w, h = (int(v) for v in size)
    if w > 0 and h > 0 and w % multiple == 0 and h % multiple == 0:
        return None

    def up(v: int) -> int:
        return max(multiple, -(-v // multiple) * multiple)

    return (f"detector canvas {w}x{h}: each side must be a multiple of {multiple} (the coarsest feature map is "
            f"1/{multiple} of it, and TFLite upsamples a fractional map unlike the reference); use "
            f"{up(w)}x{up(h)}: frames are letterboxed onto it, the extra rows and columns are padding")
