"""rknn-toolkit2's own environment and the worker process that drives it.

rknn-toolkit2 pins numpy<=1.26.4, onnx<=1.18, protobuf<=4.25.4 and torch<=2.4 (it imports
torch on load; the CPU torch 2.13 wheel works in spite of the pin, with setuptools<81 for
its pkg_resources). None of that can share the main environment, so ``maskgate setup rknn``
makes a virtual environment under the cache folder, keyed on these versions, and the build
and the checker talk to ``rknn_worker.py`` running in it (typed requests, JSON lines).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from maskgate.errors import MaskGateError

TOOLKIT = "rknn-toolkit2==2.5.0"
# Installed with the toolkit itself taken --no-deps: its own pins, met where they can be.
REQUIREMENTS = ("numpy==1.26.4", "onnx==1.18.0", "protobuf>=4.25,<=4.25.4", "onnxruntime>=1.17,<1.24", "psutil",
                "ruamel.yaml", "scipy", "tqdm", "fast-histogram", "opencv-python-headless<4.13", "setuptools<81",
                "torch==2.13.0")
SETUP_COMMAND = "maskgate setup rknn"
WORKER = Path(__file__).with_name("rknn_worker.py")


class ToolkitMissingError(MaskGateError):
    """The rknn-toolkit2 environment is not set up (or broken); names the command that fixes it."""


class WorkerError(MaskGateError):
    """The toolkit failed a request; carries the end of the worker's log."""


