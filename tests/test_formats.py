"""The format registry (maskgate.formats) is complete: every format has each piece the build,
the CLI, the runtime layer, the bundle binding and the reports read, and nothing outside the
registry keeps its own list of formats."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re

import pytest

from maskgate.formats import DEVICE_KINDS, FORMATS, ConvertOptions, Flag, FormatSpec, format_order
from tests.conftest import ROOT


def problems_of(spec: FormatSpec) -> list[str]:
    """What ``spec`` lacks for a build, a run and a report of its format."""
    from maskgate.runtimes.registry import builtin_backends

    out = []
    if not spec.description or not re.fullmatch(r"#[0-9a-f]{6}", spec.colour):
        out.append("a label, a description and a #rrggbb plot colour")
    if not spec.model_file or "/" in spec.model_file:
        out.append("a model file name inside the bundle")
    try:
        convert = importlib.import_module(spec.converter).convert
        if list(inspect.signature(convert).parameters) != ["job", "folder"]:
            out.append(f"{spec.converter}.convert(job, folder): the one converter signature")
    except (ImportError, AttributeError) as exc:
        out.append(f"a converter module {spec.converter} with convert(job, folder) ({exc})")
    backends = {b.name: b for b in builtin_backends()}
    for name in spec.backends:
        if name not in backends or spec.name not in backends[name].formats:
            out.append(f"a built-in backend {name!r} that runs {spec.name}")
        elif not set(backends[name].devices) <= set(DEVICE_KINDS) or not any(backends[name].devices.values()):
            out.append(f"backend {name!r} lists its accelerators per device kind ({DEVICE_KINDS})")
        elif not set(spec.device_rank) <= set(backends[name].devices):
            out.append(f"a device rank only for the kinds its backend {name!r} offers")
    if not spec.backends:
        out.append("a backend that runs it")
    if not spec.device_rank or not set(spec.device_rank) <= set(DEVICE_KINDS):
        out.append(f"a device rank for each kind of {DEVICE_KINDS} it runs on")
    if not spec.precisions or not set(spec.precisions) <= {"fp32", "fp16", "int8"}:
        out.append("the precisions it builds")
    if spec.device_targets is not None and not spec.targets_of(spec.options()):
        out.append("default chips for a format built per chip")
    if not (dataclasses.is_dataclass(spec.options) and spec.options.__dataclass_params__.frozen):
        out.append("a frozen options dataclass")
    else:
        fields = {f.name for f in dataclasses.fields(spec.options)}
        out += [f"flag {f.flag} sets a field of {spec.options.__name__}" for f in spec.flags if f.field not in fields]
        out += [f"flag {f.flag} starts with its format's prefix" for f in spec.flags
                if not f.flag.startswith(("--onnx-", "--ov-", "--tflite-", f"--{spec.name}-"))]
    if not spec.tools or not spec.exporters:
        out.append("the tools its bundles record and the exporters its build imports")
    try:
        spec.stamp_reader_function()
    except (ImportError, AttributeError, ValueError) as exc:
        out.append(f"a reader {spec.stamp_reader!r} for the manifest digest stamped into its model ({exc})")
    if spec.repairable:
        repaired = spec.keep_float(spec.options(), ["node_a"])
        if type(repaired) is not spec.options or "node_a" not in repr(repaired):
            out.append("keep_float returns its options with the nodes kept in float")
    return out


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_has_every_piece(name):
    assert problems_of(FORMATS[name]) == []


def test_a_format_missing_pieces_is_caught():
    broken = dataclasses.replace(FORMATS["onnx"], name="npuformat", converter="maskgate.converters.npuformat",
                                 backends=("npuruntime",), device_rank={"tpu": 0}, colour="red",
                                 stamp_reader="maskgate.converters.binding:npuformat_metadata")
    problems = " | ".join(problems_of(broken))
    for piece in ("converter module", "built-in backend 'npuruntime'", "device rank",
                  "plot colour", "stamped into its model"):
        assert piece in problems, problems


def test_flags_are_unique_and_parse_to_the_default_options():
    flags = [f.flag for spec in FORMATS.values() for f in spec.flags]
    assert len(flags) == len(set(flags))
    parser = argparse.ArgumentParser()
    ConvertOptions.add_flags(parser)
    assert ConvertOptions.from_flags(parser.parse_args([])) == ConvertOptions()
    changed = ConvertOptions.from_flags(parser.parse_args(["--onnx-no-equalize", "--ov-ignored-scope", "a, b",
                                                           "--tflite-nhwc", "--ov-max-drop", "0.05"]))
    assert (changed.onnx.equalize, changed.openvino.ignored_scope, changed.tflite.channel_last_io,
            changed.openvino.max_drop) == (False, ("a", "b"), True, 0.05)


def test_convert_options_refuse_unknown_formats_and_wrong_types():
    with pytest.raises(TypeError, match="unknown format"):
        ConvertOptions(mystery=object())
    with pytest.raises(TypeError, match="takes a OnnxOptions"):
        ConvertOptions(onnx=FORMATS["tflite"].options())
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConvertOptions().onnx = None


def test_the_selector_order_is_the_measured_one():
    # OpenVINO int8 detector 10 ms, TFLite 14 ms, ONNX Runtime 18 ms on one CPU thread.
    assert format_order("cpu") == ("openvino", "tflite", "onnx")
    assert format_order("gpu")[0] == "onnx"
    assert format_order("npu")[:2] == ("qnn", "rknn") and format_order("npu-sim") == ("qnn", "rknn")


def test_no_module_keeps_its_own_list_of_formats():
    """A tuple or dict naming two or more formats outside the registry is a second source."""
    name = r"""["'](?:onnx|openvino|tflite)["']"""
    # ("onnx", "openvino", ...): two different format names in a row
    in_sequence = re.compile(r"""["'](onnx|openvino|tflite)["']\s*,\s*["'](?!\1["'])(?:onnx|openvino|tflite)["']""")
    as_key = re.compile(name + r"\s*:")  # {"onnx": ..., "tflite": ...}
    offenders = []
    for folder in ("sdk", "runtimes", "converters", "calibration"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.parent.name == "formats":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if (in_sequence.search(line) or len(as_key.findall(line)) > 1) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_flag_dataclass_is_used_by_every_format():
    assert all(isinstance(f, Flag) for spec in FORMATS.values() for f in spec.flags)
