"""Semi-synthetic masked faces: mask pictures pasted onto unmasked faces by landmarks.

The pose paper's source domain. Each template (RGBA, MaskTheFace layout) comes with six
anchors in ``masks.cfg``: ``mask_a``/``mask_c`` the upper left/right corners on the
cheeks, ``mask_b`` the nose bridge, ``mask_d``/``mask_f`` the lower corners on the jaw and
``mask_e`` the chin. We place the same six points on a generic 3D face, project them with
the head pose fitted to the five detected landmarks (the fit that gives the yaw labels),
and warp the template onto them by a homography. Turned faces get the ``_left`` or
``_right`` view of the template (``_left``: the nose points to the image's left).
"""
from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from ..pose import estimate_yaw, fit_head_pose

# The six anchors on the generic face of maskgate.pose.FACE_MODEL_3D (mm; x right, y down,
# z away from the camera, nose tip at the origin): a/c upper cheeks, b nose bridge,
# d/f jaw, e chin.
MASK_ANCHORS_3D = np.array(
    [
        [-62.0, -8.0, 55.0],  # a
        [0.0, -16.0, 10.0],  # b
        [62.0, -8.0, 55.0],  # c
        [-55.0, 45.0, 50.0],  # d
        [0.0, 72.0, 28.0],  # e
        [55.0, 45.0, 50.0],  # f
    ]
)
_ANCHOR_KEYS = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")


@dataclass(frozen=True)
class MaskTemplate:
    name: str
    image: np.ndarray  # BGRA uint8
    anchors: np.ndarray  # (6, 2) template pixels, a..f
    view: str  # front / left / right

    @property
    def family(self) -> str:
        return self.name.rsplit("_", 1)[0] if self.view != "front" else self.name


def load_templates(folder: str | Path) -> list[MaskTemplate]:
    """Templates of a folder holding ``masks.cfg`` and ``templates/*.png``."""
    folder = Path(folder)
    cfg_path = folder / "masks.cfg"
    if not cfg_path.is_file():
        raise SourceError(f"{cfg_path}: not found; expected a mask template folder with masks.cfg and templates/")
    cfg = configparser.ConfigParser()
    try:
        cfg.read(cfg_path)
    except configparser.Error as exc:
        raise SourceError(f"{cfg_path}: not a readable masks.cfg ({exc})") from exc
    templates = []
    for name in cfg.sections():
        sec = cfg[name]
        if "template" not in sec:  # MaskTheFace's picture-less modes ([empty], [inpaint])
            continue
        png = folder / "templates" / Path(sec["template"]).name
        image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if image is None or image.ndim != 3 or image.shape[2] != 4:
            raise SourceError(f"{png}: missing or not an RGBA picture (template {name!r} in {cfg_path})")
        try:
            anchors = np.array([[float(v) for v in sec[k].split(",")] for k in _ANCHOR_KEYS], np.float64)
        except (KeyError, ValueError) as exc:
            raise SourceError(f"{cfg_path}: [{name}] needs six anchors mask_a..mask_f as 'x, y' ({exc})") from exc
        view = "left" if name.endswith("_left") else "right" if name.endswith("_right") else "front"
        templates.append(MaskTemplate(name, image, anchors, view))
    if not templates:
        raise SourceError(f"{cfg_path}: no templates listed")
    return templates


def project_anchors(landmarks: np.ndarray) -> np.ndarray:
    """The six mask anchors on the face, in image pixels, from the fitted head pose."""
    rvec, tvec, camera = fit_head_pose(landmarks)
    points, _ = cv2.projectPoints(MASK_ANCHORS_3D, rvec, tvec, camera, None)
    return points.reshape(6, 2)


@dataclass(frozen=True)
class SynthOptions:
    side_yaw: float = 15.0  # |yaw| above which the _left/_right view is used
    tint_probability: float = 0.5  # recolour light masks
    texture_probability: float = 0.3  # stripes/checks/dots printed on the mask
    shade: float = 0.6  # how far the mask's brightness follows the face's (0..1)


@dataclass(frozen=True)
class SynthResult:
    image: np.ndarray  # BGR uint8
    coverage: np.ndarray  # float32 alpha of the pasted mask, 0..1, image-sized
    template: str
    anchors: np.ndarray  # (6, 2) where the anchors landed


