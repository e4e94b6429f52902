"""The training loop shared by the mask and pose recipes (CPU-friendly, deterministic)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..progress import progress
from ..specs import InputSpec
from .augment import AugmentOptions, augment, to_input


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    freeze_stages: int = 0  # backbone stages (shallow first) kept fixed, BatchNorm statistics included
    class_weighting: bool = True  # inverse square-root frequency, against the frontal-heavy yaw classes
    seed: int = 0
    augment: AugmentOptions = AugmentOptions()
    show_progress: bool = True


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    seconds: float = 0.0


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def freeze(model, stages: int) -> list[torch.nn.Module]:
    """Fix the first ``stages`` backbone stages; returns their modules (kept in eval mode)."""
    all_stages = model.backbone.stage_modules()
    if not 0 <= stages <= len(all_stages):
        raise InputError(f"freeze_stages must be 0..{len(all_stages)} for this backbone, got {stages}")
    frozen = [m for stage in all_stages[:stages] for m in stage]
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    return frozen


def _train_mode(model, frozen: list[torch.nn.Module]) -> None:
    model.train()
    for module in frozen:
        module.eval()


@torch.no_grad()
def predict(model, images: np.ndarray, spec: InputSpec, *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities for BGR uint8 crops (N, H, W, 3)."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
        out.append(torch.softmax(model.logits(to_input(batch, spec)), 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def fit(
    model,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    spec: InputSpec,
    classes: int,
    flip_map: np.ndarray,
    config: TrainConfig,
    desc: str = "train",
) -> History:
    """Train in place; keeps the weights of the epoch with the best validation accuracy."""
    images, labels = train
    if len(images) == 0:
        raise InputError("the training set is empty; check the crop set and the filters (--min-face-px, splits)")
    if len(val[0]) == 0:
        raise InputError("the validation set is empty; the crop set needs images in the 'val' split")
    generator = seed_everything(config.seed)
    frozen = freeze(model, config.freeze_stages)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, len(images) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=steps_per_epoch * config.epochs, pct_start=0.15
    )
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    weights = None
    if config.class_weighting:
        w = 1.0 / np.sqrt(np.maximum(counts, 1.0))
        weights = torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)
    flip = torch.as_tensor(flip_map, dtype=torch.long)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    history = History()
    best_acc, best_state = -1.0, None
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        _train_mode(model, frozen)
        order = torch.randperm(len(images), generator=generator).numpy()
        losses = []
        batches = range(steps_per_epoch)
        bar = progress(
            batches, desc=f"{desc} epoch {epoch}/{config.epochs}", enabled=config.show_progress, unit="batch"
        )
        for b in bar:
            idx = np.sort(order[b * config.batch_size : (b + 1) * config.batch_size])
            x, y = augment(
                torch.from_numpy(images[idx]),
                labels_t[idx],
                spec=spec,
                flip_map=flip,
                options=config.augment,
                generator=generator,
            )
            loss = F.cross_entropy(model.logits(x), y, weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        probs = predict(model, val[0], spec)
        val_loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-8)), torch.as_tensor(val[1])))
        val_acc = float(np.mean(probs.argmax(1) == val[1]))
        history.epochs.append(
            {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss, "val_accuracy": val_acc}
        )
        if val_acc > best_acc:
            best_acc, best_state, history.best_epoch = val_acc, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(True)
    history.seconds = time.perf_counter() - start
    return history
