"""The agent on an existing fleet server (issue 30, line 7): a real goosebit (an Eclipse
hawkBit-compatible server from PyPI, in its own environment: examples/fleet/goosebit.py) on
127.0.0.1, cameras as 'maskgate agent --hawkbit' processes. The server decides who takes a
release (its feeds, its rollouts); the camera verifies it with the site key, checks it,
reports success only after probation, and failure with its reason."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import test_fleet_agent as agent_tests
from tests.conftest import ROOT
from tests.strict_skips import missing
from tests.test_fleet_agent import Camera, _wait_for, said

pytestmark = pytest.mark.fleet

keys, release_sets, long_video = agent_tests.keys, agent_tests.release_sets, agent_tests.long_video  # fixtures

pytest.importorskip("tuf")
sys.path.insert(0, str(ROOT / "examples" / "fleet"))


def goosebit_or_skip(folder: Path, **kw):
    from goosebit import Goosebit, GoosebitMissing

    try:
        return Goosebit(folder, **kw).start()
    except GoosebitMissing as exc:
        missing("goosebit's environment", str(exc))


@pytest.fixture
def server(tmp_path):
    server = goosebit_or_skip(tmp_path / "goosebit")
    yield server
    server.stop()


def image(root: Path, sets: Path, keys: Path, version: str, set_name: str, *, key: str = "site.key") -> Path:
    """'maskgate release BUILDS --swu': release ``version`` in the repository of ``key`` and its image."""
    builds = root / "builds" / version
    if not builds.exists():
        import shutil

        shutil.copytree(sets / set_name, builds)
    out = root / f"release-{version}.swu"
    done = subprocess.run([sys.executable, "-m", "maskgate", "release", str(builds), "--version", version,
                           "--out", str(root / f"repo-{key}"), "--key", str(keys / key), "--percent", "0",
                           "--swu", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{out}: SWUpdate image of release {version}" in done.stdout
    return out


def hawkbit_camera(root: Path, name: str, server, keys: Path, extra: str = "") -> Camera:
    return Camera(root / name, name=name, repo_url=server.url, key=keys / "site.key.pub", source="hawkbit",
                  extra=extra)


# -- the image ---------------------------------------------------------------------------------------
def test_a_release_image_holds_a_mirror_the_camera_verifies_and_a_damaged_one_is_refused(tmp_path, release_sets,
                                                                                           keys):
    from maskgate.converters.signing import load_key
    from maskgate.errors import ReleaseError
    from maskgate.fleet.client import RepositoryClient
    from maskgate.fleet.swu import DESCRIPTION, _header, _pad, description, entries, unpack_swu

    swu = image(tmp_path, release_sets, keys, "2026.12.1", "int8")
    names = [name for name, _ in entries(swu)]
    assert names[0] == DESCRIPTION and "metadata/1.root.json" in names and "metadata/timestamp.json" in names

    version, mirror = unpack_swu(swu, tmp_path / "mirror")
    client = RepositoryClient(mirror.resolve().as_uri(), tmp_path / "trusted",
                              verify_key=load_key(keys / "site.key.pub"))
    client.refresh()
    release = client.release(version)
    assert version == "2026.12.1" and sorted(release.models) == ["mask_mobilenetv2", "pose_mobilenetv2_skip",
                                                                  "retinaface_mnet025"]
    # every file of the three bundles, once, and no file of another release
    assert sum(n.startswith("targets/bundles/") for n in names) == sum(len(b.files) for b in release.bundles)
    model = next(f for b in release.bundles for f in b.files.values() if f.path.endswith("model.tflite"))
    assert client.fetch(model.path, tmp_path / "model.tflite") == model.length

    data = bytearray(swu.read_bytes())
    cut = tmp_path / "cut.swu"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseError, match="cut short"):
        list(entries(cut))
    data[len(data) // 2] ^= 0xFF  # a byte inside a bundle file
    flipped = tmp_path / "flipped.swu"
    flipped.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="does not match its checksum"):
        unpack_swu(flipped, tmp_path / "flipped")
    payload, head = b"owned", description("2026.12.9").encode()
    escape = tmp_path / "escape.swu"
    escape.write_bytes(_header(DESCRIPTION, len(head), sum(head), 1) + head + _pad(len(head))
                       + _header("../../outside", len(payload), sum(payload), 2) + payload + _pad(len(payload))
                       + _header("TRAILER!!!", 0, 0, 0))
    with pytest.raises(ReleaseError, match="outside metadata/ and targets/"):
        unpack_swu(escape, tmp_path / "escape" / "mirror")
    assert not (tmp_path / "outside").exists()


# -- a real deployment server ------------------------------------------------------------------------------
def _take(camera: Camera, *, polls: int = 4) -> list[str]:
    lines = []
    for _ in range(polls):
        done = camera.agent()
        lines += said(done)
        if camera.current() and camera.record()["probation"] is None and done.returncode == 0 \
                and any("kept" in line for line in lines):
            return lines
    raise AssertionError(f"{camera.name} did not keep a release: {lines}")


def _refused(camera: Camera, *, polls: int = 3) -> str:
    """Polls until the camera refuses what the server offers: the refusal's line (one), and the
    set that ran runs on."""
    before = camera.current()
    for _ in range(polls):
        done = camera.agent()
        lines = [line for line in said(done) if "refused" in line]
        if lines:
            assert len(lines) == 1, done.stderr
            assert camera.current() == before and camera.record()["probation"] is None
            print(f"{camera.name}: {lines[0]}")
            return lines[0]
    raise AssertionError(f"{camera.name} refused nothing: {done.stderr}")


def test_the_server_decides_who_takes_a_release_and_the_camera_refuses_what_does_not_verify(
        tmp_path, server, release_sets, keys):
    from maskgate.fleet.swu import entries

    good = image(tmp_path, release_sets, keys, "2026.12.1", "int8")
    update = image(tmp_path, release_sets, keys, "2026.12.2", "pose-fp32")
    foreign = image(tmp_path, release_sets, keys, "2026.12.4", "int8", key="other.key")
    lobby = hawkbit_camera(tmp_path, "cam-lobby", server, keys)
    gate = hawkbit_camera(tmp_path, "cam-gate", server, keys)
    for camera in (lobby, gate):  # first contact registers the camera on the server
        assert camera.agent().returncode == 0
    server.set_devices(["cam-lobby"], feed="lobby")

    # another site's release: refused at its first root, reported as a failure, nothing activated
    server.rollout("foreign", server.upload(foreign), feed="default")
    line = _refused(gate)
    assert "not signed by the site key this camera trusts" in line and gate.current() is None
    assert server.device("cam-gate")["last_state"] == "Error" and "not signed by the site key" in server.log("cam-gate")
    assert "up to date (no release)" in lobby.agent().stderr  # the lobby feed has no rollout

    # the site's release: taken, and reported as a success with the release's version
    server.set_devices(["cam-gate"], force_update=True)
    server.rollout("first", server.upload(good), feed="default")
    _take(gate)
    assert gate.current() == "2026.12.1"
    device = server.device("cam-gate")
    assert device["last_state"] == "Finished" and device["sw_version"] == "2026.12.1"
    log = server.log("cam-gate")
    assert log.index("downloading") < log.index("verifying") < log.index("checking") < log.index("kept")
    assert lobby.current() is None  # still: the server's feeds are the groups

    # the artifact changed on the server's disk: the sha1 it announces does not match
    software = server.upload(update)
    stored = next((server.folder / "artifacts").rglob(update.name))
    original = stored.read_bytes()
    stored.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1064]) + original[1064:])
    server.rollout("update", software, feed="default")
    line = _refused(gate)
    assert "sha1" in line and "corrupt or tampered" in line and gate.current() == "2026.12.1"
    stored.write_bytes(original)  # the operator re-uploads it; the camera is let try again
    server.set_devices(["cam-gate"], force_update=True)
    _take(gate)
    assert gate.current() == "2026.12.2" and server.device("cam-gate")["sw_version"] == "2026.12.2"

    # a server that recomputes its hashes over a doctored image: the site key's sha256 refuses it
    doctored = tmp_path / "doctored.swu"
    image(tmp_path, release_sets, keys, "2026.12.3", "int8")
    _doctor(tmp_path / "release-2026.12.3.swu", doctored, entries)
    server.rollout("doctored", server.upload(doctored), feed="default")
    line = _refused(gate)
    assert "does not match its signed length or sha256" in line and gate.current() == "2026.12.2"

    # an older image offered again (a replay): the camera has seen newer metadata
    server.set_devices(["cam-gate"], force_update=True)
    first = next(r["software"]["id"] for r in server.rollouts() if r["name"] == "first")
    server.rollout("replay", first, feed="default")
    line = _refused(gate)
    assert "older version than this camera has seen" in line and gate.current() == "2026.12.2"

    # the lobby's own rollout reaches the lobby
    server.rollout("lobby", next(r["software"]["id"] for r in server.rollouts() if r["name"] == "update"), feed="lobby")
    _take(lobby)
    assert lobby.current() == "2026.12.2" and server.device("cam-lobby")["sw_version"] == "2026.12.2"

    # the server down: the camera keeps its set and says so in one line
    server.stop()
    done = gate.agent()
    assert done.returncode == 1 and gate.current() == "2026.12.2"
    assert len(said(done)) == 1 and "cannot reach the deployment server" in said(done)[0]


def _doctor(source: Path, out: Path, entries) -> None:
    """A copy of an image with 64 bytes of its pose int8 model flipped (a file the running set,
    pose fp32, does not hold: it must come from the image) and every cpio checksum right again:
    what a compromised server could make; only the site key's hashes catch it."""
    from maskgate.fleet.swu import TRAILER, _header, _pad

    with open(out, "wb") as sink:
        for ino, (name, data) in enumerate(entries(source), start=1):
            if name.endswith("model.tflite") and "pose_mobilenetv2_skip-tflite-int8" in name:
                data = data[:500] + bytes(b ^ 0xFF for b in data[500:564]) + data[564:]
            sink.write(_header(name, len(data), sum(data) & 0xFFFFFFFF, ino) + data + _pad(len(data)))
        sink.write(_header(TRAILER, 0, 0, 0))


