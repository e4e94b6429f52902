"""Files: written whole or not at all, readable by the accounts that should read them."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

try:
    import pwd  # imported here: the account name is looked up where the interpreter's own files may be unreadable
except ImportError:  # not on Windows
    pwd = None  # type: ignore[assignment]

from .errors import BundleError, OutputError


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden partial file: a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


def permission_denied(path: Path, bundle: Path) -> BundleError:
    """A file this account may not read: the bundle may be fine, so no advice to rebuild it."""
    return BundleError(f"{path}: permission denied for {_account()}; make the bundle readable by this "
                       f"account (e.g. chmod -R a+rX {bundle}) or run as its owner")


def current_umask() -> int:
    """The process's umask, read without changing it where /proc says it (Linux), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _account() -> str:
    uid = os.geteuid()
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (AttributeError, KeyError):
        return f"uid {uid}"


def writable_folder(path: str | Path, *, what: str, flag: str, wanted: str = "a folder you can write to") -> Path:
    """``path``, created if need be, after writing a probe file in it: a folder that cannot
    take ``what`` fails here in one line naming ``flag``, before any work is done."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(20, "a file, not a folder")
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".maskgate-write-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write {what} here ({exc.strerror or exc}); give {flag} {wanted}") from None
    return path


def writable_file(path: str | Path, *, what: str, flag: str) -> Path:
    """``path`` as a file to write: its folder takes files, and no folder stands in its place."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give {flag} a file name for {what}")
    writable_folder(path.parent, what=what, flag=flag, wanted="a file in a folder you can write to")
    return path


#: a manifest or a signature is a few kB; anything this large is not one (and is not parsed)
MAX_JSON_BYTES = 8 << 20


def read_bundle_file(path: Path, *, bundle: Path, limit: int | None = None) -> bytes:
    """The bytes of a regular file inside ``bundle``, read through one descriptor opened without
    following a symbolic link: what is hashed is what runs, whatever the path points at later."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BundleError(f"{path}: listed in the manifest but missing; the bundle is incomplete, rebuild it") from None
    except PermissionError:
        raise permission_denied(path, bundle) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BundleError(f"{path}: a symbolic link; a bundle holds its own files (a link may point anywhere, "
                              "and be changed after the bundle was checked): copy the file in and rebuild it") from None
        raise BundleError(f"{path}: cannot be read ({exc.strerror or exc}); rebuild the bundle") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path}: not a regular file; a bundle holds plain files only, rebuild it")
        if limit is not None and info.st_size > limit:
            raise BundleError(f"{path}: {info.st_size} bytes, more than the {limit} a MaskGate {path.name} can be; "
                              "rebuild the bundle")
        return handle.read()


def parse_bundle_json(data: bytes, *, path: Path) -> object:
    """JSON from a bundle's file; anything that is not JSON a MaskGate tool writes is a BundleError."""
    try:
        return json.loads(data)
    except RecursionError:  # 50 000 nested brackets: no MaskGate file nests more than a few levels
        raise BundleError(f"{path}: nested too deeply to be a MaskGate {path.name}; rebuild the bundle") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: unreadable or not JSON ({exc}); rebuild the bundle") from None


def links_inside(folder: Path) -> list[Path]:
    """Symbolic links anywhere under ``folder`` (not followed)."""
    found = []
    for root, dirs, files in os.walk(folder):
        found += [Path(root) / name for name in (*dirs, *files) if (Path(root) / name).is_symlink()]
    return found
