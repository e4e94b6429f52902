"""TFLite (LiteRT) builds: litert-torch conversion, fp16 weights, int8 with ai-edge-quantizer.

int8 uses the ``static_wi8_ai8`` recipe (int8 weights and activations, per-channel
weights), which kept the detector closer to fp32 than PT2E quantization here. Its input
and output tensors are int8 with a (scale, zero point) each, recorded in the manifest;
the runtime quantizes and dequantizes at the boundary.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskgate.ast_race import retry_ast_race
from maskgate.errors import ConversionError

from . import dist_version, hinted_float_ops, require
from .targets import Artifact, ConversionJob, TensorInfo

if TYPE_CHECKING:
    from maskgate.specs import ModelSpec

MODEL_FILE = "model.tflite"
METADATA_NAME = "maskgate"


def export_fp32(job: ConversionJob, path: Path) -> None:
    import torch

    litert_torch = require("litert_torch", purpose="TFLite conversion")
    module = job.module
    if job.options.tflite.channel_last_io:
        module = litert_torch.to_channel_last_io(module, args=[0])
    x = torch.zeros(*job.spec.input.shape)
    if job.options.tflite.channel_last_io:
        x = x.permute(0, 2, 3, 1).contiguous()
    try:
        def convert() -> None:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                litert_torch.convert(module.eval(), (x,)).export(str(path))

        retry_ast_race(convert, what=f"{job.target.name}: litert-torch conversion")
    except Exception as exc:
        raise ConversionError(f"{job.target.name}: litert-torch conversion failed: {exc}") from exc


def convert(job: ConversionJob, folder: Path) -> Artifact:
    nhwc = job.options.tflite.channel_last_io
    # The fp32 conversion is made once per model and layout, shared by its precisions.
    fp32_file = job.shared.file(f"fp32{'-nhwc' if nhwc else ''}.tflite", lambda path: export_fp32(job, path))
    dst = folder / MODEL_FILE
    quantizer = None
    data = fp32_file.read_bytes()
    if job.target.precision != "fp32":
        data, quantizer = _quantize(job, fp32_file)
    dst.write_bytes(stamp_metadata(data, job.metadata))
    inputs, outputs = _io(dst)
    layout = "NHWC" if job.options.tflite.channel_last_io else "NCHW"
    return Artifact(files=[MODEL_FILE], inputs=inputs, outputs=outputs, layout=layout, quantizer=quantizer)


def _quantize(job: ConversionJob, fp32_file: Path) -> tuple[bytes, dict[str, Any]]:
    aeq = require("ai_edge_quantizer", purpose="TFLite quantization")
    from ai_edge_quantizer import quantizer, recipe, recipe_manager
    from ai_edge_quantizer.qtyping import TFLOperationName as Op

    version = getattr(aeq, "__version__", None) or dist_version("ai-edge-quantizer")
    if job.target.precision == "fp16":
        manager = recipe_manager.RecipeManager()
        for op in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D, Op.FULLY_CONNECTED, Op.CONV_2D_TRANSPOSE):
            manager.add_weight_only_config(regex=".*", operation_name=op, num_bits=16,
                                           algorithm_key=recipe.AlgorithmName.FLOAT_CASTING)
        q = quantizer.Quantizer(str(fp32_file), manager.get_quantization_recipe())
        # stderr too: ai-edge-quantizer 0.6 drops enable_progress_bar before its last stage and shows that bar
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = q.quantize(enable_progress_bar=False, enable_progress_report=False)
        return bytes(result.quantized_model), {"tool": "ai-edge-quantizer", "version": version,
                                               "recipe": "fp16 weights (float casting), fp32 compute"}
    calibration = job.int8_calibration
    from ai_edge_litert.interpreter import Interpreter

    from maskgate.calibration.adapters import litert_calibration

    signatures = Interpreter(model_path=str(fp32_file)).get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    layout = "NHWC" if job.options.tflite.channel_last_io else "NCHW"
    data = litert_calibration(calibration.to_layout(layout), signature=signature, input_name=input_name)
    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe.static_wi8_ai8())
    float_ops = _hinted_ops(fp32_file, job.spec)
    if float_ops:  # the model's hint; a later, narrower scope wins over ".*"
        scopes = "|".join(re.escape(scope) for scope in float_ops)
        manager.add_quantization_config(regex=f"^(?:{scopes})$", operation_name=Op.ALL_SUPPORTED,
                                        algorithm_key=recipe.AlgorithmName.NO_QUANTIZE)
    ranges = _calibrate(fp32_file, data, manager, method=job.options.tflite.calibration)
    q = quantizer.Quantizer(str(fp32_file), manager.get_quantization_recipe())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
    return bytes(result.quantized_model), {"tool": "ai-edge-quantizer", "version": version, "recipe": "static_wi8_ai8",
                                           "weights": "int8 per channel", "activations": "int8",
                                           "calibration": job.options.tflite.calibration,
                                           "samples": len(calibration), "float_ops": len(float_ops)}


def _calibrate(fp32_file: Path, data: dict[str, Any], manager: Any, *, method: str) -> dict[str, Any]:
    """Activation ranges ({tensor: min/max}) over the calibration data."""
    import warnings

    from ai_edge_quantizer import calibrator
    from ai_edge_quantizer.utils import qsv_utils

    update = {"minmax": qsv_utils.min_max_update, "moving_average": qsv_utils.moving_average_update}[method]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # "preserve_all_tensors is for debugging": it is how ranges are read
        calib = calibrator.Calibrator(Path(fp32_file).read_bytes(), num_threads=2, qsv_update_func=update)
        calib.calibrate(data, manager)
    ranges: dict[str, Any] = calib.get_model_qsvs()
    return ranges


def _hinted_ops(path: Path, spec: ModelSpec) -> list[str]:
    """The quantizer's scope names (output tensor names, ';'-terminated) of the ops that
    the model's int8 hint keeps in float."""
    if not (spec.int8_float_leading_convs or spec.int8_float_head):
        return []
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(path).read_bytes()))
    graph = model.subgraphs[0]
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    conv_types = ("CONV_2D", "DEPTHWISE_CONV_2D")

    def scope(op: Any) -> str:
        names = [graph.tensors[i].name for i in op.outputs if i != -1]
        names = [n.decode() if isinstance(n, bytes) else n for n in names if n]
        return ";".join(names) + ";" if names else ""

    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append((scope(op), codes.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")))
    hinted = hinted_float_ops(ops, leading_convs=spec.int8_float_leading_convs, head=spec.int8_float_head,
                              conv_types=conv_types)
    return [name for name in hinted if name]


def stamp_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """Add a ``maskgate`` metadata entry (JSON) to the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    # Quantized models keep constants after the flatbuffer (offset buffers): resolve them
    # into the object before packing it again, or the offsets point past the new file.
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    buffer = schema.BufferT()
    buffer.data = list(json.dumps(metadata, sort_keys=True).encode())
    obj.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(obj.buffers) - 1
    obj.metadata = [m for m in (obj.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def read_metadata(path: Path) -> dict[str, str]:
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(Path(path).read_bytes()))
    for entry in obj.metadata or []:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            recorded: dict[str, str] = json.loads(bytes(obj.buffers[entry.buffer].data).decode())
            return recorded
    return {}


def _io(path: Path) -> tuple[list[TensorInfo], list[TensorInfo]]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))

    def info(d: dict[str, Any]) -> TensorInfo:
        scale, zero = d["quantization"]
        q = (float(scale), int(zero)) if scale else None
        return TensorInfo(d["name"], tuple(int(v) for v in d["shape"]), d["dtype"].__name__, q)

    return ([info(d) for d in interpreter.get_input_details()], [info(d) for d in interpreter.get_output_details()])

