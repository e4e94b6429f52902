"""Make the small default calibration set that ships in ``calibration/default``.

    python -m maskgate.calibration.make_default --data ../shared/data

``calibrate/``: scenes and single-face photos from the train split (by the project's hash
of each picture's relative path); ``verify/``: others from the test split, held out from
calibration, for the fidelity figures of a build on a fresh machine. Files are copied
byte for byte; ``index.json`` names each one's origin and licence.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from maskgate.datasets.crops import split_of
from maskgate.sources import list_images

from . import DEFAULT_DIR
from .frames import _spread

# (folder in the data, count in calibrate, count in verify, licence)
_PLAN = (
    ("scenes/images", 48, 32, "CC0 (Kaggle 'Face Mask Detection', as published)"),
    ("faces/with_mask", 16, 12, "MIT (Face-Mask-Detection, chandrikadeb7; see faces/LICENSE)"),
    ("faces/without_mask", 16, 12, "MIT (Face-Mask-Detection, chandrikadeb7; see faces/LICENSE)"),
)
_PARTS = (("calibrate", "train", 1), ("verify", "test", 2))


def make_default(data: Path, out: Path = DEFAULT_DIR) -> dict:
    index: dict = {"made_by": "python -m maskgate.calibration.make_default --data DATA", "files": []}
    tmp = Path(tempfile.mkdtemp(prefix=".default-", dir=out.parent))
    try:
        for part, split, column in _PARTS:
            (tmp / part).mkdir()
            for folder, *counts, licence in _PLAN:
                files = [p for p in list_images(data / folder) if split_of(p.relative_to(data).as_posix()) == split]
                for p in _spread(files, counts[column - 1]):
                    name = f"{folder.replace('/', '_')}_{p.name}"
                    shutil.copyfile(p, tmp / part / name)
                    index["files"].append({"file": f"{part}/{name}", "origin": p.relative_to(data).as_posix(),
                                           "split": split, "licence": licence})
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        (tmp / "ATTRIBUTION.md").write_text(_ATTRIBUTION)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


_ATTRIBUTION = """# Default calibration set

A small sample of public photos, so that `maskgate build` calibrates int8 builds on a
fresh machine. Made by `python -m maskgate.calibration.make_default --data ../shared/data`;
`index.json` names every file's origin.

- `scenes_images_*`: the Kaggle "Face Mask Detection" set (photos with VOC face boxes;
  CC0 as published).
- `faces_with_mask_*`, `faces_without_mask_*`: the Face-Mask-Detection dataset by
  chandrikadeb7 (web photos and RMFD crops), MIT licence, Copyright (c) 2021 chandrikadeb7.

`calibrate/` holds train-split pictures; `verify/` holds test-split pictures, never used
for calibration, for the fidelity figures of a build.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="the shared data folder (faces/, scenes/)")
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    index = make_default(args.data, args.out)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{len(index['files'])} files, {size / 1e6:.1f} MB in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