def test_a_server_that_asks_for_target_tokens_gets_the_cameras_token_and_refuses_a_camera_without_one(
        tmp_path, keys):
    server = goosebit_or_skip(tmp_path / "goosebit", device_tokens=True)
    try:
        server.add_devices(["cam-t"], auth_token="s3cret-token")
        camera = hawkbit_camera(tmp_path, "cam-t", server, keys, extra='hawkbit_token_env = "CAM_T_TOKEN"\n')
        done = camera.agent()  # the variable is not set: said in one line, before any request
        assert done.returncode != 0 and "CAM_T_TOKEN is not set" in done.stderr, done.stderr
        camera.env = lambda: {**Camera.env(), "CAM_T_TOKEN": "wrong"}
        done = camera.agent()
        assert done.returncode == 1 and len(said(done)) == 1, done.stderr
        assert "HTTP 401" in said(done)[0] and "hawkbit_token_env" in said(done)[0], done.stderr
        camera.env = lambda: {**Camera.env(), "CAM_T_TOKEN": "s3cret-token"}
        done = camera.agent()
        assert done.returncode == 0 and "up to date (no release)" in done.stderr, done.stderr
        assert server.device("cam-t")["last_state"] == "Registered"
    finally:
        server.stop()


def test_backoff_while_the_deployment_server_is_down(tmp_path, keys):
    from nginx import free_port

    from maskgate.config.agent import AgentSettings
    from maskgate.converters.signing import load_key
    from maskgate.fleet.agent import Identity
    from maskgate.fleet.ddi import DdiClient
    from maskgate.fleet.ddi_agent import DdiAgent

    agent = DdiAgent(AgentSettings(state=tmp_path / "state", poll_s=1),
                     ddi=DdiClient(f"http://127.0.0.1:{free_port()}", "cam-x", timeout_s=2),
                     identity=Identity("cam-x", "lobby", "stable", (), None), verify_key_path=None,
                     verify_key=load_key(keys / "site.key.pub"), heartbeat=None, say=lambda line: None)
    waits = []
    for _ in range(4):
        assert "cannot reach the deployment server" in agent.step()
        waits.append(agent.wait_s())
    for wait, base in zip(waits, (5, 10, 20, 40)):
        assert 0.8 * base <= wait <= 1.2 * base, waits


