"""Training recipes: mask and pose classifiers on pipeline crops, two transfer modes.

``init="imagenet"``: ImageNet backbone, trained on the real crops.
``init="synthetic"`` (the pose paper's transfer): ImageNet backbone, first trained on the
semi-synthetic source (masks pasted onto unmasked faces, labels from the unmasked
landmarks), then fine-tuned on the real crops with the shallow, general stages frozen
(``target.freeze_stages``) and the deep, source-specific ones re-trained.
``init="face"``: the packaged face detector's body (face-detection weights; only for the
``mobilenet_v1_025`` backbone, model ``mask_mnet025``).
``init="none"``: random initialisation, for the comparison table.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..datasets.crops import CropSet
from ..errors import InputError
from ..pose import YawBins
from ..registry import create_model, get_spec
from . import report
from .loop import TrainConfig, fit, predict

Task = Literal["mask", "pose"]
Init = Literal["imagenet", "none", "synthetic", "face"]
DEFAULT_MODELS = {"mask": "mask_mobilenetv2", "pose": "pose_mobilenetv2_skip"}


@dataclass(frozen=True)
class RecipeOptions:
    task: Task
    model: str | None = None  # registry name; default per task
    init: Init = "imagenet"
    init_weights: str | None = None  # a torchvision checkpoint of the backbone instead of the packaged one
    target: TrainConfig = TrainConfig()
    source: TrainConfig = TrainConfig(epochs=2)  # the synthetic stage of init="synthetic"
    templates: str | None = None  # mask template folder, for init="synthetic"
    min_face_px: float = 0.0  # drop crops of faces narrower than this (noisy landmarks, so noisy yaw)
    bins: YawBins = field(default_factory=YawBins)
    limit: int | None = None  # at most this many training crops (smoke runs)

    @property
    def model_name(self) -> str:
        return self.model or DEFAULT_MODELS[self.task]


def labelled(crops: CropSet, options: RecipeOptions) -> tuple[CropSet, np.ndarray]:
    """The crops a task trains on and their labels (mask: 0 mask / 1 no_mask; pose: yaw class)."""
    keep = np.isin(crops.mask, [0, 1]) & (crops.face_px >= options.min_face_px)
    part = crops.select(keep)
    if options.task == "mask":
        return part, part.mask.astype(np.int64)
    return part, np.array([options.bins.classify(float(y)) for y in part.yaw], np.int64)


def flip_map(options: RecipeOptions, classes: int) -> np.ndarray:
    if options.task == "mask":
        return np.arange(classes)
    return np.array([options.bins.mirror(k) for k in range(classes)])


def _split(crops: CropSet, labels: np.ndarray, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(crops.split == split)
    if limit is not None and len(idx) > limit:
        idx = np.sort(np.random.default_rng(0).choice(idx, limit, replace=False))
    return crops.images[idx], labels[idx]


def check_options(options: RecipeOptions):
    """Every setting checked before a crop is cut or an epoch run (a wrong --model or
    --freeze-stages failed only after minutes of cropping); returns the model's spec."""
    from ..datasets.synth import load_templates
    from ..models.imagenet import imagenet_checkpoint

    spec = get_spec(options.model_name)
    if spec.classifier is None:
        raise InputError(f"{spec.name} is not a classifier; pick one of the mask_* or pose_* models")
    expected = "mask" if options.task == "mask" else "pose"
    if not spec.name.startswith(expected):
        raise InputError(
            f"{spec.name} is not a {expected} model; use --model {DEFAULT_MODELS[options.task]} or another "
            f"{expected}_* model"
        )
    if options.init == "face" and spec.classifier.backbone != "mobilenet_v1_025":
        raise InputError(
            f"--init face loads the detector's MobileNetV1-0.25 body; use --model mask_mnet025, not {spec.name}"
        )
    if options.init_weights is not None:
        if options.init not in ("imagenet", "synthetic"):
            raise InputError(f"--init-weights starts the backbone of --init imagenet or synthetic, not --init "
                             f"{options.init}")
        if not Path(options.init_weights).is_file():
            raise InputError(f"{options.init_weights}: no such checkpoint (--init-weights); give a torchvision "
                             "checkpoint of the backbone")
    elif options.init in ("imagenet", "synthetic"):
        imagenet_checkpoint(spec.classifier.backbone)  # installed, or the one line that installs it
    if options.init == "synthetic":
        if not options.templates:
            raise InputError("--init synthetic needs the mask templates: pass --templates FOLDER (with masks.cfg)")
        load_templates(options.templates)
    stages = len(create_model(spec.name, pretrained=False).backbone.stage_modules())
    for flag, config in (("--freeze-stages", options.target), ("--source-freeze-stages", options.source)):
        if not 0 <= config.freeze_stages <= stages:
            raise InputError(f"{flag} {config.freeze_stages}: {spec.name}'s backbone has stages 0..{stages}")
    return spec


def build_model(options: RecipeOptions):
    from ..models.imagenet import imagenet_checkpoint, load_backbone_weights, load_face_detector_body

    spec = check_options(options)
    model = create_model(spec.name, pretrained=False)
    if options.init == "face":
        load_face_detector_body(model.backbone)
    elif options.init in ("imagenet", "synthetic"):
        path = options.init_weights or imagenet_checkpoint(spec.classifier.backbone)
        load_backbone_weights(model.backbone, path)
    return spec, model


