"""A video of people "walking up to the gate", made of held-out scene photos (or your own).

Each chosen test-split scene of DATA/scenes is cropped around its largest labelled face
(with_mask / without_mask) so that the face is about 140 px wide on a 640x480 frame, as
at a turnstile, and shown for --hold frames; grey frames separate the passages. Writes
VIDEO (MJPG .avi) and VIDEO.labels.json: per passage the scene, its mask label, and the
expected decision: with_mask -> OPEN, without_mask -> NO_MASK; with --builds, a face
whose yaw label is not frontal -> LOOK_AT_CAMERA. Yaw labels are derived as everywhere
in this project (there are no measured head poses in the data): from the five landmarks
the fp32 detector build finds on the labelled face, by solvePnP on a generic 3D face.

DATA may instead be a folder of your own photos (no annotations): the largest face the
detector finds in each (the fp32 build with --builds, else the PyTorch reference) is the
person at the gate, and the labels hold no expected decision.

    python examples/turnstile/make_test_video.py ../shared/data clip.avi --scenes 12 --builds builds/
    python examples/turnstile/make_test_video.py my_photos/ clip.avi --builds builds/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

EXPECTED = {"with_mask": "OPEN", "without_mask": "NO_MASK"}
FRAME = (640, 480)
FACE_PX = 140
MAX_ENLARGEMENT = 7.0  # a close-up cut from a tiny face is a blur no camera would see


def pick_scenes(data: Path, count: int, *, min_face_px: float = 28.0, split: str = "test") -> list:
    """Scenes of ``split`` whose largest labelled face is clearly the largest (1.3x the next)."""
    from maskgate.datasets.crops import split_of
    from maskgate.voc import read_voc_folder

    chosen = []
    for scene in read_voc_folder(data / "scenes"):
        if split_of(scene.image_path.relative_to(data).as_posix()) != split or not len(scene.boxes):
            continue
        widths = scene.boxes[:, 2] - scene.boxes[:, 0]
        order = np.argsort(-widths)
        top = order[0]
        if scene.labels[top] not in EXPECTED or widths[top] < min_face_px:
            continue
        if len(order) > 1 and widths[order[1]] * 1.3 > widths[top]:
            continue
        chosen.append((scene, int(top)))
    # As many bare faces as masked ones (the scenes are mostly masked), evenly spread, alternating.
    by_label = {label: [c for c in chosen if c[0].labels[c[1]] == label] for label in EXPECTED}
    from maskgate.sources import spread

    half = {label: spread(items, (count + (label == "with_mask")) // 2) for label, items in by_label.items()}
    mixed = [x for pair in zip(half["with_mask"], half["without_mask"]) for x in pair]
    longer = max(half.values(), key=len)
    return (mixed + longer[len(mixed) // 2:])[:count]


def gate_view(image: np.ndarray, box: np.ndarray, face_px: float = FACE_PX) -> tuple[np.ndarray, np.ndarray]:
    """Crop a 4:3 window around the face so that it is ``face_px`` wide on a 640x480 frame
    (a close-up runs past the frame's edges); returns the view and the face's box on it."""
    x1, y1, x2, y2 = box
    scale = face_px / max(x2 - x1, 1.0)
    w, h = FRAME[0] / scale, FRAME[1] / scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.1 * h  # the face a little above the middle
    src = np.float32([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx - w / 2, cy + h / 2]])
    dst = np.float32([[0, 0], [FRAME[0], 0], [0, FRAME[1]]])
    matrix = cv2.getAffineTransform(src, dst)
    view = cv2.warpAffine(image, matrix, FRAME, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(114, 114, 114))
    corners = np.array([[x1, y1, 1.0], [x2, y2, 1.0]]) @ matrix.T
    return view, corners.reshape(-1)


def yaw_label(detector, view: np.ndarray, box: np.ndarray) -> int | None:
    """The derived yaw class of the labelled face (None when the detector misses it)."""
    from maskgate.metrics import match_greedy
    from maskgate.pose import YawBins, estimate_yaw

    found = detector.detect(view, score_threshold=0.3)
    match = match_greedy(box[None], found.boxes, found.scores, 0.4)[0]
    return None if match < 0 else YawBins().classify(estimate_yaw(found.landmarks[match]))


class Unusable(Exception):
    """DATA lacks what a video needs: said in one line."""


def pick_photos(folder: Path, count: int, detector) -> list:
    """(photo, its largest face's box) for up to ``count`` photos in which the detector finds a face."""
    from maskgate.sources import SourceError, list_images, read_image, spread

    chosen = []
    for path in spread(list_images(folder), None):
        try:
            found = detector.detect(read_image(path))
        except SourceError:
            continue
        if len(found.boxes):
            widths = found.boxes[:, 2] - found.boxes[:, 0]
            chosen.append((path, found.boxes[int(np.argmax(widths))]))
        if len(chosen) == count:
            break
    return chosen


def _has_photos(folder: Path) -> bool:
    from maskgate.sources import SourceError, list_images

    try:
        return bool(list_images(folder))
    except SourceError:
        return False


def walk_up_frames(image: np.ndarray, face: np.ndarray, width: float, frames: int, background: np.ndarray) -> list:
    """The person walking up to the gate in front of a fixed background: head and shoulders cut
    from the scene photo, pasted on ``background``, the face growing from 40 px to ``width``
    over the first half of ``frames``, then standing at the gate."""
    approach = max(1, frames // 2)
    out = []
    for index in range(frames):
        px = 40.0 + (width - 40.0) * min(1.0, index / approach)
        view, (x1, y1, x2, y2) = gate_view(image, face, px)
        fw, fh = x2 - x1, y2 - y1
        left, right = int(max(0, x1 - 0.8 * fw)), int(min(FRAME[0], x2 + 0.8 * fw))
        top = int(max(0, y1 - 0.5 * fh))
        frame = background.copy()
        frame[top:, left:right] = view[top:, left:right]
        out.append(frame)
    return out


def masked_view(detector, view: np.ndarray, box: np.ndarray, synthesizer, rng) -> np.ndarray | None:
    """The same view with a mask template warped onto the labelled face (semi-synthetic: the
    person puts a mask on at the gate); None when the detector misses the face."""
    from maskgate.metrics import match_greedy

    found = detector.detect(view, score_threshold=0.3)
    match = match_greedy(box[None], found.boxes, found.scores, 0.4)[0]
    return None if match < 0 else synthesizer.apply(view, found.landmarks[match], rng).image


def make_video(data: Path, out: Path, *, scenes: int = 12, hold: int = 10, gap: int = 8, fps: float = 10.0,
               builds: Path | None = None, face_px: tuple[float, ...] = (FACE_PX,),
               swap_masks: bool = False, walk_up: bool = False, noise: float = 0.0) -> list[dict]:
    """``face_px``: the face widths on the frame, taken in turn passage by passage (300-460 for
    people stepping close to the camera); labelled scenes whose face would be enlarged more
    than MAX_ENLARGEMENT times are not used. ``swap_masks``: each bare face stays for ``hold``
    frames, then the same view with a mask template on it (DATA/mask_templates) for ``hold``
    more, in one passage (no expected decision: what the gate must do is the same with and
    without the turnstile's reuse). ``walk_up``: each person walks up in front of the grey
    background (walk_up_frames) instead of appearing at the gate. ``noise``: sensor noise on
    every frame (Gaussian, this standard deviation in grey levels), so that no two frames are
    the same."""
    from maskgate.sources import read_image
    from maskgate.turnstile import GateRules

    data = Path(data)
    if not data.is_dir():
        raise Unusable(f"{data}: no such folder; give a data folder (see docs/data.md) or a folder "
                       "of your own photos")
    labelled = (data / "scenes").is_dir()
    if labelled and not ((data / "scenes" / "images").is_dir() and (data / "scenes" / "annotations").is_dir()):
        raise Unusable(f"{data / 'scenes'}: needs images/ and annotations/ (Pascal VOC, one XML per image)")
    if not labelled and not _has_photos(data):
        raise Unusable(f"{data}: neither scenes/ (labelled scenes) nor any photo (.jpg, .png, ...) to make a "
                       "video from")
    picked = pick_scenes(data, scenes, min_face_px=max(28.0, max(face_px) / MAX_ENLARGEMENT)) if labelled else None
    if labelled and not picked:
        raise Unusable(f"{data / 'scenes'}: no test-split scene with one clearly largest labelled face")
    detector = synthesizer = None
    if swap_masks:
        from maskgate.datasets.synth import MaskSynthesizer, load_templates

        if not labelled or not (data / "mask_templates").is_dir():
            raise Unusable(f"{data}: --swap-masks needs labelled scenes/ and mask_templates/")
        synthesizer, rng = MaskSynthesizer(load_templates(data / "mask_templates")), np.random.default_rng(0)
    if builds is not None:
        from maskgate.deployed import open_detector

        detector, _ = open_detector(builds, "retinaface_mnet025", precisions=("fp32",))
    elif not labelled or swap_masks:
        from maskgate import FaceDetector

        detector = FaceDetector.reference(device="cpu")
    if not labelled:
        photos = pick_photos(data, scenes, detector)
        if not photos:
            detector.close()
            raise Unusable(f"{data}: the detector finds no face in any of its photos")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, FRAME)
    if not writer.isOpened():
        raise Unusable(f"{out}: cannot write an MJPG video here")
    blank = np.full((FRAME[1], FRAME[0], 3), 114, np.uint8)
    grain = np.random.default_rng(1)

    def write(frame: np.ndarray) -> None:
        if noise > 0:
            frame = np.clip(frame + grain.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
        writer.write(frame)

    labels = []
    try:
        for _ in range(gap):
            write(blank)
        people = ([(s.image_path, s.boxes[top], s.labels[top]) for s, top in picked] if labelled
                  else [(path, box, None) for path, box in photos])
        for index, (path, face, label) in enumerate(people):
            width = float(face_px[index % len(face_px)])
            image = read_image(path)
            view, box = gate_view(image, face, width)
            yaw = yaw_label(detector, view, box) if detector is not None else None
            expected = EXPECTED[label] if label is not None else None  # your own photos: unknown
            if expected is not None and yaw is not None and yaw not in GateRules().frontal_yaw_classes:
                expected = "LOOK_AT_CAMERA"
            masked = masked_view(detector, view, box, synthesizer, rng) if swap_masks and label == "without_mask" \
                else None
            first = labels[-1]["first_frame"] + labels[-1]["frames"] + gap if labels else gap
            labels.append({"scene": path.name, "label": label, "yaw_label": yaw, "face_px": width,
                           "expected": None if masked is not None else expected, "first_frame": first,
                           "frames": hold * (2 if masked is not None else 1), "swap": masked is not None})
            for frame in (walk_up_frames(image, face, width, hold, blank) if walk_up else [view] * hold):
                write(frame)
            for _ in range(hold if masked is not None else 0):
                write(masked)
            for _ in range(gap):
                write(blank)
    finally:
        writer.release()
        if detector is not None:
            detector.close()
    Path(f"{out}.labels.json").write_text(json.dumps(labels, indent=1))
    return labels


def main() -> int:
    from maskgate.cli.options import number, whole

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="data folder with scenes/ (e.g. ../shared/data), or a folder of photos")
    parser.add_argument("video", type=Path)
    parser.add_argument("--scenes", type=whole(what="scenes"), default=12)
    parser.add_argument("--hold", type=whole(what="frames"),
                        default=10, help="frames each person stays at the gate (default 10)")
    parser.add_argument("--gap", type=whole(at_least=0, what="frames"),
                        default=8, help="empty frames between people (default 8)")
    parser.add_argument("--fps", type=number(what="frames per second", above=0, at_most=240), default=10.0)
    parser.add_argument("--builds", type=Path, help="derive yaw labels with the fp32 detector build here")
    parser.add_argument("--swap-masks", action="store_true", help="each bare face puts a mask on at the gate "
                        "(a template from DATA/mask_templates, after --hold frames)")
    parser.add_argument("--walk-up", action="store_true", help="each person walks up to the gate in front of a "
                        "grey background (the face grows from 40 px over the first half of --hold)")
    parser.add_argument("--noise", type=number(what="grey levels", at_least=0, at_most=255),
                        default=0.0, help="sensor noise on every frame (standard deviation, "
                        "grey levels; default 0)")
    parser.add_argument("--face-px", default=str(FACE_PX),
                        help=f"face width(s) on the frame, comma-separated, used in turn (default {FACE_PX}; "
                             "close-ups: 300,380,460)")
    args = parser.parse_args()
    try:
        face_px = tuple(float(v) for v in args.face_px.split(","))
        if not face_px or min(face_px) <= 0:
            raise ValueError
    except ValueError:
        parser.error(f"--face-px: positive widths separated by commas, got {args.face_px!r}")
    try:
        labels = make_video(args.data, args.video, scenes=args.scenes, hold=args.hold, gap=args.gap, fps=args.fps,
                            builds=args.builds, face_px=face_px, swap_masks=args.swap_masks,
                            walk_up=args.walk_up, noise=args.noise)
    except Unusable as exc:
        print(f"make_test_video: error: {exc}", file=sys.stderr)
        return 2
    masked = sum(x["expected"] == "OPEN" for x in labels)
    print(f"{args.video}: {len(labels)} passages" + (f" ({masked} masked)" if labels[0]["label"] else
                                                     " (your photos: no expected decisions)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