def test_success_is_reported_only_after_probation_and_a_crash_loop_is_reported_as_a_failure(
        tmp_path, server, release_sets, keys, long_video):
    from maskgate.turnstile.heartbeat import read_heartbeat
    from tests.streams import paced_http_stream

    camera = hawkbit_camera(tmp_path, "cam-01", server, keys,
                            extra='heartbeat = "hb.json"\n\n[agent.probation]\nminutes = 0.15\n'
                                  'heartbeat_timeout_s = 10\npickup_s = 10\nmax_restarts = 1\n\n'
                                  '[turnstile]\nheartbeat = "hb.json"\n')
    beat = lambda: read_heartbeat(camera.folder / "hb.json") or {}  # noqa: E731
    status = lambda: camera.status() if (camera.state / "status.json").is_file() else {}  # noqa: E731
    server.rollout("first", server.upload(image(tmp_path, release_sets, keys, "2026.12.1", "int8")))
    with paced_http_stream(long_video, fps=10, hold_at_end=True) as (url, _):
        def app():
            return camera.start_app(url)

        agent = subprocess.Popen(camera.command(), cwd=camera.folder, env=camera.env(), stdout=subprocess.DEVNULL,
                                 stderr=open(camera.folder / "agent.log", "w"))
        running = None
        seen_on_probation = []
        try:
            _wait_for(lambda: camera.current() == "2026.12.1", "release 1 in the pointer", 180, agent)
            running = app()
            while status().get("release") != "2026.12.1" or status().get("probation"):
                device = server.device("cam-01")  # what the site's operator sees meanwhile
                seen_on_probation.append((device["last_state"], device["sw_version"]))
                assert agent.poll() is None, (camera.folder / "agent.log").read_text()
                time.sleep(0.5)
            # on probation the server heard 'proceeding' only: never success before the window ended
            assert seen_on_probation and all(state == "Running" and version != "2026.12.1"
                                             for state, version in seen_on_probation), seen_on_probation
            _wait_for(lambda: server.device("cam-01")["last_state"] == "Finished", "success on the server", 30, agent)
            assert server.device("cam-01")["sw_version"] == "2026.12.1" and "kept after probation" in \
                server.log("cam-01")
            assert beat().get("release") == "2026.12.1" and beat().get("pid") == running.pid

            # release 2 crash-loops the app (killed -9 after each start, restarted as systemd would)
            server.rollout("second", server.upload(image(tmp_path, release_sets, keys, "2026.12.2", "pose-fp32")))
            _wait_for(lambda: camera.current() == "2026.12.2", "release 2 in the pointer", 180, agent, running)
            assert server.device("cam-01")["last_state"] == "Running"
            for _ in range(3):
                _wait_for(lambda pid=running.pid: beat().get("pid") == pid, "the app's heartbeat", 60, agent)
                running.send_signal(signal.SIGKILL)
                running.wait()
                running = app()
                if camera.current() != "2026.12.2":
                    break
            _wait_for(lambda: server.device("cam-01")["last_state"] == "Error", "failure on the server", 60, agent)
            assert camera.current() == "2026.12.1" and server.device("cam-01")["sw_version"] == "2026.12.1"
            assert "crash loop" in server.log("cam-01") and "rolled back to 2026.12.1" in server.log("cam-01")
            rollout = next(r for r in server.rollouts() if r["name"] == "second")
            assert (rollout["success_count"], rollout["failure_count"]) == (0, 1)
            record = json.loads((camera.state / "agent.json").read_text())
            assert "2026.12.2" in record["bad"] and record["ddi"]["pending"] == []
        finally:
            for process in (agent, running):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(30)
