"""Binding a bundle's manifest to its model: a digest of the manifest stamped into the model file.

The manifest's sha256 list proves the model files are the ones it describes, but nothing
proved the description itself: swapping ``class_names`` or relabelling the precision
went unnoticed. So every build stamps ``maskgate_manifest_sha256``, the digest of the
manifest's own content, into the model file's metadata (ONNX ``metadata_props``,
OpenVINO ``rt_info``, the TFLite ``maskgate`` metadata entry), and ``verify_bundle``
recomputes it. The digest covers every manifest field and the hash of every other file
(golden data, OpenVINO weights); it leaves out only the stamped file's own hash, which
the manifest's file list checks.

The readers here are plain Python (protobuf and flatbuffer fields read by hand, the IR's
XML with the standard library), so a camera checks a bundle without onnx, OpenVINO or
LiteRT, and before any runtime parses the model. The stamp is rewritten in place: the
converter writes a 64-character placeholder, and the digest replaces those same bytes,
so no model is ever re-serialized to bind it.
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from maskgate.errors import BundleError
from maskgate.files import permission_denied
from maskgate.formats import FORMATS, model_files

from .manifest import MANIFEST

STAMP_KEY = "maskgate_manifest_sha256"
#: the file of each format that carries the stamped metadata (and is the model the runtime loads)
MODEL_FILES = model_files()
TFLITE_METADATA_NAME = "maskgate"
# Fields that the converter stamps beside the digest: named in the error when they differ.
_STAMPED_FIELDS = {"maskgate_model": "model", "maskgate_task": "task", "maskgate_precision": "precision",
                   "maskgate_class_names": "class_names", "maskgate_build_key": "build_key", "maskgate_soc": "soc"}


def placeholder() -> str:
    """A unique 64-character stand-in for the digest, stamped by the converter."""
    return "pending-" + secrets.token_hex(28)


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON, without the stamped model file's own hash."""
    stamped = MODEL_FILES.get(str(manifest.get("format")))
    content = dict(manifest)
    if isinstance(content.get("files"), dict):
        content["files"] = {k: v for k, v in content["files"].items() if k != stamped}
    return hashlib.sha256(canonical_json(content)).hexdigest()


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, ASCII: the bytes a digest or a signature is made over. A
    ``Manifest`` is taken as the JSON object it was read from."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def stamped_file(bundle: Path, manifest: Mapping[str, Any]) -> Path:
    fmt = manifest.get("format")
    if fmt not in MODEL_FILES:
        raise BundleError(f"{bundle}: format {fmt!r} has no known model file; expected one of {sorted(MODEL_FILES)}")
    return Path(bundle) / MODEL_FILES[fmt]


def read_stamp(fmt: str, path: Path, *, data: bytes | None = None) -> dict[str, str]:
    """The MaskGate metadata stamped into a model file ({} when it carries none); ``data``: the
    file's bytes, already read (the ones that were hashed), else they are read from ``path``."""
    try:
        if fmt in FORMATS:
            return FORMATS[fmt].stamp_reader_function()(Path(path).read_bytes() if data is None else data)
    except PermissionError:
        raise permission_denied(path, Path(path).parent) from None
    except (OSError, ValueError, IndexError, struct.error, ET.ParseError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{path}: cannot read the model's stamped metadata ({type(exc).__name__}: {exc}); "
                          f"the file is damaged or not a {fmt} model; rebuild the bundle") from exc
    raise BundleError(f"{path}: no metadata reader for format {fmt!r}; expected one of {sorted(MODEL_FILES)}")


def check_binding(bundle: Path, manifest: Mapping[str, Any], *, model: bytes | None = None) -> None:
    """Raise a BundleError when the manifest is not the one the model was stamped with;
    ``model``: the model file's bytes as hashed (else read from the bundle)."""
    path = stamped_file(bundle, manifest)
    stamp = read_stamp(manifest["format"], path, data=model)
    stamped = stamp.get(STAMP_KEY)
    if not stamped:
        raise BundleError(f"{path}: carries no manifest digest ({STAMP_KEY}); the bundle was made by an older "
                          "MaskGate or by hand: rebuild it with 'maskgate build'")
    if stamped != manifest_digest(manifest):
        differs = [f"{field} {manifest.get(field)!r} (the model says {_stamped_value(stamp[key])!r})"
                   for key, field in _STAMPED_FIELDS.items()
                   if key in stamp and _stamped_value(stamp[key]) != manifest.get(field)]
        what = f": {'; '.join(differs)}" if differs else ""
        raise BundleError(f"{Path(bundle) / MANIFEST}: was changed after the build; its content no longer "
                          f"matches the digest stamped into {path.name}{what}. Restore the manifest or rebuild "
                          "the bundle with 'maskgate build'")


def _stamped_value(text: str) -> object:
    try:
        return json.loads(text) if text[:1] in "[{" else text
    except ValueError:
        return text


