"""A release as one SWUpdate image (``.swu``), for sites that roll out through a deployment
server (Eclipse hawkBit, goosebit) instead of the static repository.

The image is a cpio archive in SWUpdate's format (``070702``: newc with a checksum per file),
``sw-description`` first (libconfig: the release's version, what a server shows and parses),
then a minimal mirror of the release repository: every root version, the current timestamp,
snapshot and targets metadata, the release's description, the rollout plan and each file
of the release's bundles under its stored (hash-prefixed) name. Unpacked, it is a repository
the camera verifies as it verifies the served one (signatures, expiry, versions, every
file's sha256): the deployment server moves the bytes, the site key vouches for them.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ReleaseError

MAGIC = b"070702"
TRAILER = "TRAILER!!!"
DESCRIPTION = "sw-description"
_MODE_FILE = 0o100644


@dataclass(frozen=True)
class SwuImage:
    path: Path
    version: str
    files: int
    size_bytes: int


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(name: str, size: int, checksum: int, ino: int) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, _MODE_FILE, 0, 0, 1, 0, size, 0, 0, 0, 0, len(encoded), checksum)
    header = MAGIC + b"".join(f"{value:08X}".encode() for value in fields)
    return header + encoded + _pad(len(header) + len(encoded))


def description(version: str, *, hardware: tuple[str, ...] = ()) -> str:
    """``sw-description``: the release's version and, where given, the boards it is for."""
    compatible = ", ".join(f'"{h}"' for h in hardware)
    board = f"\n    hardware-compatibility: [ {compatible} ];" if hardware else ""
    return (f'software =\n{{\n    version = "{version}";\n    description = "MaskGate release {version}";{board}\n'
            f'    maskgate = {{ release = "{version}"; layout = 1; }};\n}};\n')


def release_files(repo, version: str) -> list[tuple[str, Path]]:
    """(name in the image, file) of the repository mirror a camera needs to verify ``version``."""
    root, targets, snapshot, timestamp = repo.current()
    release = repo.release(version, targets)
    if release is None:
        raise ReleaseError(f"{repo.root}: no release {version!r} (release it first with 'maskgate release')")
    meta = repo.root / "metadata"
    names = [f"{n}.root.json" for n in range(1, root.signed.version + 1)] + [
        "root.json", "timestamp.json", f"{snapshot.signed.version}.snapshot.json",
        f"{targets.signed.version}.targets.json"]
    files = [(f"metadata/{name}", meta / name) for name in names]
    wanted = {f"releases/{version}.json", "rollout.json"} | {f.path for b in release.bundles for f in b.files.values()}
    for path in sorted(wanted):
        info = targets.signed.targets.get(path)
        if info is None:
            raise ReleaseError(f"{repo.root}: {path} is not in the signed targets")
        stored = repo.stored_path(path, info.hashes["sha256"])
        files.append((f"targets/{PurePosixPath(stored.relative_to(repo.root / 'targets'))}", stored))
    for _, file in files:
        if not file.is_file():
            raise ReleaseError(f"{file}: missing from the repository (expected for release {version})")
    return files


def write_swu(repo, version: str, out: str | Path, *, hardware: tuple[str, ...] = ()) -> SwuImage:
    """Write release ``version`` of ``repo`` (a ``ReleaseRepository``) as one ``.swu`` at ``out``,
    atomically (a partial file never carries the final name)."""
    out = Path(out)
    entries = [(DESCRIPTION, description(version, hardware=hardware).encode())] + release_files(repo, version)
    partial = out.with_name(f".{out.name}.partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(partial, "wb") as sink:
            for ino, (name, source) in enumerate(entries, start=1):
                data = source if isinstance(source, bytes) else Path(source).read_bytes()
                sink.write(_header(name, len(data), sum(data) & 0xFFFFFFFF, ino))
                sink.write(data + _pad(len(data)))
            sink.write(_header(TRAILER, 0, 0, 0))
            sink.flush()
            os.fsync(sink.fileno())
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return SwuImage(out, version, len(entries), out.stat().st_size)


def entries(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each file of a ``.swu``, each checked against its cpio checksum."""
    path = Path(path)
    with open(path, "rb") as source:
        while True:
            header = source.read(110)
            if len(header) < 110 or header[:6] not in (MAGIC, b"070701"):
                raise ReleaseError(f"{path}: not an SWUpdate image (cpio 070702) or cut short at byte "
                                   f"{source.tell() - len(header)}")
            try:
                fields = [int(header[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
            except ValueError:
                raise ReleaseError(f"{path}: a corrupt cpio header at byte {source.tell() - 110}") from None
            size, name_size, checksum = fields[6], fields[11], fields[12]
            name = source.read(name_size)[:-1].decode(errors="replace")
            source.read(-(110 + name_size) % 4)
            if name == TRAILER:
                return
            data = source.read(size)
            source.read(-size % 4)
            if len(data) != size:
                raise ReleaseError(f"{path}: {name} is cut short ({len(data)} of {size} bytes)")
            if header[:6] == MAGIC and sum(data) & 0xFFFFFFFF != checksum:
                raise ReleaseError(f"{path}: {name} does not match its checksum: the image is corrupt")
            yield name, data


def unpack_swu(path: str | Path, folder: str | Path) -> tuple[str, Path]:
    """Unpack a MaskGate ``.swu`` into ``folder`` (a repository mirror); its release's version
    and the folder. Names that would leave the folder are refused."""
    folder = Path(folder)
    version = None
    for name, data in entries(path):
        if name == DESCRIPTION:
            version = _version(data.decode(errors="replace"), path)
            continue
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or pure.parts[:1] not in (("metadata",), ("targets",)):
            raise ReleaseError(f"{path}: entry {name!r} is outside metadata/ and targets/; refused")
        destination = folder.joinpath(*pure.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
    if version is None:
        raise ReleaseError(f"{path}: no {DESCRIPTION}: not a MaskGate release image")
    return version, folder


def _version(text: str, path) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("maskgate") and "release" in line:
            return line.split('release = "', 1)[1].split('"', 1)[0]
    raise ReleaseError(f"{path}: its {DESCRIPTION} names no MaskGate release (made by another tool?)")
