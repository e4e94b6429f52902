"""maskgate agree: two machines' 'maskgate run --json' results compared face by face."""
from __future__ import annotations

import json

import pytest

from maskgate.check.agreement import agreement, load_results
from maskgate.errors import InputError


def _face(source, box, *, mask="mask", yaw=2, score=0.99, landmarks=None):
    x1, y1, x2, y2 = box
    landmarks = landmarks or [[x1 + 10, y1 + 10], [x2 - 10, y1 + 10], [(x1 + x2) / 2, (y1 + y2) / 2],
                              [x1 + 12, y2 - 10], [x2 - 12, y2 - 10]]
    return {"source": source, "frame": 0, "box": list(box), "score": score, "landmarks": landmarks,
            "mask": {"label": mask, "prob": 0.9}, "pose": {"label": f"yaw{yaw}", "yaw_bin": yaw}}


def _write(path, faces):
    path.write_text("".join(json.dumps(f) + "\n" for f in faces))
    return path


def test_faces_are_matched_by_iou_per_image_and_labels_compared(tmp_path):
    reference = _write(tmp_path / "x86.jsonl", [
        _face("/work/a/one.jpg", (0, 0, 100, 100)), _face("/work/a/one.jpg", (200, 0, 300, 100), mask="no_mask"),
        _face("/work/a/two.jpg", (0, 0, 50, 50)), _face("/work/a/two.jpg", (100, 100, 150, 150), yaw=3)])
    other = _write(tmp_path / "arm.jsonl", [
        _face("/cam/b/one.jpg", (202, 2, 302, 102), mask="mask", score=0.95),  # same face, label flipped
        _face("/cam/b/one.jpg", (1, 1, 101, 101)),
        _face("/cam/b/two.jpg", (100, 100, 150, 150), yaw=4),
        _face("/cam/b/two.jpg", (400, 400, 450, 450)),  # extra
        # (0, 0, 50, 50) in two.jpg: missed
    ])
    result = agreement(load_results(reference), load_results(other))
    assert (result.reference_faces, result.matched, result.extra) == (4, 3, 1)
    assert result.missed == [("two.jpg", 0, [0, 0, 50, 50])]
    assert (result.same_mask, result.same_yaw) == (2, 2)
    assert result.found == pytest.approx(0.75) and result.score_diff["max"] == pytest.approx(0.04)
    # IoU 98x98 / (2 x 100x100 - 98x98) for the box moved by (2, 2), 99x99 / ... for (1, 1), 1 for the same;
    # the landmarks moved with them: sqrt(8) and sqrt(2) px over the 80 px between the eyes (maskgate.compare)
    assert result.box_iou == {"median": pytest.approx(0.961, abs=1e-4), "min": pytest.approx(0.9238, abs=1e-4)}
    assert result.landmark_nme["max"] == pytest.approx(8 ** 0.5 / 80, abs=1e-4)
    assert result.landmark_nme["median"] == pytest.approx(2 ** 0.5 / 80, abs=1e-4)


def test_the_cli_fails_below_its_thresholds_and_names_a_bad_line(tmp_path, capsys):
    from maskgate.cli import main

    reference = _write(tmp_path / "x86.jsonl", [_face("one.jpg", (0, 0, 100, 100)), _face("two.jpg", (0, 0, 60, 60))])
    same = _write(tmp_path / "same.jsonl", [_face("one.jpg", (0, 0, 100, 100)), _face("two.jpg", (0, 0, 60, 60))])
    flipped = _write(tmp_path / "flip.jsonl", [_face("one.jpg", (0, 0, 100, 100), mask="no_mask"),
                                               _face("two.jpg", (0, 0, 60, 60))])
    assert main(["agree", str(reference), str(same), "--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["found"] == 1.0
    assert main(["agree", str(reference), str(flipped)]) == 1
    assert "mask agreement 50.00%" in capsys.readouterr().err
    # the thresholds come from the one gates table: [gates.same_builds] moves them, a flag wins over it
    from maskgate.config import use_config

    (tmp_path / "maskgate.toml").write_text("[gates.same_builds]\nmin_same_mask = 0.5\n")
    use_config(tmp_path / "maskgate.toml")
    assert main(["agree", str(reference), str(flipped)]) == 0
    assert main(["agree", str(reference), str(flipped), "--min-mask", "0.6"]) == 1
    (tmp_path / "bad.jsonl").write_text('{"source": "one.jpg"}\n')
    with pytest.raises(InputError, match="bad.jsonl:1: not a face"):
        load_results(tmp_path / "bad.jsonl")
