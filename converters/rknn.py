"""RKNN builds: the fp32 ONNX export (opset <= 19, which rknn-toolkit2 reads) -> ``.rknn`` for
one Rockchip SoC, quantized by the toolkit in its own environment (``maskgate.runtimes.rknn_env``).

The model's mean/std go into the toolkit's config, so the NPU normalizes the pixels itself.
The bundle carries what the build was made from (``rknn_source.onnx``, the calibration
pixels, the request in the manifest's ``quantizer``): the toolkit's simulator runs only a
model built in the same process, so a check rebuilds it and compares the bytes.
"""
from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskgate.errors import ConversionError

from . import hinted_float_ops, require
from .onnx import _io
from .targets import Artifact, ConversionJob

if TYPE_CHECKING:
    from maskgate.calibration import CalibrationSet
    from maskgate.specs import InputSpec

MODEL_FILE = "model.rknn"
SOURCE_MODEL = "rknn_source.onnx"
CALIBRATION = "rknn_calibration.npz"
MAX_OPSET = 19  # rknn-toolkit2 2.5.0 refuses newer ONNX opsets
# The stamped fields that fit the toolkit's custom string (the manifest holds the rest).
STAMPED = ("maskgate_manifest_sha256", "maskgate_model", "maskgate_task", "maskgate_precision", "maskgate_soc",
           "maskgate_build_key", "maskgate_sdk_version", "maskgate_class_names")


def convert(job: ConversionJob, folder: Path) -> Artifact:
    from maskgate.runtimes.rknn_env import BuildRequest, Worker

    calibration_set = job.int8_calibration
    options = job.format_options
    spec = job.spec
    source = job.shared.file(SOURCE_MODEL, lambda path: source_model(job.onnx_fp32, path))
    shutil.copyfile(source, folder / SOURCE_MODEL)
    calibration = job.shared.file(f"rknn-calibration-{options.calibration_samples}.npz",
                                  lambda path: _save_pixels(calibration_set, spec.input, options.calibration_samples,
                                                            path))
    shutil.copyfile(calibration, folder / CALIBRATION)
    hybrid = float_stretches(source, options.float_layers, leading_convs=spec.int8_float_leading_convs,
                             head=spec.int8_float_head)
    request = BuildRequest(onnx=str(folder / SOURCE_MODEL), target=job.target.chip, mean=list(spec.input.mean),
                           std=list(spec.input.std), calibration=str(folder / CALIBRATION), algorithm=options.algorithm,
                           custom_string=stamp_string(job.metadata), export=str(folder / MODEL_FILE), hybrid=hybrid)
    with Worker() as worker:
        reply = worker.build(request)
    inputs, outputs = _io(folder / SOURCE_MODEL)
    quantizer = {"tool": "rknn-toolkit2", "version": reply.toolkit, "target": job.target.chip,
                 "algorithm": options.algorithm, "dtype": "w8a8", "mean": list(spec.input.mean),
                 "std": list(spec.input.std), "normalization": "folded into the model (the NPU takes pixels)",
                 "hybrid": hybrid, "samples": min(options.calibration_samples, len(calibration_set)),
                 "source": SOURCE_MODEL, "calibration": CALIBRATION, "build_seconds": round(reply.seconds, 2)}
    return Artifact(files=[MODEL_FILE, SOURCE_MODEL, CALIBRATION], inputs=inputs, outputs=outputs, layout="NCHW",
                    quantizer=quantizer, sources=[SOURCE_MODEL, CALIBRATION])


def source_model(fp32: Path, path: Path) -> list[str]:
    """The fp32 export at an opset the toolkit reads, without metadata (it is stamped into the .rknn)."""
    onnx = require("onnx", purpose="RKNN builds")
    model = onnx.load(str(fp32))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), MAX_OPSET)
    notes = []
    if opset > MAX_OPSET:
        from onnx import version_converter

        model = version_converter.convert_version(model, MAX_OPSET)
        notes.append(f"rknn: the ONNX export converted from opset {opset} to {MAX_OPSET} for rknn-toolkit2")
    del model.metadata_props[:]
    onnx.save(model, str(path))
    return notes


def _save_pixels(calibration: CalibrationSet, spec_input: InputSpec, count: int, path: Path) -> None:
    # np.savez_compressed appends .npz to a name without it: write under the name asked for.
    with open(path, "wb") as out:
        np.savez_compressed(out, pixels=calibration_pixels(calibration, spec_input, count))


def calibration_pixels(calibration: Iterable[np.ndarray], spec_input: InputSpec, count: int) -> np.ndarray:
    """The first ``count`` calibration inputs as the pixels they were made from (N x 3 x H x W
    uint8): the toolkit applies the model's mean/std itself."""
    from maskgate.runtimes.rknn import to_pixels

    picked = []
    for x in calibration:
        picked.append(np.clip(np.round(to_pixels(x, spec_input.mean, spec_input.std)), 0, 255).astype(np.uint8))
        if len(picked) == count:
            break
    if not picked:
        raise ConversionError("the RKNN calibration set is empty")
    return np.concatenate(picked)


def float_stretches(path: Path, patterns: tuple[str, ...], *, leading_convs: int, head: bool) -> list[list[str]]:
    """The model's int8 hints and ``patterns`` as the toolkit's hybrid-quantization ranges:
    [first input tensor, last output tensor] of each run of consecutive nodes kept in float."""
    from .onnx import float_nodes

    onnx = require("onnx", purpose="RKNN builds")
    nodes = list(onnx.load(str(path), load_external_data=False).graph.node)
    chosen = set(float_nodes(path, patterns)) if patterns else set()
    chosen |= set(hinted_float_ops([(n.name, n.op_type) for n in nodes], leading_convs=leading_convs, head=head,
                                   conv_types=("Conv",)))
    stretches, run = [], []
    for node in nodes + [None]:
        if node is not None and node.name in chosen:
            run.append(node)
            continue
        if run:
            stretches.append([run[0].input[0], run[-1].output[0]])
            run = []
    return stretches


def stamp_string(metadata: dict[str, str]) -> str:
    """The custom string the toolkit stores verbatim in the model (rknn_query reads it): the
    stamped fields that fit it."""
    from .binding import rknn_stamp_string

    return rknn_stamp_string({k: metadata[k] for k in STAMPED if k in metadata})
