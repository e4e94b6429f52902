"""A release: which bundles a set of verified builds holds, per model and per target device.

The description (``releases/<version>.json`` in the repository) is what a camera reads to
choose what to fetch: each bundle's model, format, precision, chip (NPU formats are built
per SoC), the gate verdict its build recorded, and every file with its sha256 and length
(the repository stores each file once, under its hash). Only bundles that verify (every
file matches its manifest, the model is the one stamped) and passed their gates go in.
"""
from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ReleaseError

VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
CHANNELS = ("stable", "canary")
SIGNATURE_FILE = "signature.json"


@dataclass(frozen=True)
class ReleasedFile:
    path: str  # the target path in the repository: bundles/<bundle>/<file>
    sha256: str
    length: int


@dataclass(frozen=True)
class ReleasedBundle:
    name: str
    model: str
    format: str
    precision: str
    soc: str | None
    verdict: dict
    files: dict[str, ReleasedFile]  # file name in the bundle -> where it is stored

    @property
    def bytes(self) -> int:
        return sum(f.length for f in self.files.values())


@dataclass(frozen=True)
class Release:
    version: str
    channel: str
    created: str
    bundles: tuple[ReleasedBundle, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def models(self) -> list[str]:
        return sorted({b.model for b in self.bundles})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, *, source: str) -> Release:
        try:
            bundles = tuple(
                ReleasedBundle(name=b["name"], model=b["model"], format=b["format"], precision=b["precision"],
                               soc=b.get("soc"), verdict=dict(b.get("verdict") or {}),
                               files={n: ReleasedFile(**f) for n, f in b["files"].items()})
                for b in data["bundles"])
            return cls(version=str(data["version"]), channel=str(data["channel"]), created=str(data["created"]),
                       bundles=bundles, notes=tuple(data.get("notes") or ()))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ReleaseError(f"{source}: not a MaskGate release description ({type(exc).__name__}: {exc}); "
                               "was it written by 'maskgate release'?") from exc

    def content_key(self) -> str:
        """What the release holds, independent of when it was made: the same bundles give the same key."""
        parts = sorted(f"{b.name}/{n}:{f.sha256}" for b in self.bundles for n, f in b.files.items())
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def check_version(version: str) -> str:
    if not VERSION.fullmatch(version or ""):
        raise ReleaseError(f"release version {version!r}: use letters, digits and . _ + - (at most 64), "
                           "e.g. 2026.12.1")
    return version


def bundle_files(folder: Path, manifest) -> list[str]:
    """The files of a bundle a camera needs: the manifest, the files it lists, the signature."""
    names = ["manifest.json", *sorted(manifest.files)]
    if (folder / SIGNATURE_FILE).is_file():
        names.append(SIGNATURE_FILE)
    return names


def describe(builds: str | Path, *, version: str, channel: str, key=None) -> tuple[Release, dict[str, Path]]:
    """The release of every bundle under ``builds``, and where each target path's bytes are.
    A bundle that does not verify, or failed its gates, stops the release: a site never ships one.
    With ``key`` (the site's signing key), a bundle not signed by it is signed first, as
    'maskgate sign' does: cameras whose [trust] names the key run only signed bundles."""
    from maskgate.converters.bundle import sign_bundle, verdict_problem, verify_bundle
    from maskgate.runtimes.select import readable_bundles

    check_version(version)
    if channel not in CHANNELS:
        raise ReleaseError(f"channel {channel!r}: choose one of {', '.join(CHANNELS)}")
    found = readable_bundles(builds)
    if not found:
        raise ReleaseError(f"{builds}: no bundles to release; build them with 'maskgate build --out {builds}'")
    problems, bundles, sources = [], [], {}
    for folder, _ in found:
        try:
            manifest = verify_bundle(folder)
            if key is not None and not _signed_by(folder, manifest, key):
                sign_bundle(folder, key)
        except Exception as exc:  # whatever is wrong, the bundle is not shipped
            problems.append(f"{folder.name}: {exc}")
            continue
        problem = verdict_problem(manifest.to_dict())
        if problem is not None:
            problems.append(f"{folder.name}: {problem}")
            continue
        files = {}
        for name in bundle_files(folder, manifest):
            data = (folder / name).read_bytes()
            path = f"bundles/{folder.name}/{name}"
            files[name] = ReleasedFile(path=path, sha256=hashlib.sha256(data).hexdigest(), length=len(data))
            sources[path] = folder / name
        bundles.append(ReleasedBundle(name=folder.name, model=manifest.model, format=manifest.format,
                                      precision=manifest.precision, soc=manifest.soc,
                                      verdict=dict(manifest.verdict or {}), files=files))
    if problems:
        raise ReleaseError(f"{builds}: {len(problems)} bundle(s) cannot be released: " + "; ".join(problems)
                           + "; rebuild them, or release a folder without them")
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Release(version=version, channel=channel, created=created, bundles=tuple(bundles)), sources


def _signed_by(folder: Path, manifest, key) -> bool:
    from maskgate.converters.signing import check_signature

    try:
        check_signature(folder, manifest.to_dict(), key)
        return True
    except Exception:
        return False