def cache_root() -> Path:
    """Where toolkit environments live: $MASKGATE_CACHE, else ~/.cache/maskgate."""
    base = os.environ.get("MASKGATE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                            os.path.expanduser("~/.cache"), "maskgate")
    return Path(base) / "toolkits"


def environment_key() -> str:
    """The environment's inputs: the toolkit, its requirements and this Python's version."""
    record = [TOOLKIT, *REQUIREMENTS, f"cp{sys.version_info.major}{sys.version_info.minor}"]
    return hashlib.sha256(json.dumps(record).encode()).hexdigest()[:12]


def environment() -> Path:
    return cache_root() / f"rknn-toolkit2-{TOOLKIT.split('==')[1]}-{environment_key()}"


def python() -> Path:
    """The environment's interpreter, or a ToolkitMissingError naming the fixing command."""
    env = environment()
    ready = env / "ready.json"
    exe = env / "bin" / "python"
    if not ready.is_file() or not exe.exists():
        raise ToolkitMissingError(f"RKNN builds and checks need rknn-toolkit2 in its own environment, which is not "
                                  f"set up at {env}: run '{SETUP_COMMAND}' (about 1 minute, from the package index)")
    return exe


def versions() -> dict[str, str]:
    """The versions installed in the environment (recorded at setup), {} when it is absent."""
    try:
        recorded: dict[str, str] = json.loads((environment() / "ready.json").read_text())["versions"]
        return recorded
    except (OSError, ValueError, KeyError):
        return {}


def setup(*, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make the environment (reused when its key matches, unless ``force``); returns its folder.
    Built in a staging folder and renamed: a failed setup leaves nothing half-made."""
    if platform_tag() != "x86_64":
        raise MaskGateError(f"rknn-toolkit2 runs on x86_64 workstations (this is {platform_tag()}); on the camera, "
                            "install rknn-toolkit-lite2 (pip install rknn-toolkit-lite2) to run .rknn bundles")
    env = environment()
    if (env / "ready.json").is_file() and not force:
        log(f"rknn-toolkit2 environment already set up: {env}")
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{env.name}.", dir=env.parent))
    try:
        log(f"creating {env} ...")
        run([sys.executable, "-m", "venv", str(staging)])
        pip = [str(staging / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        log(f"installing {TOOLKIT} (without its pins) ...")
        run(pip + ["--no-deps", TOOLKIT])
        log(f"installing {', '.join(REQUIREMENTS)} ...")
        run(pip + list(REQUIREMENTS))
        probe = ("import json, importlib.metadata as m; from rknn.api import RKNN; "
                 "print(json.dumps({d: m.version(d) for d in ('rknn-toolkit2', 'numpy', 'onnx', 'protobuf', 'torch', "
                 "'onnxruntime')}))")
        found = run([str(staging / "bin" / "python"), "-W", "ignore", "-c", probe]).strip().splitlines()[-1]
        (staging / "ready.json").write_text(json.dumps({"key": environment_key(), "versions": json.loads(found)}))
        if env.exists():
            shutil.rmtree(env)
        staging.rename(env)  # only bin/python is used (-m pip, the worker): it finds its folder when moved
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"rknn-toolkit2 environment ready: {env}")
    return env


def platform_tag() -> str:
    import platform

    return platform.machine().lower().replace("amd64", "x86_64")


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise MaskGateError(f"{' '.join(command[:6])} ... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


@dataclass(frozen=True)
class BuildRequest:
    """One toolkit build: the ONNX model, the SoC, the folded normalization, the calibration
    pixels (an npz with ``pixels``: N x 3 x H x W uint8) and the stretches kept in float."""

    onnx: str
    target: str
    mean: list[float]
    std: list[float]
    calibration: str
    algorithm: str
    custom_string: str
    export: str
    hybrid: list[list[str]] = dataclasses.field(default_factory=list)
    op: str = "build"


@dataclass(frozen=True)
class BuildReply:
    toolkit: str
    seconds: float


class Worker:
    """The toolkit worker process: ``build`` a model, then ``infer`` it in the simulator."""

    def __init__(self) -> None:
        exe = python()
        self.folder = Path(tempfile.mkdtemp(prefix="maskgate-rknn-client-"))
        self.log_path = self.folder / "worker.log"
        read_fd, write_fd = os.pipe()
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONWARNINGS": "ignore"}
        with open(self.log_path, "wb") as log:
            # -P: the worker's folder (runtimes/, with an rknn.py of its own) must not shadow the toolkit.
            self.process = subprocess.Popen([str(exe), "-P", str(WORKER), "--reply-fd", str(write_fd)],
                                            stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,),
                                            env=env, text=True)
        os.close(write_fd)
        assert self.process.stdin is not None  # stdin=PIPE
        self.stdin: IO[str] = self.process.stdin
        self.replies = os.fdopen(read_fd, "r")

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.process.poll() is not None:
            raise WorkerError(f"the rknn-toolkit2 worker has exited ({self.process.returncode}): {self.log_tail()}")
        self.stdin.write(json.dumps(payload) + "\n")
        self.stdin.flush()
        line = self.replies.readline()
        if not line:
            raise WorkerError(f"the rknn-toolkit2 worker died during {payload['op']}: {self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise WorkerError(f"rknn-toolkit2 {payload['op']}: {answer.get('error')}; log: {self.log_tail()}")
        return answer

    def build(self, request: BuildRequest) -> BuildReply:
        answer = self.request(dataclasses.asdict(request))
        return BuildReply(answer["toolkit"], float(answer["seconds"]))

    def infer(self, pixels: np.ndarray) -> list[np.ndarray]:
        """Outputs of the model built last, in the simulator, for float pixels (N=1, NCHW)."""
        source, target = self.folder / "input.npy", self.folder / "output.npz"
        np.save(source, np.ascontiguousarray(pixels, np.float32))
        self.request({"op": "infer", "input": str(source), "output": str(target)})
        with np.load(target) as data:
            return [data[f"arr_{k}"] for k in range(len(data.files))]

    def analyze(self, pixels: np.ndarray) -> list[dict[str, Any]]:
        """Per layer, the quantized model against float on one input (the toolkit's
        accuracy_analysis): op, layer, and the cosine / euclidean error of the model up to it
        (``entire_*``) and of that layer alone (``single_*``), in graph order."""
        source = self.folder / "analyze-input.npy"
        np.save(source, np.ascontiguousarray(pixels, np.float32))
        answer = self.request({"op": "analyze", "input": str(source), "folder": str(self.folder / "analysis")})
        keys = ("op", "layer", "entire_cosine", "entire_euclidean", "single_cosine", "single_euclidean")
        return [dict(zip(keys, row)) for row in answer["layers"]]

    def log_tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(line for line in text[-lines:] if line.strip())

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.stdin.flush()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.replies.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
