"""Frame sources for ``maskgate run``: an image, a folder of images, a video, a camera."""
from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import active_config
from .console import opencv_quiet
from .errors import SourceError
from .image_size import header_size
from .native_calls import inside

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


@dataclass(frozen=True)
class Frame:
    source: str  # image path as found, or the video path / "camera:N"
    index: int  # frame number within a video or camera; 0 for images
    image: np.ndarray  # BGR uint8


def read_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as BGR uint8, or raise a SourceError naming it. Its header is read
    first: an image larger than ``max_pixels`` (default: ``[sources] max_image_pixels``) is
    refused before any of it is decoded."""
    path = Path(path)
    limit = max_pixels if max_pixels is not None else active_config().sources.max_image_pixels
    try:
        with open(path, "rb") as handle:
            size = header_size(handle)
            handle.seek(0)
            if size is not None and 0 < size[0] * size[1] <= limit:
                data = np.frombuffer(handle.read(), dtype=np.uint8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise SourceError(f"{path}: not a readable image ({exc})") from None
    if size is None:
        raise SourceError(f"{path}: not an image MaskGate reads (PNG, JPEG, BMP, WebP, TIFF, PNM), or empty")
    if size[0] * size[1] > limit:
        raise SourceError(f"{path}: its header says {size[0]} x {size[1]} pixels, more than the {limit} allowed "
                          "([sources] max_image_pixels in the config); refused before decoding")
    if not size[0] * size[1]:
        raise SourceError(f"{path}: its header says {size[0]} x {size[1]} pixels: an empty image")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise SourceError(f"{path}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1]})") from None
    if image is None:
        raise SourceError(f"{path}: not a readable image (truncated, or damaged after its header)")
    return image


def open_capture(target: int | str, *, name: str, timeout_s: float | None = None,
                 read_timeout_s: float | None = None, decode_threads: int | None = None) -> cv2.VideoCapture:
    """``cv2.VideoCapture(target)`` that gives up after ``timeout_s`` (default: ``[sources]
    open_timeout_s``): a FIFO with no writer, or a stream that never answers, blocks the open
    itself, so it runs on a thread of its own (left behind if it never returns). A URL's
    ``read()`` returns False after ``read_timeout_s`` without data (default: ``timeout_s``):
    FFmpeg's interrupt callback, so a socket kept open without a byte does not block forever.
    ``decode_threads``: FFmpeg's decoding threads for a file or URL (None: FFmpeg's choice,
    one per core; measured on a 640x480 MJPEG file, 2 cores: 1.42 ms of CPU a frame, against
    1.01 ms with one thread, same frames)."""
    timeout_s = timeout_s if timeout_s is not None else active_config().sources.open_timeout_s
    result: dict = {}

    def open_it() -> None:
        try:
            with inside(f"opening {name}"):  # may outlive the command (native_calls.py)
                threads = [] if decode_threads is None or not hasattr(cv2, "CAP_PROP_N_THREADS") else [
                    cv2.CAP_PROP_N_THREADS, int(decode_threads)]
                if isinstance(target, str) and re.match(r"[a-z]+://", target, re.I):  # FFmpeg's own network timeouts
                    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(timeout_s * 1000),
                              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int((read_timeout_s or timeout_s) * 1000)]
                    result["cap"] = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params + threads)
                elif isinstance(target, str) and threads:  # a file FFmpeg cannot read falls to OpenCV's others
                    cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, threads)
                    result["cap"] = cap if cap.isOpened() else cv2.VideoCapture(target)
                elif isinstance(target, int):
                    with opencv_quiet():
                        result["cap"] = cv2.VideoCapture(target)
                else:
                    result["cap"] = cv2.VideoCapture(target)
        except cv2.error as exc:
            result["error"] = exc

    opener = threading.Thread(target=open_it, name=f"maskgate-open {name}", daemon=True)
    opener.start()
    opener.join(timeout_s)
    if opener.is_alive():
        raise SourceError(f"{name}: did not open within {timeout_s:g} s (a FIFO with no writer, a camera that "
                          "does not answer?); check the source, or raise [sources] open_timeout_s in the config")
    if "error" in result:
        raise SourceError(f"{name}: OpenCV cannot open it ({str(result['error']).strip().splitlines()[-1]})")
    return result["cap"]


def spread(items, limit: int | None) -> list:
    """At most ``limit`` of ``items``, evenly spread (the first and the last kept); all of
    them when ``limit`` is None. A sample that covers a sorted set from end to end."""
    if limit is None or len(items) <= limit:
        return list(items)
    if limit < 0:
        raise ValueError(f"a sample limit cannot be negative, got {limit}")
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES), key=_natural)
    if not files:
        raise SourceError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def iter_frames(source: str, *, on_skip: Callable[[SourceError], None] | None = None) -> Iterator[Frame]:
    """Frames of ``source``. In a folder, an unreadable image is passed to ``on_skip``
    (and skipped) when given, else raised; a single bad file or source always raises."""
    if re.fullmatch(r"\d+", source):
        yield from _iter_video(int(source), name=f"camera:{source}")
        return
    path = Path(source)
    if not path.exists():
        raise SourceError(
            f"{source}: no such file or folder (give an image, a folder of images, a video or a camera index)"
        )
    if path.is_dir():
        for file in list_images(path):
            try:
                image = read_image(file)
            except SourceError as exc:
                if on_skip is None:
                    raise
                on_skip(exc)
                continue
            yield Frame(str(file), 0, image)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        yield Frame(str(path), 0, read_image(path))
    else:
        yield from _iter_video(str(path), name=str(path))


def _iter_video(target: int | str, *, name: str) -> Iterator[Frame]:
    cap = open_capture(target, name=name)
    try:
        if not cap.isOpened():
            what = "camera does not open (is it connected and free?)" if isinstance(target, int) else (
                "not an image or a video that OpenCV can open"
            )
            raise SourceError(f"{name}: {what}")
        promised = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if isinstance(target, str) else 0
        index = 0
        while True:
            ok, image = cap.read()
            if not ok:
                break
            yield Frame(name, index, image)
            index += 1
        if index == 0:
            raise SourceError(f"{name}: opened, but no frame could be read (empty or corrupt stream)")
        problem = truncation(index, promised)
        if problem:
            raise TruncatedVideoError(f"{name}: truncated or corrupt video: {problem}")
    finally:
        cap.release()


def _natural(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


class TruncatedVideoError(SourceError):
    """A video file that ended before the frame count its header promises (raised after the
    frames that could be read were given)."""


def truncation(frames_read: int, promised: int) -> str | None:
    """What a video file that stopped early lacks, or None. Containers may over-count by one."""
    if promised and frames_read < promised - 1:
        return f"ended after {frames_read} of the {promised} frames its header promises"
    return None
