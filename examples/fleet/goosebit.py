"""A private goosebit (an Eclipse hawkBit-compatible deployment server, PyPI ``goosebit``) on
loopback: what the fleet tests and a developer's laptop run to try MaskGate's hawkBit path. A
site runs its own hawkBit or goosebit; the cameras' agents speak the same DDI API to it.

goosebit pins its own web stack, so it lives in its own environment (one command, ~30 s from
the package index, reused after):

    python examples/fleet/goosebit.py --setup          # ~/.cache/maskgate/goosebit-0.2.12 ($MASKGATE_CACHE)
    python examples/fleet/goosebit.py --serve DIR      # a server on 127.0.0.1 until Ctrl-C

    with Goosebit(folder) as server:                   # started on a free port, admin user made
        software = server.upload("release-2026.12.1.swu")
        server.rollout("stable", software, feed="default")
        server.device("cam-01")                        # what the server knows of a camera
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

VERSION = "0.2.12"
ADMIN = ("admin@maskgate.local", "maskgate-test-only")


def environment() -> Path:
    cache = Path(os.environ.get("MASKGATE_CACHE") or Path.home() / ".cache" / "maskgate")
    return cache / f"goosebit-{VERSION}"


class GoosebitMissing(RuntimeError):
    pass


def setup(*, force: bool = False) -> Path:
    """goosebit's own virtual environment (made once)."""
    env = environment()
    python = env / "bin" / "python"
    if python.is_file() and not force:
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"goosebit=={VERSION}"], check=True)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Goosebit:
    def __init__(self, folder: str | Path, *, port: int | None = None, poll_time: str = "00:00:01",
                 device_tokens: bool = False):
        """``folder``: its database, artifacts and log; ``poll_time``: the sleep it gives devices;
        ``device_tokens``: devices must be created first and send their target token (strict mode)."""
        self.env = environment()
        if not (self.env / "bin" / "python").is_file():
            raise GoosebitMissing(f"goosebit's environment is not set up ({self.env}): run "
                                  "'python examples/fleet/goosebit.py --setup'")
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.poll_time = poll_time
        self.device_tokens = device_tokens
        self.process: subprocess.Popen | None = None
        self.token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict:
        return {**os.environ, "GOOSEBIT_DB_URI": f"sqlite:///{self.folder / 'db.sqlite3'}",
                "GOOSEBIT_ARTIFACTS_DIR": str(self.folder / "artifacts"), "GOOSEBIT_POLL_TIME": self.poll_time,
                "GOOSEBIT_PORT": str(self.port),
                **({"GOOSEBIT_DEVICE_AUTH__ENABLE": "true", "GOOSEBIT_DEVICE_AUTH__MODE": "strict"}
                   if self.device_tokens else {})}

    def _migrate(self) -> None:
        """The database's tables (goosebit's own migrations, applied once)."""
        if (self.folder / "db.sqlite3").is_file():
            return
        work = self.folder / "migrate"
        work.mkdir(exist_ok=True)
        site = next((self.env / "lib").glob("python3*/site-packages/goosebit/db/migrations"))
        aerich = str(self.env / "bin" / "aerich")
        for command in ([aerich, "init", "-t", "goosebit.db.config.TORTOISE_CONF", "--location", str(site)],
                        [aerich, "upgrade"]):
            done = subprocess.run(command, cwd=work, env=self._env(), capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"goosebit's migration failed ({' '.join(command[1:2])}): {done.stderr[-800:]}")

    def start(self) -> Goosebit:
        self._migrate()
        log = open(self.folder / "goosebit.log", "ab")
        self.process = subprocess.Popen(
            [str(self.env / "bin" / "python"), "-m", "uvicorn", "goosebit:app", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=self.folder, env=self._env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"goosebit exited ({self.process.returncode}); see {self.folder / 'goosebit.log'}")
            try:
                urllib.request.urlopen(f"{self.url}/docs", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        else:
            self.stop()
            raise RuntimeError(f"goosebit did not answer on {self.url} within 60 s")
        self._login()
        return self

    def _login(self) -> None:
        form = urllib.parse.urlencode({"username": ADMIN[0], "password": ADMIN[1]}).encode()
        for path in ("/login", "/setup"):  # the first start has no user yet
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{self.url}{path}", data=form), timeout=10) as r:
                    self.token = json.loads(r.read())["access_token"]
                    return
            except urllib.error.HTTPError:
                continue
        raise RuntimeError(f"{self.url}: neither login nor setup of the admin user worked")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> Goosebit:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the management API (what a site's operator clicks in goosebit's UI) --------------------------
    def api(self, method: str, path: str, *, body: dict | None = None, data: bytes | None = None,
            content_type: str | None = None):
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(f"{self.url}/api/v1{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(500).decode(errors="replace")
            raise RuntimeError(f"goosebit {method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(text) if text.strip() else None

    def upload(self, swu: str | Path) -> int:
        """An SWUpdate image as a software of the server; its id."""
        swu = Path(swu)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{swu.name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + swu.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        return int(self.api("PUT", "/software", data=body,
                            content_type=f"multipart/form-data; boundary={boundary}")["id"])

    def rollout(self, name: str, software: int, *, feed: str = "default") -> int:
        return int(self.api("PUT", "/rollouts", body={"name": name, "feed": feed, "software_id": software})["id"])

    def pause(self, rollout: int, *, paused: bool = True) -> None:
        self.api("PATCH", "/rollouts", body={"ids": [rollout], "paused": paused})

    def rollouts(self) -> list[dict]:
        return self.api("GET", "/rollouts")["rollouts"]

    def set_devices(self, devices: list[str], **fields) -> None:
        """feed=..., software="rollout" | "latest" | "<id>", force_update=True, ..."""
        self.api("PATCH", "/devices", body={"devices": devices, **fields})

    def add_devices(self, devices: list[str], **fields) -> None:
        """Devices made before their first poll (strict mode: with auth_token=...)."""
        self.api("PUT", "/devices", body={"devices": devices, **fields})

    def devices(self) -> list[dict]:
        return self.api("GET", "/devices")["devices"]

    def device(self, name: str) -> dict:
        """sw_version, last_state (registered, running, finished, error), update_mode, feed, progress."""
        return self.api("GET", f"/devices/{urllib.parse.quote(name)}")

    def log(self, name: str) -> str:
        """The details the device sent with its feedback, as the server keeps them."""
        return self.api("GET", f"/devices/{urllib.parse.quote(name)}/log")["log"] or ""


def main() -> int:
    from maskgate.cli.options import port

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setup", action="store_true", help="make goosebit's own environment")
    parser.add_argument("--force", action="store_true", help="with --setup: make it again")
    parser.add_argument("--serve", type=Path, metavar="DIR", help="run a server with its data in DIR until Ctrl-C")
    parser.add_argument("--port", type=port(), help="the port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    if args.setup:
        print(f"goosebit {VERSION}: {setup(force=args.force)}")
    if args.serve:
        with Goosebit(args.serve, port=args.port, poll_time="00:00:10") as server:
            print(f"goosebit on {server.url} (UI: {server.url}/ui, user {ADMIN[0]} / {ADMIN[1]}); Ctrl-C stops it")
            try:
                server.process.wait()
            except KeyboardInterrupt:
                pass
    if not (args.setup or args.serve):
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
