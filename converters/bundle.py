"""Build bundles: a folder with the model file(s), ``manifest.json`` and golden data.

A bundle is written into a temporary sibling folder and put in place only when every
file and the manifest are complete, so an interrupted build never leaves a folder that
looks finished; a bundle that replaces an older one is swapped in with one atomic
exchange, so the old one stays until the new one is there. The manifest records the
sha256 of every file, and its own digest is stamped into the model file
(``maskgate.converters.binding``); ``verify_bundle`` checks both, the schema, and the site's
signature where one is required (``maskgate.converters.signing``), before a runtime trusts the
folder. A finished bundle's manifest is only ever changed through ``update_manifest``.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from maskgate.errors import BundleError
from maskgate.files import MAX_JSON_BYTES, current_umask, links_inside, parse_bundle_json, read_bundle_file

from .binding import STAMP_KEY, check_binding, manifest_digest, read_stamp, restamp, stamped_file
from .manifest import MANIFEST, SCHEMA_VERSION, Manifest
from .signing import SIGNATURE, BundleKey, check_signature, signature_record

log = logging.getLogger(__name__)

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def validate_manifest(manifest: object, *, where: str = MANIFEST) -> Manifest:
    """Check the manifest's structure; raise a BundleError listing every problem."""
    return Manifest.from_dict(manifest, where=where)


def read_manifest(bundle: str | Path) -> Manifest:
    """The bundle's manifest, its schema checked. Whatever is wrong with the file (not JSON,
    nested 50 000 deep, a value of the wrong shape, a symbolic link) is a BundleError."""
    path = Path(bundle) / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise BundleError(f"{bundle}: no {MANIFEST}; not a MaskGate bundle (or an unfinished one); rebuild it with "
                          "`maskgate build`")
    data = read_bundle_file(path, bundle=Path(bundle), limit=MAX_JSON_BYTES)
    return validate_manifest(parse_bundle_json(data, path=path), where=str(path))


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every file matched its manifest: the bytes that were hashed, kept, so a
    runtime loads those (``model``, ``files``) and never reopens a path that may have changed."""

    path: Path
    manifest: Manifest
    files: Mapping[str, bytes]  # every file the manifest lists -> its bytes, as hashed

    @property
    def model(self) -> bytes:
        """The model file the format's runtime loads (the one the manifest digest is stamped into)."""
        return self.files[stamped_file(self.path, self.manifest).name]

    @contextmanager
    def private_copy(self) -> Iterator[Path]:
        """The verified files written into a folder only this account can write (for runtimes
        that load from a path: an NPU toolkit, a worker process); removed afterwards."""
        folder = Path(tempfile.mkdtemp(prefix=f"maskgate-{self.path.name}-"))  # 0700
        try:
            for name, data in self.files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            (folder / MANIFEST).write_text(json.dumps(self.manifest.to_dict(), indent=1) + "\n")
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def read_verified(bundle: str | Path, *, key: BundleKey | None = None) -> VerifiedBundle:
    """The bundle after checking that it holds no symbolic link, its manifest's schema, that
    every file (the model among them) matches its sha256, that the manifest is the one stamped
    into the model (``maskgate.converters.binding``) and, with ``key`` (a
    ``maskgate.converters.signing.BundleKey``), that the site signed it; with the bytes checked."""
    bundle = Path(bundle)
    links = links_inside(bundle)
    if links:
        raise BundleError(f"{links[0]}: a symbolic link; a bundle holds its own files (a link may point anywhere, "
                          "and be changed after the bundle was checked): copy the file in and rebuild it")
    manifest = read_manifest(bundle)
    model = stamped_file(bundle, manifest).name
    if model not in manifest.files:
        raise BundleError(f"{bundle / MANIFEST}: does not list the model file {model}, so it would run unchecked; "
                          "rebuild the bundle with 'maskgate build'")
    files = {}
    for name, digest in manifest.files.items():
        data = read_bundle_file(bundle / name, bundle=bundle)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise BundleError(f"{bundle / name}: sha256 {actual[:12]}... does not match the manifest's "
                              f"{digest[:12]}...; the file was changed or corrupted, rebuild the bundle")
        files[name] = data
    check_binding(bundle, manifest, model=files[model])
    if key is not None:
        check_signature(bundle, manifest, key)
    return VerifiedBundle(bundle, manifest, MappingProxyType(files))


def verify_bundle(bundle: str | Path, *, key: BundleKey | None = None) -> Manifest:
    """The manifest of a bundle that verifies (``read_verified``)."""
    return read_verified(bundle, key=key).manifest


def sign_bundle(bundle: str | Path, key: BundleKey) -> Path:
    """Sign a bundle that verifies with ``key`` (a ``maskgate.converters.signing.BundleKey`` that can
    sign): ``signature.json`` is written beside its manifest, atomically."""
    bundle = Path(bundle)
    record = signature_record(verify_bundle(bundle), key)  # never sign what does not verify
    partial = bundle / f".{SIGNATURE}.partial"
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(bundle / SIGNATURE)
    return bundle / SIGNATURE


