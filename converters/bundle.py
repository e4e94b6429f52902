"""Build bundles: a folder with the model file(s), ``manifest.json`` and golden data.

A bundle is written into a temporary sibling folder and renamed into place only when
every file and the manifest are complete, so an interrupted build never leaves a folder
that looks finished. The manifest records the sha256 of every file; ``verify_bundle``
checks them, and the schema, before a runtime trusts the folder.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sdk.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
GOLDEN = "golden.npz"

# key -> (type or types, required); nested dicts are checked by their own tables.
_FIELDS = {
    "schema_version": (int, True), "sdk_version": (str, True), "name": (str, True), "model": (str, True),
    "task": (str, True), "format": (str, True), "precision": (str, True), "quantizer": ((dict, type(None)), True),
    "input": (dict, True), "inputs": (list, True), "outputs": (list, True), "class_names": (list, True),
    "files": (dict, True), "calibration": ((dict, type(None)), True), "source_weights_sha256": (str, True),
    "reference": (dict, True), "build_key": (str, True), "created": (str, True), "notes": (list, False),
    "detection": ((dict, type(None)), False), "priors": ((dict, type(None)), False),
}
_INPUT_FIELDS = {"name": str, "shape": list, "layout": str, "dtype": str, "color": str, "mean": list, "std": list,
                 "size": list}
_TENSOR_FIELDS = {"name": str, "tensor": str, "shape": list, "dtype": str}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_manifest(manifest: object, *, where: str = MANIFEST) -> dict:
    """Check the manifest's structure; raise a BundleError listing every problem."""
    problems = []
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    for key, (types, required) in _FIELDS.items():
        if key not in manifest:
            if required:
                problems.append(f"missing '{key}'")
        elif not isinstance(manifest[key], types):
            problems.append(f"'{key}' should be {_names(types)}, got {type(manifest[key]).__name__}")
    if isinstance(manifest.get("schema_version"), int) and manifest["schema_version"] > SCHEMA_VERSION:
        problems.append(f"schema_version {manifest['schema_version']} is newer than this SDK reads ({SCHEMA_VERSION}); "
                        "upgrade maskgate")
    if isinstance(manifest.get("input"), dict):
        problems += [f"input: {p}" for p in _check(manifest["input"], _INPUT_FIELDS)]
        if manifest["input"].get("layout") not in ("NCHW", "NHWC"):
            problems.append(f"input.layout should be NCHW or NHWC, got {manifest['input'].get('layout')!r}")
    for group in ("inputs", "outputs"):
        entries = manifest.get(group)
        for i, entry in enumerate(entries if isinstance(entries, list) else []):  # a non-list is reported above
            problems += [f"{group}[{i}]: {p}" for p in (_check(entry, _TENSOR_FIELDS) if isinstance(entry, dict)
                                                         else ["should be an object"])]
    files = manifest.get("files")
    if isinstance(files, dict):
        if not files:
            problems.append("'files' is empty")
        for name, digest in files.items():
            if not (isinstance(digest, str) and len(digest) == 64):
                problems.append(f"files['{name}'] should be a sha256 hex digest")
            if Path(name).is_absolute() or ".." in Path(name).parts:
                problems.append(f"files['{name}'] must be a plain name inside the bundle")
    if problems:
        raise BundleError(f"{where}: not a valid MaskGate manifest: " + "; ".join(problems))
    return manifest


def _check(d: dict, fields: dict) -> list[str]:
    return [f"missing '{k}'" if k not in d else f"'{k}' should be {t.__name__}" for k, t in fields.items()
            if k not in d or not isinstance(d[k], t)]


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def read_manifest(bundle: str | Path) -> dict:
    path = Path(bundle) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{bundle}: no {MANIFEST}; not a MaskGate bundle (or an unfinished one); rebuild it with "
                          "`maskgate build`") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: unreadable or not JSON ({exc}); rebuild the bundle") from exc
    return validate_manifest(manifest, where=str(path))


def verify_bundle(bundle: str | Path) -> dict:
    """The manifest, after checking its schema and that every file matches its sha256."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    for name, digest in manifest["files"].items():
        path = bundle / name
        if not path.is_file():
            raise BundleError(f"{path}: listed in the manifest but missing; the bundle is incomplete, rebuild it")
        actual = sha256_file(path)
        if actual != digest:
            raise BundleError(f"{path}: sha256 {actual[:12]}... does not match the manifest's {digest[:12]}...; "
                              "the file was changed or corrupted, rebuild the bundle")
    return manifest


LOCK_FILE = ".maskgate-build.lock"
LEFTOVER_PATTERNS = (".*.partial-*", ".*.old-*", ".work-*")  # staging folders of a build that was killed


@contextmanager
def exclusive_folder(out: Path) -> Iterator[list[str]]:
    """Hold ``out`` for one build at a time (an advisory lock, where the OS offers one).
    With it held, staging folders left by a killed build are stale: they are removed and
    their names yielded. A second build into the same folder fails instead of racing."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_FILE, "a+")
    held = False
    try:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ModuleNotFoundError:  # no fcntl (Windows): no lock, leftovers still cleaned
            pass
        except OSError as exc:
            raise BundleError(f"{out}: another 'maskgate build' is writing here; wait for it or use another "
                              "--out") from exc
        held = True
        removed = []
        for pattern in LEFTOVER_PATTERNS:
            for leftover in sorted(out.glob(pattern)):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                    removed.append(leftover.name)
        yield removed
    finally:
        if held:  # ours, and still held: no other build can be waiting on this file
            (out / LOCK_FILE).unlink(missing_ok=True)
        handle.close()  # releases the lock


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final``; on success it replaces ``final`` in one rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield tmp
        if not (tmp / MANIFEST).is_file():
            raise BundleError(f"{final}: no manifest was written; the bundle is not complete")
        if final.exists():
            old = final.with_name(f".{final.name}.old-{tmp.name[-8:]}")
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Hash every file the manifest lists (present in ``folder``), validate, write last."""
    manifest = dict(manifest)
    manifest["schema_version"] = SCHEMA_VERSION
    manifest["files"] = {name: sha256_file(folder / name) for name in manifest["files"]}
    validate_manifest(manifest)
    partial = folder / f".{MANIFEST}.partial"  # a bundle whose manifest is rewritten is never left half-described
    partial.write_text(json.dumps(manifest, indent=1) + "\n")
    partial.replace(folder / MANIFEST)
    return manifest
