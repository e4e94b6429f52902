"""One update: a release's bundles for this camera fetched into the spare slot and checked there.

Files the running set already holds (same sha256) are copied from it, not downloaded: an
update that changes one model moves that model's bytes only. The check is ``maskgate check``
of the slot, run as its own process on the camera's own backends with each bundle's golden
data and gates (and the site key, when the camera has one): a runtime that crashes on a
bundle fails the check, not the agent.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ReleaseError
from .choose import missing_models, runnable
from .release import Release
from .slots import Slots


@dataclass
class Fetched:
    slot: str
    bundles: list[str]
    left: dict[str, str]  # bundle -> why it was not fetched
    downloaded_bytes: int = 0
    reused_bytes: int = 0
    check: dict = field(default_factory=dict)


CHECK_NICE = 10  # the on-camera check's priority below the app's


class UnrunnableRelease(ReleaseError):
    """The release has a model none of whose bundles this camera can run: never worth retrying."""


def _same(path: Path, sha256: str, sha256_file) -> bool:
    """Whether the local file has this hash (an unreadable one is fetched again)."""
    try:
        return sha256_file(path) == sha256
    except OSError:
        return False


def fetch_into_spare(client, release: Release, slots: Slots, *, soc: str | None, progress=None) -> Fetched:
    """The bundles this camera can run, in the slot that is not current (emptied first)."""
    from maskgate.converters.bundle import sha256_file

    take, left = runnable(release, soc=soc)
    missing = missing_models(release, take)
    if missing:
        raise UnrunnableRelease(f"release {release.version} has no bundle of {', '.join(missing)} that this camera can "
                           f"run ({'; '.join(f'{k}: {v}' for k, v in left.items()) or 'none listed'})")
    current = slots.current()
    spare = slots.other()
    folder = slots.prepare(spare)
    fetched = Fetched(slot=spare, bundles=[b.name for b in take], left=left)
    for bundle in take:
        for name, file in bundle.files.items():
            destination = folder / bundle.name / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            mine = current.path / bundle.name / name if current is not None else None
            if mine is not None and mine.is_file() and mine.stat().st_size == file.length \
                    and _same(mine, file.sha256, sha256_file):
                partial = destination.with_name(f".{name}.partial")
                shutil.copyfile(mine, partial)
                partial.replace(destination)
                fetched.reused_bytes += file.length
            else:
                fetched.downloaded_bytes += client.fetch(file.path, destination)
            if progress is not None:
                progress(bundle.name, name)
    return fetched


def check_slot(folder: Path, *, runs: int, verify_key: Path | None, config: Path | None,
               timeout_s: float = 1800) -> dict:
    """``maskgate check`` of ``folder`` in a process of its own: {"passed", "summary", "failed" (bundle: why),
    "bundles" (bundle: model, runtime, passed, device, placement_share)}."""
    report = folder.parent / f".check-{folder.name}.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "maskgate"]
    if config is not None:
        command += ["--config", str(config)]
    command += ["check", str(folder), "--runs", str(runs), "--json", str(report)]
    if verify_key is not None:
        command += ["--verify-key", str(verify_key)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:  # niced: on the camera the gate's frames come first, the check takes what is left
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env,
                              preexec_fn=lambda: os.nice(CHECK_NICE))
    except subprocess.TimeoutExpired:
        return {"passed": False, "summary": f"the check did not end within {timeout_s:g} s", "failed": {},
                "bundles": {}}
    failed, bundles = {}, {}
    try:
        data = json.loads(report.read_text())
        for b in data.get("bundles", []):
            name = b.get("name") or Path(b.get("bundle", "?")).name
            if not b.get("passed"):
                failed[name] = _why(b)
            placement = b.get("placement") or {}
            bundles[name] = {"model": b.get("model"), "runtime": b.get("runtime"), "passed": bool(b.get("passed")),
                             "device": placement.get("device"), "placement_share": placement.get("share")}
    except (OSError, ValueError):
        data = None
    finally:
        report.unlink(missing_ok=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0 and not failed:
        failed["check"] = f"exit {done.returncode}: " + (lines[-1] if lines else "no output")
    summary = next((line for line in reversed(lines) if "bundle(s) passed" in line), lines[-1] if lines else "")
    return {"passed": done.returncode == 0 and data is not None, "summary": summary, "failed": failed,
            "bundles": bundles}


def _why(bundle: dict) -> str:
    """Why one bundle of a check report failed, in a line."""
    from ..check.gates import GateResult

    if bundle.get("error"):
        return str(bundle["error"])
    if bundle.get("integrity") not in (None, "ok"):
        return str(bundle["integrity"])
    if bundle.get("verdict_problem"):
        return str(bundle["verdict_problem"])
    gates = [GateResult(**g).describe() for g in bundle.get("gates") or [] if not g.get("passed")]
    return "; ".join(gates) or "no gate applied"
