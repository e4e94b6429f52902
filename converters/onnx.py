"""ONNX builds: torch.onnx (dynamo) export, fp16 with float I/O, static int8 in QDQ form."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskgate.ast_race import retry_ast_race
from maskgate.errors import ConversionError

from . import hinted_float_ops, require
from .targets import Artifact, ConversionJob, TensorInfo

if TYPE_CHECKING:
    from torch import nn

    from maskgate.specs import ModelSpec

MODEL_FILE = "model.onnx"


def export_fp32(module: nn.Module, spec: ModelSpec, path: Path, *, opset: int | None = None,
                simplify: bool = True) -> list[str]:
    """The fp32 export every ONNX and OpenVINO build starts from; returns notes."""
    import torch

    onnx = require("onnx", purpose="ONNX export")
    notes = []
    x = torch.zeros(*spec.input.shape)
    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    try:
        # The exporter narrates every step on stdout; a build shows its own progress instead.
        def export() -> Any:  # a torch.onnx.ONNXProgram
            with contextlib.redirect_stdout(io.StringIO()):
                return torch.onnx.export(module, (x,), dynamo=True, input_names=[spec.input.name],
                                         output_names=list(spec.outputs), verbose=False, **kwargs)

        program = retry_ast_race(export, what=f"{spec.name}: torch.onnx.export")
        program.save(str(path))
    except Exception as exc:  # the exporter raises many types; say which model failed
        raise ConversionError(f"{spec.name}: torch.onnx.export (dynamo) failed: {exc}; "
                              "is onnxscript installed (pip install 'maskgate[export]')?") from exc
    if simplify:
        try:
            import onnxsim
        except ModuleNotFoundError:
            notes.append("onnxsim not installed: graph not simplified")
        else:
            model, ok = onnxsim.simplify(onnx.load(str(path)))
            if ok:
                onnx.save(model, str(path))
            else:
                notes.append("onnxsim could not validate the simplified graph: kept the exporter's graph")
    return notes


def convert(job: ConversionJob, folder: Path) -> Artifact:
    onnx = require("onnx", purpose="ONNX export")
    target = job.target
    dst = folder / MODEL_FILE
    quantizer = None
    if target.precision == "fp32":
        shutil.copyfile(job.onnx_fp32, dst)
    elif target.precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # Float I/O kept: the shared pre/post-processing stays float32 for every build.
        onnx.save(convert_float_to_float16(onnx.load(str(job.onnx_fp32)), keep_io_types=True), str(dst))
        quantizer = {"tool": "onnxruntime.transformers.float16", "keep_io_types": True}
    else:
        quantizer = _quantize_int8(job, dst)
    model = onnx.load(str(dst))
    onnx.helper.set_model_props(model, dict(job.metadata))
    onnx.save(model, str(dst))
    inputs, outputs = _io(dst)
    return Artifact(
        files=[MODEL_FILE], inputs=inputs, outputs=outputs, layout=job.spec.input.layout, quantizer=quantizer
    )


def _quantize_int8(job: ConversionJob, dst: Path) -> dict[str, Any]:
    import onnxruntime

    options = job.options.onnx
    calibration = job.int8_calibration
    prepared = dst.with_name("prepared.onnx")
    try:
        keep_float = quantize_qdq(int8_source(job), dst, job, prepared=prepared)
    finally:
        prepared.unlink(missing_ok=True)
    return {"tool": "onnxruntime.quantization.quantize_static", "version": onnxruntime.__version__, "format": "QDQ",
            "per_channel": options.per_channel, "activations": _ELEMENT[options.int8_type],
            "weights": _ELEMENT[options.int8_type],
            "calibration_method": options.calibration_method, "samples": len(calibration),
            "equalized": options.equalize, "float_nodes": keep_float}


_ELEMENT = {"u8u8": "uint8", "s8s8": "int8"}  # OnnxOptions.int8_type: activations and weights alike


def int8_source(job: ConversionJob) -> Path:
    """The fp32 ONNX that int8 quantizes: the export of the cross-layer-equalized model
    (``OnnxOptions.equalize``), else the plain export."""
    if not job.options.onnx.equalize:
        return job.onnx_fp32

    def make(path: Path) -> None:
        from .equalize import equalize

        module, _ = equalize(job.module)
        export_fp32(module, job.spec, path, opset=job.options.onnx.opset, simplify=job.options.onnx.simplify)

    path: Path = job.shared.file("fp32-equalized.onnx", make)
    return path


def quantize_qdq(source: Path, dst: Path, job: ConversionJob, *, prepared: Path) -> list[str]:
    """``source`` -> ``prepared`` (ORT's pre-processing; the float graph the QDQ model's
    names refer to) -> ``dst`` (static int8 QDQ, the model's hints and ``keep_float`` left
    in float); returns the nodes left in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from maskgate.calibration.adapters import ort_reader

    options = job.options.onnx
    qtype = QuantType.QUInt8 if _ELEMENT[options.int8_type] == "uint8" else QuantType.QInt8
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[options.calibration_method]
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        keep_float = float_nodes(prepared, options.keep_float, leading_convs=job.spec.int8_float_leading_convs,
                                 head=job.spec.int8_float_head)
        quantize_static(str(prepared), str(dst), ort_reader(job.int8_calibration), quant_format=QuantFormat.QDQ,
                        per_channel=options.per_channel, activation_type=qtype,
                        weight_type=qtype, calibrate_method=method, nodes_to_exclude=keep_float)
    finally:
        for leftover in dst.parent.glob("augmented_model*.onnx"):
            leftover.unlink()
    return keep_float


def float_nodes(path: Path, patterns: tuple[str, ...], *, leading_convs: int = 0, head: bool = False) -> list[str]:
    """Graph nodes left in float: the model's hint (see ``hinted_float_ops``; graph order
    is topological) and the nodes named by ``patterns`` (exact, or ``re:`` regexes)."""
    import re

    onnx = require("onnx", purpose="ONNX export")
    nodes = onnx.load(str(path), load_external_data=False).graph.node
    names = [n.name for n in nodes]
    chosen = hinted_float_ops([(n.name, n.op_type) for n in nodes], leading_convs=leading_convs, head=head,
                              conv_types=("Conv",))
    for pattern in patterns:
        if pattern.startswith("re:"):
            matched = [n for n in names if re.fullmatch(pattern[3:], n)]
        else:
            matched = [pattern] if pattern in names else []
        if not matched:
            raise ConversionError(f"keep_float {pattern!r} matches no node of {path.name}; "
                                  f"node names look like {names[:3]}")
        chosen += [n for n in matched if n not in chosen]
    return chosen


def _io(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}

    def info(v: Any) -> TensorInfo:  # an onnxruntime NodeArg
        return TensorInfo(
            v.name, tuple(int(d) if isinstance(d, int) else -1 for d in v.shape), dtype.get(v.type, v.type)
        )

    return [info(v) for v in session.get_inputs()], [info(v) for v in session.get_outputs()]
