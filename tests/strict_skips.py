"""Under CI, a test skipped because a module could not be imported fails instead.

``pytest.importorskip`` keeps the suite usable on a partial install (the core without
torch, say); on CI everything is installed, so such a skip means a broken install and
must not turn the run green. CI is recognised by the ``CI`` environment variable
(``.ci/run`` sets it; so do most CI services).
"""
from __future__ import annotations

import os

import pytest

IMPORT_SKIP = "could not import"


def strict() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail_import_skip(report) -> None:
    if report.skipped and strict() and IMPORT_SKIP in _reason(report):
        report.outcome = "failed"
        report.longrepr = f"CI: an import-related skip is a broken install, not a pass: {_reason(report)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_import_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_import_skip(outcome.get_result())
