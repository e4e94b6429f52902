"""``maskgate run`` and friends: outputs, files written, and errors on bad input."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from maskgate.cli import main


def test_run_json_on_the_sample_images(sample_images, capsys):
    assert main(["run", str(sample_images[0].parent), "--json", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) >= 10
    assert {line["source"] for line in lines} == {str(p) for p in sample_images}
    for face in lines:
        assert set(face) >= {"source", "frame", "box", "score", "landmarks", "mask", "pose"}
        assert face["frame"] == 0
        assert face["mask"]["label"] in ("mask", "no_mask") and 0.5 <= face["mask"]["prob"] <= 1.0
        pose = face["pose"]
        assert 0 <= pose["yaw_bin"] < 6 and len(pose["probs"]) == 6 and abs(sum(pose["probs"]) - 1) < 1e-3
        assert pose["label"].startswith("yaw[") and max(pose["probs"]) == pose["probs"][pose["yaw_bin"]]
        x1, y1, x2, y2 = face["box"]
        assert x2 > x1 and y2 > y1 and 0.5 < face["score"] <= 1.0
        assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
        (lex, _), (rex, _) = face["landmarks"][:2]
        assert lex < rex  # left eye as seen in the image comes first


def test_run_without_classifiers_leaves_mask_and_pose_empty(sample_images, capsys):
    args = ["run", str(sample_images[0]), "--json", "--device", "cpu", "--mask-model", "none", "--pose-model", "none"]
    assert main(args) == 0
    faces = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert faces and all(f["mask"] is None and f["pose"] is None for f in faces)


def test_run_summary_and_saved_files(sample_images, tmp_path, capsys):
    image = sample_images[0]
    assert main(["run", str(image), "--save", str(tmp_path), "--save-crops", "--min-score", "0.9"]) == 0
    out = capsys.readouterr().out
    assert f"{image}:" in out and "face(s)" in out and "min score 0.9" in out
    assert (tmp_path / f"{image.stem}.jpg").is_file()
    crops = sorted(tmp_path.glob(f"{image.stem}_face*.jpg"))
    assert crops and cv2.imread(str(crops[0])).shape == (128, 128, 3)


def test_run_on_a_video(sample_images, tmp_path, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (400, 300))
    assert writer.isOpened()
    for path in sample_images:
        writer.write(cv2.resize(cv2.imread(str(path)), (400, 300)))
    writer.release()
    assert main(["run", str(video), "--json", "--max-frames", "3"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["frame"] for line in lines} == {0, 1, 2}
    assert all(line["source"] == str(video) for line in lines)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.jpg", "missing.jpg: no such file or folder"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "empty: no images found"),
        (
            lambda d: (d / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg") and d / "bad.jpg",
            "bad.jpg: not a readable image",
        ),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "notes.txt: not an image or a video"),
        (lambda d: "97", "camera:97: camera does not open"),
    ],
)
def test_bad_sources_exit_2_with_one_clear_line(tmp_path, capfd, make, message):
    assert main(["run", str(make(tmp_path))]) == 2
    err = capfd.readouterr().err  # the process's stderr: OpenCV logs past Python's sys.stderr
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_unreadable_file_in_a_folder_is_skipped_and_reported(sample_images, tmp_path, capsys):
    shutil.copy(sample_images[0], tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"truncated")
    assert main(["run", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "b.jpg" in captured.err
    assert all(json.loads(line)["source"].endswith("a.jpg") for line in captured.out.splitlines())


def test_bad_options_and_weights(tmp_path, sample_images, capsys):
    with pytest.raises(SystemExit):
        main(["run", str(sample_images[0]), "--input-size", "big"])
    with pytest.raises(SystemExit):
        main(["run", str(sample_images[0]), "--min-score", "3"])
    assert main(["run", str(sample_images[0]), "--weights", str(tmp_path / "none.pth")]) == 2
    assert "none.pth does not exist" in capsys.readouterr().err
    assert "argument --detector: unknown model 'yolo'" in _refused(["run", str(sample_images[0]), "--detector",
                                                                     "yolo"], capsys)
    assert "--mask-model: pose_mobilenetv2_skip is not a mask model" in _refused(
        ["run", str(sample_images[0]), "--mask-model", "pose_mobilenetv2_skip"], capsys)
    assert "argument --device: expected a PyTorch device" in _refused(["run", str(sample_images[0]), "--device",
                                                                       "tpu"], capsys)


def _refused(argv, capsys) -> str:
    """The one line a command line refused before any work gives (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and "usage:" not in err, err
    return err


def test_a_wrong_option_is_refused_in_one_line_with_the_nearest_one(sample_images, capsys):
    assert "--jsn (did you mean --json?)" in _refused(["run", str(sample_images[0]), "--jsn"], capsys)
    err = _refused(["build", "--formats", "onxx"], capsys)  # was 30 lines of usage above this one
    assert "expected a comma list of onnx, openvino" in err and "'maskgate build --help' lists" in err
    import logging

    from maskgate import console

    handlers = list(logging.getLogger("maskgate").handlers)
    assert main(["models", "-v"]) == 0  # --verbose after the command too
    # and undone when it returns: a later in-process caller's stderr filters and log are its own
    assert not console.VERBOSE and logging.getLogger("maskgate").handlers == handlers


def test_device_means_the_pytorch_device_and_prefer_the_runtime_preference(tmp_path, capsys):
    (tmp_path / "last-check.json").write_text("{}")
    for command in (["check", str(tmp_path)], ["turnstile", "clip.mp4"]):
        err = _refused([*command, "--device", "npu"], capsys)
        assert "--device is the PyTorch device of run, eval, crops and train; here it is --prefer" in err
        err = _refused([*command, "--prefer", "tpu"], capsys)
        assert "device preference 'tpu' must list some of npu, gpu, cpu" in err
    assert _refused(["run", "x.jpg", "--builds", str(tmp_path), "--prefer", "tpu"], capsys)
    assert (tmp_path / "last-check.json").read_text() == "{}"  # a refused check leaves the last verdict alone


def test_options_that_do_nothing_alone_and_a_missing_data_folder_are_refused_before_any_work(sample_images, tmp_path,
                                                                                           capsys):
    assert main(["run", str(sample_images[0]), "--save-crops"]) == 2
    assert "give --save DIR too" in capsys.readouterr().err
    out = tmp_path / "builds"
    assert main(["build", "--data", str(tmp_path / "missing"), "--out", str(out), "--models", "mask_mobilenetv2",
                 "--formats", "onnx", "--precisions", "fp32"]) == 2
    assert "missing (from --data): no such folder" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    assert main(["build", "--data", str(tmp_path / "photos"), "--out", str(out)]) == 2
    assert "not a data folder" in capsys.readouterr().err
    assert not out.exists()  # refused before the build made its folder


def test_models_lists_the_registry(capsys):
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mnet = next(r for r in rows if r["name"] == "retinaface_mnet025")
    assert mnet["input"] == {
        "size": [640, 480],
        "color": "BGR",
        "mean": [104.0, 117.0, 123.0],
        "std": [1.0, 1.0, 1.0],
        "layout": "NCHW",
    }


def test_pipeline_accepts_gray_and_bgra_and_refuses_bad_frames(detector, sample_images):
    from maskgate import InputError, Pipeline

    pipeline = Pipeline(detector)
    image = cv2.imread(str(sample_images[0]))
    color = pipeline(image)
    assert color and all(f.crop.shape == (128, 128, 3) for f in color)
    assert len(pipeline(cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))) == len(color)
    assert len(pipeline(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))) >= 1
    assert pipeline(np.ascontiguousarray(image[:, ::-1]))  # mirrored, non-contiguous view made contiguous
    for bad, match in [
        (image.astype(np.float32), "uint8"),
        (image[:, :, :2], "HxWx3"),
        (np.zeros((0, 10, 3), np.uint8), "empty"),
        ([[1, 2, 3]], "numpy array"),
    ]:
        with pytest.raises(InputError, match=match):
            pipeline(bad)


def test_threads_below_one_are_refused_on_the_command_line_and_by_the_selector(quantized_builds, capsys):
    """--threads -1 reached OpenVINO, which failed deep inside, and the selector fell back."""
    from maskgate.errors import InputError
    from maskgate.runtimes.select import open_best

    for command in (["run", "x.jpg", "--builds", str(quantized_builds)], ["check", str(quantized_builds)],
                    ["turnstile", "x.mp4", "--builds", str(quantized_builds)]):
        assert "a whole number >= 1, got '0'" in _refused([*command, "--threads", "0"], capsys)
    with pytest.raises(InputError, match="threads=-1: CPU threads per model must be 1 or more"):
        open_best(quantized_builds, "mask_mobilenetv2", threads=-1)
