"""Fleet checks: what a camera's last ``maskgate check`` found, kept beside its builds and
sent to the site (``maskgate check --publish``, the turnstile app's health and metrics), so
a site sees that every camera runs verified builds."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from ..files import atomic_write

LAST_CHECK_FILE = "last-check.json"


def check_summary(report: dict) -> dict:
    """The part of a ``maskgate check`` report (``CheckReport.to_dict()``) a site needs:
    when, whether every bundle passed, which failed and why, and what ran each."""
    now = datetime.datetime.now(datetime.timezone.utc)
    bundles = report.get("bundles", [])
    failed = {b.get("name") or b["bundle"]: b.get("error") or "below its gates" for b in bundles if not b["passed"]}
    return {"checked_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "checked_unix": round(now.timestamp(), 3),
            "builds": report.get("path"), "passed": bool(report.get("passed")) and bool(bundles),
            "bundles": len(bundles), "failed": failed,
            "runtimes": {b.get("name") or b["bundle"]: b.get("runtime") for b in bundles}}


def write_last_check(builds: str | Path, summary: dict) -> str | None:
    """Keep ``summary`` as ``<builds>/last-check.json``; None, or why it could not be written
    (a read-only builds folder on a camera is not an error of the check)."""
    builds = Path(builds)
    if not builds.is_dir():
        return f"{builds} is not a folder"
    try:
        atomic_write(builds / LAST_CHECK_FILE, json.dumps(summary, indent=1))
    except OSError as exc:
        return f"{builds / LAST_CHECK_FILE}: {exc.strerror or exc}"
    return None


def read_last_check(builds: str | Path) -> dict | None:
    """The last check's summary kept beside ``builds``; None when there is none (or it is unreadable)."""
    try:
        data = json.loads((Path(builds) / LAST_CHECK_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "passed" in data else None
