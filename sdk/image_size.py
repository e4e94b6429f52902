"""An image's size from its header, before anything is decoded: a file that claims
100000 x 100000 pixels is refused by its first bytes instead of taking the memory a decoder
would reserve for it. Reads PNG, JPEG, BMP, WebP, TIFF and the Netpbm formats (the ones
``maskgate run`` takes); the file is read through one handle, a few kB at most.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: markers without a length
_MAX_JPEG_SEGMENTS = 1000  # APPn, DQT, DHT ... before the frame header; more is not a photo


def header_size(handle: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header of the image open in ``handle`` (binary, at its start);
    None when the format is not one of those above. A header that is cut short or does not
    parse raises ValueError."""
    head = handle.read(32)
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"\xff\xd8"):
            return _jpeg(handle)
        if head.startswith(b"BM"):
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)  # a negative height: stored top-down
        if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
            return _webp(head + handle.read(32))
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(handle, head)
        if head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2:
            return _netpbm(head + handle.read(1024))
    except struct.error as exc:
        raise ValueError(f"the image header is cut short ({exc})") from None
    return None


def _jpeg(handle: BinaryIO) -> tuple[int, int]:
    handle.seek(2)
    for _ in range(_MAX_JPEG_SEGMENTS):
        byte = handle.read(1)
        while byte == b"\xff":  # fill bytes before a marker
            byte = handle.read(1)
        if not byte:
            break
        marker = byte[0]
        if marker in _JPEG_STANDALONE:
            continue
        (length,) = struct.unpack(">H", handle.read(2))
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">xHH", handle.read(5))
            return width, height
        if length < 2:
            raise ValueError(f"a JPEG segment of length {length}")
        handle.seek(length - 2, 1)
    raise ValueError("no JPEG frame header (SOF) found")


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    raise ValueError(f"a WebP file with an unknown first chunk {chunk!r}")


def _tiff(handle: BinaryIO, head: bytes) -> tuple[int, int]:
    order = "<" if head[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", head[4:8])
    handle.seek(offset)
    (count,) = struct.unpack(order + "H", handle.read(2))
    found = {}
    for _ in range(min(count, 4096)):
        tag, kind, _n, value = struct.unpack(order + "HHI4s", handle.read(12))
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
    if 256 not in found or 257 not in found:
        raise ValueError("a TIFF file without ImageWidth and ImageLength")
    return found[256], found[257]


def _netpbm(data: bytes) -> tuple[int, int]:
    words: list[int] = []
    for line in data[2:].split(b"\n"):
        for word in line.split(b"#", 1)[0].split():
            words.append(int(word))
            if len(words) == 2:
                return words[0], words[1]
    raise ValueError("a Netpbm header without a width and a height")
