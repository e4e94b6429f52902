"""Pick the best build and backend for a model on this device, falling back when one fails.

Candidates are (bundle, backend, accelerator) triples: the bundles of the model in a
builds folder, the backends that run their format, and the accelerators those backends
report usable. They are tried in preference order (device kind, then the kind's
precision and format order from ``maskgate.runtimes.devices``). A candidate is taken when its
files match the manifest's checksums, it loads, and it runs the bundle's first golden
input to finite outputs; otherwise the reason is logged and the next one is tried.
Only bundles whose build recorded that they passed their gates are candidates, and where
the site requires signatures only signed ones (``maskgate.runtimes.trust``); the others are
passed over with a logged reason unless the user allows failed builds.
The preference lists device kinds; without ``strict`` the kinds it leaves out follow in
the default order (asking for npu on a machine without one still runs, on the CPU, and
logs why). ``strict=True`` keeps to the listed kinds: when none of their candidates
works it raises ``NoUsableBuildError`` instead of falling back to another kind.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskgate.converters.manifest import GOLDEN, MANIFEST, Manifest
from maskgate.errors import BundleError, DeviceError, InputError, MaskGateError
from maskgate.formats import SIMULATOR
from maskgate.profiles import canvas_variant

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path
from .base import Runner
from .devices import DEFAULT_PREFERENCE, FORMAT_ORDER, PRECISION_ORDER, parse_preference

if TYPE_CHECKING:
    from maskgate.converters.bundle import VerifiedBundle

    from .trust import TrustPolicy

log = logging.getLogger(__name__)


class NoUsableBuildError(DeviceError):
    """No build of the model could be run on the preferred devices; names what is available."""


@dataclass(frozen=True)
class Candidate:
    bundle: Path
    manifest: Manifest
    backend: Backend
    accelerator: Accelerator

    def describe(self) -> str:
        return (f"{self.manifest.format} {self.manifest.precision} on {self.backend.name}/"
                f"{self.accelerator.name} ({self.accelerator.kind})")


@dataclass
class Selection:
    """The runner chosen for a model, what it is, and what was tried before it."""

    runner: Runner
    model: str
    backend: str
    device_kind: str
    device: str
    format: str
    precision: str
    bundle: Path
    manifest: Manifest
    fallbacks: list[str] = field(default_factory=list)  # "candidate: reason" for each build that failed
    skipped_kinds: list[str] = field(default_factory=list)  # "npu: why not" for preferred kinds with nothing usable

    def to_dict(self) -> dict[str, Any]:
        placement = self.runner.placement
        return {"model": self.model, "backend": self.backend, "device_kind": self.device_kind, "device": self.device,
                "format": self.format, "precision": self.precision, "bundle": str(self.bundle),
                "placement": placement.to_dict() if placement is not None else None,
                "fallbacks": list(self.fallbacks), "skipped_kinds": list(self.skipped_kinds)}

    def describe(self) -> str:
        return f"{self.model}: {self.describe_runtime()}"

    def describe_runtime(self) -> str:
        variant = canvas_variant(self.manifest.input.size) if self.manifest.task == "face_detection" else ""
        canvas = f" at {variant}" if variant else ""
        placement = self.runner.placement
        where = f", {placement.describe()}" if placement is not None else ", placement not measured"
        return f"{self.format} {self.precision}{canvas} on {self.backend}/{self.device} ({self.device_kind}){where}"


def model_bundles(builds: str | Path, model: str) -> list[tuple[Path, Manifest]]:
    """The bundles of ``model`` under ``builds`` (a folder of bundles, or one bundle)."""
    return [(folder, m) for folder, m in readable_bundles(builds) if m.model == model]


def readable_bundles(builds: str | Path) -> list[tuple[Path, Manifest]]:
    """(folder, manifest) of every bundle under ``builds`` (a folder of bundles, or one
    bundle) whose manifest reads; a bundle whose manifest does not is logged and skipped, a
    folder without one (another tool's) is passed over quietly (logged at debug level)."""
    from maskgate.converters.bundle import read_manifest

    builds = Path(builds)
    if not builds.is_dir():
        raise BundleError(f"{builds}: no such builds folder; run 'maskgate build --out {builds}' first")
    folders = [builds] if (builds / MANIFEST).is_file() else bundle_folders(builds)
    found = []
    for folder in folders:
        if not (folder / MANIFEST).is_file():  # another tool's folder (setuptools' build/lib, say): not ours
            log.debug("%s: no %s, not a bundle; passed over", folder, MANIFEST)
            continue
        try:
            manifest = read_manifest(folder)  # schema checked; the files' checksums when one is chosen
        except Exception as exc:  # whatever is wrong with one bundle is that bundle's problem, not the run's
            log.warning("%s: not a usable bundle, skipped: %s", folder,
                        exc if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}")
            continue
        found.append((folder, manifest))
    return found


def bundle_folders(builds: Path) -> list[Path]:
    """The folders directly under ``builds`` that may hold a bundle: hidden ones (a build's
    staging folders, a bundle set aside while replaced) never count."""
    return sorted(p for p in Path(builds).iterdir() if p.is_dir() and not p.name.startswith("."))


def bundles_at(path: Path) -> list[Path]:
    """``path`` itself when it is a bundle (a folder with a manifest), else the bundles
    directly under it; [] when there are none."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return [path]
    return [p for p in bundle_folders(path) if (p / MANIFEST).is_file()] if path.is_dir() else []


def candidates(bundles: list[tuple[Path, Manifest]], backends: list[tuple[Backend, BackendStatus]],
               preference: tuple[str, ...]) -> list[Candidate]:
    out = []
    for kind in preference:
        precision_rank = {p: i for i, p in enumerate(PRECISION_ORDER[kind])}
        format_rank = {f: i for i, f in enumerate(FORMAT_ORDER[kind])}
        ranked = sorted(bundles, key=lambda b: (precision_rank.get(b[1].precision, 9),
                                                format_rank.get(b[1].format, 9)))
        for folder, manifest in ranked:
            for backend, status in backends:
                if manifest.format not in backend.formats:
                    continue
                for accelerator in status.usable(kind):
                    out.append(Candidate(folder, manifest, backend, accelerator))
    return out


def open_best(builds: str | Path, model: str, *, prefer: str | tuple[str, ...] | None = None, strict: bool = False,
              threads: int | None = None, backends: list[Backend] | None = None,
              formats: tuple[str, ...] | None = None, precisions: tuple[str, ...] | None = None,
              input_size: tuple[int, int] | None = None, exclude: Set[tuple[str, str, str]] = frozenset(),
              trust: TrustPolicy | None = None,
              checking: bool = False) -> Selection:
    """Open the best runnable build of ``model``; see the module docstring for the order.
    ``formats`` / ``precisions`` / ``input_size`` (width, height: a detector's canvas) narrow
    the bundles considered (e.g. only fp32); ``exclude``:
    (bundle path, backend name, accelerator name) of candidates that already failed;
    ``trust``: a ``maskgate.runtimes.trust.TrustPolicy`` (default: the config file's ``[trust]``);
    ``checking``: the model is opened to check it, not to serve a camera: an NPU simulator
    (``npu-sim``) may run it after every other kind, quietly. Otherwise a simulator runs a
    model only when the preference names ``npu-sim``."""
    from maskgate.converters.bundle import read_verified, verdict_problem

    from .registry import all_backends
    from .trust import configured_trust

    if threads is not None and threads < 1:  # 0 or -1 reached OpenVINO, which failed deep inside, then fell back
        raise InputError(f"threads={threads}: CPU threads per model must be 1 or more (or None: the runtime's own)")

    trust = trust if trust is not None else configured_trust()
    preference = parse_preference(prefer, model=model)
    # The user's own choice: not meeting it is worth a warning (the default's absent kinds are not).
    asked = set(preference) if preference != DEFAULT_PREFERENCE else set()
    if not strict:
        preference += tuple(k for k in DEFAULT_PREFERENCE if k not in preference)
    if checking and SIMULATOR not in preference:
        preference += (SIMULATOR,)
    bundles = [
        (folder, m)
        for folder, m in model_bundles(builds, model)
        if (formats is None or m.format in formats) and (precisions is None or m.precision in precisions)
        and (input_size is None or tuple(m.input.size) == tuple(input_size))
    ]
    if not bundles:
        asked_for = [f"format {', '.join(formats)}" if formats else "", f"precision {', '.join(precisions)}"
                     if precisions else "", f"canvas {input_size[0]}x{input_size[1]}" if input_size else ""]
        narrowed = f" of {'; '.join(a for a in asked_for if a)}" if any(asked_for) else ""
        flags = "".join([f" --formats {','.join(formats)}" if formats else "",
                         f" --precisions {','.join(precisions)}" if precisions else "",
                         f" --detector-size {input_size[0]}x{input_size[1]}" if input_size else ""])
        raise BundleError(f"{builds}: no bundle of {model!r}{narrowed}; build one with "
                          f"'maskgate build --models {model}{flags}'")
    tried: list[str] = []
    if not trust.allow_failed_builds:
        passed = []
        for folder, m in bundles:
            problem = verdict_problem(m)
            if problem is None:
                passed.append((folder, m))
                continue
            reason = (f"{m.format} {m.precision} ({folder.name}): {problem}; allow it with "
                      "--allow-failed-builds")
            log.warning("%s: passing over %s", model, reason)
            tried.append(reason)
        bundles = passed
    # Only the backends that run these bundles' formats are probed (the PyTorch one would import torch).
    present = {m.format for _, m in bundles}
    probed = [(b, b.status()) for b in (backends if backends is not None else all_backends())
              if present & set(b.formats)]
    failed_to_load = []  # candidates that verified, then would not load or run: the cause, whatever the device
    # A bundle is verified once, whichever accelerators it is a candidate on: one that does not
    # verify (a key that signed none of them, say) is one line in the summary, not one per device.
    unverified: dict[Path, str] = {}
    for candidate in candidates(bundles, probed, preference):
        if candidate_key(candidate) in exclude:
            tried.append(f"{candidate.describe()}: failed earlier in this run")
            continue
        if candidate.bundle in unverified:
            continue
        try:  # checksums, binding, signature, before any runtime; the runtime gets the bytes checked
            verified = read_verified(candidate.bundle, key=trust.key)
        except Exception as exc:
            reason = f"{candidate.bundle.name}: {type(exc).__name__}: {exc}"
            log.info("%s: passing over %s", model, reason)
            unverified[candidate.bundle] = reason
            tried.append(reason)
            continue
        try:
            runner = candidate.backend.open(candidate.bundle, verified.manifest, candidate.accelerator,
                                            options=OpenOptions(threads=threads, verified=verified))
            try:
                _smoke_test(runner, verified)
            except Exception:
                runner.close()
                raise
            short = _below_floor(runner, candidate, model)
            if short is not None:  # it runs, but mostly somewhere else: not the accelerator it claims
                runner.close()
                reason = f"{candidate.describe()}: placement below the floor: {short}"
                log.warning("%s: passing over %s", model, reason)
                tried.append(reason)
                continue
        except Exception as exc:  # a backend's own error types too: the next candidate may work
            reason = (f"{model_path(candidate.bundle, candidate.manifest)} ({candidate.describe()}): "
                      f"{type(exc).__name__}: {exc}")
            log.warning("%s: passing over %s", model, reason)
            tried.append(reason)
            failed_to_load.append(reason)
            continue
        manifest = verified.manifest  # the one checked: the folder's may have changed since it was listed
        kind = candidate.accelerator.kind
        skipped = [f"{k}: {_why_not(k, probed)}" for k in preference[:preference.index(kind)]]
        selection = Selection(runner, model, candidate.backend.name, kind, candidate.accelerator.name,
                              manifest.format, manifest.precision, candidate.bundle, manifest, tried, skipped)
        _summarise_unverified(model, unverified)
        for k, reason in zip(preference, skipped):
            level = logging.WARNING if k in asked else logging.INFO
            if reason in _FALLBACKS_SAID:  # the next model on the same machine: the kind, not the whole reason again
                log.log(level, "%s: no usable %s either (as above); falling back", model, k)
                continue
            _FALLBACKS_SAID.add(reason)
            log.log(level, "%s: no usable %s; falling back", model, reason)
        log.info("%s (preference %s)", selection.describe(), " > ".join(preference))
        return selection
    _summarise_unverified(model, unverified)
    raise NoUsableBuildError(_nothing_usable(model, preference, bundles, probed, tried, failed_to_load))


# The fallback reasons already logged in this process (a few: one per device kind and machine).
_FALLBACKS_SAID: set[str] = set()


def _summarise_unverified(model: str, unverified: dict[Path, str]) -> None:
    """One warning for the bundles of ``model`` that did not verify: how many, and the first's reason."""
    if unverified:
        first = next(iter(unverified.values()))
        more = f" (and {len(unverified) - 1} more; --verbose lists each)" if len(unverified) > 1 else ""
        log.warning("%s: passing over %d bundle(s) that do not verify: %s%s", model, len(unverified), first, more)


def candidate_key(candidate: Candidate | Selection) -> tuple[str, str, str]:
    """What identifies a build on a device: (bundle path, backend name, accelerator name)."""
    if isinstance(candidate, Selection):
        return str(candidate.bundle), candidate.backend, candidate.device
    return str(candidate.bundle), candidate.backend.name, candidate.accelerator.name


def _below_floor(runner: Runner, candidate: Candidate, model: str) -> str | None:
    """Why an npu / gpu runner does not run enough of the model on its accelerator (the
    config's ``[placement]`` floor); None when it does, or for the CPU (where everything runs
    anyway). A runtime that cannot say where its operations run is taken, and says so."""
    if candidate.accelerator.kind not in ("npu", "gpu"):
        return None
    if runner.placement is None:
        log.info("%s: %s cannot say where its operations run; taken as placed", model, candidate.describe())
        return None
    from maskgate.config import active_config

    floor = active_config().placement_floor(model)
    return runner.placement.shortfall(min_share=floor.min_share, all_heavy=floor.all_heavy)


def _smoke_test(runner: Runner, verified: VerifiedBundle) -> None:
    """The first golden input (stored in the bundle's layout, as verified) through the runner: outputs finite."""
    manifest = verified.manifest
    if GOLDEN in verified.files:
        with np.load(io.BytesIO(verified.files[GOLDEN])) as data:
            x = np.ascontiguousarray(data["inputs"][:1], dtype=np.float32)
    else:
        x = np.zeros(manifest.input.shape, np.float32)
    out = runner.infer({manifest.input.name: x})
    for name, value in out.items():
        if not np.all(np.isfinite(value)):
            raise MaskGateError(f"output {name!r} is not finite on the bundle's golden input")


def _why_not(kind: str, probed: list[tuple[Backend, BackendStatus]]) -> str:
    reasons = [
        f"{s.name} {a.name} ({a.reason})" for _, s in probed for a in s.accelerators if a.kind == kind and not a.usable
    ]
    reasons += [f"{s.name} not installed" for _, s in probed if not s.installed]
    return "; ".join(reasons) or "no backend offers one"


def _nothing_usable(model: str, preference: tuple[str, ...], bundles: list[tuple[Path, Manifest]],
                    probed: list[tuple[Backend, BackendStatus]], tried: list[str],
                    failed_to_load: Sequence[str] = ()) -> str:
    if failed_to_load:  # a device was there; the model file was not fit to run on it: that is the cause
        lines = [f"{model}: every build that could run here failed to load or run (its checksums match its "
                 "manifest, so it was written damaged or this runtime cannot read it; rebuild it):"]
        lines += [f"  {reason}" for reason in failed_to_load]
        lines += [f"  also passed over: {t}" for t in tried if t not in failed_to_load]
        return "\n".join(lines)
    have = sorted({f"{m.format} {m.precision}" for _, m in bundles})
    usable = [f"{s.name}: {', '.join(f'{a.kind}/{a.name}' for a in s.accelerators if a.usable) or 'none'}"
              for _, s in probed if s.installed]
    missing = [f"{s.name} ({s.reason})" for _, s in probed if not s.installed]
    lines = [f"{model}: no build runs on {' > '.join(preference)}.",
             f"  bundles: {', '.join(have) or 'none that may run (see below)'}",
             f"  usable accelerators: {'; '.join(usable) or 'none'}"]
    if missing:
        lines.append(f"  not installed: {'; '.join(missing)}")
    wanted = [k for k in preference if not any(s.usable(k) for _, s in probed)]
    for kind in wanted:
        names = sorted({n for backend, _ in probed for n in backend.devices.get(kind, ())})
        fallback = (f"; allow a fallback: --prefer {kind},cpu (prefer=\"{kind},cpu\" from Python)"
                    if kind != "cpu" else "")
        lines.append(f"  no usable {kind} here (looked for {', '.join(names) or 'none'}: {_why_not(kind, probed)})"
                     f"{fallback}")
    if SIMULATOR not in preference and any(s.usable(SIMULATOR) for _, s in probed):
        lines.append(f"  a simulator here runs {', '.join(s.name for _, s in probed if s.usable(SIMULATOR))} bundles "
                     f"for checks, never for a camera: ask for it by name (--prefer {SIMULATOR})")
    lines += [f"  tried {t}" for t in _grouped(tried)]
    return "\n".join(lines)


def _grouped(tried: list[str]) -> list[str]:
    """The tried builds, those that failed for the same reason in one line: a key that signed none
    of 18 bundles gave 18 lines that differed only in the bundle's name."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for reason in tried:
        name, sep, rest = reason.partition(": ")
        key = rest.replace(name, "<bundle>") if sep and name else reason
        groups.setdefault(key, []).append((name, reason))
    out = []
    for key, members in groups.items():
        if len(members) < 3:
            out += [reason for _, reason in members]
            continue
        names = [name for name, _ in members]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        out.append(f"{len(names)} bundles ({shown}), each: {key}")
    return out
