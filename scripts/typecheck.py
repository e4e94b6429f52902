"""mypy over the package as it is installed: ``maskgate`` from sdk/, ``maskgate.runtimes`` from
runtimes/, and so on (pyproject.toml's [tool.setuptools.package-dir]).

    python scripts/typecheck.py [mypy options]

mypy reads neither an editable install's import hook nor a package-dir mapping, so the
layout is rebuilt from symbolic links in a temporary folder and mypy runs there, with the
checkout's pyproject.toml ([tool.mypy]: strict on runtimes/ and converters/). The exit
status is mypy's (0: no errors). Its cache stays in .mypy_cache/ of the checkout.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_dirs() -> dict[str, Path]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        sys.exit("scripts/typecheck.py needs Python 3.11 or later (tomllib)")
    with open(ROOT / "pyproject.toml", "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def layout(into: Path) -> None:
    """``into``/maskgate/... as the installed package: links to the checkout's files."""
    dirs = package_dirs()
    top = into / "maskgate"
    top.mkdir()
    mapped = {name.split(".", 1)[1]: folder for name, folder in dirs.items() if name.startswith("maskgate.")}
    for entry in dirs["maskgate"].iterdir():
        if entry.name not in mapped and entry.name != "__pycache__":
            (top / entry.name).symlink_to(entry)
    for sub, folder in mapped.items():
        (top / sub).symlink_to(folder)


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="maskgate-types-") as tmp:
        layout(Path(tmp))
        command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                   "--cache-dir", str(ROOT / ".mypy_cache"), *argv, "-p", "maskgate"]
        return subprocess.run(command, cwd=tmp).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
