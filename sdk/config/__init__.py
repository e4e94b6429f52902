"""The one reader of MaskGate's config file, read once per process into one ``MaskGateConfig``.

The file is the one ``--config FILE`` names (any command), else the one ``MASKGATE_CONFIG``
names, else ``maskgate.toml`` in the working folder (TOML, or JSON where the suffix is .json).
Each part of the SDK takes its own section from it: ``[devices]`` (the runtime selector),
``[gates.<precision>]`` (the checker), ``[trust]`` (which bundles may run), ``[data]`` (the
labelled data folder), ``[sources]`` (image and video limits), ``[turnstile]`` and its
sub-tables (the gate app), ``[agent]`` (the release agent). A table or key the
file may not hold, or a value of the wrong type, is refused in one line that names it, the
file, and what is known: a typo never leaves a setting at its default unnoticed.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .agent import AgentSettings, ProbationSettings
from .gates import DEFAULT_GATES, GateOverrides, GateSettings, SameBuildsGate
from .tables import ConfigError, convert, read_table
from .turnstile import DEFAULT_BUILDS, GateRules, StreamOptions, TurnstileConfig

ENV_CONFIG = "MASKGATE_CONFIG"
DEFAULT_NAME = "maskgate.toml"

__all__ = ["AgentSettings", "DEFAULT_BUILDS", "DEFAULT_NAME", "ENV_CONFIG", "ConfigError", "DataSettings", "GateRules",
           "MaskGateConfig", "PlacementFloor", "ProbationSettings", "SourceSettings", "StreamOptions", "TrustSettings",
           "TurnstileConfig", "active_config", "chosen_config", "config_path", "data_folder", "reset_config",
           "restore_config", "use_config"]


@dataclass(frozen=True)
class TrustSettings:
    """``[trust]``: which bundles may run (``maskgate.runtimes.trust``)."""

    # Ed25519 public key or HMAC secret, relative to the config file; set: nothing unsigned runs
    verify_key: Path | None = field(default=None, metadata={"relative_to_file": True})
    allow_failed_builds: bool = False  # true: run bundles below their gates too (not for production)


@dataclass(frozen=True)
class DataSettings:
    """``[data]``: the labelled data folder (docs/data.md), for commands that read one."""

    path: Path | None = None


@dataclass(frozen=True)
class SourceSettings:
    """``[sources]``: how images, videos and streams are opened (``maskgate run``, the turnstile)."""

    # An image whose header claims more pixels is refused before it is decoded (a 20000 x 20000
    # PNG takes 2.4 GB to decode); 50 MP is above any camera's or data set's frame.
    max_image_pixels: int = 50_000_000
    # Opening a video, a camera or a stream may take this long (a FIFO with no writer never opens).
    open_timeout_s: float = 10.0

    def __post_init__(self):
        if self.max_image_pixels < 1 or self.open_timeout_s <= 0:
            raise ValueError(f"max_image_pixels must be >= 1 and open_timeout_s > 0, got {self.max_image_pixels} "
                             f"and {self.open_timeout_s}")


@dataclass(frozen=True)
class PlacementFloor:
    """``[placement]`` (and ``[placement.<model>]``): how much of a model an npu / gpu build
    must run on that accelerator to be chosen (``maskgate.runtimes.placement``)."""

    min_share: float = 0.9  # of the operations, as the runtime runs them
    all_heavy: bool = True  # every convolution and matrix product

    def __post_init__(self):
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"min_share is a share between 0 and 1, got {self.min_share}")


TABLES = ("devices", "gates", "trust", "data", "sources", "placement", "turnstile", "agent")


@dataclass(frozen=True)
class MaskGateConfig:
    path: Path | None = None  # the file read; None: there was none, every default holds
    devices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "default" or a model -> device kinds
    gates: GateSettings = field(default_factory=GateSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    data: DataSettings = field(default_factory=DataSettings)
    sources: SourceSettings = field(default_factory=SourceSettings)
    placement: dict[str, PlacementFloor] = field(default_factory=dict)  # "default" or a model -> its floor
    turnstile: TurnstileConfig = field(default_factory=TurnstileConfig)
    agent: AgentSettings = field(default_factory=AgentSettings)

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "the built-in defaults"

    @classmethod
    def read(cls, path: str | Path) -> MaskGateConfig:
        """The config in the file at ``path``, every table checked."""
        path = Path(path)
        data = _parse(path)
        file = str(path)
        unknown = [name for name in data if name not in TABLES]
        if unknown:
            raise ConfigError(f"{file}: [{unknown[0]}]: unknown table; the MaskGate config takes "
                              f"{', '.join(f'[{t}]' for t in TABLES)} (docs/running.md, Configuration)")
        for name in TABLES:
            if name in data and not isinstance(data[name], dict):
                raise ConfigError(f"{file}: [{name}] must be a table, got {type(data[name]).__name__}")
        return cls(path=path, devices=_devices(data.get("devices", {}), file),
                   gates=_gates(data.get("gates", {}), file),
                   trust=read_table(TrustSettings, data.get("trust", {}), file=file, name="trust", base=path.parent),
                   data=read_table(DataSettings, data.get("data", {}), file=file, name="data"),
                   sources=read_table(SourceSettings, data.get("sources", {}), file=file, name="sources"),
                   placement=_placement(data.get("placement", {}), file),
                   turnstile=read_table(TurnstileConfig, data.get("turnstile", {}), file=file, name="turnstile"),
                   agent=read_table(AgentSettings, data.get("agent", {}), file=file, name="agent", base=path.parent))

    def check_models(self, known: list[str] | tuple[str, ...]) -> None:
        """Refuse a ``[devices]`` key or ``[placement.<model>]`` table that names none of the ``known`` models."""
        for key in self.devices:
            if key != "default" and key not in known:
                raise ConfigError(f"{self.where}: [devices] {key}: not a model; [devices] takes default or a model "
                                  f"name ({', '.join(known)})")
        for key in self.placement:
            if key != "default" and key not in known:
                raise ConfigError(f"{self.where}: [placement.{key}]: not a model; [placement] takes min_share, "
                                  f"all_heavy and a table per model ({', '.join(known)})")

    def placement_floor(self, model: str) -> PlacementFloor:
        return self.placement.get(model) or self.placement.get("default") or PlacementFloor()


def _parse(path: Path) -> dict:
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib  # Python 3.11+; on 3.10 use a .json config

            data = tomllib.loads(text)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        raise ConfigError(f"{path}: cannot read the MaskGate config ({type(exc).__name__}: {exc}); expected TOML "
                          f"(or .json) with tables like [devices] default = \"gpu,cpu\" or [turnstile]") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the MaskGate config must be a table of tables ([devices], [gates.int8], ...)")
    return data


def _devices(table: dict, file: str) -> dict[str, tuple[str, ...]]:
    from ..formats import DEVICE_KINDS

    out = {}
    for key, value in table.items():
        kinds = convert(value, str | tuple[str, ...], where=f"{file}: [devices] {key}")
        kinds = tuple(k.strip().lower() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip())
        bad = [k for k in kinds if k not in DEVICE_KINDS]
        if bad or not kinds:
            raise ConfigError(f"{file}: [devices] {key} = {value!r}: list some of {', '.join(DEVICE_KINDS)}, "
                              f"e.g. \"npu,gpu,cpu\"; got {bad or 'nothing'}")
        out[key] = tuple(dict.fromkeys(kinds))
    return out


def _placement(table: dict, file: str) -> dict[str, PlacementFloor]:
    """``[placement]``: its own keys are the default floor, each sub-table one model's (over the default)."""
    plain = {k: v for k, v in table.items() if not isinstance(v, dict)}
    default = read_table(PlacementFloor, plain, file=file, name="placement")
    out = {"default": default} if plain else {}
    for model, values in table.items():
        if isinstance(values, dict):
            given = read_table(PlacementFloor, values, file=file, name=f"placement.{model}")
            out[model] = dataclasses.replace(default, **{k: getattr(given, k) for k in values})
    return out


