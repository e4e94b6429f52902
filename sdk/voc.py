"""Pascal VOC annotations (one XML per image), as used by the scenes data set."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SourceError


@dataclass(frozen=True)
class VocImage:
    image_path: Path
    boxes: np.ndarray  # [N,4] x1,y1,x2,y2 in pixels
    labels: tuple[str, ...]


def read_voc(xml_path: str | Path, images_dir: str | Path | None = None) -> VocImage:
    xml_path = Path(xml_path)
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise SourceError(f"{xml_path}: not a readable Pascal VOC XML file ({exc})") from exc
    filename = root.findtext("filename")
    if not filename:
        raise SourceError(f"{xml_path}: no <filename> element")
    images_dir = Path(images_dir) if images_dir else xml_path.parent.parent / "images"
    boxes, labels = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise SourceError(f"{xml_path}: an <object> has no <bndbox>")
        try:
            boxes.append([float(bb.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax")])
        except (TypeError, ValueError) as exc:
            raise SourceError(f"{xml_path}: a <bndbox> has a missing or non-numeric coordinate") from exc
        labels.append(obj.findtext("name") or "")
    return VocImage(images_dir / filename, np.asarray(boxes, np.float32).reshape(-1, 4), tuple(labels))


def read_voc_folder(root: str | Path) -> list[VocImage]:
    """A scenes-style folder: ``root/annotations/*.xml`` naming files in ``root/images``."""
    root = Path(root)
    ann = root / "annotations"
    files = sorted(ann.glob("*.xml"), key=_natural_key)
    if not files:
        raise SourceError(f"{ann}: no .xml annotations found; expected a folder with annotations/ and images/")
    return [read_voc(f, root / "images") for f in files]


def _natural_key(path: Path) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))
