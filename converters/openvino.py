"""OpenVINO IR builds from the fp32 ONNX export: fp32, fp16 weights, int8 with NNCF."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from maskgate.errors import ConversionError

from . import hinted_float_ops, require
from .targets import Artifact, ConversionJob, TensorInfo

MODEL_FILE = "model.xml"
WEIGHTS_FILE = "model.bin"


def convert(job: ConversionJob, folder: Path) -> Artifact:
    ov = require("openvino", purpose="OpenVINO conversion")
    model = ov.convert_model(str(job.onnx_fp32))
    quantizer = None
    if job.target.precision == "int8":
        model, quantizer = _quantize_int8(job, model)
    elif job.target.precision == "fp16":
        quantizer = {"tool": "openvino.save_model", "compress_to_fp16": True}
    for key, value in job.metadata.items():
        model.set_rt_info(value, ["maskgate", key])
    ov.save_model(model, str(folder / MODEL_FILE), compress_to_fp16=job.target.precision == "fp16")
    return Artifact(files=[MODEL_FILE, WEIGHTS_FILE], inputs=_io(model.inputs), outputs=_io(model.outputs),
                    layout=job.spec.input.layout, quantizer=quantizer)


def _quantize_int8(job: ConversionJob, model: Any) -> tuple[Any, dict[str, Any]]:  # (openvino.Model, settings)
    import nncf

    from maskgate.calibration.adapters import nncf_dataset

    options = job.options.openvino
    calibration = job.int8_calibration
    names = [n for n in options.ignored_scope if not n.startswith("re:")]
    patterns = [n[3:] for n in options.ignored_scope if n.startswith("re:")]
    if job.spec.int8_float_leading_convs or job.spec.int8_float_head:  # the model's hint
        ops = [(op.get_friendly_name(), op.get_type_name()) for op in model.get_ordered_ops()
               if op.get_type_name() not in ("Parameter", "Constant", "Result")]
        hinted = hinted_float_ops(ops, leading_convs=job.spec.int8_float_leading_convs, head=job.spec.int8_float_head,
                                  conv_types=("Convolution", "GroupConvolution"))
        names += [n for n in hinted if n not in names]
    scope = nncf.IgnoredScope(names=names, patterns=patterns, validate=False) if names or patterns else None
    preset = nncf.QuantizationPreset.MIXED if options.preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE
    dataset = nncf_dataset(calibration)
    settings = {"tool": "nncf", "version": nncf.__version__, "preset": options.preset,
                "bias_correction": options.bias_correction,
                "ignored_scope": names + [f"re:{p}" for p in patterns], "samples": len(calibration),
                "accuracy_control": options.accuracy_control}
    common = {"subset_size": len(calibration), "preset": preset,
              "fast_bias_correction": options.bias_correction == "fast"}
    if scope is not None:
        common["ignored_scope"] = scope
    if not options.accuracy_control:
        return nncf.quantize(model, dataset, **common), settings
    items, score = _validation(job)

    def validate(compiled: Any, data: Iterable[Any]) -> tuple[float, list[float]]:
        # NNCF ranks layers by the per-item values, so return them with the mean.
        values = [float(score(compiled, item)) for item in data]
        return (sum(values) / len(values) if values else 0.0), values

    quantized = nncf.quantize_with_accuracy_control(
        model, calibration_dataset=dataset, validation_dataset=nncf.Dataset(items), validation_fn=validate,
        max_drop=options.max_drop, drop_type=nncf.DropType.ABSOLUTE, **common)
    settings["max_drop"] = options.max_drop
    return quantized, settings


def _io(ports: Iterable[Any]) -> list[TensorInfo]:
    out = []
    for port in ports:
        shape = tuple(int(d.get_length()) if d.is_static else -1 for d in port.get_partial_shape())
        out.append(TensorInfo(port.get_any_name(), shape, port.get_element_type().to_dtype().name))
    return out


Item = tuple[Any, dict[str, Any]]  # (input tensor, the reference's outputs)


def _validation(job: ConversionJob) -> tuple[list[Item], Callable[[Any, Item], float]]:
    """Accuracy control scores agreement with the fp32 reference on the calibration inputs
    (the held-out set stays untouched for the reported figures): (items, score)."""
    import numpy as np

    from maskgate.compare import sample_agreement

    if job.shared.reference is None:
        raise ConversionError(f"{job.target.name}: accuracy control needs the fp32 reference's outputs")
    items = [(x, job.shared.reference(x)) for x in job.int8_calibration.tensors]
    outputs = job.spec.outputs

    def score(compiled: Any, item: Item) -> float:
        x, ref = item
        result = compiled(x)
        got = {name: np.asarray(result[port]) for name, port in zip(outputs, compiled.outputs)}
        return sample_agreement(job.spec, got, ref)

    return items, score
