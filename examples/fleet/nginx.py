"""A private nginx serving a release repository on loopback: what the fleet tests and a
developer's laptop run (Debian: apt-get install nginx-light). A real site serves the same
folder from its own nginx, any static HTTP(S) server or an S3 bucket.

    with Nginx(repo, folder) as server:        # started on a free port of 127.0.0.1
        url = server.url                       # http://127.0.0.1:PORT
        server.stop(); server.start()          # the repository server down, and back
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NginxMissing(RuntimeError):
    pass


class Nginx:
    def __init__(self, root: str | Path, folder: str | Path, *, port: int | None = None,
                 limit_rate: str | None = None):
        """``root``: the folder served; ``folder``: nginx's own config, logs and temporary files;
        ``limit_rate``: e.g. "200k", bytes a second per connection (a slow camera link)."""
        self.binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
        if self.binary is None:
            raise NginxMissing("nginx is not installed (Debian: apt-get install nginx-light)")
        self.root = Path(root).resolve()
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.folder / "nginx.conf"
        temp = "".join(f"  {name}_temp_path {self.folder / name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root, nginx's workers switch to www-data, which may not read a private folder.
        user = "user root;\n" if os.geteuid() == 0 else ""
        rate = f"    limit_rate {limit_rate};\n" if limit_rate else ""
        self.config.write_text(
            f"{user}worker_processes 1;\npid {self.folder / 'nginx.pid'};\nerror_log {self.folder / 'error.log'};\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  access_log {self.folder / 'access.log'};\n{temp}"
            "  default_type application/octet-stream;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n    root {self.root};\n{rate}  }}\n"
            "}\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Nginx:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited at start: {self.process.stderr.read().decode(errors='replace')}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self  # it answers (403/404 on the bare folder)
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not answer on {self.url} within {timeout_s:g} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def bytes_sent(self) -> int:
        """Body bytes sent so far, from the access log (the default 'combined' format)."""
        total = 0
        try:
            for line in (self.folder / "access.log").read_text().splitlines():
                parts = line.split('"')
                if len(parts) >= 3:
                    fields = parts[2].split()
                    if len(fields) >= 2 and fields[1].isdigit():
                        total += int(fields[1])
        except OSError:
            pass
        return total

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
