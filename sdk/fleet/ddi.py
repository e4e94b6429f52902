"""Eclipse hawkBit's Direct Device Integration API, the camera's side (what goosebit serves too).

The calls (``{base}/{tenant}/controller/v1/{controller}``):

    GET  .                               the poll: the server's sleep, and links (configData,
                                         deploymentBase, cancelAction) to what it wants now
    PUT  ./configData                    the camera's attributes (board, release running)
    GET  ./deploymentBase/{action}       the deployment: chunks, each with artifacts (size, hashes, links)
    POST ./deploymentBase/{action}/feedback   execution proceeding | closed, result none | success |
                                         failure, progress {cnt, of}, details (lines the server shows)

(cancelAction is not handled: goosebit never sends one.)

Errors are one ``ReleaseError`` line naming the URL; a server that cannot be reached is a
``DdiUnreachable`` (the agent keeps its set and backs off).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ReleaseError

HASHES = ("sha256", "sha1", "md5")  # the strongest one the server gives is checked
_CHUNK = 1 << 20


class DdiUnreachable(ReleaseError):
    """The server did not answer (or answered 5xx): retried with backoff."""


@dataclass(frozen=True)
class Artifact:
    filename: str
    size: int
    hashes: dict[str, str]
    url: str


@dataclass(frozen=True)
class Deployment:
    action: str
    artifacts: tuple[Artifact, ...]


@dataclass(frozen=True)
class Poll:
    sleep_s: float | None
    config_data: str | None  # href: the server asks for the camera's attributes
    deployment: str | None  # href of the deployment base


def parse_sleep(text: str | None) -> float | None:
    """hawkBit's "HH:MM:SS" -> seconds."""
    if not text or not re.fullmatch(r"\d+:\d{2}:\d{2}", text):
        return None
    hours, minutes, seconds = (int(part) for part in text.split(":"))
    return float(hours * 3600 + minutes * 60 + seconds)


class DdiClient:
    def __init__(self, base: str, controller: str, *, tenant: str = "DEFAULT", token: str | None = None,
                 timeout_s: float = 30.0):
        """``base``: the server's URL (http://host:port); ``controller``: this camera's id there;
        ``token``: its target token (sent as ``Authorization: TargetToken ...``), or None."""
        self.base = base.rstrip("/")
        self.controller = controller
        self.tenant = tenant
        self.url = f"{self.base}/{tenant}/controller/v1/{controller}"
        self.token = token
        self.timeout_s = timeout_s

    # -- HTTP -------------------------------------------------------------------------------------
    def _request(self, url: str, *, method: str = "GET", body: dict | None = None, stream: bool = False):
        headers = {"Accept": "application/json", "User-Agent": "maskgate-agent"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"TargetToken {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout_s)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode(errors="replace").strip()
            if exc.code >= 500:
                raise DdiUnreachable(f"{url}: the server failed (HTTP {exc.code}: {detail})") from None
            hint = {401: "; is [agent] hawkbit_token_env set to this camera's target token?",
                    404: "; is the URL the server's base and the tenant right?"}.get(exc.code, "")
            raise ReleaseError(f"{url}: HTTP {exc.code} {exc.reason} ({detail}){hint}") from None
        except (OSError, ValueError) as exc:
            raise DdiUnreachable(f"{url}: cannot reach the deployment server ({exc})") from None

    def _json(self, url: str, *, method: str = "GET", body: dict | None = None) -> dict:
        with self._request(url, method=method, body=body) as response:
            text = response.read(4_000_000)
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ReleaseError(f"{url}: the server's answer is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ReleaseError(f"{url}: the server's answer is not a JSON object")
        return data

    # -- the calls ----------------------------------------------------------------------------------
    def poll(self) -> Poll:
        data = self._json(self.url)
        links = data.get("_links") or {}

        def href(name):
            return (links.get(name) or {}).get("href")

        sleep = ((data.get("config") or {}).get("polling") or {}).get("sleep")
        return Poll(sleep_s=parse_sleep(sleep), config_data=href("configData"), deployment=href("deploymentBase"))

    def put_config(self, attributes: dict[str, str]) -> None:
        self._json(f"{self.url}/configData", method="PUT",
                   body={"mode": "merge", "data": {k: str(v) for k, v in attributes.items()}})

    def deployment(self, href: str) -> Deployment:
        data = self._json(href)
        action = str(data.get("id") or href.rstrip("/").rsplit("/", 1)[-1].split("?")[0])
        chunks = ((data.get("deployment") or {}).get("chunks")) or []
        artifacts = []
        for chunk in chunks:
            for art in chunk.get("artifacts") or []:
                links = art.get("_links") or {}
                url = (links.get("download") or links.get("download-http") or {}).get("href")
                if not url:
                    raise ReleaseError(f"{href}: artifact {art.get('filename')!r} has no download link")
                hashes = {k: str(v).lower() for k, v in (art.get("hashes") or {}).items()}
                artifacts.append(Artifact(filename=str(art.get("filename") or "artifact"),
                                          size=int(art.get("size") or 0), hashes=hashes, url=url))
        if not artifacts:
            raise ReleaseError(f"{href}: the deployment has no artifact (an empty distribution?)")
        return Deployment(action=action, artifacts=tuple(artifacts))

    def feedback(self, action: str, *, execution: str, finished: str = "none", progress: tuple[int, int] | None = None,
                 details: list[str] | tuple[str, ...] = ()) -> None:
        """``execution``: proceeding | closed | ...; ``finished``: none | success | failure."""
        result: dict = {"finished": finished}
        if progress is not None:
            result["progress"] = {"cnt": progress[0], "of": progress[1]}
        status = {"execution": execution, "result": result, "details": [d for d in details if d]}
        self._json(f"{self.url}/deploymentBase/{action}/feedback", method="POST",
                   body={"id": action, "status": status})

    def download(self, artifact: Artifact, destination: Path) -> int:
        """The artifact to ``destination`` (written whole or not at all), checked against its size
        and the strongest hash the server gave; its size."""
        algorithm = next((name for name in HASHES if name in artifact.hashes), None)
        if algorithm is None:
            raise ReleaseError(f"{artifact.url}: the server gives no sha256, sha1 or md5 of {artifact.filename}; "
                               "refused (an artifact must be checkable before it is unpacked)")
        digest = hashlib.new(algorithm)
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.partial")
        done = 0
        try:
            with self._request(artifact.url) as response, open(partial, "wb") as sink:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    done += len(block)
                    if artifact.size and done > artifact.size:
                        raise ReleaseError(f"{artifact.url}: longer than the {artifact.size} bytes the server "
                                           "announced; refused")
                    digest.update(block)
                    sink.write(block)
                sink.flush()
                os.fsync(sink.fileno())
            if artifact.size and done != artifact.size:
                raise ReleaseError(f"{artifact.url}: {done} of the {artifact.size} bytes announced arrived "
                                   "(cut short); refused")
            if digest.hexdigest() != artifact.hashes[algorithm]:
                raise ReleaseError(f"{artifact.url}: its {algorithm} is {digest.hexdigest()[:16]}..., the server "
                                   f"announced {artifact.hashes[algorithm][:16]}...: corrupt or tampered; refused")
            partial.replace(destination)
        except OSError as exc:
            raise DdiUnreachable(f"{artifact.url}: the download broke off after {done} bytes ({exc})") from None
        finally:
            partial.unlink(missing_ok=True)
        return done