class MaskSynthesizer:
    """Pastes a random template (view chosen by yaw) onto a face, with varied colour."""

    def __init__(self, templates: list[MaskTemplate], *, options: SynthOptions = SynthOptions()):
        if not templates:
            raise SourceError("no mask templates given")
        self.options = options
        self.by_view = {v: [t for t in templates if t.view == v] for v in ("front", "left", "right")}
        if not self.by_view["front"]:
            self.by_view["front"] = list(templates)

    def pick(self, yaw: float, rng: np.random.Generator) -> MaskTemplate:
        view = "front"
        if yaw <= -self.options.side_yaw and self.by_view["left"]:
            view = "left"
        elif yaw >= self.options.side_yaw and self.by_view["right"]:
            view = "right"
        group = self.by_view[view]
        return group[int(rng.integers(len(group)))]

    def apply(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        rng: np.random.Generator,
        *,
        template: MaskTemplate | None = None,
    ) -> SynthResult:
        yaw = estimate_yaw(landmarks)
        template = template or self.pick(yaw, rng)
        anchors = project_anchors(landmarks)
        homography, _ = cv2.findHomography(template.anchors, anchors, 0)
        if homography is None:
            raise SourceError(
                f"no homography from template {template.name!r} onto landmarks {np.asarray(landmarks).tolist()}"
            )
        h, w = image.shape[:2]
        rgba = self._restyle(template.image, rng)
        warped = cv2.warpPerspective(rgba, homography, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))
        alpha = cv2.GaussianBlur(warped[..., 3].astype(np.float32) / 255.0, (3, 3), 0)
        mask_bgr = warped[..., :3].astype(np.float32)
        # Follow the face's lighting: scale the mask towards the brightness of the skin it covers.
        covered = alpha > 0.5
        if covered.any():
            face_level = float(image[covered].mean())
            mask_level = max(float(mask_bgr[covered].mean()), 1.0)
            gain = (face_level / mask_level) ** self.options.shade if face_level < mask_level else 1.0
            mask_bgr *= gain
        out = image.astype(np.float32) * (1 - alpha[..., None]) + mask_bgr * alpha[..., None]
        return SynthResult(np.clip(out, 0, 255).astype(np.uint8), alpha, template.name, anchors)

    def _restyle(self, rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        bgr = rgba[..., :3].astype(np.float32)
        alpha = rgba[..., 3:]
        light = bgr.mean() > 120
        if light and rng.random() < self.options.tint_probability:
            colour = rng.uniform(40, 255, size=3).astype(np.float32)
            bgr = bgr * (colour / 255.0)
        if rng.random() < self.options.texture_probability:
            bgr = bgr * _pattern(bgr.shape[:2], rng)[..., None]
        return np.concatenate([np.clip(bgr, 0, 255).astype(np.uint8), alpha], axis=2)


def _pattern(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A printed pattern as a brightness multiplier in [0.45, 1]."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = float(rng.uniform(0.04, 0.12) * w)
    kind = int(rng.integers(3))
    angle = float(rng.uniform(0, np.pi))
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if kind == 0:  # stripes
        on = (u // period) % 2 == 0
    elif kind == 1:  # checks
        on = ((u // period) + (v // period)) % 2 == 0
    else:  # dots
        on = ((u % period - period / 2) ** 2 + (v % period - period / 2) ** 2) < (period / 3.5) ** 2
    return np.where(on, float(rng.uniform(0.45, 0.75)), 1.0).astype(np.float32)


def synthesize_crops(crops, synthesizer: MaskSynthesizer, *, seed: int = 0, progress=lambda it: it):
    """Masked copies of the unmasked crops of a CropSet (origin 'synth', label 'mask').

    Yaw labels and splits carry over from the source crops: the yaw was derived from the
    landmarks of the unmasked face, before the mask hid the mouth.
    """
    source = crops.where(mask=[1])
    if len(source) == 0:
        raise SourceError("the crop set has no unmasked (no_mask) crops to paste masks onto")
    rng = np.random.default_rng(seed)
    images = np.empty_like(source.images)
    names = []
    for i in progress(range(len(source))):
        result = synthesizer.apply(source.images[i], source.landmarks[i], rng)
        images[i] = result.image
        names.append(result.template)
    out = source.select(np.arange(len(source)))
    out.images = images
    out.mask = np.zeros(len(source), np.int64)
    out.origin = np.full(len(source), "synth")
    out.info = {**crops.info, "synth_templates": sorted(set(names)), "synth_seed": seed}
    return out


def picture_grid(images: list[np.ndarray], *, columns: int = 8) -> np.ndarray:
    """Tiles of equal-size BGR images, row by row."""
    if not images:
        raise SourceError("no images for the grid")
    tiles = list(images) + [np.zeros_like(images[0])] * (-len(images) % columns)
    return np.vstack([np.hstack(tiles[r : r + columns]) for r in range(0, len(tiles), columns)])
