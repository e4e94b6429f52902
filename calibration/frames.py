"""Which frames a calibration or verification set is made of.

A ``FrameSet`` is an ordered, re-iterable list of images (or one video) with a content
hash, so a build records exactly which pictures calibrated it. A folder laid out like
``../shared/data`` (``faces/`` and ``scenes/images``) can be narrowed to one split of the
project's hash split, so calibration (train split) and verification (test split) never
share a picture with each other or with the classifiers' test figures.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from maskgate.errors import CalibrationError, SourceError
from maskgate.sources import IMAGE_SUFFIXES, _natural, read_image, spread

_DATA_FOLDERS = ("faces/with_mask", "faces/without_mask", "scenes/images")


@dataclass(frozen=True)
class FrameSet:
    """Images (or the frames of one video) in a fixed order."""

    paths: tuple[Path, ...]
    root: Path  # what keys and the hash are relative to
    video: Path | None = None
    video_stride: int = 1

    @classmethod
    def from_path(cls, path: str | Path, *, split: str | None = None, limit: int | None = None) -> FrameSet:
        """A folder of images (searched recursively), a video file, or a data folder with
        ``faces/`` and ``scenes/images`` (``split`` then picks train/val/test by the
        project's hash of each image's relative path). ``limit`` keeps an even spread."""
        path = Path(path)
        if not path.exists():
            raise CalibrationError(
                f"{path}: no such folder or file; give a folder of images, a video, or a data folder like "
                "../shared/data"
            )
        if path.is_file():
            if path.suffix.lower() in IMAGE_SUFFIXES:
                return cls((path,), path.parent)
            return cls((), path.parent, video=path, video_stride=_video_stride(path, limit))
        if all((path / sub).is_dir() for sub in _DATA_FOLDERS):
            files = [f for sub in _DATA_FOLDERS for f in _images_in(path / sub)]
        else:
            files = _images_in(path)
        if split is not None:
            from maskgate.datasets.crops import split_of

            files = [f for f in files if split_of(f.relative_to(path).as_posix()) == split]
        if not files:
            where = f" in the {split} split" if split else ""
            raise CalibrationError(
                f"{path}: no images{where} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}, recursively)"
            )
        return cls(tuple(_spread(files, limit)), path)

    def frames(self, *, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
        """(key, BGR frame) pairs; every call starts again from the first frame."""
        if self.video is not None:
            yield from self._video_frames(limit)
            return
        for p in self.paths[:limit]:
            yield p.relative_to(self.root).as_posix(), read_image(p)

    def _video_frames(self, limit: int | None) -> Iterator[tuple[str, np.ndarray]]:
        from maskgate.sources import iter_frames

        video, count = self.video, 0
        assert video is not None  # called for a video set only
        for frame in iter_frames(str(video)):
            if frame.index % self.video_stride:
                continue
            yield f"{video.name}#{frame.index}", frame.image
            count += 1
            if limit is not None and count >= limit:
                return

    def sha256(self) -> str:
        """Hash of the relative names and bytes of every file, in order (read once)."""
        return self._sha256

    @cached_property
    def _sha256(self) -> str:
        digest = hashlib.sha256()
        for p in (self.paths if self.video is None else (self.video,)):
            digest.update(p.relative_to(self.root).as_posix().encode() + b"\0")
            try:
                digest.update(hashlib.sha256(p.read_bytes()).digest())
            except OSError as exc:
                raise SourceError(f"{p}: cannot be read ({exc.strerror or exc})") from exc
        return digest.hexdigest()

    def describe(self) -> str:
        if self.video is not None:
            return f"video {self.video}"
        return f"{len(self.paths)} images under {self.root}"


def _images_in(folder: Path) -> list[Path]:
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: (str(p.parent), _natural(p)))


def _video_stride(path: Path, limit: int | None) -> int:
    """Every n-th frame, so that ``limit`` frames span the whole video."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise CalibrationError(f"{path}: not an image or a video OpenCV can open")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return max(1, count // limit) if limit and count > 0 else 1


def _spread(files: list[Path], limit: int | None) -> list[Path]:
    """``limit`` files spread evenly over the sorted list (every folder and source kept)."""
    if limit is None or limit >= len(files):
        return files
    if limit <= 0:
        raise CalibrationError(f"a sample limit must be positive, got {limit}")
    return spread(files, limit)
