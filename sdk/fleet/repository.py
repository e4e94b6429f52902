"""A release repository: TUF metadata (python-tuf) over content-addressed files, static.

Layout (served as is by nginx, any static HTTP server or an S3 bucket)::

    metadata/1.root.json  root.json     the keys of every role (the camera is given it, or checks it
                                        against its [trust] verify_key)
    metadata/N.targets.json             every file of every release: length and sha256
    metadata/N.snapshot.json            the version of targets
    metadata/timestamp.json             the version and hash of snapshot; short expiry
    targets/bundles/<bundle>/<sha256>.<file>   each bundle file, stored once under its hash
    targets/releases/<sha256>.<version>.json   a release's description (release.py)
    targets/<sha256>.rollout.json              who may take which release (rollout.py)

Consistent snapshots: a camera reading while a release is written sees the old set or the new
one, never half; new metadata versions are written before the timestamp that points at them.
One Ed25519 site key signs all four roles (the key ``maskgate keygen`` makes, which already
signs the bundles); a site that wants the timestamp key on an online server can rotate it in.
"""
from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import DependencyError, ReleaseError
from .release import Release
from .rollout import ROLLOUT_TARGET, RolloutPlan

ROLES = ("root", "targets", "snapshot", "timestamp")
EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 30, "timestamp": 7}
LOCK = ".maskgate-release.lock"


def _tuf():
    try:
        from securesystemslib.signer import CryptoSigner, SSlibKey
        from tuf.api import metadata
    except ModuleNotFoundError as exc:
        raise DependencyError("tuf", extra="fleet", purpose="release repositories") from exc
    return metadata, CryptoSigner, SSlibKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def canonical(data: dict) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=1) + "\n").encode()


@dataclass
class Stored:
    """What writing a release did: files stored anew, and those already there (same hash)."""

    new_files: int = 0
    new_bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0


