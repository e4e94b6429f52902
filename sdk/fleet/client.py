"""The camera's side of a release repository: python-tuf's updater, trusting the site's key.

The camera trusts what its ``[trust] verify_key`` (the site's Ed25519 public key) signs. On
the first contact the repository's first root must be signed by that key and name it as
the root key; from then on the updater keeps the root it trusts in its own folder and
follows rotations signed by the old root. Everything else is TUF's: a timestamp that has
expired (a frozen or replayed repository) or a version older than the one already seen
(a rollback) is refused, and every downloaded file must match its length and sha256.
Each refusal is one ``ReleaseError`` line naming the repository and what was wrong.

The repository may be a ``file://`` folder too: the mirror a deployment server (hawkBit) delivered
inside a ``.swu`` (``swu.py``), verified exactly as a served one.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DependencyError, ReleaseError
from .release import Release
from .rollout import ROLLOUT_TARGET, RolloutPlan

if TYPE_CHECKING:
    from tuf.api.metadata import TargetFile
    from tuf.ngclient import Updater

log = logging.getLogger(__name__)


def _tuf():
    try:
        from securesystemslib.signer import SSlibKey
        from tuf.api import exceptions
        from tuf.api.metadata import Metadata
        from tuf.ngclient import Updater, UpdaterConfig
    except ModuleNotFoundError as exc:
        raise DependencyError("tuf", extra="fleet", purpose="the camera's agent (release repositories)") from exc
    return Updater, UpdaterConfig, Metadata, SSlibKey, exceptions


def _refusal(url: str, exc: Exception, *, path: str | None = None) -> ReleaseError:
    """One line a site reads for whatever the updater refused or could not fetch (``path``: the file)."""
    _, _, _, _, exceptions = _tuf()
    kind = type(exc).__name__
    if isinstance(exc, exceptions.ExpiredMetadataError):
        why = f"its metadata has expired ({exc}): the repository is frozen or replayed; refresh it with " \
              "'maskgate rollout REPO --refresh'"
    elif isinstance(exc, exceptions.BadVersionNumberError):
        why = f"it serves an older version than this camera has seen ({exc}): a replayed repository"
    elif isinstance(exc, exceptions.UnsignedMetadataError):
        why = f"its metadata is not signed by the keys this camera trusts ({exc})"
    elif isinstance(exc, exceptions.LengthOrHashMismatchError):
        why = f"{path or 'a file'} does not match its signed length or sha256 ({exc}): truncated or tampered"
    elif isinstance(exc, exceptions.DownloadError):
        why = f"cannot fetch {path or 'from it'} ({kind}: {exc})"
    elif isinstance(exc, exceptions.RepositoryError):
        why = f"refused ({kind}: {exc})"
    else:
        why = f"{kind}: {exc}"
    return ReleaseError(f"{url}: {why}")


def _local_fetcher():
    """A TUF fetcher for ``file://`` URLs (a missing file answers as a server's 404 would)."""
    from urllib.parse import unquote, urlparse

    from tuf.api import exceptions
    from tuf.ngclient import FetcherInterface

    class LocalFetcher(FetcherInterface):
        def _fetch(self, url: str):
            path = Path(unquote(urlparse(url).path))
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                raise exceptions.DownloadHTTPError(f"{path}: no such file", 404) from None
            except OSError as exc:
                raise exceptions.DownloadError(f"{path}: {exc}") from exc
            with handle:
                while block := handle.read(1 << 20):
                    yield block

    return LocalFetcher()


