"""Every path, URL, name and file a command reads or writes is checked before any work, refused in
one line with exit 2, and a refused run leaves nothing on disk. Each case here ran for minutes, or
crashed with a traceback, or wrote half a result before this was so."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from maskgate.cli import main


def _refused(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def _data(folder: Path, *, scenes: bool = True) -> Path:
    """A data folder of the right layout: one face picture per label, empty scenes."""
    image = np.full((160, 160, 3), 128, np.uint8)
    for label in ("with_mask", "without_mask"):
        (folder / "faces" / label).mkdir(parents=True)
        cv2.imwrite(str(folder / "faces" / label / "a.jpg"), image)
    if scenes:
        for part in ("images", "annotations"):
            (folder / "scenes" / part).mkdir(parents=True)
    return folder


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder holding 'file', a plain file: 'file/x' is a path nothing can be written to."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    return tmp_path


def _left(folder: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("file", *keep))


def test_outputs_that_cannot_be_written_are_refused_before_the_work(scratch, capsys):
    data = str(_data(scratch / "data"))
    for argv, flag in (
        (["eval", "--data", data, "--json", "file/a.json"], "--json"),  # ran the whole evaluation first
        (["eval-detector", "scenes", "--json", "file/a.json"], "--json"),
        (["crops", "--data", data, "--out", "file/o"], "--out"),  # cut every crop first
        (["train", "mask", "--data", data, "--out", "file/o"], "--out"),
    ):
        err = _refused(argv, capsys)
        assert f"give {flag} a" in err and "cannot write" in err, (argv, err)
    assert _left(scratch) == ["data"]


def test_tune_detector_checks_out_after_its_scenes_and_before_the_epochs(scratch, shared_data, capsys):
    """It ran every epoch, then failed to write model.pt; a canvas it refuses leaves no --out folder."""
    err = _refused(["tune-detector", "--data", str(shared_data), "--out", "file/o"], capsys)
    assert "give --out a folder" in err
    assert "multiple of 32" in _refused(["tune-detector", "--data", str(shared_data), "--out", "o", "--canvas",
                                         "100x100"], capsys)
    assert _left(scratch) == []


def test_a_file_of_the_wrong_kind_is_named_in_one_line(scratch, capsys):
    (scratch / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0 a JPEG, not JSON lines")
    np.save(scratch / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "photo.jpg: cannot read results (not text)" in _refused(["agree", "photo.jpg", "photo.jpg"], capsys)
    err = _refused(["synth", "--crops", "objects.npy", "--templates", "t", "--out", "o"], capsys)
    assert "not a readable crop set" in err and "allow_pickle" not in err


def test_eval_loads_its_classifiers_before_cutting_crops(scratch, capsys):
    """Its --mask-model was read after every crop was cut; the names are checked by the parser now,
    and the weights before the crops."""
    data = str(_data(scratch / "data"))
    err = _refused(["eval", "--data", data, "--mask-weights", "missing.pt"], capsys)
    assert "weights file missing.pt does not exist" in err
    for flag in ("--mask-model", "--pose-model"):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", "--data", data, flag, "nope"])
        assert exit_info.value.code == 2 and f"argument {flag}: unknown model 'nope'" in capsys.readouterr().err


def test_build_reads_every_input_before_it_touches_out(scratch, capsys):
    (scratch / "corrupt.pt").write_bytes(b"\xff\xd8 not a checkpoint")
    for flags, says in (
        (["--calib", "missing"], "--calib missing: no such folder or file"),  # left out/.work-* behind
        (["--verify", "missing"], "--verify missing: no such folder or file"),
        (["--mask-weights", "missing.pt"], "weights file missing.pt does not exist"),  # built the detector first
        (["--mask-weights", "corrupt.pt"], "corrupt.pt is not a readable PyTorch checkpoint (torch.load found no"),
        (["--formats", "rknn", "--rknn-targets", "nope"], "unknown RKNN target(s) ['nope']; choose from rk3588"),
    ):
        err = _refused(["build", "--out", "out", *flags], capsys)
        assert says in err, (flags, err)
        assert "torch.load" not in err or "weights_only" not in err  # not torch's 1,000 characters
    assert "(--rknn-targets)" in err
    assert _left(scratch, "corrupt.pt") == []


def test_check_refuses_publish_settings_without_publish(scratch, capsys):
    err = _refused(["check", "builds", "--spool", "file/s"], capsys)
    assert "--spool applies only with --publish URL" in err
    assert "--site, --camera apply only" in _refused(["check", "builds", "--site", "hq", "--camera", "c"], capsys)


def test_release_and_rollout_check_the_broker_and_outputs_before_writing(scratch, capsys):
    assert main(["keygen", "site.key"]) == 0
    capsys.readouterr()
    (scratch / "builds").mkdir()  # empty: the checks below come before its bundles are read
    release = ["release", "builds", "--version", "1", "--key", "site.key"]
    for argv, says in (
        ([*release, "--out", "repo", "--notify", "http://x"], "--notify http://x: an mqtt:// or mqtts:// URL"),
        ([*release, "--out", "repo", "--notify", "mqtt://127.0.0.1:1", "--site", "a/b"], "--site: site must be"),
        ([*release, "--out", "repo", "--site", "hq"], "--site names the site whose agents --notify tells"),
        ([*release, "--out", "file/repo"], "give --out a folder"),
        ([*release, "--out", "repo", "--swu", "file/a.swu"], "give --swu a file"),
        (["release", "builds", "--version", "bad/v", "--key", "site.key", "--out", "repo"], "release version 'bad/v'"),
        (["rollout", "repo", "1", "--key", "site.key"], "repo: no release repository here"),  # wrote metadata there
        (["release", "nothing", "--version", "1", "--key", "site.key", "--out", "repo"], "nothing: no such builds"),
        (["rollout", "repo", "--refresh", "--key", "site.key"], "repo: no release repository here"),
        (["rollout", "repo", "1", "--key", "site.key", "--notify", "ftp://x"], "--notify ftp://x:"),
        (["rollout", "repo", "1", "--key", "site.key", "--halt", "--resume"], "--halt and --resume: choose one"),
        (["fleet", "status", "--broker", "mqtt://127.0.0.1:1", "--site", "a/b"], "--site: site must be"),
    ):
        assert says in _refused(argv, capsys), argv
    assert _left(scratch, "site.key", "site.key.pub", "builds") == []  # no repository folder was made


def test_the_agent_checks_its_release_source_and_state_before_polling(scratch, capsys):
    assert main(["keygen", "site.key"]) == 0
    capsys.readouterr()
    (scratch / "maskgate.toml").write_text('[trust]\nverify_key = "site.key.pub"\n'
                                           '[turnstile.publish]\ncamera = "gate-1"\n')
    for flags, says in (
        (["--repo", "notaurl"], "--repo: 'notaurl' is not a URL the agent can poll"),  # a ValueError traceback
        (["--hawkbit", "ftp://x/"], "--hawkbit: 'ftp://x/' is not a URL the agent can poll; give http://"),
        (["--repo", "http://127.0.0.1:1/", "--state", "file/st"], "give --state a folder"),
    ):
        assert says in _refused(["agent", "--once", *flags], capsys), flags
    assert _left(scratch, "site.key", "site.key.pub", "maskgate.toml") == []


def test_the_turnstile_reads_its_key_before_opening_the_pipeline(scratch, capsys):
    video = cv2.VideoWriter(str(scratch / "v.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for _ in range(3):
        video.write(np.zeros((48, 64, 3), np.uint8))
    video.release()
    (scratch / "builds").mkdir()
    # was the error, then a '0 frames ... stopped by error' summary from a run that had started
    err = _refused(["turnstile", "v.mp4", "--builds", "builds", "--verify-key", "missing.pub"], capsys)
    assert "missing.pub: cannot read the key" in err


def test_a_wrong_device_variable_is_refused_as_any_command_starts(scratch, monkeypatch, capsys):
    """MASKGATE_DEVICE=tpu marked all 36 bundles FAILED in 'maskgate check' and overwrote its summary."""
    (scratch / "builds").mkdir()
    monkeypatch.setenv("MASKGATE_DEVICE", "tpu")
    err = _refused(["check", "builds"], capsys)
    assert "device preference 'tpu' (from MASKGATE_DEVICE) must list some of npu, gpu, cpu" in err
    monkeypatch.setenv("MASKGATE_DEVICE", "cpu")
    monkeypatch.setenv("MASKGATE_DEVICE_MASK", "cpu")  # a model name cut short
    assert "MASKGATE_DEVICE_MASK: no model is named so; per-model preferences are " in _refused(["check", "builds"],
                                                                                                 capsys)
    monkeypatch.delenv("MASKGATE_DEVICE_MASK")
    monkeypatch.setenv("MASKGATE_DEVICE_MASK_MOBILENETV2", "tpu")
    assert "(from MASKGATE_DEVICE_MASK_MOBILENETV2)" in _refused(["turnstile", "v.mp4", "--builds", "builds"], capsys)
    assert _left(scratch, "builds") == [] and list((scratch / "builds").iterdir()) == []


def test_a_flag_that_does_nothing_without_another_is_refused(scratch, capsys):
    """Each ran to the end as if it had been taken."""
    (scratch / "builds").mkdir()
    for argv, says in (
        (["check", "builds", "--data-limit", "5"], "--data-limit applies only with --data DIR"),
        (["check", "builds", "--split", "val"], "--split applies only with --data DIR"),
        (["build", "--data-limit", "5"], "--data-limit applies only with --data DIR"),
        (["turnstile", "v.mp4", "--builds", "builds", "--metrics-address", "0.0.0.0"],
         "--metrics-address applies only with --metrics-port PORT (or [turnstile] metrics_port)"),
        (["turnstile", "v.mp4", "--builds", "builds", "--metrics-insecure"], "--metrics-insecure applies only"),
    ):
        assert says in _refused(argv, capsys), argv
    assert _left(scratch, "builds") == []


def test_options_of_a_stage_that_does_not_run_are_refused(scratch, capsys):
    for argv, says in (
        (["train", "mask", "--out", "o", "--templates", "t"], "--templates applies only with --init synthetic"),
        (["train", "mask", "--out", "o", "--source-epochs", "3"], "--source-epochs applies only with --init synth"),
        (["build", "--precisions", "fp32,fp16", "--accuracy-aware"], "--accuracy-aware acts on int8 builds"),
        (["build", "--precisions", "fp16", "--diagnose"], "--diagnose acts on int8 builds: add int8"),
        (["build", "--formats", "tflite", "--accuracy-aware"], "re-quantizes the int8 builds of onnx, openvino, rknn"),
        (["rollout", "repo", "1", "--key", "k", "--reason", "bad mask"], "--reason says why a release is halted"),
    ):
        assert says in _refused(argv, capsys), argv
    assert _left(scratch) == []