def _gates(table: dict, file: str) -> GateSettings:
    from ..formats import FORMATS

    precisions: dict[str, GateOverrides] = {}
    formats: dict[tuple[str, str], GateOverrides] = {}
    same_builds = SameBuildsGate()
    for name, values in table.items():
        if name == "same_builds":
            same_builds = read_table(SameBuildsGate, values, file=file, name="gates.same_builds")
            continue
        if name not in DEFAULT_GATES:
            raise ConfigError(f"{file}: [gates.{name}]: unknown precision; [gates] holds a table per precision "
                              f"({', '.join(DEFAULT_GATES)}), e.g. [gates.int8] min_top1 = 0.98, one per format "
                              "of a precision ([gates.int8.rknn]) and [gates.same_builds]")
        if not isinstance(values, dict):
            raise ConfigError(f"{file}: [gates.{name}] must be a table, got {type(values).__name__}")
        for fmt, sub in values.items():
            if isinstance(sub, dict):
                if fmt not in FORMATS:
                    raise ConfigError(f"{file}: [gates.{name}.{fmt}]: unknown format; one of {', '.join(FORMATS)}")
                formats[(name, fmt)] = read_table(GateOverrides, sub, file=file, name=f"gates.{name}.{fmt}")
        plain = {k: v for k, v in values.items() if not isinstance(v, dict)}
        precisions[name] = read_table(GateOverrides, plain, file=file, name=f"gates.{name}")
    return GateSettings(precisions, formats, same_builds)


