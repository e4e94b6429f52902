"""A private Mosquitto broker on loopback, with its own config and persistence folder: what
the tests, the load benchmark and a developer's laptop run (Debian: apt-get install mosquitto).

    with Mosquitto(folder) as broker:         # started on a free port of 127.0.0.1
        url = broker.url                      # mqtt://127.0.0.1:PORT
        broker.stop(); broker.start()         # a restart keeps queued messages (persistence)
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoMissing(RuntimeError):
    pass


class Mosquitto:
    def __init__(self, folder: str | Path, *, port: int | None = None, max_queued: int = 0,
                 tls: tuple[Path, Path, Path] | None = None, users: dict[str, str] | None = None,
                 acl: str | None = None):
        """``max_queued``: messages a broker holds for a disconnected persistent subscriber
        (0: no limit; Mosquitto's own default is 1000, which a site listener that was away can exceed);
        ``tls``: (CA, server certificate, server key) PEM files: the listener speaks TLS only;
        ``users``: {name: password}: only those may connect (mosquitto_passwd writes the file);
        ``acl``: the text of an acl_file (e.g. "topic write maskgate/+/+/events"): what clients may do."""
        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file()
                                                     else None)
        if self.binary is None:
            raise MosquittoMissing("the mosquitto broker is not installed (Debian: apt-get install mosquitto)")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.config = self.folder / "mosquitto.conf"
        self.log = self.folder / "mosquitto.log"
        # Started as root, Mosquitto switches to the 'mosquitto' account, which cannot write the
        # persistence file or the log in a private folder: queued messages would not survive a restart.
        user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        secure = ""
        if tls is not None:
            secure += f"cafile {tls[0]}\ncertfile {tls[1]}\nkeyfile {tls[2]}\n"
        if users:
            passwords = self.folder / "passwords"
            passwords.write_text("")
            for name, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(passwords),
                                name, password], check=True, capture_output=True)
            secure += f"password_file {passwords}\n"
        if acl is not None:
            (self.folder / "acl").write_text(acl)
            secure += f"acl_file {self.folder / 'acl'}\n"
        self.tls = tls is not None
        self.config.write_text(
            user +
            f"listener {self.port} 127.0.0.1\n" + secure +
            f"allow_anonymous {'false' if users else 'true'}\n"
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            "autosave_interval 1\n"
            f"max_queued_messages {max_queued}\n"
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\n")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.process.returncode}): "
                                   f"{self.process.stderr.read().decode()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port} within {timeout_s} s")

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: Mosquitto saves its persistence file first."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> Mosquitto:
        # ``with broker.start():`` too: a second start would leave the first broker running, unstopped
        return self if self.process is not None and self.process.poll() is None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
