"""Deployment profiles: the detector canvas a job needs, in one place.

``general`` finds every face in a 640x480 frame, down to 20 px wide (``maskgate run``,
evaluation). ``turnstile`` is for a gate camera, whose person at the gate is 100-460 px
wide: the detector runs on a quarter of the pixels (the frame scaled by 0.5), about four
times faster; faces narrower than about 64 px are found less often (see the README's
recall table). ``maskgate build --profile turnstile`` adds its detector bundles beside the
general ones (their names end in the canvas, ``-320x256``) and ``maskgate turnstile``
picks them when they are there.
"""
from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def canvas(self) -> str:
        return canvas_name(self.detector_size)


PROFILES = {
    "general": Profile("general", (640, 480), "every face in a 640x480 frame, down to 20 px (maskgate run)"),
    # 640x480 scaled by 0.5 is 320x240; 16 rows of padding make the height a multiple of 32.
    "turnstile": Profile("turnstile", (320, 256), "the person at a gate, 64-460 px wide in a 640x480 frame"),
}
DEFAULT_PROFILE = "general"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}") from None


def canvas_name(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


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
