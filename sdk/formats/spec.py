"""What a format declaration holds (``FormatSpec``) and the per-format converter options."""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
# npu-sim: a vendor's NPU simulator on the workstation. It checks NPU builds; it is never the
# camera's NPU, so the selector takes it only when asked for by name (maskgate.runtimes.devices).
SIMULATOR = "npu-sim"
DEVICE_KINDS: tuple[str, ...] = ("npu", "gpu", "cpu", SIMULATOR)


@dataclass(frozen=True)
class Flag:
    """One ``maskgate build`` flag that sets one field of a format's options."""

    flag: str  # e.g. --onnx-calibration
    field: str  # the options field it sets
    help: str
    kind: str = "value"  # value | comma_list (tuple of names) | true (store_true) | false (store_true, sets False)
    choices: tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None

    def add_to(self, parser: argparse.ArgumentParser, default: Any) -> None:
        dest = self.flag.lstrip("-").replace("-", "_")
        if self.kind in ("true", "false"):
            parser.add_argument(self.flag, dest=dest, action="store_true", help=self.help)
        elif self.kind == "comma_list":
            parser.add_argument(self.flag, dest=dest, default=",".join(default), metavar="NAMES", help=self.help)
        else:
            parser.add_argument(self.flag, dest=dest, default=default, choices=self.choices, type=self.type or str,
                                help=self.help)

    def value(self, args: argparse.Namespace) -> Any:
        raw = getattr(args, self.flag.lstrip("-").replace("-", "_"))
        if self.kind == "true":
            return bool(raw)
        if self.kind == "false":
            return not raw
        if self.kind == "comma_list":
            return tuple(s.strip() for s in str(raw).split(",") if s.strip())
        return raw


@dataclass(frozen=True)
class FormatSpec:
    """Every fact about one build format. The build dispatches to ``converter``, the runtime
    layer to ``backends``, the CLI adds ``flags``, the manifests record ``tools``, and the
    reports draw it in ``colour``."""

    name: str
    description: str
    model_file: str  # the file its runtime loads (the manifest digest is stamped into it)
    converter: str  # module with ``convert(job, folder) -> Artifact`` (maskgate.converters.targets)
    stamp_reader: str  # "module:function" reading the metadata stamped into the model file from its bytes
    backends: tuple[str, ...]  # built-in runtimes (maskgate.runtimes.<name>) that run it
    options: type  # frozen dataclass of the converter's options; its defaults are the build's
    flags: tuple[Flag, ...]  # ``maskgate build`` flags for those options
    tools: tuple[str, ...]  # distributions whose versions every bundle records (and its build key)
    exporters: tuple[str, ...]  # Python modules a build of this format imports
    device_rank: Mapping[str, int]  # per device kind it runs on: the selector tries lower ranks first
    colour: str  # plots: the colour means the format in every plot of a report
    # --accuracy-aware: options with these ONNX graph nodes kept in float; None: not repairable.
    keep_float: Callable[[Any, Sequence[str]], Any] | None = None
    diagnosis_note: str = ""  # how the int8 layer ranking (made on the ONNX graph) applies to this format
    notes: tuple[str, ...] = field(default_factory=tuple)
    precisions: tuple[str, ...] = PRECISIONS  # the precisions it builds
    default: bool = True  # in a plain 'maskgate build' (the NPU formats are asked for by name)
    # Formats compiled per chip: the chips one build makes a bundle for, from the options
    # (a bundle per chip, named MODEL-FORMAT-PRECISION-CHIP); None: one bundle for any device.
    device_targets: Callable[[Any], tuple[str, ...]] | None = None
    # Formats checked in a simulator (seconds a frame): at most this many held-out inputs per
    # task, and this many timed runs in a check; None: the build's own counts.
    simulator_samples: Mapping[str, int] | None = None
    simulator_runs: int | None = None
    # "module:function" giving {distribution: version} of the tools that run in an environment
    # of their own (rknn-toolkit2): what ``tools`` records for those.
    tool_env: str | None = None
    # "module:function" (bundle folder, manifest, one input) -> the format's own per-layer error
    # report, added to the int8 diagnosis of a bundle below its gate (RKNN: accuracy_analysis)
    layer_report: str | None = None

    def targets_of(self, options: Any) -> tuple[str, ...]:
        """The chips a build with ``options`` makes bundles for; ("",) when not compiled per chip."""
        return tuple(self.device_targets(options)) if self.device_targets else ("",)

    @property
    def simulated(self) -> bool:
        """Checked in a vendor's simulator on the build machine (its samples are capped)."""
        return self.simulator_samples is not None

    @property
    def repairable(self) -> bool:
        return self.keep_float is not None

    def converter_module(self) -> ModuleType:
        return importlib.import_module(self.converter)

    def stamp_reader_function(self) -> Callable[[bytes], dict[str, str]]:
        return _resolve(self.stamp_reader, "stamp_reader")

    def layer_report_function(self) -> Callable[..., dict] | None:
        return _resolve(self.layer_report, "layer_report") if self.layer_report else None

    def tool_env_versions(self) -> dict[str, str]:
        """{distribution: version} of the tools in an environment of their own ({} when none)."""
        return _resolve(self.tool_env, "tool_env")() if self.tool_env else {}

    def options_from_flags(self, args: argparse.Namespace) -> Any:
        """The options the flags set; a value the options refuse fails in one line naming the
        flags that were given (``--rknn-targets nope`` was a traceback)."""
        from ..errors import InputError

        values = {f.field: f.value(args) for f in self.flags}
        try:
            return self.options(**values)
        except ValueError as exc:
            defaults = self.options()
            given = [f.flag for f in self.flags if values[f.field] != getattr(defaults, f.field)]
            raise InputError(f"{exc} ({', '.join(given) or 'the ' + self.name + ' flags'})") from None


def _resolve(reference: str, what: str) -> Callable:
    """The function a "module:function" reference of a format declaration names."""
    module, _, function = reference.partition(":")
    if not function:
        raise ValueError(f"{what} {reference!r} is not 'module:function'")
    return getattr(importlib.import_module(module), function)
