"""Real builds shared by the whole test session: each bundle a test needs is built once, by
``maskgate.build``, into a store keyed on the build's settings and on the sources that make
it; a test gets a folder of its own holding copies of the bundles it asked for (it may
damage them: the store stays as built).

``MASKGATE_TEST_BUILDS=DIR`` keeps the store there between runs (a folder per key: the
hash of sdk/, runtimes/, converters/, calibration/ and pyproject.toml, so a change to any
of them builds again); without it the store lives in the session's temporary folder, one
for all of the session's pytest-xdist workers. A store is locked while it is read or
built: a second worker waits for the first's build, then copies.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("sdk", "runtimes", "converters", "calibration")
# One setting for every shared CPU-format build. 40 held-out inputs: with 8, the TFLite int8
# detector's golden frames (the 3 most crowded) put its landmark error at 0.102, above the 0.1
# gate, and it is rightly skipped by the selector. Two timed runs: the tests read the latency
# record, not its precision.
SHARED = {"verify_samples": 40, "check_runs": 2}
STORE_ENV = "MASKGATE_TEST_BUILDS"


def sources_key() -> str:
    """sha256 over the files a build is made from (their paths and bytes)."""
    digest = hashlib.sha256()
    files = [ROOT / "pyproject.toml"] + sorted(p for s in SOURCES for p in (ROOT / s).rglob("*")
                                               if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


class BundleStore:
    """Bundles built once per (settings, sources); ``folder`` copies the asked-for ones out."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _store(self, options: dict) -> Path:
        settings = json.dumps({k: str(v) for k, v in sorted(options.items())}, sort_keys=True)
        return self.root / hashlib.sha256(settings.encode()).hexdigest()[:12]

    def folder(self, into: Path, *, models: tuple[str, ...], formats: tuple[str, ...],
               precisions: tuple[str, ...], **options) -> Path:
        """``into`` holding a copy of each bundle of ``models`` x ``formats`` x ``precisions``
        built with ``options`` (``maskgate.build`` fields), building those the store lacks."""
        from maskgate import build

        options = {**SHARED, **options}
        store = self._store(options)
        wanted = set(itertools.product(models, formats, precisions))
        with _locked(store):
            have = _bundles(store)
            missing = sorted(wanted - set(have.values()))
            if missing:  # the smallest product holding them (the builder reuses what the store has)
                results = build(out=store, models=_kept(m for m, _, _ in missing),
                                formats=_kept(f for _, f, _ in missing),
                                precisions=_kept(p for _, _, p in missing), progress=False, **options)
                assert all(r.status in ("built", "reused") for r in results), [r.error for r in results]
                have = _bundles(store)
            assert wanted <= set(have.values()), sorted(wanted - set(have.values()))
            into.mkdir(parents=True, exist_ok=True)
            for folder, triple in have.items():  # a format built per chip: one bundle per chip
                if triple in wanted:
                    shutil.copytree(folder, into / folder.name)
        return into


def _bundles(store: Path) -> dict[Path, tuple[str, str, str]]:
    """Each finished bundle of the store and its (model, format, precision)."""
    out = {}
    for manifest in sorted(store.glob("*/manifest.json")) if store.is_dir() else []:
        m = json.loads(manifest.read_text())
        out[manifest.parent] = (m["model"], m["format"], m["precision"])
    return out


@contextlib.contextmanager
def _locked(store: Path) -> Iterator[None]:
    """``store`` for this process alone (an exclusive flock on its lock file) while held."""
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.with_name(f"{store.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kept(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def store_root(basetemp: Path) -> Path:
    """Where the store lives: ``MASKGATE_TEST_BUILDS``/<sources key>, else in the session's
    temporary folder (``basetemp``; under pytest-xdist the folder all its workers share)."""
    kept = os.environ.get(STORE_ENV)
    if kept:
        return Path(kept) / sources_key()
    return (basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp) / "bundle-store"
