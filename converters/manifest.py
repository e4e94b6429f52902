"""The bundle manifest, typed: what ``manifest.json`` holds, read with ``Manifest.from_dict``
(which names every problem it finds) and written with ``to_dict``.

A ``Manifest`` is also a read-only mapping of the JSON it was read from, so a third-party
backend written against the plain dictionary keeps working.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from maskgate.errors import BundleError

# 2: the manifest's digest is stamped into the model file, and the build records its verdict.
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
GOLDEN = "golden.npz"  # golden inputs and the fp32 reference's outputs ('maskgate check')
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class TensorEntry:
    """One input or output of the built model: its logical name and the runtime's tensor."""

    name: str
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None  # (scale, zero point) of an int8 tensor

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorEntry:
        q = d.get("quantization")
        return cls(d["name"], d["tensor"], tuple(d["shape"]), d["dtype"], (float(q[0]), int(q[1])) if q else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tensor": self.tensor, "shape": list(self.shape), "dtype": self.dtype,
                "quantization": list(self.quantization) if self.quantization else None}


@dataclass(frozen=True)
class InputEntry:
    """What a caller feeds the model: shape and layout, and the preprocessing that makes it."""

    name: str
    shape: tuple[int, ...]
    layout: str  # NCHW or NHWC
    dtype: str
    color: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: tuple[int, int]  # width, height
    resize: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputEntry:
        return cls(d["name"], tuple(d["shape"]), d["layout"], d["dtype"], d["color"], tuple(d["mean"]),
                   tuple(d["std"]), tuple(d["size"]), d.get("resize"))

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "shape": list(self.shape), "layout": self.layout, "dtype": self.dtype,
             "color": self.color, "mean": list(self.mean), "std": list(self.std), "size": list(self.size)}
        return d if self.resize is None else {**d, "resize": self.resize}


_NULLABLE_DICT = (dict, type(None))
# field -> (JSON type(s), required)
_FIELDS: dict[str, tuple[Any, bool]] = {
    "schema_version": (int, True), "sdk_version": (str, True), "name": (str, True), "model": (str, True),
    "task": (str, True), "format": (str, True), "precision": (str, True), "quantizer": (_NULLABLE_DICT, True),
    "input": (dict, True), "inputs": (list, True), "outputs": (list, True), "class_names": (list, True),
    "files": (dict, True), "calibration": (_NULLABLE_DICT, True), "source_weights_sha256": (str, True),
    "reference": (dict, True), "build_key": (str, True), "created": (str, True), "notes": (list, False),
    "detection": (_NULLABLE_DICT, False), "priors": (_NULLABLE_DICT, False), "verdict": (_NULLABLE_DICT, False),
    "tools": (dict, False), "accuracy_aware": (_NULLABLE_DICT, False), "soc": (str, False),
    "sources": (list, False),
}
_INPUT_FIELDS = {"name": str, "shape": list, "layout": str, "dtype": str, "color": str, "mean": list, "std": list,
                 "size": list}
_TENSOR_FIELDS = {"name": str, "tensor": str, "shape": list, "dtype": str}


