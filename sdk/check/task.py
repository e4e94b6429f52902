"""Task metrics for ``maskgate check --data``: what each build scores on labelled data.

- mask classifier: accuracy, mask and no-mask recall, ROC AUC (and the curve, for the
  report) on aligned crops of the data's test split;
- yaw classifier: overall accuracy (OA) and per-class accuracy (CA) against yaw labels
  derived from the five landmarks (there are no measured head-pose labels in the data);
- detector: recall by face size on VOC-annotated scenes;
- the whole pipeline, per format and precision: a labelled face counts when it is
  detected AND its mask label is right.

The crops are cut once, by the fp32 detector build, so every classifier build is scored
on identical inputs and differs only by what its runner computes. Needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..converters.manifest import MANIFEST
from ..errors import BundleError, SourceError

if TYPE_CHECKING:
    from ..datasets.crops import CropSet

DETECTION_IOU = 0.3  # the scenes' boxes are loose hand boxes: the usual face-benchmark threshold
HEADLINE_MIN_FACE_PX = 20.0
PIPELINE_MIN_FACE_PX = 32.0


@dataclass
class TaskData:
    """Labelled inputs for task metrics: aligned crops and VOC scenes of one split."""

    source: str
    split: str
    crops: CropSet | None = None
    scenes: list = field(default_factory=list)  # maskgate.voc.VocImage
    cut_by: str | None = None  # what detected and aligned the crops

    @classmethod
    def check_source(cls, data: str | Path, *, flag: str = "--data") -> Path:
        """``data`` as a folder ``load`` reads (a data folder or a crop set), checked before any
        work: anything else fails in one line naming ``flag``."""
        from ..datasets.crops import CROPS_FILE

        root = Path(data)
        if not root.is_dir():
            raise SourceError(f"{root} (from {flag}): no such folder; give a data folder (faces/ and scenes/, like "
                              "../shared/data; docs/data.md) or a crop set from 'maskgate crops'")
        readable = (root / CROPS_FILE, root / "faces", root / "scenes" / "annotations")
        if not (readable[0].is_file() or readable[1].is_dir() or readable[2].is_dir()):
            raise SourceError(f"{root} (from {flag}): not a data folder (faces/ and scenes/annotations, like "
                              f"../shared/data) nor a crop set ({CROPS_FILE} from 'maskgate crops')")
        return root

    @classmethod
    def load(cls, data: str | Path, *, builds: str | Path | None = None, detector=None, split: str = "test",
             limit: int | None = None, prefer=None, threads: int | None = None, progress: bool = False) -> TaskData:
        """``data``: a data folder like ../shared/data (faces/ and scenes/), or a crop set
        written by ``maskgate crops`` (crops.npz). ``limit``: at most this many source
        images of each kind, evenly spread. Crops from a data folder are cut by ``detector``
        (a FaceDetector, e.g. the PyTorch reference at build time), else by the fp32
        detector build found under ``builds``."""
        from ..datasets.crops import CROPS_FILE, CropSet, build_crops, split_of
        from ..progress import progress as progress_bar
        from ..sources import spread
        from ..voc import read_voc_folder

        root = cls.check_source(data)
        if (root / CROPS_FILE).is_file():
            crops = CropSet.load(root).where(split=split)
            if not len(crops):
                raise SourceError(f"{root / CROPS_FILE}: no crops in the {split} split; pass --split with one it has")
            return cls(str(root), split, crops=crops, cut_by=f"crop set {root}")
        scenes = []
        if (root / "scenes" / "annotations").is_dir():
            scenes = [s for s in read_voc_folder(root / "scenes")
                      if split_of(s.image_path.relative_to(root).as_posix()) == split]
            scenes = spread(scenes, limit)
        bar = lambda items: progress_bar(items, desc="crops", enabled=progress, unit="img")  # noqa: E731
        if detector is not None:
            crops = build_crops(root, detector, split=split, limit=limit, progress=bar)
            return cls(str(root), split, crops=crops, scenes=scenes, cut_by=detector.runner.describe())
        if builds is None:
            raise ValueError("TaskData.load needs builds (a folder with a detector bundle) or a detector")
        detector, selection = open_reference_detector(builds, prefer=prefer, threads=threads)
        try:
            crops = build_crops(root, detector, split=split, limit=limit, progress=bar)
        finally:
            detector.close()
        return cls(str(root), split, crops=crops, scenes=scenes, cut_by=selection.describe())

    def describe(self) -> str:
        crops = f"{len(self.crops)} crops" if self.crops is not None else "no crops"
        return f"{self.source}, {self.split} split: {crops}, {len(self.scenes)} scenes"


def open_reference_detector(builds: str | Path, *, prefer=None, threads: int | None = None):
    """The fp32 detector build under ``builds`` (or beside a single bundle), which cuts the
    crops every classifier build is scored on."""
    from ..deployed import open_detector

    builds = Path(builds)
    where = builds.parent if (builds / MANIFEST).is_file() else builds
    models = detector_models(where)
    if not models:
        raise BundleError(f"{where}: --data needs a detector bundle here to cut the face crops the classifiers are "
                          "scored on; check the whole builds folder, or pass a crop set from 'maskgate crops'")
    for precisions in (("fp32",), None):
        try:
            return open_detector(where, models[0], precisions=precisions, prefer=prefer, threads=threads)
        except BundleError:
            continue  # no fp32 build of it: the most precise one there is
    raise BundleError(f"{where}: no usable build of {models[0]} to cut the face crops")


def detector_models(builds: Path) -> list[str]:
    from maskgate.runtimes.select import readable_bundles

    return list(dict.fromkeys(m["model"] for _, m in readable_bundles(builds) if m.get("task") == "face_detection"))


def pipeline_groups(builds: Path) -> list[tuple[str, str, str, str]]:
    """(detector, mask model, format, precision) for every format and precision that has
    both a detector bundle and a mask classifier bundle under ``builds``."""
    from maskgate.runtimes.select import readable_bundles

    detectors: dict[tuple, object] = {}
    masks: dict[tuple, object] = {}
    for _, m in readable_bundles(builds):
        key = (m["format"], m["precision"])
        if m.get("task") == "face_detection":
            detectors.setdefault(key, m["model"])
        elif {"mask", "no_mask"} <= set(m.get("class_names") or ()):
            masks.setdefault(key, m["model"])
    return [(detectors[k], masks[k], *k) for k in detectors if k in masks]


def classifier_metrics(classifier, crops) -> dict | None:
    """Mask or yaw figures for a crop classifier (by its class names); None for other classifiers."""
    from ..classifier_eval import classify_crops, pose_labels
    from ..metrics import mask_scores, pose_scores, roc_curve
    from ..pose import YawBins

    names = tuple(classifier.spec.class_names)
    if {"mask", "no_mask"} <= set(names):
        keep = np.flatnonzero(np.isin(crops.mask, [0, 1]))  # incorrectly worn masks are left out
        labels = crops.mask[keep].astype(np.int64)  # 0 mask, 1 no_mask (maskgate.datasets.crops.MASK_LABELS)
        probs = classify_crops(classifier, crops.images[keep])
        probs = probs[:, [names.index("mask"), names.index("no_mask")]]
        if not len(labels):
            return None
        scores = mask_scores(labels, probs)
        fpr, tpr = roc_curve(labels == 0, probs[:, 0])  # at most one point per distinct score
        scores["roc"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
        return {"kind": "mask", **scores}
    if len(names) == YawBins().count:
        keep, labels = pose_labels(crops)
        if not len(labels):
            return None
        probs = classify_crops(classifier, crops.images[keep])
        return {"kind": "yaw", **pose_scores(labels, probs, len(names)), "class_names": list(names)}
    return None


def detector_metrics(
    detector, scenes, *, iou: float = DETECTION_IOU, min_width: float = HEADLINE_MIN_FACE_PX
) -> dict | None:
    """Recall by face width on VOC scenes (faces the annotators boxed, any label)."""
    from ..metrics import RecallBySize
    from ..sources import read_image

    if not scenes:
        return None
    acc = RecallBySize(iou_threshold=iou)
    for item in scenes:
        found = detector.detect(read_image(item.image_path))
        acc.add(item.boxes, found.boxes, found.scores)
    return {"kind": "detection", "images": len(scenes), "iou": iou, "min_face_px": min_width,
            "recall": acc.recall(min_width=min_width), "recall_all": acc.recall(), "precision": acc.precision,
            "buckets": acc.rows()}


def pipeline_metrics(builds: str | Path, scenes, *, detector: str, mask: str, format: str, precision: str,
                     prefer=None, threads: int | None = None, min_width: float = PIPELINE_MIN_FACE_PX) -> dict:
    """Detect -> align -> mask on the scenes with one format and precision for both models
    (measured whatever the builds' recorded verdicts: this is what checks them)."""
    from maskgate.runtimes.trust import configured_trust

    from ..classifier_eval import scenes_end_to_end
    from ..pipeline import Pipeline

    trust = configured_trust(allow_failed_builds=True)
    pipeline = Pipeline.from_builds(builds, detector=detector, mask_model=mask, pose_model=None, prefer=prefer,
                                    threads=threads, formats=(format,), precisions=(precision,), trust=trust)
    with pipeline:
        e2e = scenes_end_to_end(pipeline, scenes, min_width=min_width)
        runtime = {role: sel.describe_runtime() for role, sel in pipeline.selections.items()}
    return {"format": format, "precision": precision, "images": len(scenes), "runtime": runtime, **e2e.to_dict()}


def summary(metrics: dict | None) -> str:
    """One cell for a bundle's task metric ."""
    if not metrics:
        return "-"
    if metrics["kind"] == "mask":
        auc = f", AUC {metrics['roc_auc']:.4f}" if metrics.get("roc_auc") is not None else ""
        return f"acc {metrics['accuracy']:.2%}{auc} (n={metrics['n']})"
    if metrics["kind"] == "yaw":
        return f"OA {metrics['overall_accuracy']:.2%} (n={metrics['n']})"
    return f"recall {metrics['recall']:.2%} >={metrics['min_face_px']:g}px ({metrics['images']} img)"