def verdict_problem(manifest: Mapping[str, Any]) -> str | None:
    """Why the build's recorded gate verdict does not let this bundle run (None: it passed)."""
    verdict = manifest.get("verdict")
    if not isinstance(verdict, dict):
        return ("never verified: its build did not record a gate verdict (interrupted?); run 'maskgate build' "
                "again")
    if verdict.get("passed") is not True:
        failures = "; ".join(str(f) for f in verdict.get("failures") or []) or "no reason recorded"
        return f"failed its gates when built ({failures})"
    return None


LOCK_FILE = ".maskgate-build.lock"
LEFTOVER_PATTERNS = (".*.partial-*", ".*.old-*", ".work-*")  # staging folders of a build that was killed


@contextmanager
def exclusive_folder(out: Path) -> Iterator[list[str]]:
    """Hold ``out`` for one build at a time (an advisory lock, where the OS offers one).
    With it held, staging folders left by a killed build are stale: they are removed and
    their names yielded, except an old bundle set aside by a replacement that did not
    finish, which is put back. A second build into the same folder fails instead of racing."""
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
        yield clear_leftovers(out)
    finally:
        if held:  # ours, and still held: no other build can be waiting on this file
            (out / LOCK_FILE).unlink(missing_ok=True)
        handle.close()  # releases the lock


def clear_leftovers(out: Path) -> list[str]:
    """Remove the staging folders of an interrupted build (call with the folder held);
    a bundle set aside as ``.NAME.old-*`` whose replacement never arrived is restored."""
    removed = []
    for pattern in LEFTOVER_PATTERNS:
        for leftover in sorted(out.glob(pattern)):
            if not leftover.is_dir():
                continue
            if pattern == ".*.old-*":
                original = out / leftover.name[1:].rsplit(".old-", 1)[0]
                if not original.exists():
                    leftover.rename(original)
                    log.warning("%s: restored the bundle set aside by an interrupted replacement", original)
                    continue
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover.name)
    return removed


@contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final``; on success it takes ``final``'s place (see ``replace_folder``)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        # mkdtemp makes 0700; a bundle is read by other accounts too (a camera's service user)
        tmp.chmod(0o777 & ~current_umask())
        yield tmp
        if not (tmp / MANIFEST).is_file():
            raise BundleError(f"{final}: no manifest was written; the bundle is not complete")
        replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``. An existing ``final`` is swapped out in one atomic
    exchange (Linux renameat2), so at every moment ``final`` is the whole old bundle or the
    whole new one; elsewhere it is first set aside as ``.NAME.old-*``, which the next build
    restores if the process dies before the new one is in place."""
    if not final.exists():
        new.rename(final)
        return
    if _exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)  # now the old bundle
        return
    old = final.with_name(f".{final.name}.old-{new.name[-8:]}")
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the OS or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc older than 2.28, or another libc
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not offered here
        return False
    raise OSError(errno, f"cannot swap {a} and {b}: {os.strerror(errno)}")


def write_manifest(folder: Path, written: Manifest) -> Manifest:
    """Hash every file the manifest lists (present in ``folder``; the digests ``written``
    carries are not trusted), stamp the manifest's digest into the model file, validate,
    and write the manifest last. Returns the manifest as a reader will see it."""
    links = links_inside(folder)
    if links:
        raise BundleError(f"{links[0]}: a symbolic link in a bundle being written; a bundle holds its own files")
    manifest: dict[str, Any] = json.loads(json.dumps(written.to_dict()))  # the digest is of what a reader will parse
    manifest["schema_version"] = SCHEMA_VERSION
    model = stamped_file(folder, manifest)
    names = list(manifest["files"])
    if model.name not in names:
        raise BundleError(f"{folder}: the manifest's files do not include the model file {model.name}")
    manifest["files"] = {name: sha256_file(folder / name) for name in names if name != model.name}
    validate_manifest({**manifest, "files": {**manifest["files"], model.name: "0" * 64}})
    digest = manifest_digest(manifest)
    current = read_stamp(manifest["format"], model).get(STAMP_KEY)
    if current is None:
        raise BundleError(f"{model}: the converter left no {STAMP_KEY} slot in the model's metadata")
    if current != digest:
        restamp(model, current, digest)
    manifest["files"] = {name: manifest["files"].get(name) or sha256_file(model) for name in names}
    partial = folder / f".{MANIFEST}.partial"  # a bundle whose manifest is rewritten is never left half-described
    partial.write_text(json.dumps(manifest, indent=1) + "\n")
    partial.replace(folder / MANIFEST)
    return Manifest.from_dict(manifest, where=str(folder / MANIFEST))


def update_manifest(bundle: Path, changes: dict[str, Any]) -> Manifest:
    """Set ``changes`` (fields of ``Manifest``: ``verdict``, ``accuracy_aware``, ...) in a
    finished bundle's manifest: on a copy, rehashed, restamped and swapped in whole (a
    signature, which no longer holds, is dropped). Returns the new manifest."""
    bundle = Path(bundle)
    with staging(bundle) as tmp:
        shutil.copytree(bundle, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(SIGNATURE, ".*"))
        current = read_manifest(tmp)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(current)} - {"source", "extra"})
        if unknown:
            raise ValueError(f"not manifest fields: {', '.join(unknown)}")
        manifest = write_manifest(tmp, dataclasses.replace(current, source={}, **changes))
    return manifest