class RepositoryClient:
    """``url``: the repository's base (``metadata/`` and ``targets/`` below it); ``folder``:
    this camera's trusted metadata; ``verify_key``: a ``BundleKey`` (Ed25519 public) the
    first root must be signed by."""

    def __init__(self, url: str, folder: str | Path, *, verify_key):
        self.url = url.rstrip("/")
        self.folder = Path(folder)
        self.verify_key = verify_key
        self._updater: Updater | None = None

    def _bootstrap(self) -> bytes | None:
        """None when this camera already trusts a root; else the repository's first root,
        checked against the site key."""
        if (self.folder / "root.json").is_file():
            return None
        import urllib.request

        Updater, _, Metadata, SSlibKey, _ = _tuf()
        if self.verify_key is None or self.verify_key.algorithm != "ed25519":
            raise ReleaseError(f"{self.url}: the agent needs [trust] verify_key, the site's Ed25519 public key, "
                               "to know which repository to trust")
        url = f"{self.url}/metadata/1.root.json"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read(512_000)
        except OSError as exc:
            raise ReleaseError(f"{url}: cannot fetch the repository's first root ({exc})") from exc
        key = SSlibKey.from_crypto(self.verify_key._public)
        try:
            root = Metadata.from_bytes(data)
            signature = root.signatures[key.keyid]
            key.verify_signature(signature, root.signed_bytes)
        except KeyError:
            raise ReleaseError(f"{url}: not signed by the site key this camera trusts ({self.verify_key.path}); "
                               "a repository of another site, or the wrong verify_key") from None
        except Exception as exc:
            raise ReleaseError(f"{url}: its signature by the trusted key does not verify ({exc})") from exc
        if key.keyid not in root.signed.roles["root"].keyids:
            raise ReleaseError(f"{url}: the trusted key signed it but is not its root key; refused")
        return data

    def refresh(self) -> None:
        """Fetch the newest metadata the repository serves (timestamp, snapshot, targets)."""
        Updater, UpdaterConfig, _, _, _ = _tuf()
        self.folder.mkdir(parents=True, exist_ok=True)
        bootstrap = self._bootstrap()
        try:
            fetcher = _local_fetcher() if self.url.startswith("file://") else None
            updater = Updater(metadata_dir=str(self.folder), metadata_base_url=f"{self.url}/metadata/",
                              target_base_url=f"{self.url}/targets/", fetcher=fetcher,
                              config=UpdaterConfig(app_user_agent="maskgate-agent"), bootstrap=bootstrap)
            updater.refresh()
            self._updater = updater
        except ReleaseError:
            raise
        except Exception as exc:
            self._updater = None
            raise _refusal(self.url, exc) from exc

    def _refreshed(self) -> Updater:
        if self._updater is None:
            self.refresh()
        assert self._updater is not None  # refresh() sets it or raises
        return self._updater

    def _info(self, path: str) -> TargetFile | None:
        updater = self._refreshed()
        try:
            return updater.get_targetinfo(path)
        except Exception as exc:
            raise _refusal(self.url, exc) from exc

    def fetch(self, path: str, destination: str | Path) -> int:
        """Download ``path`` to ``destination`` (verified); its length."""
        info = self._info(path)
        if info is None:
            raise ReleaseError(f"{self.url}: no file {path!r} in its signed targets")
        destination = Path(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        try:
            self._refreshed().download_target(info, filepath=str(partial))
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise _refusal(self.url, exc, path=path) from exc
        partial.replace(destination)
        return info.length

    def _json(self, path: str) -> dict | None:
        import tempfile

        if self._info(path) is None:
            return None
        with tempfile.TemporaryDirectory(prefix="maskgate-agent-") as tmp:
            target = Path(tmp) / "doc.json"
            self.fetch(path, target)
            try:
                return json.loads(target.read_text())
            except ValueError as exc:
                raise ReleaseError(f"{self.url}: {path} is not JSON ({exc})") from exc

    def rollout(self) -> RolloutPlan:
        data = self._json(ROLLOUT_TARGET)
        return RolloutPlan.from_dict(data) if data else RolloutPlan()

    def release(self, version: str) -> Release:
        path = f"releases/{version}.json"
        data = self._json(path)
        if data is None:
            raise ReleaseError(f"{self.url}: the rollout names release {version} but its description {path} is "
                               "not in the signed targets")
        return Release.from_dict(data, source=f"{self.url}/{path}")
