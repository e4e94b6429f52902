"""Acceptance: detector recall on the real scenes, with the default settings of maskgate run."""
from __future__ import annotations

import pytest

from maskgate.cli.evaluate import evaluate_recall
from maskgate.voc import read_voc_folder


@pytest.mark.shared_data
def test_recall_on_a_fixed_quarter_of_the_scenes(detector, shared_data):
    scenes = read_voc_folder(shared_data / "scenes")[::4]  # 164 of 653 images, fixed
    acc = evaluate_recall(detector, scenes, iou=0.3)
    rows = {r["bucket"]: r for r in acc.rows()}
    assert sum(r["faces"] for r in rows.values()) > 600
    assert acc.recall(min_width=20) >= 0.85, acc.rows()
    assert rows["64-128 px"]["recall"] >= 0.95
    assert acc.precision >= 0.75  # scenes leave some faces unlabelled, so this is a floor, not a goal