def restamp(path: Path, old: str, new: str) -> None:
    """Replace the stamped value ``old`` by ``new`` (same length) in ``path``, atomically."""
    data = Path(path).read_bytes()
    before, after = old.encode(), new.encode()
    if len(before) != len(after) or data.count(before) != 1:
        raise BundleError(f"{path}: its stamp {old[:16]}... is not found exactly once; rebuild the bundle")
    tmp = Path(path).with_name(f".{Path(path).name}.stamp")
    tmp.write_bytes(data.replace(before, after))
    os.replace(tmp, path)


# -- ONNX: ModelProto.metadata_props (field 14) of StringStringEntryProto {key 1, value 2} ---------

def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed protobuf varint")


def _fields(data: bytes | memoryview) -> Iterator[tuple[int, int, int | bytes | memoryview]]:
    """(field number, wire type, value) of one protobuf message's top-level fields."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes | memoryview
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def onnx_metadata_props(data: bytes) -> dict[str, str]:
    props = {}
    # A memoryview: skipping the graph (megabytes of weights) must not copy it.
    for number, wire, value in _fields(memoryview(data)):
        if number == 14 and wire == 2 and not isinstance(value, int):  # wire type 2: bytes
            entry = {n: bytes(v) for n, w, v in _fields(value) if w == 2}
            props[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    return props


# -- OpenVINO IR: <rt_info><maskgate><key value="..."/></maskgate></rt_info> ---------------------

def openvino_rt_info(data: bytes) -> dict[str, str]:
    root = ET.fromstring(data)
    group = root.find("rt_info/maskgate")
    return {} if group is None else {child.tag: child.get("value", "") for child in group}


# -- TFLite flatbuffer: Model.metadata (field 6) -> Model.buffers (field 4) -> Buffer.data ------

def tflite_metadata(data: bytes) -> dict[str, str]:
    model = _table(data, struct.unpack_from("<I", data, 0)[0])
    for entry in _vector_of_tables(data, model, 6):
        name = _string(data, entry, 0)
        if name == TFLITE_METADATA_NAME:
            index = _scalar(data, entry, 1, "<I")
            buffers = _vector_of_tables(data, model, 4)
            payload = _buffer_bytes(data, buffers[index])
            return {str(k): str(v) for k, v in json.loads(payload.decode()).items()}
    return {}


def _table(data: bytes, pos: int) -> tuple[int, int]:
    """(table position, vtable position)."""
    return pos, pos - struct.unpack_from("<i", data, pos)[0]


def _field_pos(data: bytes, table: tuple[int, int], index: int) -> int | None:
    pos, vtable = table
    vtable_size = struct.unpack_from("<H", data, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", data, vtable + slot)[0]
    return pos + offset if offset else None


def _deref(data: bytes, at: int) -> int:
    offset: int = struct.unpack_from("<I", data, at)[0]
    return at + offset


def _scalar(data: bytes, table: tuple[int, int], index: int, fmt: str, default: int = 0) -> int:
    at = _field_pos(data, table, index)
    value: int = default if at is None else struct.unpack_from(fmt, data, at)[0]
    return value


def _string(data: bytes, table: tuple[int, int], index: int) -> str | None:
    at = _field_pos(data, table, index)
    if at is None:
        return None
    start = _deref(data, at)
    length = struct.unpack_from("<I", data, start)[0]
    return data[start + 4:start + 4 + length].decode()


def _vector_of_tables(data: bytes, table: tuple[int, int], index: int) -> list[tuple[int, int]]:
    at = _field_pos(data, table, index)
    if at is None:
        return []
    start = _deref(data, at)
    count = struct.unpack_from("<I", data, start)[0]
    return [_table(data, _deref(data, start + 4 + 4 * k)) for k in range(count)]


def _buffer_bytes(data: bytes, buffer: tuple[int, int]) -> bytes:
    at = _field_pos(data, buffer, 0)
    if at is not None:  # inline data
        start = _deref(data, at)
        length = struct.unpack_from("<I", data, start)[0]
        return data[start + 4:start + 4 + length]
    offset, size = _scalar(data, buffer, 1, "<Q"), _scalar(data, buffer, 2, "<Q")  # large models: after the flatbuffer
    return data[offset:offset + size]



# -- RKNN: the toolkit keeps the build's custom string verbatim: "maskgate:{...json...}" ----------

RKNN_STAMP_PREFIX = b"maskgate:{"


def rknn_stamp_string(fields: dict[str, str]) -> str:
    """The custom string the toolkit stores in an .rknn model: ``fields`` as compact JSON
    after the prefix ``rknn_stamp`` looks for (a rebuild passes what it read back verbatim)."""
    return RKNN_STAMP_PREFIX[:-1].decode() + json.dumps(fields, separators=(",", ":"))


def rknn_stamp(data: bytes) -> dict[str, str]:
    at = data.find(RKNN_STAMP_PREFIX)
    if at < 0:
        return {}
    end = data.find(b"\x00", at)
    text = data[at + len(RKNN_STAMP_PREFIX) - 1:end if end >= 0 else len(data)].decode()
    value, _ = json.JSONDecoder().raw_decode(text)
    if not isinstance(value, dict):
        raise ValueError("the maskgate custom string is not a JSON object")
    return {str(k): str(v) for k, v in value.items()}
