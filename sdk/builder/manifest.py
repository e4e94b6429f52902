"""The manifest and golden data of one bundle, the tool versions in its build key, and the
gate verdict the build records in it."""
from __future__ import annotations

import dataclasses
import datetime
import json

import numpy as np

from ..converters import dist_version
from ..converters.manifest import GOLDEN, SCHEMA_VERSION, InputEntry, Manifest, TensorEntry
from ..converters.targets import Artifact, TensorInfo
from ..formats import get_format
from ..version import __version__


def tool_versions(fmt: str) -> dict[str, str | None]:
    """The versions of the tools a bundle of ``fmt`` records (its ``FormatSpec.tools``), those
    in an environment of their own read from there (``FormatSpec.tool_env``)."""
    spec = get_format(fmt)
    elsewhere = spec.tool_env_versions()
    return {name: dist_version(name) or elsewhere.get(name) for name in spec.tools}


def manifest_for(model, target, artifact: Artifact, calibration, key: str, *, reference: str,
                 files: list[str]) -> Manifest:
    """Everything a runtime or a person needs to use the bundle without the SDK's source;
    ``files``: the bundle's files, hashed when it is written (``write_manifest``)."""
    spec = model.spec
    inp = spec.input
    layout = artifact.layout
    shape = inp.shape if layout == inp.layout else ((1, inp.size[1], inp.size[0], 3) if layout == "NHWC"
                                                    else (1, 3, inp.size[1], inp.size[0]))
    resize = "letterbox, top-left, mean padding" if spec.task == "face_detection" else "aligned face crop"
    return Manifest(
        schema_version=SCHEMA_VERSION, sdk_version=__version__, name=target.name, model=spec.name, task=spec.task,
        format=target.format, precision=target.precision, quantizer=artifact.quantizer,
        input=InputEntry(inp.name, tuple(shape), layout, "float32", inp.color, tuple(inp.mean), tuple(inp.std),
                         inp.size, resize),
        inputs=tuple(_tensor(inp.name, t) for t in artifact.inputs[:1]),
        outputs=tuple(_tensor(logical, t) for logical, t in zip(spec.outputs, artifact.outputs)),
        class_names=tuple(spec.class_names), files=dict.fromkeys(files, ""),
        calibration=calibration.record() if calibration is not None else None,
        source_weights_sha256=model.weights_sha,
        reference={"runtime": reference, "precision": "fp32", "golden": GOLDEN,
                   "note": "golden outputs are the fp32 PyTorch reference's on the golden inputs"},
        build_key=key, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        notes=tuple(model.notes) + tuple(artifact.notes),
        detection=dataclasses.asdict(spec.detection) if spec.detection else None,
        priors=dataclasses.asdict(spec.priors) if spec.priors else None,
        tools=tool_versions(target.format), soc=target.chip or None, sources=tuple(artifact.sources))


def _tensor(name: str, t: TensorInfo) -> TensorEntry:
    """The manifest's entry of the runtime's tensor ``t`` under its logical ``name``."""
    return TensorEntry(name, t.name, t.shape, t.dtype, t.quantization)


def golden_data(spec, tensors, references, *, layout: str, count: int) -> dict[str, np.ndarray]:
    """``count`` held-out inputs (in the bundle's layout) and the reference outputs: the first
    ones for a classifier; for a detector the frames where the reference finds the most faces,
    so that a few frames still check many detections and landmarks."""
    from ..calibration.dataset import in_layout

    picked = list(range(min(count, len(tensors))))
    if spec.task == "face_detection":
        from ..compare import detections_of

        faces = [len(detections_of(r, spec).boxes) for r in references]
        picked = sorted(np.argsort([-n for n in faces], kind="stable")[:count].tolist())
    golden = {"inputs": np.concatenate([in_layout(tensors[k], layout) for k in picked])}
    for name in spec.outputs:
        golden[f"output_{name}"] = np.concatenate([references[k][name] for k in picked]).astype(np.float32)
    return golden


def record_verdict(folder, verdict: dict, *, sign_key=None) -> dict:
    """Write the build's gate verdict into the bundle's manifest (only when it changed, so a
    reused bundle is left untouched), so that the selector runs only bundles that passed;
    then sign the bundle with ``sign_key`` (a ``maskgate.converters.signing.BundleKey``) if given.
    Returns the verdict as recorded."""
    from ..converters.bundle import read_manifest, sign_bundle, update_manifest

    manifest = read_manifest(folder)
    recorded = manifest.verdict or {}
    if {k: v for k, v in recorded.items() if k != "checked"} != json.loads(json.dumps(verdict)):
        checked = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        manifest = update_manifest(folder, {"verdict": {**verdict, "checked": checked}})
    if sign_key is not None:
        sign_bundle(folder, sign_key)
    return dict(manifest.verdict or {})
