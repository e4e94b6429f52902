"""Step 4, convert: one target into a staged bundle (the model file from its format's
converter, golden data, a manifest), dispatched through the format registry."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from ..console import native_stderr_filtered
from ..errors import ConversionError, MaskGateError
from ..formats import ConvertOptions, get_format
from ..version import __version__
from .config import GOLDEN_SAMPLES, BuildConfig
from .reference import BuildData, ReferenceModel


def build_key(model: ReferenceModel, target, config: BuildConfig, data: BuildData, calibration) -> str:
    """What a bundle was made from: a finished bundle with the same key is reused."""
    from .manifest import tool_versions

    fmt = get_format(target.format)
    record = {"sdk": __version__, "target": target.name, "weights": model.weights_sha,
              "input": dataclasses.asdict(model.spec.input),
              "options": config.options_for(model.spec).for_format(target.format),
              "int8_float": [model.spec.int8_float_leading_convs, model.spec.int8_float_head],
              "calibration": calibration.sha256() if calibration is not None else None,
              "verify": data.verify_frames.sha256(), "golden": GOLDEN_SAMPLES[model.spec.task],
              "accuracy_aware": config.accuracy_aware and target.precision == "int8" and fmt.repairable,
              "tools": tool_versions(target.format)}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def conversion_job(model: ReferenceModel, target, calibration, *, options: ConvertOptions, key: str = ""):
    """The converter's job for ``target``; the metadata is stamped into the model file."""
    from ..converters.binding import STAMP_KEY, placeholder
    from ..converters.targets import ConversionJob

    spec = model.spec
    metadata = {STAMP_KEY: placeholder(), "maskgate_model": spec.name, "maskgate_task": spec.task,
                "maskgate_precision": target.precision, "maskgate_sdk_version": __version__, "maskgate_build_key": key,
                "maskgate_class_names": json.dumps(list(spec.class_names)),
                "maskgate_input": json.dumps(dataclasses.asdict(spec.input))}
    if target.chip:
        metadata["maskgate_soc"] = target.chip
    return ConversionJob(target, spec, model.module, calibration, metadata, model.shared, options)


def convert(model: ReferenceModel, target, data: BuildData, *, calibration, key: str, folder: Path,
            options: ConvertOptions) -> None:
    """Convert ``target`` into ``folder`` (staged: a finished bundle or none at all)."""
    from ..converters.bundle import staging, write_manifest
    from ..converters.manifest import GOLDEN
    from .manifest import golden_data, manifest_for

    job = conversion_job(model, target, calibration, options=options, key=key)
    converter = get_format(target.format).converter_module()
    with staging(folder) as tmp:
        try:
            artifact = converter.convert(job, tmp)
        except MaskGateError:
            raise
        except Exception as exc:  # a converter's own error types: name the build that failed
            raise ConversionError(f"{target.name}: {type(exc).__name__}: {exc}") from exc
        tensors, references = data.held_out(model)
        golden = golden_data(model.spec, tensors, references, layout=artifact.layout,
                             count=GOLDEN_SAMPLES[model.spec.task])
        np.savez_compressed(tmp / GOLDEN, **golden)  # type: ignore[arg-type]  # the stub reads **arrays as allow_pickle
        write_manifest(tmp, manifest_for(model, target, artifact, calibration, key, reference=model.describe(),
                                         files=[*artifact.files, GOLDEN]))


@contextlib.contextmanager
def quiet_converters():
    """The exporters log and warn at length about things that do not affect these models
    (missing torchvision ops, deprecations); a build shows its own progress instead."""
    import warnings

    # torchao: the CUDA kernels it cannot load on a machine without them ("Failed to load ...so").
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "torch.utils._pytree",
                                              "nncf", "absl", "torchao")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    logging.getLogger().addFilter(_opset_upgrade_notice)
    try:
        # ORT's histogram calibrators and NNCF's progress bars print to stdout.
        # TensorFlow's C++ INFO lines (under litert-torch) go to fd 2 directly: filtered there.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), native_stderr_filtered():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        logging.getLogger().removeFilter(_opset_upgrade_notice)


def _opset_upgrade_notice(record: logging.LogRecord) -> bool:
    """onnxruntime's quantizer raises an opset-20 export to 21 itself when a tensor is 16-bit
    (QNN's wide activations) and says so on the root logger at every build, as a warning."""
    return not str(record.msg).startswith("The original model opset version is")
