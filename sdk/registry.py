"""Model registry: names -> specs, and building a model from its spec.

Specs are plain data (see ``maskgate.specs``); building a model imports its framework
module lazily, so ``list_models()`` and ``get_spec()`` work in a torch-free install.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .errors import DependencyError, ModelError
from .specs import ModelSpec

_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec. A second spec under the same name is an error, never a silent skip."""
    _load_builtin_specs()
    if spec.name in _SPECS:
        raise ModelError(f"a model named {spec.name!r} is already registered; pick another name")
    _SPECS[spec.name] = spec
    return spec


def list_models(*, task: str | None = None) -> list[str]:
    _load_builtin_specs()
    return sorted(n for n, s in _SPECS.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    _load_builtin_specs()
    try:
        return _SPECS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; registered models: {', '.join(sorted(_SPECS))}"
        ) from None


def create_model(name: str, *, pretrained: bool = True, weights: str | Path | None = None) -> Any:
    """Build the framework model of ``name`` (a torch ``nn.Module`` for the built-ins).

    ``weights`` is a checkpoint path that replaces the packaged pretrained weights;
    ``pretrained=False`` leaves the model randomly initialised.
    """
    spec = get_spec(name)
    module_name, _, func_name = spec.factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise DependencyError("torch", extra="torch", purpose=f"building model {name!r}") from exc
        raise
    factory = getattr(module, func_name)
    return factory(spec, pretrained=pretrained, weights=weights)


_BUILTINS_LOADED = False


def _load_builtin_specs() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from .zoo import BUILTIN_SPECS

        for spec in BUILTIN_SPECS:
            register(spec)
