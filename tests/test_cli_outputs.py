"""An output the user cannot write (a read-only mount, no permission, a file in the way)
ends the command at once with exit 2 and one line naming the path and the flag, before any
work: no traceback, nothing half-written."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMMANDS = {
    "build --out": ["build", "--out", "{bad}/out", "--models", "mask_mobilenetv2", "--formats", "onnx",
                    "--precisions", "fp32"],
    "run --save": ["run", "examples/images", "--save", "{bad}/annotated"],
    "check --html": ["check", "{builds}", "--html", "{bad}/report.html"],
    "check --json": ["check", "{builds}", "--json", "{bad}/report.json"],
    "turnstile --events": ["turnstile", "examples/images", "--builds", "{builds}", "--events", "{bad}/events.jsonl"],
    "turnstile --video-out": ["turnstile", "examples/images", "--builds", "{builds}", "--video-out", "{bad}/out.mp4"],
}


def _unwritable_places(tmp_path: Path) -> dict[str, Path]:
    """A path under a regular file (anywhere), and a folder the kernel refuses even to root
    (/sys, where this machine has it so)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    places = {"file in the way": blocker}
    probe = Path("/sys/maskgate-write-probe")
    try:
        probe.mkdir()
    except OSError:
        places["refused by the system"] = Path("/sys")
    else:
        probe.rmdir()
    return places


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unwritable_output_is_one_line_and_exit_2(command, tmp_path):
    exe = Path(sys.executable).with_name("maskgate")
    for why, bad in _unwritable_places(tmp_path).items():
        args = [a.format(bad=bad, builds=tmp_path / "no-builds") for a in COMMANDS[command]]
        done = subprocess.run([str(exe), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "MASKGATE_CONFIG": ""})
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2, (command, why, done.stderr[-1500:])
        assert len(lines) == 1 and lines[0].startswith("maskgate: error: "), (command, why, lines)
        flag = command.split()[1]
        assert str(bad) in lines[0] and flag in lines[0] and "cannot write" in lines[0], lines[0]
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # nothing else was written