@dataclass(frozen=True)
class Manifest(Mapping[str, Any]):
    schema_version: int
    sdk_version: str
    name: str
    model: str
    task: str
    format: str
    precision: str
    quantizer: dict[str, Any] | None
    input: InputEntry
    inputs: tuple[TensorEntry, ...]
    outputs: tuple[TensorEntry, ...]
    class_names: tuple[str, ...]
    files: dict[str, str]  # file name -> sha256
    calibration: dict[str, Any] | None
    source_weights_sha256: str
    reference: dict[str, Any]
    build_key: str
    created: str
    notes: tuple[str, ...] = ()
    detection: dict[str, Any] | None = None
    priors: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None  # the build's gate verdict (maskgate.builder.verify.record)
    tools: dict[str, Any] | None = None
    accuracy_aware: dict[str, Any] | None = None  # the int8 diagnosis and repair (maskgate.builder.repair)
    soc: str | None = None  # the chip a format compiled per chip was built for (rk3588, qcs6490, ...)
    sources: tuple[str, ...] = ()  # files the model was made from (a check rebuilds it); never loaded
    extra: dict[str, Any] = field(default_factory=dict)  # fields this SDK does not know, kept as read
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the JSON as read

    @classmethod
    def from_dict(cls, data: object, *, where: str = MANIFEST) -> Manifest:
        """Validate ``data`` (a parsed manifest.json); a ``BundleError`` names every problem."""
        problems = manifest_problems(data)
        if problems:
            raise BundleError(f"{where}: not a valid MaskGate manifest: " + "; ".join(problems))
        assert isinstance(data, dict)  # manifest_problems refuses anything else
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "source"}
        values = {k: v for k, v in data.items() if k in known}
        try:
            values.update(input=InputEntry.from_dict(data["input"]),
                          inputs=tuple(TensorEntry.from_dict(t) for t in data["inputs"]),
                          outputs=tuple(TensorEntry.from_dict(t) for t in data["outputs"]),
                          class_names=tuple(data["class_names"]), notes=tuple(data.get("notes") or ()),
                          sources=tuple(data.get("sources") or ()),
                          files=dict(data["files"]))
            return cls(**values, extra={k: v for k, v in data.items() if k not in known}, source=dict(data))
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:  # a shape the checks above miss
            raise BundleError(f"{where}: not a valid MaskGate manifest: {type(exc).__name__}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: as read, for a manifest read from a file (its digest is of that
        content); rebuilt from the fields for one made in code."""
        if self.source:
            return copy.deepcopy(self.source)
        out = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "source"):
                continue
            value = getattr(self, f.name)
            if f.name in ("input",):
                value = value.to_dict()
            elif f.name in ("inputs", "outputs"):
                value = [t.to_dict() for t in value]
            elif f.name in ("class_names", "notes", "sources"):
                value = list(value) if value or f.name != "sources" else None
            if value is not None or f.default is dataclasses.MISSING:
                out[f.name] = value
        return {**out, **self.extra}

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    # -- a read-only mapping of the JSON, for code written against the dictionary ------------
    @cached_property
    def _mapping(self) -> dict[str, Any]:
        return self.source or self.to_dict()

    def __getitem__(self, key: str) -> Any:
        return self._mapping[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping)

    def __len__(self) -> int:
        return len(self._mapping)


def model_size(bundle: str | Path, manifest: Manifest | Mapping[str, Any]) -> int:
    """Bytes of a bundle's model files (the golden data and the sources it carries for checks left out)."""
    skip = {GOLDEN, *(manifest.get("sources") or ())}
    return sum((Path(bundle) / name).stat().st_size for name in manifest["files"] if name not in skip)


def manifest_problems(manifest: object) -> list[str]:
    """Every way ``manifest`` is not a valid MaskGate manifest ([] when it is)."""
    if not isinstance(manifest, dict):
        return [f"expected a JSON object, got {type(manifest).__name__}"]
    problems = []
    for key, (types, required) in _FIELDS.items():
        if key not in manifest:
            if required:
                problems.append(f"missing '{key}'")
        elif not isinstance(manifest[key], types):
            problems.append(f"'{key}' should be {_names(types)}, got {type(manifest[key]).__name__}")
    version = manifest.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        problems.append(f"schema_version {version} is newer than this SDK reads (schema_version {SCHEMA_VERSION}); "
                        "upgrade maskgate")
    elif isinstance(version, int) and version < SCHEMA_VERSION:
        problems.append(f"schema_version {version} is from an older MaskGate (this one reads schema_version "
                        f"{SCHEMA_VERSION}: manifests bound to their model); rebuild the bundle with 'maskgate build'")
    if isinstance(manifest.get("input"), dict):
        problems += [f"input: {p}" for p in _check(manifest["input"], _INPUT_FIELDS)]
        if manifest["input"].get("layout") not in LAYOUTS:
            problems.append(f"input.layout should be NCHW or NHWC, got {manifest['input'].get('layout')!r}")
    for group in ("inputs", "outputs"):
        entries = manifest.get(group)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):  # a non-list is reported above
            problems += [f"{group}[{i}]: {p}" for p in (_check(entry, _TENSOR_FIELDS) if isinstance(entry, dict)
                                                         else ["should be an object"])]
            q = entry.get("quantization") if isinstance(entry, dict) else None
            if q is not None and not (isinstance(q, list) and len(q) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in q) and float(q[1]).is_integer()):
                problems.append(f"{group}[{i}]: 'quantization' should be [scale, zero point] or null, got {q!r}")
    files = manifest.get("files")
    if isinstance(files, dict):
        if not files:
            problems.append("'files' is empty")
        for name, digest in files.items():
            if not (isinstance(digest, str) and len(digest) == 64):
                problems.append(f"files['{name}'] should be a sha256 hex digest")
            if Path(name).is_absolute() or ".." in Path(name).parts:
                problems.append(f"files['{name}'] must be a plain name inside the bundle")
    return problems


def _check(d: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    return [f"missing '{k}'" if k not in d else f"'{k}' should be {t.__name__}" for k, t in fields.items()
            if k not in d or not isinstance(d[k], t)]


def _names(types: type | tuple[type, ...]) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)
