"""One typed configuration, read once per process from --config, MASKGATE_CONFIG or ./maskgate.toml:
every table and key checked, every part taking its section from it (issue 29, line 1)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskgate.config import MaskGateConfig, active_config, use_config
from maskgate.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
MASKGATE = str(Path(sys.executable).parent / "maskgate")


def _file(tmp_path: Path, text: str, name: str = "maskgate.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ('[trusts]\nverify_key = "k"\n', r"\[trusts\]: unknown table; the MaskGate config takes \[devices\], \[gates\]"),
    ('[trust]\nverify_kye = "k"\n', r"\[trust\] verify_kye: unknown key; \[trust\] takes verify_key, "
                                    "allow_failed_builds"),
    ('[trust]\nallow_failed_builds = "yes"\n', r"\[trust\] allow_failed_builds = 'yes': expected true or false"),
    ('[gate.int8]\nmin_top1 = 1.0\n', r"\[gate\]: unknown table"),
    ('[gates.int4]\nmin_top1 = 1.0\n', r"\[gates.int4\]: unknown precision"),
    ('[gates.int8]\nmin_top = 1.0\n', r"\[gates.int8\] min_top: unknown key; \[gates.int8\] takes min_cosine"),
    ('[gates.int8]\nmin_top1 = "high"\n', r"\[gates.int8\] min_top1 = 'high': expected a number"),
    ('[gates.fp16]\nmin_recall = 1.5\n', r"min_recall is a share between 0 and 1"),
    ('[devices]\ndefault = "tpu"\n', r"\[devices\] default = 'tpu': list some of npu"),
    ('[data]\npaht = "d"\n', r"\[data\] paht: unknown key"),
    ('[turnstyle]\nbuilds = "b"\n', r"\[turnstyle\]: unknown table"),
    ('[turnstile]\nverify_key = "k"\n', r"\[turnstile\] verify_key: unknown key \(it belongs in \[trust\]"),
    ('[turnstile]\nroi = [1, 2, 3]\n', r"\[turnstile\] roi = \[1, 2, 3\]: expected 4 values"),
    ('[turnstile]\nthreads = 0\n', r"\[turnstile\]: threads must be >= 1"),
    ('[turnstile.rules]\nwindow = "five"\n', r"\[turnstile.rules\] window = 'five': expected a whole number"),
    ('[turnstile.rules]\nmin_mask_prob = 0\n', r"\[turnstile.rules\]: min_mask_prob must be in \(0, 1\]"),
    ('[turnstile.rules]\nfrontal_yaw_classes = [1, 9]\n', r"frontal_yaw_classes are yaw classes 0-5"),
    ('[turnstile.stream]\nstal_s = 3\n', r"\[turnstile.stream\] stal_s: unknown key; \[turnstile.stream\] takes"),
    ('[turnstile.publish]\nqos = 1\n', r"\[turnstile.publish\] qos: unknown key"),
    ('[turnstile.publish.mqtt]\npassword_evn = "X"\n', r"\[turnstile.publish.mqtt\] password_evn: unknown key"),
    ('[turnstile.publish.webhook]\nsecret = "s"\n', r"\[turnstile.publish.webhook\] secret: unknown key"),
    ("[trust\n", r"cannot read the MaskGate config"),
])
def test_every_table_key_and_type_is_checked_and_named(tmp_path, text, expected):
    path = _file(tmp_path, text)
    with pytest.raises(InputError, match=expected) as raised:
        MaskGateConfig.read(path)
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)  # one line, naming the file


def test_a_full_file_gives_each_part_its_section(tmp_path):
    from maskgate.check.gates import configured_gates
    from maskgate.runtimes.devices import parse_preference
    from maskgate.runtimes.trust import configured_trust
    from maskgate.turnstile import load_config

    assert subprocess.run([MASKGATE, "keygen", "--hmac", str(tmp_path / "site.secret")]).returncode == 0
    path = _file(tmp_path, '[devices]\ndefault = "gpu,cpu"\nmask_mobilenetv2 = ["npu", "cpu"]\n'
                           '[gates.int8]\nmin_top1 = 0.95\n[trust]\nverify_key = "site.secret"\n'
                           f'[data]\npath = "{tmp_path}"\n'
                           '[turnstile]\nsource = "rtsp://127.0.0.1:8554/gate"\nbuilds = "b"\nmetrics_port = 0\n'
                           '[turnstile.rules]\nwindow = 3\n[turnstile.stream]\nstall_s = 1.5\n'
                           '[turnstile.publish]\ntargets = ["mqtt://127.0.0.1:1883"]\nsite = "hq"\n')
    use_config(path)
    assert parse_preference(None) == ("gpu", "cpu") and parse_preference(None, model="mask_mobilenetv2") == ("npu",
                                                                                                           "cpu")
    gates = configured_gates()
    assert gates.precisions["int8"].min_top1 == 0.95 and gates.precisions["int8"].min_cosine == 0.98
    assert gates.precisions["fp32"].min_top1 == 1.0
    assert configured_trust().key.path == str(tmp_path / "site.secret")  # relative to the config file
    config = load_config()
    assert config.source == "rtsp://127.0.0.1:8554/gate" and config.builds == Path("b") and config.rules.window == 3
    assert config.stream.stall_s == 1.5 and config.publish.site == "hq" and config.publish.targets[0].port == 1883
    assert load_config("clip.avi", rules={"window": 5}).rules.window == 5  # a flag wins over the file


def test_the_file_is_read_once_per_process(tmp_path, monkeypatch):
    path = _file(tmp_path, '[trust]\nallow_failed_builds = true\n')
    monkeypatch.setenv("MASKGATE_CONFIG", str(path))
    first = active_config()
    path.write_text("[trust\n")  # broken now: a second read would fail
    assert active_config() is first and first.trust.allow_failed_builds


def test_a_publish_value_that_cannot_be_used_keeps_events_but_a_key_typo_is_refused(tmp_path):
    config = MaskGateConfig.read(_file(tmp_path, '[turnstile.publish]\ntargets = ["ftp://x"]\nspool = "s"\n'))
    publish = config.turnstile.publish
    assert publish.targets == () and publish.spool == Path("s") and "expected mqtt://HOST:PORT" in publish.problem
    with pytest.raises(InputError, match="unknown key"):
        MaskGateConfig.read(_file(tmp_path, '[turnstile.publish]\ntarget = ["mqtt://x"]\n'))


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> tuple[int, str]:
    done = subprocess.run([MASKGATE, *args], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**{k: v for k, v in os.environ.items() if k != "MASKGATE_CONFIG"},
                               "PYTHONPATH": str(ROOT), **(env or {})})
    return done.returncode, done.stdout + done.stderr


def test_any_command_takes_config_before_or_after_it_and_refuses_a_typo_before_any_work(tmp_path):
    bad = _file(tmp_path, '[devices]\ndetectr = "cpu"\n', "bad.toml")
    for args in (["--config", str(bad), "models"], ["models", "--config", str(bad)]):
        code, text = _cli(*args)
        assert code == 2 and "bad.toml: [devices] detectr: not a model" in text, text
    code, text = _cli("backends", env={"MASKGATE_CONFIG": str(bad)})
    assert code == 2 and "detectr" in text and "Traceback" not in text, text
    good = _file(tmp_path, '[devices]\nretinaface_mnet025 = "cpu"\n', "good.toml")
    assert _cli("models", "--config", str(good))[0] == 0
    _file(tmp_path, '[trust]\nverify_kye = "k"\n')  # ./maskgate.toml in the working folder
    code, text = _cli("models", cwd=tmp_path)
    assert code == 2 and "maskgate.toml: [trust] verify_kye: unknown key" in text, text


@pytest.fixture(scope="module")
def unsigned_clip(gate_builds, tmp_path_factory):
    """The gate builds (not signed) and a 30-frame clip of a shipped example picture."""
    import cv2

    work = tmp_path_factory.mktemp("trust-config")
    frame = cv2.resize(cv2.imread(str(ROOT / "examples" / "images" / "scene_5.jpg")), (640, 480))
    writer = cv2.VideoWriter(str(work / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for _ in range(30):
        writer.write(frame)
    writer.release()
    shutil.copytree(gate_builds, work / "builds", ignore=shutil.ignore_patterns("last-check.json"))
    assert _cli("keygen", str(work / "site.key"))[0] == 0
    return work


def test_trust_in_a_config_file_holds_whichever_way_the_file_is_named(unsigned_clip):
    work = unsigned_clip
    config = _file(work, f'[trust]\nverify_key = "site.key.pub"\n[turnstile]\nbuilds = "{work / "builds"}"\n',
                   "t.toml")
    clip = str(work / "clip.avi")
    outcomes = {}
    for how, args, env in (("--config", ["turnstile", clip, "--config", str(config)], None),
                           ("--config first", ["--config", str(config), "turnstile", clip], None),
                           ("MASKGATE_CONFIG", ["turnstile", clip], {"MASKGATE_CONFIG": str(config)})):
        code, text = _cli(*args, env=env)
        assert "not signed, and this site requires bundles signed with key" in text, (how, text[-3000:])
        assert '"action": "open"' not in text, (how, text[-3000:])
        outcomes[how] = code
    assert len(set(outcomes.values())) == 1 and outcomes["--config"] != 0, outcomes
    # The same file over signed bundles: the gate runs.
    for bundle in (work / "builds").iterdir():
        if (bundle / "manifest.json").is_file():
            assert _cli("sign", str(bundle), "--key", str(work / "site.key"))[0] == 0
    code, text = _cli("turnstile", clip, "--config", str(config), "--max-frames", "10")
    assert code == 0 and "turnstile: 10 frames" in text, text[-3000:]
