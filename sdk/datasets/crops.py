"""Face-crop sets: the aligned crops the deployed pipeline sees, with labels.

The classifiers are trained and tested on crops that the project's own detector and
aligner cut from the photos (the raw face folders differ in framing between classes; a
model trained on them raw learns the framing). Each crop carries the mask label of its
photo or box, the landmark-derived yaw, and its split, which is decided per source image
(a hash of its path), never per crop, so that no photo feeds both training and test.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from ..metrics import match_greedy
from ..pose import estimate_yaw

MASK_LABELS = ("mask", "no_mask", "mask_weared_incorrect")
SPLITS = ("train", "val", "test")
_FOLDER_LABELS = {"with_mask": 0, "without_mask": 1}
_VOC_LABELS = {"with_mask": 0, "without_mask": 1, "mask_weared_incorrect": 2}
CROPS_FILE = "crops.npz"
_COLUMNS = ("images", "mask", "yaw", "landmarks", "face_px", "outside", "split", "origin", "source")


def split_of(key: str, *, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> str:
    """Deterministic split of a source image from its relative path (same on every machine)."""
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64
    edges = np.cumsum(fractions) / float(sum(fractions))
    return SPLITS[int(np.searchsorted(edges, h, side="right"))] if h < edges[-1] else SPLITS[-1]


@dataclass
class CropSet:
    """Crops (N, H, W, 3) BGR uint8 plus one row of metadata per crop."""

    images: np.ndarray
    mask: np.ndarray  # int: index into MASK_LABELS
    yaw: np.ndarray  # float degrees, landmark-derived (not measured head pose)
    landmarks: np.ndarray  # (N, 5, 2) in crop pixels
    face_px: np.ndarray  # detected box width in the source image, pixels
    outside: np.ndarray  # fraction of the crop that lies outside the source photo (border fill)
    split: np.ndarray  # str: train / val / test
    origin: np.ndarray  # str: faces / scenes / synth
    source: np.ndarray  # str: source image path relative to the data root
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def select(self, keep: np.ndarray) -> CropSet:
        keep = np.asarray(keep)
        return CropSet(**{c: getattr(self, c)[keep] for c in _COLUMNS}, info=dict(self.info))

    def where(
        self, *, split: str | None = None, origin: str | None = None, mask: Iterable[int] | None = None
    ) -> CropSet:
        keep = np.ones(len(self), bool)
        if split is not None:
            keep &= self.split == split
        if origin is not None:
            keep &= self.origin == origin
        if mask is not None:
            keep &= np.isin(self.mask, list(mask))
        return self.select(keep)

    @staticmethod
    def concat(parts: list[CropSet]) -> CropSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise SourceError("no crops to join: every part is empty")
        return CropSet(
            **{c: np.concatenate([getattr(p, c) for p in parts]) for c in _COLUMNS}, info=dict(parts[0].info)
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/crops.npz`` atomically (a half-written set is never left behind)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CROPS_FILE
        tmp = folder / (CROPS_FILE + ".partial.npz")
        np.savez(tmp, **{c: getattr(self, c) for c in _COLUMNS}, info=np.array(json.dumps(self.info)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> CropSet:
        folder = Path(folder)
        path = folder / CROPS_FILE if folder.is_dir() else folder
        if not path.is_file():
            raise SourceError(f"{path}: no crop set here; build one with `maskgate crops --data DATA --out {folder}`")
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(**{c: z[c] for c in _COLUMNS}, info=json.loads(str(z["info"])))
        except (OSError, ValueError, KeyError) as exc:
            # numpy's own text for a pickle suggests allow_pickle, which would run the file's code
            why = "not a numpy archive of arrays" if "pickle" in str(exc) else exc
            raise SourceError(f"{path}: not a readable crop set ({why}); rebuild it with `maskgate crops`") from exc

    def summary(self) -> dict:
        out: dict = {"crops": len(self)}
        for s in SPLITS:
            part = self.split == s
            out[s] = {MASK_LABELS[k]: int(np.sum(part & (self.mask == k))) for k in range(len(MASK_LABELS))}
        return out


@dataclass(frozen=True)
class CropOptions:
    size: tuple[int, int] = (128, 128)
    margin: float = 0.25
    score_threshold: float = 0.3  # lower than run's 0.5: a labelled box tells us a face is there
    match_iou: float = 0.4


def _face(frame: np.ndarray, box: np.ndarray, points: np.ndarray, options: CropOptions) -> dict:
    """One aligned crop and its per-face columns."""
    from ..align import align_face

    aligned = align_face(frame, box, points, size=options.size, margin=options.margin)
    inside = cv2.warpAffine(np.ones(frame.shape[:2], np.uint8), aligned.matrix, options.size, flags=cv2.INTER_NEAREST)
    return {
        "images": aligned.image,
        "yaw": estimate_yaw(points),
        "landmarks": aligned.to_crop(points).astype(np.float32),
        "face_px": float(box[2] - box[0]),
        "outside": 1.0 - float(inside.mean()),
    }


def _append(rows: dict[str, list], face: dict, *, mask: int, split: str, origin: str, source: str) -> None:
    for key, value in {**face, "mask": mask, "split": split, "origin": origin, "source": source}.items():
        rows[key].append(value)


def build_crops(
    data_root: str | Path,
    detector,
    *,
    options: CropOptions = CropOptions(),
    split: str | None = None,
    limit: int | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> CropSet:
    """Detect, align and crop every face of ``data_root/faces`` and ``data_root/scenes``.

    faces/<class>/*: one face per photo, the largest detection; the folder is the label.
    scenes/: every labelled box matched (IoU >= options.match_iou) to a detection; the
    box's label is the crop's label; boxes the detector misses give no crop (counted).
    ``split``: only the source images of that split are read (e.g. "test"); ``limit``: at
    most this many of faces/ and of scenes/ each, evenly spread.
    """
    from ..sources import list_images, read_image, spread
    from ..voc import read_voc_folder

    root = Path(data_root)
    rows: dict[str, list] = {k: [] for k in _COLUMNS}
    counts = {
        "faces_images": 0,
        "faces_without_detection": 0,
        "scenes_boxes": 0,
        "scenes_boxes_missed": 0,
        "unreadable": 0,
    }
    jobs: list[tuple[str, Path, object]] = []
    for folder, label in _FOLDER_LABELS.items():
        d = root / "faces" / folder
        if d.is_dir():
            jobs += [("faces", p, label) for p in list_images(d)]
    if (root / "scenes" / "annotations").is_dir():
        jobs += [("scenes", v.image_path, v) for v in read_voc_folder(root / "scenes")]
    if not jobs:
        raise SourceError(f"{root}: found neither faces/with_mask, faces/without_mask nor scenes/annotations")
    if split is not None:
        jobs = [job for job in jobs if split_of(job[1].relative_to(root).as_posix()) == split]
    if limit is not None:
        jobs = [job for origin in ("faces", "scenes") for job in spread([j for j in jobs if j[0] == origin], limit)]

    for origin, path, label in progress(jobs):
        rel = path.relative_to(root).as_posix()
        try:
            frame = read_image(path)
        except SourceError:
            counts["unreadable"] += 1
            continue
        found = detector.detect(frame, score_threshold=options.score_threshold)
        split = split_of(rel)
        if origin == "faces":
            counts["faces_images"] += 1
            if len(found.boxes) == 0:
                counts["faces_without_detection"] += 1
                continue
            widths = found.boxes[:, 2] - found.boxes[:, 0]
            i = int(np.argmax(widths))
            _append(
                rows,
                _face(frame, found.boxes[i], found.landmarks[i], options),
                mask=label,
                split=split,
                origin=origin,
                source=rel,
            )
        else:
            voc = label
            counts["scenes_boxes"] += len(voc.boxes)
            matched = match_greedy(voc.boxes, found.boxes, found.scores, options.match_iou)
            for g, p in enumerate(matched):
                if p < 0 or voc.labels[g] not in _VOC_LABELS:
                    counts["scenes_boxes_missed"] += int(p < 0)
                    continue
                face = _face(frame, found.boxes[p], found.landmarks[p], options)
                _append(rows, face, mask=_VOC_LABELS[voc.labels[g]], split=split, origin=origin, source=rel)

    if not rows["images"]:
        raise SourceError(f"{root}: the detector found no labelled face; check the folder layout")
    w, h = options.size
    return CropSet(
        images=np.stack(rows["images"]).astype(np.uint8),
        mask=np.asarray(rows["mask"], np.int64),
        yaw=np.asarray(rows["yaw"], np.float32),
        landmarks=np.stack(rows["landmarks"]).astype(np.float32),
        face_px=np.asarray(rows["face_px"], np.float32),
        outside=np.asarray(rows["outside"], np.float32),
        split=np.asarray(rows["split"]),
        origin=np.asarray(rows["origin"]),
        source=np.asarray(rows["source"]),
        info={
            "size": [w, h],
            "margin": options.margin,
            "score_threshold": options.score_threshold,
            "match_iou": options.match_iou,
            "counts": counts,
            "yaw_labels": "landmark-derived (solvePnP, generic 3D face)",
        },
    )