def _synthetic_source(crops: CropSet, options: RecipeOptions) -> CropSet:
    from ..datasets.synth import MaskSynthesizer, load_templates, synthesize_crops
    from ..progress import progress

    assert options.templates  # check_options refuses synthetic without them
    synth = synthesize_crops(
        crops, MaskSynthesizer(load_templates(options.templates)), seed=options.target.seed,
        progress=lambda it: progress(it, desc="synthetic masks", enabled=options.target.show_progress, unit="face"),
    )
    if options.task == "mask":  # masked copies against their unmasked originals
        return CropSet.concat([synth, crops.where(mask=[1])])
    return synth


def train(crops: CropSet, out: str | Path, options: RecipeOptions) -> dict:
    """Train, score the untouched test split once, and write model.pt, metrics.json, plots, card.md."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    real = crops.select(crops.origin != "synth")
    data, labels = labelled(real, options)
    spec, model = build_model(options)
    classes = len(spec.class_names)
    flips = flip_map(options, classes)
    stages = []
    start = time.perf_counter()
    if options.init == "synthetic":
        source = _synthetic_source(data, options)
        s_data, s_labels = labelled(source, options)
        history = fit(
            model, _split(s_data, s_labels, "train", options.limit), _split(s_data, s_labels, "val"),
            spec=spec.input, classes=classes, flip_map=flips, config=options.source, desc="source",
        )
        stages.append(
            {
                "stage": "synthetic source",
                "crops": int(np.sum(s_data.split == "train")),
                "config": _config(options.source),
                "history": history.epochs,
                "best_epoch": history.best_epoch,
            }
        )
    history = fit(
        model, _split(data, labels, "train", options.limit), _split(data, labels, "val"),
        spec=spec.input, classes=classes, flip_map=flips, config=options.target, desc="target" if stages else "train",
    )
    stages.append(
        {
            "stage": "real target" if stages else "real",
            "crops": int(np.sum(data.split == "train")),
            "config": _config(options.target),
            "history": history.epochs,
            "best_epoch": history.best_epoch,
        }
    )
    seconds = time.perf_counter() - start

    test = data.select(data.split == "test")
    probs = predict(model, test.images, spec.input)
    test_labels = labels[data.split == "test"]
    metrics = {
        "model": spec.name,
        "task": options.task,
        "init": options.init,
        "command": " ".join(["maskgate", *sys.argv[1:]]) if sys.argv and sys.argv[0].endswith("maskgate") else None,
        "crops": crops.info,
        "train_seconds": round(seconds, 1),
        "stages": stages,
        "test": _test_scores(options, test, test_labels, probs, classes),
    }
    if options.task == "pose":
        metrics["yaw_bins"] = {"edges_degrees": list(options.bins.edges), "names": list(spec.class_names)}
    tmp = out / "model.pt.partial"
    torch.save(model.state_dict(), tmp)
    tmp.replace(out / "model.pt")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    _plots(out, spec, options, stages, test, test_labels, probs, metrics)
    return metrics


def _config(config: TrainConfig) -> dict:
    d = asdict(replace(config, show_progress=False))
    d.pop("show_progress")
    return d


def _test_scores(options: RecipeOptions, test: CropSet, labels: np.ndarray, probs: np.ndarray, classes: int) -> dict:
    def score(keep: np.ndarray) -> dict:
        if options.task == "mask":
            return report.mask_scores(labels[keep], probs[keep])
        return report.pose_scores(labels[keep], probs[keep], classes)

    everything = np.ones(len(test), bool)
    out = {"all": score(everything)}
    for origin in ("faces", "scenes"):
        out[origin] = score(test.origin == origin)
    out["faces_at_least_32px"] = score(test.face_px >= 32)
    if options.task == "pose":
        out["masked"] = score(test.mask == 0)
        out["unmasked"] = score(test.mask == 1)
    return out


def _plots(
    out: Path,
    spec,
    options: RecipeOptions,
    stages: list[dict],
    test: CropSet,
    labels: np.ndarray,
    probs: np.ndarray,
    metrics: dict,
) -> None:
    rows = [dict(r, epoch=i + 1) for i, r in enumerate(r for s in stages for r in s["history"])]
    starts = tuple(np.cumsum([len(s["history"]) for s in stages])[:-1] + 0.5)
    title = f"{spec.name} ({options.init} init" + (", synthetic source then real target)" if len(stages) > 1 else ")")
    report.plot_curves(rows, out / "curves.png", title=title, stage_starts=starts)
    if options.task == "mask":
        auc = metrics["test"]["all"]["roc_auc"]
        if auc is not None:
            report.plot_roc(
                {spec.name: (labels == 0, probs[:, 0], auc)},
                out / "roc.png",
                title="mask, test split of pipeline crops",
            )
    conf = np.asarray(metrics["test"]["all"]["confusion"])
    report.plot_confusion(
        conf,
        spec.class_names,
        out / "confusion.png",
        title=f"{spec.name}, test split" + (" (landmark-derived yaw)" if options.task == "pose" else ""),
    )
