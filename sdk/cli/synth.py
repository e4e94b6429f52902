"""``maskgate synth``: semi-synthetic masked faces from the unmasked crops of a crop set."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import SourceError
from .options import whole


def add_parser(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="paste mask templates onto the unmasked crops of a crop set (the pose transfer's source domain)",
        description="Warps each template's six masks.cfg anchors onto the face by the head pose fitted to the "
        "five landmarks; _left/_right views by yaw; random tints and printed patterns.",
    )
    p.add_argument("--crops", required=True, help="crop set folder (from 'maskgate crops')")
    p.add_argument("--templates", required=True, help="folder with masks.cfg and templates/*.png")
    p.add_argument("--out", required=True, help="folder for the synthetic crop set (crops.npz) and grid.jpg")
    p.add_argument(
        "--split", choices=("train", "val", "test", "all"), default="all", help="which split to use (default all)"
    )
    p.add_argument("--seed", type=whole(at_least=0, what="a seed"), default=0)
    p.add_argument("--grid", type=whole(at_least=0, what="faces"),
                   default=48, help="faces in the sample grid picture (default 48; 0 for none)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=main)


def main(args) -> int:
    from ..datasets.crops import CropSet
    from ..datasets.synth import MaskSynthesizer, load_templates, picture_grid, synthesize_crops
    from ..progress import progress

    crops = CropSet.load(args.crops)
    if args.split != "all":
        crops = crops.where(split=args.split)
    synthesizer = MaskSynthesizer(load_templates(args.templates))
    from ..files import writable_folder

    writable_folder(args.out, what="the synthetic crop set", flag="--out")  # before any mask is pasted
    synth = synthesize_crops(
        crops, synthesizer, seed=args.seed,
        progress=lambda it: progress(it, desc="synthetic masks", enabled=not args.no_progress, unit="face"),
    )
    out = Path(args.out)
    path = synth.save(out)
    result = {"path": str(path), "crops": len(synth), "templates": synth.info["synth_templates"]}
    if args.grid:
        originals = crops.where(mask=[1])
        pick = np.random.default_rng(args.seed).choice(len(synth), min(args.grid, len(synth)), replace=False)
        # Originals beside their masked copies, so that placement can be judged.
        tiles = [t for i in sorted(pick) for t in (originals.images[i], synth.images[i])]
        grid = picture_grid(tiles, columns=8)
        grid_path = out / "grid.jpg"
        if not cv2.imwrite(str(grid_path), grid):
            raise SourceError(f"{grid_path}: could not write the grid picture")
        result["grid"] = str(grid_path)
    print(json.dumps(result, indent=1))
    return 0
