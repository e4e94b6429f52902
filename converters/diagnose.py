"""int8 diagnosis: which layers of a QDQ model lose the accuracy.

ONNX Runtime's QDQ debugging tools (``onnxruntime.quantization.qdq_loss_debug``) run the
float model and its QDQ model with every intermediate tensor exposed, on the same inputs.
For each node of the float graph this gives the signal-to-quantization-noise ratio (SQNR,
dB; higher is better) of its output in the QDQ model against the float model. That
figure is cumulative: a node downstream of a damaged layer looks bad too. So nodes are
ranked by the SQNR they *lose*: their worst input's SQNR minus their output's, i.e. the
noise the node itself adds. The top of that ranking is what ``maskgate build
--accuracy-aware`` keeps in float (ONNX ``nodes_to_exclude``, OpenVINO ignored scope).
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import require

if TYPE_CHECKING:
    from .targets import ConversionJob

CLEAN_DB = 100.0  # SQNR given to the graph's own inputs (no quantization noise yet)


@dataclass
class LayerError:
    node: str  # node name in the float ONNX graph (OpenVINO keeps it as the friendly name)
    op_type: str
    output: str  # the output tensor measured
    sqnr_db: float  # output in the QDQ model against the float model (cumulative)
    added_db: float  # SQNR lost across this node: the error it adds

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class _Reader:
    """The ``CalibrationDataReader`` protocol over a list of input tensors."""

    def __init__(self, name: str, tensors: list[np.ndarray]):
        self._items = iter([{name: np.ascontiguousarray(t, np.float32)} for t in tensors])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self._items


def diagnose_qdq(float_model: str | Path, qdq_model: str | Path, tensors: list[np.ndarray], *,
                 input_name: str) -> list[LayerError]:
    """Per-node error of ``qdq_model`` against ``float_model`` (the graph it was quantized
    from: same node and tensor names) on ``tensors``; the worst (most SQNR added) first."""
    onnx = require("onnx", purpose="int8 diagnosis")
    debug = require("onnxruntime.quantization.qdq_loss_debug", purpose="int8 diagnosis", package="onnxruntime")
    if not tensors:
        raise ValueError("int8 diagnosis needs at least one input tensor")
    with tempfile.TemporaryDirectory(prefix="maskgate-diagnose-") as temporary:
        work = Path(temporary)
        activations = {}
        for role, path in (("float", float_model), ("qdq", qdq_model)):
            augmented = work / f"{role}.onnx"
            debug.modify_model_output_intermediate_tensors(str(path), str(augmented))
            activations[role] = debug.collect_activations(str(augmented), _Reader(input_name, tensors))
    matching = debug.create_activation_matching(activations["qdq"], activations["float"])
    errors = debug.compute_activation_error(matching)
    sqnr = {name: float(e["xmodel_err"]) for name, e in errors.items() if "xmodel_err" in e}
    graph = onnx.load(str(float_model), load_external_data=False).graph
    producer = {o: node for node in graph.node for o in node.output}
    resolved: dict[str, float] = {}

    def level(tensor: str) -> float:
        """SQNR of a tensor; an unmeasured one inherits its nearest measured ancestors'
        (graph inputs and weights are clean)."""
        if tensor in sqnr:
            return _finite(sqnr[tensor])
        if tensor not in resolved:
            node = producer.get(tensor)
            resolved[tensor] = min((level(i) for i in node.input if i), default=CLEAN_DB) if node else CLEAN_DB
        return resolved[tensor]

    out = []
    for node in graph.node:  # topological order: every input is resolved before it is needed
        measured = [o for o in node.output if o in sqnr]
        if not measured:
            continue
        own = min(_finite(sqnr[o]) for o in measured)
        before = min((level(i) for i in node.input if i), default=CLEAN_DB)
        out.append(LayerError(node.name, node.op_type, measured[0], own, max(0.0, before - own)))
    return sorted(out, key=lambda e: -e.added_db)


def diagnose_job(job: ConversionJob, tensors: list[np.ndarray]) -> list[LayerError]:
    """Rank the layers of ``job``'s model as the ONNX int8 converter quantizes it (the
    model's hints and ``job.options.onnx.keep_float`` in float). For an OpenVINO job this
    is a proxy: the same float graph, whose node names OpenVINO keeps."""
    from .onnx import int8_source, quantize_qdq

    with tempfile.TemporaryDirectory(prefix="maskgate-diagnose-") as work:
        prepared, qdq = Path(work) / "prepared.onnx", Path(work) / "qdq.onnx"
        source = int8_source(job) if job.target.format == "onnx" else job.onnx_fp32
        quantize_qdq(source, qdq, job, prepared=prepared)
        return diagnose_qdq(prepared, qdq, tensors, input_name=job.spec.input.name)


def _finite(db: float) -> float:
    return CLEAN_DB if not np.isfinite(db) else min(db, CLEAN_DB)
