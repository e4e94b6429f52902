"""``maskgate tune-detector``: fine-tune the detector for a smaller canvas (the turnstile profile's)."""
from __future__ import annotations

import json

from .options import number, size, whole


def add_parser(sub) -> None:
    p = sub.add_parser(
        "tune-detector",
        help="fine-tune the detector's context modules and face scores for a smaller canvas (turnstile profile)",
        description="Retrains the detector's SSH context modules and face/background heads on camera frames made "
        "from the train split of scenes/, letterboxed onto --canvas; boxes and landmarks are held to the shipped "
        "model's. Keeps the epoch with the best recall of faces >= 32 px on the val split. Writes model.pt "
        "(use it with 'maskgate build --detector-weights') and metrics.json.",
    )
    p.add_argument("--data", help="data folder with scenes/ (default: MASKGATE_DATA, or [data] path in maskgate.toml)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--canvas", type=size, default=(320, 256), help="detector canvas WIDTHxHEIGHT (default 320x256)")
    p.add_argument("--epochs", type=whole(what="epochs"), default=8)
    p.add_argument("--lr", type=number(what="a learning rate", above=0, at_most=1), default=3e-4)
    p.add_argument("--seed", type=whole(at_least=0, what="a seed"), default=0)
    p.add_argument("--limit", type=whole(what="scenes"), help="at most this many scenes per split (smoke runs)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args) -> int:
    from pathlib import Path

    from ..config import data_folder
    from ..files import atomic_write
    from ..training.detector import DetectorTuning, tune_detector

    data = data_folder(args.data, needs=("scenes",))
    options = DetectorTuning(canvas=tuple(args.canvas), epochs=args.epochs, lr=args.lr, seed=args.seed,
                             show_progress=not args.no_progress)
    metrics = tune_detector(data, args.out, options, limit=args.limit)
    atomic_write(Path(args.out) / "metrics.json", json.dumps(metrics, indent=1))
    print(json.dumps({"out": str(Path(args.out) / "model.pt"), "best_epoch": metrics["best_epoch"],
                      **{k: v for k, v in metrics["history"][metrics["best_epoch"] - 1].items() if k.startswith("val")},
                      "seconds": metrics["seconds"]}, indent=1))
    return 0
