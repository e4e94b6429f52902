"""The pipeline from build bundles: the runtime layer picks each model's build and
device; the spec (preprocessing, outputs, classes, anchors) comes from the bundle's own
manifest, so a camera needs neither torch nor the model registry's code for the models.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .converters.manifest import MANIFEST
from .errors import BundleError
from .specs import DetectionDefaults, InputSpec, ModelSpec, PriorSpec


def spec_from_manifest(manifest: Mapping, *, source: str | Path = "manifest") -> ModelSpec:
    """The ModelSpec a bundle was built from, as its manifest records it."""
    try:
        inp = manifest["input"]
        spec_input = InputSpec(size=tuple(inp["size"]), color=inp["color"], mean=tuple(inp["mean"]),
                               std=tuple(inp["std"]), layout=inp["layout"], dtype=inp.get("dtype", "float32"),
                               name=inp["name"])
        priors = manifest.get("priors")
        detection = manifest.get("detection")
        return ModelSpec(
            name=manifest["model"],
            task=manifest["task"],
            input=spec_input,
            outputs=tuple(o["name"] for o in manifest["outputs"]),
            factory="-",
            description=f"from bundle {manifest.get('name', '?')}",
            priors=PriorSpec(
                min_sizes=tuple(tuple(m) for m in priors["min_sizes"]),
                steps=tuple(priors["steps"]),
                variances=tuple(priors["variances"]),
                clip=bool(priors.get("clip", False)),
            )
            if priors
            else None,
            detection=DetectionDefaults(**detection) if detection else None,
            class_names=tuple(manifest.get("class_names") or ()),
        )
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{source}: the manifest does not describe a usable model ({type(exc).__name__}: {exc}); "
                          "rebuild the bundle with this SDK version") from exc


def open_detector(builds, model: str, *, score_threshold: float | None = None, **select):
    """``(FaceDetector, Selection)`` for the best runnable build of ``model`` under ``builds``;
    ``select``: the keyword options of ``maskgate.runtimes.select.open_best``."""
    import dataclasses

    from maskgate.runtimes.select import open_best

    from .detector import FaceDetector

    selection = open_best(builds, model, **select)
    spec = spec_from_manifest(selection.manifest, source=selection.bundle / MANIFEST)
    options = spec.detection or DetectionDefaults()
    if score_threshold is not None:
        options = dataclasses.replace(options, score_threshold=float(score_threshold))
    return FaceDetector(spec, selection.runner, options=options), selection


def open_classifier(builds, model: str, **select):
    """``(CropClassifier, Selection)`` for the best runnable build of ``model`` under ``builds``."""
    from maskgate.runtimes.select import open_best

    from .classifier import CropClassifier

    selection = open_best(builds, model, **select)
    return CropClassifier(spec_from_manifest(selection.manifest, source=selection.bundle / MANIFEST),
                          selection.runner), selection
