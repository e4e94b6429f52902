"""Images refused by their header before decoding, the folder going on, and a source that
blocks on open timing out with one line (issue 29, line 10)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskgate.errors import SourceError
from maskgate.image_size import header_size
from maskgate.sources import read_image
from tests.conftest import ROOT

MASKGATE = str(Path(sys.executable).parent / "maskgate")


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header (valid CRC) claims ``width`` x ``height``, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND",
                                                                                                          b"")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tiff", ".ppm", ".pgm"])
def test_the_header_gives_the_size_of_every_format_run_reads(tmp_path, suffix):
    image = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    assert cv2.imwrite(str(path), image if suffix != ".pgm" else image[:, :, 0])
    with open(path, "rb") as handle:
        assert header_size(handle) == (53, 37)
    assert read_image(path).shape[:2] == (37, 53)


def test_a_jpeg_with_a_large_exif_block_before_its_frame_header(tmp_path):
    ok, data = cv2.imencode(".jpg", np.zeros((31, 47, 3), np.uint8))
    data = data.tobytes()
    exif = b"\xff\xe1" + struct.pack(">H", 60002) + b"Exif\0\0" + b"\0" * 59994
    path = tmp_path / "exif.jpg"
    path.write_bytes(data[:2] + exif + exif + data[2:])
    with open(path, "rb") as handle:
        assert header_size(handle) == (47, 31)


def test_an_image_claiming_too_many_pixels_is_refused_before_decoding_and_the_folder_goes_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a_huge.png").write_bytes(_png_claiming(100_000, 100_000))
    (folder / "b_big.png").write_bytes(_png_claiming(20_000, 20_000))
    (folder / "c_cut.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")
    cv2.imwrite(str(folder / "d_good.jpg"), cv2.imread(str(ROOT / "examples" / "images" / "scene_5.jpg")))
    with pytest.raises(SourceError, match=r"100000 x 100000 pixels, more than the 50000000 allowed"):
        read_image(folder / "a_huge.png")
    with pytest.raises(SourceError, match="not a readable image"):
        read_image(folder / "c_cut.jpg")
    config = tmp_path / "maskgate.toml"
    config.write_text("[sources]\nmax_image_pixels = 30000000\n")  # 20000 x 20000 is over it too
    # Run under a wrapper whose only child is maskgate, so its peak memory is maskgate's own.
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", wrapper, MASKGATE, "run", str(folder), "--json", "--config",
                           str(config), "--mask-model", "none", "--pose-model", "none", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 1, done.stderr[-2000:]  # 1: some inputs were skipped, each named
    assert "a_huge.png: its header says 100000 x 100000" in done.stderr
    assert "b_big.png: its header says 20000 x 20000" in done.stderr and "Traceback" not in done.stderr
    assert "d_good.jpg" in done.stdout and "a_huge" not in done.stdout
    peak_gb = int(done.stderr.rsplit("peak_kb", 1)[1].split()[0]) / 2**20
    assert peak_gb < 1.5, f"{peak_gb:.2f} GB: a 20000 x 20000 decode would take 1.2 GB more"


def test_a_fifo_with_no_writer_times_out_on_open_with_one_line(tmp_path):
    fifo = tmp_path / "camera.avi"
    os.mkfifo(fifo)
    config = tmp_path / "maskgate.toml"
    config.write_text("[sources]\nopen_timeout_s = 2.0\n")
    began = time.monotonic()
    done = subprocess.run([MASKGATE, "run", str(fifo), "--config", str(config), "--mask-model", "none",
                           "--pose-model", "none", "--device", "cpu"], capture_output=True, text=True, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("maskgate: error:")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
    assert "did not open within 2 s" in errors[0] and "FIFO" in errors[0]
    assert time.monotonic() - began < 60
