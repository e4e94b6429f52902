"""Step 1, plan: which bundles to make (model x format x precision), checked before any work."""
from __future__ import annotations

from ..errors import InputError
from ..formats import FORMATS, PRECISIONS, get_format
from ..profiles import CANVAS_MULTIPLE, canvas_problem, canvas_variant
from ..registry import get_spec
from ..specs import ModelSpec, with_input_size
from .config import BuildConfig


def model_spec(name: str, config: BuildConfig) -> ModelSpec:
    """The registered spec, with the build's fixed detector input size (NPUs need static shapes)."""
    spec = get_spec(name)
    if spec.task == "face_detection":
        coarsest = max(spec.priors.steps) if spec.priors else CANVAS_MULTIPLE
        problem = canvas_problem(config.detector_size, multiple=coarsest)
        if problem:
            raise InputError(problem)
        spec = with_input_size(spec, config.detector_size)
    return spec


def variant_of(spec: ModelSpec) -> str:
    """A detector at another canvas than the general profile's is named by its canvas, so
    that both live side by side in one builds folder."""
    return canvas_variant(spec.input.size) if spec.task == "face_detection" else ""


def plan(config: BuildConfig) -> tuple[list[ModelSpec], list]:
    """(the model specs, the targets in build order: model by model, formats and precisions in
    the registry's order). Unknown model, format or precision names fail here."""
    from ..converters.targets import Target

    for fmt in config.formats:
        get_format(fmt)
    unknown = [p for p in config.precisions if p not in PRECISIONS]
    if unknown:
        raise InputError(f"unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    specs = [model_spec(name, config) for name in config.models]
    formats = [f for f in FORMATS if f in config.formats]
    precisions = [p for p in PRECISIONS if p in config.precisions]
    builds = []  # (format, precision, chip) in the registry's order
    for fmt in formats:
        spec = FORMATS[fmt]
        mine = [p for p in precisions if p in spec.precisions]
        if not mine:
            raise InputError(f"format {fmt} builds {', '.join(spec.precisions)} only; add it to --precisions")
        builds += [(fmt, p, chip) for p in mine for chip in spec.targets_of(config.options[fmt])]
    return specs, [Target(spec.name, fmt, precision, chip, variant_of(spec))
                   for spec in specs for fmt, precision, chip in builds]