class ReleaseRepository:
    """A repository folder and the site key that signs it."""

    def __init__(self, root: str | Path, key, *, expiry_days: dict[str, int] | None = None):
        """``key``: a ``maskgate.converters.signing.BundleKey`` (an Ed25519 private key)."""
        if key.algorithm != "ed25519" or not key.can_sign:
            raise ReleaseError(f"{key.path}: releases are signed with an Ed25519 private key (TUF metadata "
                               "is public: an HMAC secret would let every camera sign); make one with "
                               "'maskgate keygen site.key'")
        metadata, crypto_signer, sslib_key = _tuf()
        self.root = Path(root)
        self.meta_dir = self.root / "metadata"
        self.targets_dir = self.root / "targets"
        self.public = sslib_key.from_crypto(key._public)
        self.signer = crypto_signer(key._private, self.public)
        self.key = key
        self.expiry_days = {**EXPIRY_DAYS, **(expiry_days or {})}
        self._m = metadata

    # -- reading ------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.meta_dir / "timestamp.json").is_file()

    def _load(self, name: str):
        path = self.meta_dir / name
        try:
            return self._m.Metadata.from_file(str(path))
        except (OSError, ValueError) as exc:
            raise ReleaseError(f"{path}: cannot read this repository's metadata ({exc}); is {self.root} a "
                               "MaskGate release repository?") from exc

    def current(self):
        """(root, targets, snapshot, timestamp) Metadata as the repository serves them now."""
        timestamp = self._load("timestamp.json")
        snapshot = self._load(f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
        targets = self._load(f"{snapshot.signed.meta['targets.json'].version}.targets.json")
        root = self._load("root.json")
        return root, targets, snapshot, timestamp

    def read_target(self, targets, path: str) -> bytes | None:
        info = targets.signed.targets.get(path)
        if info is None:
            return None
        return self.stored_path(path, info.hashes["sha256"]).read_bytes()

    def rollout(self, targets=None) -> RolloutPlan:
        targets = targets if targets is not None else self.current()[1]
        data = self.read_target(targets, ROLLOUT_TARGET)
        return RolloutPlan.from_dict(json.loads(data)) if data else RolloutPlan()

    def release(self, version: str, targets=None) -> Release | None:
        targets = targets if targets is not None else self.current()[1]
        data = self.read_target(targets, f"releases/{version}.json")
        return Release.from_dict(json.loads(data), source=f"releases/{version}.json") if data else None

    def stored_path(self, path: str, sha256: str) -> Path:
        folder, _, name = path.rpartition("/")
        return self.targets_dir / folder / f"{sha256}.{name}"

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time (a second 'maskgate release' on the same repository waits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _expires(self, role: str) -> datetime.datetime:
        return _now() + datetime.timedelta(days=self.expiry_days[role])

    def _write(self, md, name: str) -> bytes:
        md.signatures.clear()
        md.sign(self.signer)
        data = md.to_bytes()
        path = self.meta_dir / name
        tmp = path.with_name(f".{name}.partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def create(self) -> None:
        """A new repository whose four roles the site key signs."""
        m = self._m
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        root = m.Metadata(m.Root(expires=self._expires("root"), consistent_snapshot=True))
        for role in ROLES:
            root.signed.add_key(self.public, role)
        data = self._write(root, "1.root.json")
        (self.meta_dir / "root.json").write_bytes(data)
        targets = m.Metadata(m.Targets(version=1, expires=self._expires("targets")))
        self._commit(targets, snapshot_version=0, timestamp_version=0)

    def _check_key(self, root) -> None:
        for role in ("targets", "snapshot", "timestamp"):
            if self.public.keyid not in root.signed.roles[role].keyids:
                raise ReleaseError(f"{self.root}: its {role} role is signed by another key; give the key this "
                                   f"repository was made with (this one is {self.key.path})")

    def _commit(self, targets, *, snapshot_version: int, timestamp_version: int) -> None:
        """Write targets, then the snapshot naming it, then the timestamp naming that (last, atomic)."""
        m = self._m
        targets.signed.expires = self._expires("targets")
        self._write(targets, f"{targets.signed.version}.targets.json")
        snapshot = m.Metadata(m.Snapshot(version=snapshot_version + 1, expires=self._expires("snapshot"),
                                         meta={"targets.json": m.MetaFile(version=targets.signed.version)}))
        data = self._write(snapshot, f"{snapshot.signed.version}.snapshot.json")
        meta = m.MetaFile(version=snapshot.signed.version, length=len(data),
                          hashes={"sha256": hashlib.sha256(data).hexdigest()})
        timestamp = m.Metadata(m.Timestamp(version=timestamp_version + 1, expires=self._expires("timestamp"),
                                           snapshot_meta=meta))
        self._write(timestamp, "timestamp.json")

    def _store(self, targets, path: str, source: Path | bytes, stored: Stored) -> None:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        dst = self.stored_path(path, digest)
        if dst.is_file() and dst.stat().st_size == len(data):
            stored.kept_files += 1
            stored.kept_bytes += len(data)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.partial")
            tmp.write_bytes(data)
            os.replace(tmp, dst)
            stored.new_files += 1
            stored.new_bytes += len(data)
        targets.signed.targets[path] = self._m.TargetFile(length=len(data), hashes={"sha256": digest}, path=path)

    def _update(self, change) -> Stored:
        """Run ``change(targets, stored)`` on the current targets and publish the result."""
        with self.locked():
            if not self.exists():
                self.create()
            root, targets, snapshot, timestamp = self.current()
            self._check_key(root)
            stored = Stored()
            change(targets, stored)
            targets.signed.version += 1
            self._commit(targets, snapshot_version=snapshot.signed.version,
                         timestamp_version=timestamp.signed.version)
            return stored

    def add(self, release: Release, sources: dict[str, Path], *, percent: float | None = None,
            groups: tuple[str, ...] = ()) -> Stored:
        """Publish ``release`` (its files from ``sources``: target path -> file), admitted to
        ``percent`` of its channel (a new release: none until 'maskgate rollout') and to
        ``groups``. The same version with other content is refused; with the same content,
        nothing is stored again."""
        from .rollout import ReleasePlan

        def change(targets, stored: Stored) -> None:
            old = self.release(release.version, targets)
            if old is not None and old.content_key() != release.content_key():
                raise ReleaseError(f"{self.root}: release {release.version} exists with other bundles; "
                                   "give the new set a new --version")
            plan = self.rollout(targets)
            for bundle in release.bundles:
                for file in bundle.files.values():
                    self._store(targets, file.path, sources[file.path], stored)
            if old is None:
                self._store(targets, f"releases/{release.version}.json", canonical(release.to_dict()), stored)
            entry = plan.get(release.version) or ReleasePlan(version=release.version, sequence=plan.next_sequence(),
                                                              channel=release.channel)
            plan = plan.with_release(entry).changed(release.version, percent=percent, groups=groups or None)
            self._store(targets, ROLLOUT_TARGET, canonical(plan.to_dict()), stored)

        return self._update(change)

    def set_rollout(self, version: str, **changes) -> RolloutPlan:
        """Change who may take ``version`` (``RolloutPlan.changed``'s keywords)."""
        result = {}

        def change(targets, stored: Stored) -> None:
            plan = self.rollout(targets).changed(version, **changes)
            self._store(targets, ROLLOUT_TARGET, canonical(plan.to_dict()), stored)
            result["plan"] = plan

        self._update(change)
        return result["plan"]

    def refresh(self) -> None:
        """New targets, snapshot and timestamp with fresh expiry, nothing else changed: run it
        more often than the timestamp's expiry (7 days), or cameras refuse the frozen metadata."""
        self._update(lambda targets, stored: None)

    def copy_root_to(self, path: str | Path) -> Path:
        """The trusted root a camera is provisioned with."""
        return Path(shutil.copyfile(self.meta_dir / "root.json", path))
