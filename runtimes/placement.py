"""Where a model's operations really run: measured from the runtime, not assumed from the
device a runner was opened for. ONNX Runtime adds the CPU behind every execution provider
and a TFLite delegate takes only the nodes it supports, so a build "on the npu" may run most
of its work on the CPU; the selector holds each npu / gpu candidate to a floor
(``[placement]`` in the config: every convolution and matrix product, and 90 % of the
operations, by default) and passes over one below it with the reason.

How each runtime says it: ONNX Runtime, its session's graph assignment (the optimized
graph's nodes per execution provider); OpenVINO, the compiled model's runtime graph and the
devices it executes on; LiteRT, the delegate's partitions (each DELEGATE node replaces the
original nodes between its inputs and outputs). None of them reports multiply-accumulates
per device, so the share is of operations, with convolutions and matrix products counted
apart (they are nearly all of the arithmetic here).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

#: operations that carry the arithmetic: convolutions and matrix products, in each runtime's own names
HEAVY_OPS = frozenset({
    "Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "Gemm", "MatMul", "MatMulInteger", "QLinearMatMul",
    "FusedConv", "FusedGemm", "FusedMatMul", "EPContext",  # ONNX Runtime (and its fused kernels)
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "CONV_3D",  # TFLite
    "Convolution", "GroupConvolution", "Deconvolution", "FullyConnected",  # OpenVINO runtime graph
})
#: OpenVINO runtime-graph nodes that are not operations (inputs, outputs, constants)
_NOT_OPS = frozenset({"Const", "Input", "Output", "Parameter", "Result"})
SHOWN = 5


@dataclass(frozen=True)
class Placement:
    device: str  # what the runner was opened for: an execution provider, a delegate, an OpenVINO device
    ops: int  # operations of the model as the runtime runs it
    on_device: int
    heavy: int  # convolutions and matrix products among them
    heavy_on_device: int
    elsewhere: tuple[str, ...] = ()  # "OP name@where" of the first operations that run elsewhere
    how: str = ""  # how the runtime said it

    @property
    def share(self) -> float:
        return self.on_device / self.ops if self.ops else 1.0

    def describe(self) -> str:
        heavy = f", {self.heavy_on_device}/{self.heavy} conv/matmul" if self.heavy else ""
        return f"{self.on_device}/{self.ops} ops{heavy} on {self.device}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share": round(self.share, 4)}

    def shortfall(self, *, min_share: float, all_heavy: bool) -> str | None:
        """Why this placement is below the floor (None: it is not)."""
        problems = []
        if all_heavy and self.heavy_on_device < self.heavy:
            problems.append(f"{self.heavy - self.heavy_on_device} of {self.heavy} convolutions/matrix products run "
                            "elsewhere")
        if self.share < min_share:
            problems.append(f"{self.share:.0%} of the ops on {self.device}, below {min_share:.0%}")
        if not problems:
            return None
        shown = f" (e.g. {', '.join(self.elsewhere[:SHOWN])})" if self.elsewhere else ""
        return f"{'; '.join(problems)}{shown}"


def from_assignment(device: str, nodes: Iterable[tuple[str, str, str]], *, how: str) -> Placement:
    """From (where it runs, op type, node name) of every operation."""
    nodes = list(nodes)
    here = [n for n in nodes if n[0] == device]
    away = [n for n in nodes if n[0] != device]
    return Placement(device, len(nodes), len(here), sum(n[1] in HEAVY_OPS for n in nodes),
                     sum(n[1] in HEAVY_OPS for n in here),
                     tuple(f"{op} {name}@{where}" for where, op, name in
                           sorted(away, key=lambda n: n[1] not in HEAVY_OPS)[:SHOWN]), how)


def onnxruntime_placement(session: Any, device: str) -> Placement:  # an onnxruntime InferenceSession
    """From the session's graph assignment (``session.record_ep_graph_assignment_info`` must be on)."""
    nodes = [(assigned.ep_name, node.op_type, node.name) for assigned in session.get_provider_graph_assignment_info()
             for node in assigned.get_nodes()]
    return from_assignment(device, nodes, how="onnxruntime graph assignment")


def openvino_placement(compiled: Any, device: str) -> Placement:  # an openvino CompiledModel
    """From the compiled model's runtime graph and the devices it executes on: a single
    device compiles every operation or fails; HETERO / AUTO name each op's device in its
    runtime info (``affinity``) where they split it."""
    executing = [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]
    nodes = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind in _NOT_OPS:
            continue
        where = info["affinity"].astype(str) if "affinity" in info else (executing[0] if len(executing) == 1
                                                                         else ",".join(executing))
        if where.startswith(device + "."):  # GPU.0 is the GPU it was opened for
            where = device
        nodes.append((where, kind, op.get_friendly_name()))
    return from_assignment(device, nodes, how=f"openvino runtime model (executes on {', '.join(executing)})")


def tflite_placement(ops_details: list[dict[str, Any]], device: str) -> Placement:
    """From the interpreter's node list after delegation: the DELEGATE nodes it added, each
    standing for the original nodes between its inputs and outputs (found by walking back
    from its outputs); the others run on the TFLite kernels of the CPU."""
    original = [o for o in ops_details if o["op_name"] != "DELEGATE"]
    producer = {int(t): o for o in original for t in o["outputs"]}
    taken: set[int] = set()
    for delegate in (o for o in ops_details if o["op_name"] == "DELEGATE"):
        stop = {int(t) for t in delegate["inputs"]}
        todo, seen = [int(t) for t in delegate["outputs"]], set()
        while todo:
            tensor = todo.pop()
            if tensor in seen or tensor in stop:
                continue
            seen.add(tensor)
            node = producer.get(tensor)
            if node is None or node["index"] in taken:
                continue
            taken.add(node["index"])
            todo += [int(t) for t in node["inputs"] if int(t) >= 0]
    nodes = [(device if o["index"] in taken else "tflite-cpu", o["op_name"], f"#{o['index']}") for o in original]
    return from_assignment(device, nodes, how="tflite delegate partitions")
