"""scripts/arm64-check.sh with whatever Python a machine has (issue 29, line 7): the wheel is built
in pip's own build environment when the interpreter's setuptools is older than pyproject.toml
asks (Python 3.11's venv brings 65.5, which fails on ``project.license``), and a launcher that
finds no Python with maskgate says so in one line."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def old_setuptools_python(tmp_path_factory) -> Path:
    """A fresh virtual environment with the setuptools its Python bundles (< 68)."""
    folder = tmp_path_factory.mktemp("oldvenv")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    python = folder / "bin" / "python"
    version = subprocess.run([str(python), "-c", "import setuptools; print(setuptools.__version__)"],
                             capture_output=True, text=True).stdout.strip()
    if not version or int(version.split(".")[0]) >= 68:
        pytest.skip(f"this Python's venv brings setuptools {version or 'none'}, not an old one")
    return python


def _arm64_check():
    sys.path.insert(0, str(ROOT / "scripts"))
    import arm64_check

    return arm64_check


def test_the_wheel_builds_with_an_interpreter_whose_setuptools_is_too_old(old_setuptools_python, tmp_path):
    wheel = _arm64_check().maskgate_wheel(tmp_path / "wheel", python=str(old_setuptools_python))
    assert wheel.name.startswith("maskgate-") and wheel.stat().st_size > 10_000
    # What the script did before: no build isolation with that setuptools fails before any check.
    done = subprocess.run([str(old_setuptools_python), "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "old"), str(ROOT)], capture_output=True,
                          text=True)
    assert done.returncode != 0 and "project.license" in done.stderr


def _launcher(tmp_path: Path) -> Path:
    """The launcher in a checkout of its own (no .venv), so only PATH decides the interpreter."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("arm64-check.sh", "arm64_check.py"):
        shutil.copy2(ROOT / "scripts" / name, checkout / "scripts" / name)
    return checkout / "scripts" / "arm64-check.sh"


def _on_path(folder: Path, python: Path) -> None:
    """``folder/python3`` runs ``python`` (a wrapper: a venv's python linked elsewhere is no longer its venv's)."""
    wrapper = folder / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec {python} "$@"\n')
    wrapper.chmod(0o755)


def test_the_launcher_takes_a_python_on_path_that_has_maskgate(tmp_path, old_setuptools_python):
    launcher = _launcher(tmp_path)
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    plain = tmp_path / "plainvenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(plain)], check=True)
    _on_path(bare, plain / "bin" / "python")
    path = f"{bare}:/usr/bin:/bin"
    done = subprocess.run(["bash", str(launcher), "--help"], capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path)})
    assert done.returncode == 2 and "no Python with maskgate installed" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    site = next((old_setuptools_python.parent.parent / "lib").glob("python3*/site-packages"))
    project_site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    (site / "project.pth").write_text(f"import site; site.addsitedir({str(project_site)!r})\n")  # its .pth files too
    _on_path(bare, old_setuptools_python)
    done = subprocess.run(["bash", str(launcher), "--help"], capture_output=True, text=True,
                          env={"PATH": path, "HOME": str(tmp_path)})
    assert done.returncode == 0 and "BUILDS" in done.stdout.upper(), done.stderr[-2000:]
