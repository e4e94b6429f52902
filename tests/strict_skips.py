"""Under CI, a test that cannot have a part it needs fails instead of skipping.

``pytest.importorskip`` and :func:`missing` keep the suite usable on a partial install (the
core without torch, no Mosquitto, no ../shared/data); on CI everything is there, so such a
skip means a broken set-up and must not turn the run green. Only the GPU and real-NPU tests
skip under CI, each with its reason. CI is recognised by the ``CI`` environment variable
(``.ci/run`` sets it; so do most CI services). The run ends with the tests run and skipped
per marker (``.ci/run`` prints them).
"""
from __future__ import annotations

import os
from collections import Counter
from typing import NoReturn

import pytest

IMPORT_SKIP = "could not import"


def strict() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(part: str, why: str) -> NoReturn:
    """The test cannot have ``part`` (a broker, a server, a toolchain, the data): it skips
    with ``why``, and under CI it fails with it."""
    if strict():
        pytest.fail(f"CI must have {part}: {why}", pytrace=False)
    pytest.skip(why)


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


def _markers(config) -> list[str]:
    """The project's own markers (pyproject.toml's), not the ones pytest and plugins register."""
    import tomllib

    pyproject = config.rootpath / "pyproject.toml"
    try:
        lines = tomllib.loads(pyproject.read_text())["tool"]["pytest"]["ini_options"]["markers"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return []
    return [line.split(":")[0].strip() for line in lines]


_OUTCOMES: dict[str, tuple[str, frozenset]] = {}  # test id: ("run" or "skipped", its markers)


def pytest_runtest_logreport(report):
    if report.skipped:
        _OUTCOMES[report.nodeid] = ("skipped", frozenset(report.keywords))
    elif report.when == "call" or report.failed:  # a failed set-up ran, and failed
        _OUTCOMES.setdefault(report.nodeid, ("run", frozenset(report.keywords)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Per marker (pyproject.toml's markers): how many of its tests ran and how many skipped."""
    markers = _markers(config)  # read once, not per test
    counts = Counter((marker, outcome) for outcome, keywords in _OUTCOMES.values()
                     for marker in ["all", *markers] if marker == "all" or marker in keywords)
    terminalreporter.write_sep("-", "tests run and skipped, per marker")
    for marker in ["all", *markers]:
        terminalreporter.write_line(f"{marker}: {counts[marker, 'run']} run, {counts[marker, 'skipped']} skipped")
