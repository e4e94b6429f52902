"""Does one MobileNetV2 trunk with two heads (mask, pose) pay against the two shipped models?

Trains the shared model on a crop set from ``maskgate crops`` with the shipped recipes'
pieces (ImageNet start, the same augmentation, AdamW with one-cycle, the first stage fixed,
6 epochs, the best epoch by validation), the mask head linear and the pose head the pose
paper's skip-connected one, each on its own labels (pose: faces >= 20 px, as ``maskgate
train pose``); then scores the untouched test split once, beside the two shipped models on
the same crops, and times one trunk with two heads against two models (ONNX Runtime fp32,
1 thread). The issue's rule: ship it only if held-out mask accuracy and yaw agreement stay
within 0.3 points of the shipped models. A benchmark, not a test.

    maskgate crops --data ../shared/data --out runs/crops
    python benchmarks/shared_trunk.py --crops runs/crops --out runs/shared [--epochs 6]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
POSE_MIN_FACE_PX = 20.0  # as `maskgate train pose`: smaller faces have noisy landmarks, hence noisy yaw labels


def build(torch):
    from maskgate.models.classifier import LinearHead, SkipHead
    from maskgate.models.classifier_backbones import build_backbone
    from maskgate.models.imagenet import imagenet_checkpoint, load_backbone_weights

    class SharedTrunk(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = build_backbone("mobilenet_v2")
            load_backbone_weights(self.backbone, imagenet_checkpoint("mobilenet_v2"))
            taps = self.backbone.tap_channels
            self.mask_head = LinearHead(taps, 2, dropout=0.2)
            self.pose_head = SkipHead(taps, 6, hidden=256, projection=128, dropout=0.2)

        def logits(self, x):
            taps = self.backbone(x)
            return self.mask_head(taps), self.pose_head(taps)

        def forward(self, x):
            mask, pose = self.logits(x)
            return torch.softmax(mask, 1), torch.softmax(pose, 1)

    return SharedTrunk()


def train(crops, *, epochs: int, seed: int, torch):
    import torch.nn.functional as F

    from maskgate.pose import YawBins
    from maskgate.registry import get_spec
    from maskgate.training.augment import AugmentOptions, augment
    from maskgate.training.loop import freeze, seed_everything

    spec = get_spec("pose_mobilenetv2_skip").input  # both shipped classifiers read the same crop
    bins = YawBins()
    yaw = np.array([bins.classify(float(v)) for v in crops.yaw], np.int64)
    # One label per crop that the augmentation's mirror flip maps right: mask * 6 + yaw class.
    joint = crops.mask.astype(np.int64) * 6 + yaw
    flip = torch.as_tensor([m * 6 + bins.mirror(k) for m in range(2) for k in range(6)], dtype=torch.long)
    pose_ok = torch.as_tensor(crops.face_px >= POSE_MIN_FACE_PX)
    train_idx = np.flatnonzero(crops.split == "train")
    val_idx = np.flatnonzero(crops.split == "val")
    generator = seed_everything(seed)
    model = build(torch)
    frozen = freeze(model, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    batch = 64
    steps = max(1, len(train_idx) // batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps * epochs, pct_start=0.15)

    def class_weights(labels, classes):  # inverse square-root frequency, as the recipes
        counts = np.bincount(labels, minlength=classes).astype(np.float64)
        w = 1.0 / np.sqrt(np.maximum(counts, 1.0))
        return torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)

    mask_w = class_weights(crops.mask[train_idx], 2)
    pose_w = class_weights(yaw[train_idx][crops.face_px[train_idx] >= POSE_MIN_FACE_PX], 6)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, epochs + 1):
        model.train()
        for module in frozen:
            module.eval()
        order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
        losses = []
        start = time.perf_counter()
        for b in range(steps):
            idx = np.sort(order[b * batch:(b + 1) * batch])
            x, y = augment(torch.from_numpy(crops.images[idx]), torch.as_tensor(joint[idx]), spec=spec,
                           flip_map=flip, options=AugmentOptions(), generator=generator)
            mask_logits, pose_logits = model.logits(x)
            keep = pose_ok[idx]
            loss = F.cross_entropy(mask_logits, y // 6, weight=mask_w)
            if keep.any():
                loss = loss + F.cross_entropy(pose_logits[keep], (y % 6)[keep], weight=pose_w)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        mask_p, pose_p = predict(model, crops.images[val_idx], spec, torch)
        mask_acc = float(np.mean(mask_p.argmax(1) == crops.mask[val_idx]))
        ok = crops.face_px[val_idx] >= POSE_MIN_FACE_PX
        pose_acc = float(np.mean(pose_p.argmax(1)[ok] == yaw[val_idx][ok]))
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_mask_accuracy": mask_acc,
                        "val_pose_agreement": pose_acc, "seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(history[-1]), flush=True)
        if mask_acc + pose_acc > best:
            best, best_state = mask_acc + pose_acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval(), history, yaw


def predict(model, images, spec, torch):
    from maskgate.training.augment import to_input

    model.eval()
    mask, pose = [], []
    with torch.no_grad():
        for start in range(0, len(images), 128):
            m, p = model(to_input(torch.from_numpy(np.ascontiguousarray(images[start:start + 128])), spec))
            mask.append(m.numpy())
            pose.append(p.numpy())
    return np.concatenate(mask), np.concatenate(pose)


def onnx_ms(module, torch, out: Path, name: str, runs: int = 200) -> float:
    """Median ms of one 128x128 crop through the module exported to ONNX, ONNX Runtime, 1 thread."""
    import onnxruntime as ort

    path = out / f"{name}.onnx"
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, 128, 128),), str(path), opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, 128, 128), np.float32)}
    for _ in range(20):
        session.run(None, x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", type=Path, required=True, help="a crop set from 'maskgate crops'")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    from maskgate.datasets.crops import CropSet
    from maskgate.registry import create_model, get_spec

    args.out.mkdir(parents=True, exist_ok=True)
    crops = CropSet.load(args.crops)
    crops = crops.select(np.isin(crops.mask, [0, 1]) & (crops.origin != "synth"))
    model, history, yaw = train(crops, epochs=args.epochs, seed=args.seed, torch=torch)
    torch.save(model.state_dict(), args.out / "shared_trunk.pt")
    spec = get_spec("pose_mobilenetv2_skip").input
    test = np.flatnonzero(crops.split == "test")
    ok = crops.face_px[test] >= POSE_MIN_FACE_PX
    mask_p, pose_p = predict(model, crops.images[test], spec, torch)
    shipped_mask = predict_one(create_model("mask_mobilenetv2"), crops.images[test], spec, torch)
    shipped_pose = predict_one(create_model("pose_mobilenetv2_skip"), crops.images[test], spec, torch)
    truth_mask, truth_yaw = crops.mask[test], yaw[test]
    figures = {
        "test_crops": int(len(test)), "test_crops_pose": int(ok.sum()), "epochs": history,
        "shared": {"mask_accuracy": float(np.mean(mask_p.argmax(1) == truth_mask)),
                   "yaw_agreement": float(np.mean(pose_p.argmax(1)[ok] == truth_yaw[ok]))},
        "shipped": {"mask_accuracy": float(np.mean(shipped_mask.argmax(1) == truth_mask)),
                    "yaw_agreement": float(np.mean(shipped_pose.argmax(1)[ok] == truth_yaw[ok]))},
    }
    torch.set_num_threads(1)
    figures["onnx_fp32_ms_1_thread"] = {
        "shared": onnx_ms(model, torch, args.out, "shared"),
        "mask": onnx_ms(create_model("mask_mobilenetv2"), torch, args.out, "mask"),
        "pose": onnx_ms(create_model("pose_mobilenetv2_skip"), torch, args.out, "pose"),
    }
    timing = figures["onnx_fp32_ms_1_thread"]
    figures["shared_vs_two_models"] = timing["shared"] / (timing["mask"] + timing["pose"])
    gaps = {k: 100 * (figures["shared"][k] - figures["shipped"][k]) for k in ("mask_accuracy", "yaw_agreement")}
    figures["points_vs_shipped"] = gaps
    figures["ships"] = all(g >= -0.3 for g in gaps.values())
    (args.out / "shared_trunk.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "epochs"}, indent=1))
    return 0


def predict_one(model, images, spec, torch):
    from maskgate.training.loop import predict as predict_probs

    return predict_probs(model.eval(), images, spec)


if __name__ == "__main__":
    sys.exit(main())
