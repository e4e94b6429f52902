"""The one reader of MaskGate's config file: ``maskgate.toml`` in the working directory, or
the file ``MASKGATE_CONFIG`` names (TOML, or JSON where the suffix is .json). Each part of
the SDK reads its own table: ``[devices]`` (the runtime selector), ``[gates.*]`` (the
checker), ``[trust]`` (which bundles may run), ``[turnstile]`` (the gate app)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InputError

ENV_CONFIG = "MASKGATE_CONFIG"
DEFAULT_NAME = "maskgate.toml"
#: where ``maskgate build`` writes and ``run`` / ``turnstile`` look by default: not ./build,
#: which setuptools and pip fill with build/lib and build/bdist.* on ``pip install .``
DEFAULT_BUILDS = Path("builds")


def config_path() -> Path | None:
    """``MASKGATE_CONFIG``, else ./maskgate.toml where it exists, else None."""
    named = os.environ.get(ENV_CONFIG)
    if named:
        return Path(named)
    return Path(DEFAULT_NAME) if Path(DEFAULT_NAME).is_file() else None


def read_config(path: str | Path | None = None) -> tuple[str | None, dict]:
    """(path, contents) of the config file at ``path`` (default: ``config_path()``), or
    (None, {}) when there is none."""
    path = Path(path) if path is not None else config_path()
    if path is None:
        return None, {}
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib  # Python 3.11+; on 3.10 use a .json config

            data = tomllib.loads(text)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        raise InputError(f"{path}: cannot read the MaskGate config ({type(exc).__name__}: {exc}); expected TOML "
                         f"(or .json) with tables like [devices] default = \"gpu,cpu\" or [turnstile]") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: the MaskGate config must be a table of tables ([devices], [gates.int8], ...)")
    return str(path), data


def config_table(name: str, *, path: str | Path | None = None) -> tuple[str | None, dict]:
    """(path, the ``[name]`` table) of the config file; {} when the file or the table is absent."""
    where, data = read_config(path)
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"{where}: [{name}] must be a table, got {type(table).__name__}")
    return where, table


ENV_DATA = "MASKGATE_DATA"
#: what each part of a data folder holds (README, "Data")
DATA_PARTS = {
    "faces": ("faces/with_mask", "faces/without_mask"),
    "scenes": ("scenes/images", "scenes/annotations"),
}


def data_folder(given: str | Path | None, *, needs: tuple[str, ...] = ("faces", "scenes"), any_of: bool = False,
                flag: str = "--data") -> Path:
    """The labelled data folder: ``given``, else ``MASKGATE_DATA``, else ``[data] path`` in the
    config file; checked to hold the parts in ``needs`` (all of them, or one with ``any_of``).
    A missing folder or part fails in one line that says where the data comes from."""
    source = flag
    if given is None:
        given, source = os.environ.get(ENV_DATA) or None, ENV_DATA
    if given is None:
        where, table = config_table("data")
        given, source = table.get("path"), f"{where} [data] path"
    if not given:
        raise InputError(f"no data folder: give {flag} DIR, set {ENV_DATA}, or [data] path in maskgate.toml "
                         "(the README's Data section says what it holds and where to get it)")
    path = Path(given).expanduser()
    if not path.is_dir():
        raise InputError(f"{path} (from {source}): no such folder; see the README's Data section for its layout")
    missing = {part: [p for p in DATA_PARTS[part] if not (path / p).is_dir()] for part in needs}
    lacking = [part for part, gaps in missing.items() if gaps]
    if (any_of and len(lacking) == len(needs)) or (not any_of and lacking):
        gaps = [g for part in lacking for g in missing[part]]
        raise InputError(f"{path} (from {source}): lacks {', '.join(gaps)}; see the README's Data section for the "
                         "layout and where each part comes from")
    return path
