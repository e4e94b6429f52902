"""QNN builds: the fp32 ONNX export -> a QNN-ready QDQ model (onnxruntime's QNN quantization
settings) -> an offline EPContext model + context binary compiled for one SoC's HTP.

The QDQ model is made once per model (``job.shared``) and compiled per SoC. The bundle
keeps both: ``model_ctx.onnx`` + ``model_ctx_qnn.bin`` load in seconds on the device, and
``model.qdq.onnx`` lets a newer QNN runtime compile it again.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskgate.errors import ConversionError

from . import require
from .onnx import _io, float_nodes
from .qnn_weights import depthwise_convs, split_fine_weights
from .targets import Artifact, ConversionJob

if TYPE_CHECKING:
    from maskgate.formats.qnn import QnnOptions

CONTEXT_MODEL = "model_ctx.onnx"  # the EPContext model ORT writes names its binary after itself
CONTEXT_BINARY = "model_ctx_qnn.bin"
QDQ_MODEL = "model.qdq.onnx"


def convert(job: ConversionJob, folder: Path) -> Artifact:
    from maskgate.formats.qnn import QNN_SOCS

    onnx = require("onnx", purpose="QNN builds")
    require("onnxruntime_qnn", purpose="QNN builds", package="onnxruntime-qnn", extra="qnn")
    _ = job.int8_calibration  # refused before any work without one
    options = job.format_options
    soc = QNN_SOCS[job.target.chip]
    qdq, settings = qdq_model(job)
    shutil.copyfile(qdq, folder / QDQ_MODEL)
    compile_context(folder / QDQ_MODEL, folder / CONTEXT_MODEL, job.target.chip)
    if not (folder / CONTEXT_BINARY).is_file():
        raise ConversionError(f"{job.target.name}: onnxruntime-qnn wrote no {CONTEXT_BINARY} beside {CONTEXT_MODEL}")
    model = onnx.load(str(folder / CONTEXT_MODEL))
    compatibility = {p.key: p.value for p in model.metadata_props}.get("ep_compatibility_info.QNNExecutionProvider")
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **job.metadata})
    onnx.save(model, str(folder / CONTEXT_MODEL))
    inputs, outputs = _io(folder / QDQ_MODEL)
    quantizer = {**settings, "soc": job.target.chip, "soc_description": soc.description, "htp_arch": soc.htp_arch,
                 "soc_model": soc.soc_model, "context_compatibility": compatibility,
                 "activations_16bit": list(options.wide_activations)}
    return Artifact(files=[CONTEXT_MODEL, CONTEXT_BINARY, QDQ_MODEL], inputs=inputs, outputs=outputs,
                    layout=job.spec.input.layout, quantizer=quantizer, sources=[QDQ_MODEL])


def qdq_model(job: ConversionJob) -> tuple[Path, dict[str, Any]]:
    """The model's QDQ ONNX for these options, made once and shared by its SoCs' builds."""
    import dataclasses

    import onnxruntime

    options = job.format_options
    record = {"tool": "onnxruntime.quantization (get_qnn_qdq_config)", "version": onnxruntime.__version__,
              "format": "QDQ", "activations": options.activations,
              "weights": "int8 symmetric per channel" if options.per_channel else "uint8 per tensor",
              "calibration_method": options.calibration_method, "samples": len(job.int8_calibration),
              "equalized": False, "model_hints": options.model_hints,
              "wide_heads": options.wide_heads, "fine_weights": options.fine_weights and options.model_hints}
    settings = {k: v for k, v in dataclasses.asdict(options).items() if k != "socs"}
    key = hashlib.sha256(json.dumps([record, settings, job.int8_calibration.sha256()], sort_keys=True).encode())
    name = f"qnn-qdq-{key.hexdigest()[:16]}.onnx"
    return job.shared.file(name, lambda dst: _quantize(job, dst)), record


def _quantize(job: ConversionJob, dst: Path) -> list[str]:
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from maskgate.calibration.adapters import ort_reader

    onnx = require("onnx", purpose="QNN builds")
    options = job.format_options
    source = dst.with_name(dst.stem + ".source.onnx")
    prepared = dst.with_name(dst.stem + ".prepared.onnx")
    # The plain export, not the ONNX int8 builds' equalized one: equalization evens out weight
    # ranges for per-tensor int8, which per-channel weights do not need, and it widened the
    # activation ranges here. The detector's QDQ model on the CPU (24 held-out frames, same
    # settings otherwise) found 96.2 % of the reference detections from the equalized export,
    # 100 % from the plain one. onnxruntime's QNN pre-processing also raises on models with
    # metadata_props (1.31, 1.32), so they are dropped.
    model = onnx.load(str(job.onnx_fp32))
    del model.metadata_props[:]
    onnx.save(model, str(source))
    notes = []
    try:
        # Shape inference folds the leftover Shape/Slice nodes that per-channel weights trip on.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        spec = job.spec
        hinted = (float_nodes(prepared, (), leading_convs=spec.int8_float_leading_convs, head=spec.int8_float_head)
                  if options.model_hints else [])
        wide_tensors = _outputs_of(prepared, _wide_nodes(prepared, options, hinted))
        if options.fine_weights and hinted:
            convs = depthwise_convs(prepared, hinted)
            wide_tensors += split_fine_weights(prepared, convs)
            if convs:
                notes.append(f"qnn: {len(convs)} depthwise convolutions get 16-bit weights as two int8 ones")
        activation = QuantType.QUInt16 if options.activations == "uint16" else QuantType.QUInt8
        overrides = ({t: [{"quant_type": QuantType.QUInt16}] for t in wide_tensors}
                     if options.activations == "uint8" else {})
        method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[options.calibration_method]
        config = get_qnn_qdq_config(str(prepared), ort_reader(job.int8_calibration), calibrate_method=method,
                                    activation_type=activation,
                                    weight_type=QuantType.QInt8 if options.per_channel else QuantType.QUInt8,
                                    per_channel=options.per_channel, init_overrides=overrides or None)
        quantize(str(prepared), str(dst), config)
    finally:
        source.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)
        for leftover in dst.parent.glob("augmented_model*.onnx"):
            leftover.unlink()
    if overrides:
        notes.append(f"qnn: the activations of {len(overrides)} tensors kept at 16 bits")
    return notes


def _wide_nodes(path: Path, options: QnnOptions, hinted: list[str]) -> list[str]:
    """The nodes whose outputs stay 16-bit: the model's ``hinted`` ones, those named by
    ``options.wide_activations`` and the prediction heads (with ``wide_heads``)."""
    onnx = require("onnx", purpose="QNN builds")
    names = hinted + [n for n in float_nodes(path, options.wide_activations) if n not in hinted]
    if options.wide_heads:
        names += [n for n in head_nodes(onnx.load(str(path), load_external_data=False).graph) if n not in names]
    return names


def _outputs_of(path: Path, names: list[str]) -> list[str]:
    onnx = require("onnx", purpose="QNN builds")
    nodes = {n.name: n for n in onnx.load(str(path), load_external_data=False).graph.node}
    return [output for name in names for output in nodes[name].output]


def head_nodes(graph: Any) -> list[str]:  # an onnx GraphProto
    """The nodes that make the graph's outputs: walking back from each output through every
    op up to and including the first convolution on each path (a detector's box, score and
    landmark heads; a classifier's pooling and classifier)."""
    producer = {out: node for node in graph.node for out in node.output}
    found, todo = [], [producer[o.name] for o in graph.output if o.name in producer]
    while todo:
        node = todo.pop()
        if node.name in found:
            continue
        found.append(node.name)
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            todo += [producer[i] for i in node.input if i in producer]
    return found


def compile_context(qdq: Path, ctx: Path, chip: str) -> None:
    """Compile ``qdq`` for one SoC's HTP (a QNN_SOCS name) into ``ctx`` (+ its ``_qnn.bin``),
    refusing any CPU fallback."""
    import onnxruntime as ort

    from maskgate.console import native_output_filtered
    from maskgate.formats.qnn import QNN_SOCS
    from maskgate.runtimes.qnn import HTP_LOCK, SOC_SCOPE, qnn_session_options

    soc_options = QNN_SOCS[chip].provider_options()
    options = qnn_session_options(provider_options=soc_options, strict=True)
    options.add_session_config_entry("ep.context_enable", "1")
    options.add_session_config_entry("ep.context_file_path", str(ctx))
    options.add_session_config_entry("ep.context_embed_mode", "0")
    try:
        with SOC_SCOPE.holding(chip), HTP_LOCK, native_output_filtered():
            ort.InferenceSession(str(qdq), options)  # released inside the lock too
    except Exception as exc:  # ORT's Fail types: say what the compile needed
        raise ConversionError(f"{qdq.name}: onnxruntime-qnn could not compile it for {chip}'s HTP {soc_options} "
                              f"({exc}); every node must run on the NPU (static shapes, QDQ int8/int16)") from exc
