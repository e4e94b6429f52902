"""Real builds shared by the whole test session: each bundle a test needs is built once, by
``maskgate.build``, into a store keyed on the build's settings and on the sources that make
it; a test gets a folder of its own holding copies of the bundles it asked for (it may
damage them: the store stays as built).

``MASKGATE_TEST_BUILDS=DIR`` keeps the store there between runs (a folder per key: the
hash of sdk/, runtimes/, converters/, calibration/ and pyproject.toml, so a change to any
of them builds again); without it the store lives in the session's temporary folder, one
for all of the session's pytest-xdist workers. Workers share the building: each claims the
missing bundles of one model (a lock per bundle), builds them in a folder of its own and
moves each finished bundle into the store in one rename, then claims the next; a worker
that needs a bundle another is building waits for it. A store is never seen half-written.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import tempfile
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
        options = {**SHARED, **options}
        store = self._store(options)
        wanted = set(itertools.product(models, formats, precisions))
        while missing := sorted(wanted - set(_bundles(store).values())):
            if not self._build_one_model(store, missing, options):
                _wait_for(store, missing[0])  # every missing one is being built by another worker
        have = _bundles(store)
        into.mkdir(parents=True, exist_ok=True)
        for folder, triple in have.items():  # a format built per chip: one bundle per chip
            if triple in wanted:
                shutil.copytree(folder, into / folder.name)
        return into

    def _build_one_model(self, store: Path, missing: list, options: dict) -> bool:
        """Claim the missing bundles of the first model no other worker is building, build them
        (one ``maskgate.build`` into a folder of their own) and move them into the store; False
        when every missing bundle is claimed by another worker."""
        from maskgate import build

        for model in _kept(m for m, _, _ in missing):
            with contextlib.ExitStack() as claims:
                mine = [t for t in missing if t[0] == model and claims.enter_context(_claimed(store, t))]
                mine = sorted(set(mine) - set(_bundles(store).values()))  # another may have finished meanwhile
                if not mine:
                    continue
                staging = Path(tempfile.mkdtemp(prefix=f".{store.name}.building-", dir=store.parent))
                try:
                    for formats, precisions in _products(mine):
                        results = build(out=staging, models=(model,), formats=formats, precisions=precisions,
                                        progress=False, **options)
                        assert all(r.status == "built" for r in results), [r.error for r in results]
                    store.mkdir(parents=True, exist_ok=True)
                    for manifest in staging.glob("*/manifest.json"):  # whole bundles, each in one rename
                        manifest.parent.rename(store / manifest.parent.name)
                finally:
                    shutil.rmtree(staging, ignore_errors=True)
                return True
        return False


def _products(triples: list[tuple[str, str, str]]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(formats, precisions) products that together make exactly ``triples`` (of one model):
    one product where they form one, else one per precision."""
    formats, precisions = _kept(f for _, f, _ in triples), _kept(p for _, _, p in triples)
    if len(triples) == len(formats) * len(precisions):
        return [(formats, precisions)]
    return [(_kept(f for _, f, q in triples if q == p), (p,)) for p in precisions]


def _bundles(store: Path) -> dict[Path, tuple[str, str, str]]:
    """Each finished bundle of the store and its (model, format, precision)."""
    out = {}
    for manifest in sorted(store.glob("*/manifest.json")) if store.is_dir() else []:
        m = json.loads(manifest.read_text())
        out[manifest.parent] = (m["model"], m["format"], m["precision"])
    return out


def _lock_file(store: Path, triple: tuple[str, str, str]) -> Path:
    store.parent.mkdir(parents=True, exist_ok=True)
    return store.parent / f".{store.name}.{'-'.join(triple)}.lock"


@contextlib.contextmanager
def _claimed(store: Path, triple: tuple[str, str, str]) -> Iterator[bool]:
    """True, with the bundle claimed for this process (an exclusive flock, held until the block
    ends), or False where another process holds it."""
    with open(_lock_file(store, triple), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wait_for(store: Path, triple: tuple[str, str, str]) -> None:
    """Until the worker building ``triple`` lets it go (built, or failed: then it is built here)."""
    with open(_lock_file(store, triple), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
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