# -- the process's config ---------------------------------------------------------------------------

_chosen: MaskGateConfig | None = None  # set by use_config (--config): wins over the environment
_read: dict[str, MaskGateConfig] = {}  # by the file's resolved path ("" for none): each read once


def config_path() -> Path | None:
    """``MASKGATE_CONFIG``, else ./maskgate.toml where it exists, else None."""
    named = os.environ.get(ENV_CONFIG)
    if named:
        return Path(named)
    return Path(DEFAULT_NAME) if Path(DEFAULT_NAME).is_file() else None


def _load(path: Path | None, *, again: bool = False) -> MaskGateConfig:
    key = str(path.resolve()) if path is not None else ""
    if again or key not in _read:
        _read[key] = MaskGateConfig.read(path) if path is not None else MaskGateConfig()
    return _read[key]


def active_config() -> MaskGateConfig:
    """The process's config: the file ``use_config`` chose, else ``MASKGATE_CONFIG`` or
    ./maskgate.toml (read once), else the defaults."""
    return _chosen if _chosen is not None else _load(config_path())


def use_config(path: str | Path | None) -> MaskGateConfig | None:
    """Read the file at ``path`` (now, even if read before) and make it the process's config
    (``--config``); None goes back to ``MASKGATE_CONFIG`` / ./maskgate.toml. Returns the config
    chosen before, for restoring."""
    global _chosen
    before = _chosen
    _chosen = _load(Path(path), again=True) if path is not None else None
    return before


def chosen_config() -> MaskGateConfig | None:
    """The config ``use_config`` chose (None: the environment's holds)."""
    return _chosen


def restore_config(before: MaskGateConfig | None) -> None:
    global _chosen
    _chosen = before


def reset_config() -> None:
    """Forget every config read (a test that rewrites a file in place, say)."""
    global _chosen
    _chosen = None
    _read.clear()


ENV_DATA = "MASKGATE_DATA"
#: what each part of a data folder holds (docs/data.md)
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
        config = active_config()
        given, source = config.data.path, f"{config.where} [data] path"
    if not given:
        raise InputError(f"no data folder: give {flag} DIR, set {ENV_DATA}, or [data] path in maskgate.toml "
                         "(docs/data.md says what it holds and where to get it)")
    path = Path(given).expanduser()
    if not path.is_dir():
        raise InputError(f"{path} (from {source}): no such folder; docs/data.md gives its layout")
    missing = {part: [p for p in DATA_PARTS[part] if not (path / p).is_dir()] for part in needs}
    lacking = [part for part, gaps in missing.items() if gaps]
    if (any_of and len(lacking) == len(needs)) or (not any_of and lacking):
        gaps = [g for part in lacking for g in missing[part]]
        raise InputError(f"{path} (from {source}): lacks {', '.join(gaps)}; docs/data.md gives the "
                         "layout and where each part comes from")
    return path


def replace(config, **changes):
    """``dataclasses.replace`` with None values left out (flags not given)."""
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
