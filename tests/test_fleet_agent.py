"""The camera's release agent against a real release server (nginx on 127.0.0.1), each camera an
agent process of its own with its own folders (issue 30, lines 2, 3 and 6): it takes the
release meant for it, moves only what changed, refuses what does not verify in one line and
activates nothing, survives kill -9, and keeps its set while the server is down."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.strict_skips import missing

pytestmark = pytest.mark.fleet

pytest.importorskip("tuf")
sys.path.insert(0, str(ROOT / "examples" / "fleet"))


# -- the workstation's side ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    from maskgate.converters.signing import generate_key

    folder = tmp_path_factory.mktemp("keys")
    generate_key(folder / "site.key")
    generate_key(folder / "other.key")
    return folder


@pytest.fixture(scope="module")
def release_sets(quantized_builds, keys, tmp_path_factory):
    """Real releases of the three models, each bundle signed once by the site key (as a site
    keeps its signed builds): "int8" (the TFLite int8 bundles) and "pose-fp32" (the same with
    the pose model's fp32 bundle: an update that changes one model)."""
    from maskgate.converters.bundle import sign_bundle
    from maskgate.converters.signing import load_key

    out = tmp_path_factory.mktemp("release-sets")
    key = load_key(keys / "site.key", signing=True)
    sets = {"int8": ("retinaface_mnet025-tflite-int8", "mask_mobilenetv2-tflite-int8",
                     "pose_mobilenetv2_skip-tflite-int8"),
            "pose-fp32": ("retinaface_mnet025-tflite-int8", "mask_mobilenetv2-tflite-int8",
                          "pose_mobilenetv2_skip-tflite-fp32")}
    for name in dict.fromkeys(n for names in sets.values() for n in names):
        shutil.copytree(quantized_builds / name, out / "signed" / name)
        sign_bundle(out / "signed" / name, key)
    for set_name, names in sets.items():
        for name in names:
            shutil.copytree(out / "signed" / name, out / set_name / name)
    return out


def nginx_or_skip(root, folder, **kw):
    from nginx import Nginx, NginxMissing

    try:
        return Nginx(root, folder, **kw).start()
    except NginxMissing as exc:
        missing("nginx", str(exc))


class Site:
    """A release repository on disk, served by nginx, written as 'maskgate release' does."""

    def __init__(self, root: Path, sets: Path, keys: Path):
        self.root, self.sets, self.keys = root, sets, keys
        self.repo = root / "repo"
        self.server = nginx_or_skip(self.repo if self.repo.exists() else self._create(), root / "nginx")

    def _create(self) -> Path:
        self.repo.mkdir(parents=True)
        return self.repo

    def repository(self, **kw):
        from maskgate.converters.signing import load_key
        from maskgate.fleet.repository import ReleaseRepository

        return ReleaseRepository(self.repo, load_key(self.keys / "site.key", signing=True), **kw)

    def release(self, version: str, set_name: str, *, percent: float = 100, channel: str = "stable"):
        from maskgate.converters.signing import load_key
        from maskgate.fleet.release import describe

        builds = self.root / "builds" / version
        if not builds.exists():
            shutil.copytree(self.sets / set_name, builds)
        release, sources = describe(builds, version=version, channel=channel,
                                    key=load_key(self.keys / "site.key", signing=True))
        return release, self.repository().add(release, sources, percent=percent)

    def stop(self):
        self.server.stop()


@pytest.fixture
def site(tmp_path, release_sets, keys):
    site = Site(tmp_path / "site", release_sets, keys)
    yield site
    site.stop()


# -- the camera's side -----------------------------------------------------------------------------
class Camera:
    def __init__(self, folder: Path, *, name: str, repo_url: str, key: Path, extra: str = "", poll_s: float = 0.5,
                 broker: str | None = None, source: str = "repo"):
        """``extra``: more of the config file (after [agent]); ``broker``: the site's MQTT broker;
        ``source``: repo (a release repository) or hawkbit (a deployment server)."""
        self.folder, self.name = folder, name
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "maskgate.toml"
        targets = f'targets = ["{broker}"]\n' if broker else ""
        self.config.write_text(
            f'[trust]\nverify_key = "{key}"\n\n[turnstile.publish]\ncamera = "{name}"\nsite = "lobby"\n{targets}\n'
            f'[agent]\n{source} = "{repo_url}"\nstate = "state"\ncheck_runs = 1\npoll_s = {poll_s}\n{extra}\n')
        self.state = folder / "state"

    def agent(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.command("--once", *args), cwd=self.folder, capture_output=True, text=True,
                              timeout=timeout, env=self.env())

    def start_app(self, url: str) -> subprocess.Popen:
        """The app on the set the pointer names, as the camera's supervisor (systemd) starts it."""
        return subprocess.Popen([sys.executable, "-m", "maskgate", "--config", str(self.config), "turnstile", url,
                                 "--builds", str(self.state / "current"), "--events", str(self.folder / "events.jsonl"),
                                 "--health-every", "0.5"], cwd=self.folder, env=self.env(), stdout=subprocess.DEVNULL,
                                stderr=open(self.folder / "app.log", "a"))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "maskgate", "--config", str(self.config), "agent", *args]

    @staticmethod
    def env() -> dict:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def current(self) -> str | None:
        """The release the pointer's slot holds (what the app runs)."""
        link = self.state / "current"
        if not link.is_symlink():
            return None
        marker = link.resolve() / "slot.json"
        return json.loads(marker.read_text())["release"] if marker.is_file() else None

    def record(self) -> dict:
        return json.loads((self.state / "agent.json").read_text())

    def status(self) -> dict:
        return json.loads((self.state / "status.json").read_text())


def said(done: subprocess.CompletedProcess) -> list[str]:
    """The lines the agent said, less its start line."""
    return [line for line in done.stderr.splitlines() if line.startswith("maskgate agent:") and " on http" not in line]


def take(camera: Camera, version: str) -> None:
    """Polls until ``version`` is active and kept (no heartbeat: kept at the next poll)."""
    for _ in range(3):
        done = camera.agent()
        assert done.returncode == 0, done.stderr
        if camera.current() == version and camera.record()["probation"] is None:
            return
    raise AssertionError(f"{camera.name} runs {camera.current()}, not {version}: {camera.record()}")


def test_a_camera_takes_its_release_and_an_update_that_changes_one_model_moves_that_model_only(site, keys):
    release, stored = site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub")
    take(camera, "1")
    active = camera.state / "current"
    assert sorted(p.name for p in active.resolve().iterdir() if p.is_dir()) == sorted(b.name for b in release.bundles)
    status = camera.status()
    assert status["release"] == "1" and status["last_check"]["passed"] and status["error"] is None
    first = status["last_check"]["downloaded_bytes"]
    assert first == sum(f.length for b in release.bundles for f in b.files.values())

    update, _ = site.release("2", "pose-fp32")
    changed = {b.name for b in update.bundles} - {b.name for b in release.bundles}
    changed_bytes = sum(f.length for b in update.bundles if b.name in changed for f in b.files.values())
    before = site.server.bytes_sent()
    take(camera, "2")
    moved = site.server.bytes_sent() - before
    check = camera.status()["last_check"]
    assert len(changed) == 1 and next(iter(changed)).startswith("pose_")
    assert check["downloaded_bytes"] == changed_bytes  # the pose bundle's files; the others copied from slot a
    assert check["reused_bytes"] == sum(f.length for b in update.bundles if b.name not in changed
                                        for f in b.files.values())
    # what crossed the wire: the changed model's bytes and the new metadata (a few kB)
    assert changed_bytes <= moved < changed_bytes + 64_000, (moved, changed_bytes)
    print(f"update of one model: {changed_bytes} bytes of its files, {moved} bytes sent by the server")
    assert camera.current() == "2" and camera.record()["previous"]["release"] == "1"
    again = camera.agent()
    assert again.returncode == 0 and "up to date (2)" in again.stderr


def refused(camera: Camera, *, runs: str) -> str:
    """One poll that must refuse: exit 1, the set that ran still runs, nothing marked bad; the line."""
    done = camera.agent()
    lines = [line for line in said(done) if "fetching" not in line]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert camera.current() == runs and camera.record()["bad"] == {}
    return lines[0]


def test_what_does_not_verify_is_refused_in_one_line_and_nothing_is_activated(site, keys):
    release, _ = site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub")
    take(camera, "1")
    metadata = site.repo / "metadata"

    # a replayed older metadata file: the camera has seen newer versions and refuses to go back
    old = site.root / "metadata-old"
    shutil.copytree(metadata, old)
    site.repository().refresh()
    assert camera.agent().returncode == 0
    newer = site.root / "metadata-new"
    shutil.copytree(metadata, newer)
    shutil.rmtree(metadata)
    shutil.copytree(old, metadata)
    line = refused(camera, runs="1")
    assert "older" in line or "version" in line, line
    shutil.rmtree(metadata)
    shutil.copytree(newer, metadata)

    # a frozen timestamp: signed by the site key, but its expiry has passed
    site.repository(expiry_days={"timestamp": -1}).refresh()
    line = refused(camera, runs="1")
    assert "expired" in line, line
    site.repository().refresh()

    # a tampered and a truncated file of the next release (same length, other bytes; a cut copy)
    update, _ = site.release("2", "pose-fp32")
    pose = next(b for b in update.bundles if b.name.startswith("pose_"))
    name, file = max(pose.files.items(), key=lambda item: item[1].length)
    stored = site.repository().stored_path(file.path, file.sha256)
    good = stored.read_bytes()
    stored.write_bytes(bytes(b ^ 0xFF for b in good[:64]) + good[64:])
    line = refused(camera, runs="1")
    assert file.path in line and "does not match its signed length or sha256" in line, line
    stored.write_bytes(good[: len(good) // 2])
    line = refused(camera, runs="1")
    assert file.path in line and "does not match" in line, line
    stored.write_bytes(good)

    # a camera that trusts another key refuses the repository at its root
    stranger = Camera(site.root / "cam-02", name="cam-02", repo_url=site.server.url, key=keys / "other.key.pub")
    done = stranger.agent()
    assert done.returncode == 1 and len(said(done)) == 1, done.stderr
    assert "key" in said(done)[0] and stranger.current() is None, done.stderr
    # with every file as the site wrote it, the same camera takes the release
    take(camera, "2")


def test_a_set_that_fails_its_gates_on_this_camera_is_refused_for_good_and_never_activated(site, keys):
    site.release("1", "int8")
    # the site's cameras hold int8 builds to a stricter cosine than the workstation's build did
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub",
                    extra="\n[gates.int8]\nmin_cosine = 0.99999\n")
    done = camera.agent()
    lines = [line for line in said(done) if "fetching" not in line]
    assert done.returncode == 0 and len(lines) == 1, done.stderr
    assert "release 1 refused: failed its check on this camera" in lines[0] and "cosine" in lines[0], lines[0]
    assert camera.current() is None and "1" in camera.record()["bad"]
    assert camera.status()["last_check"]["passed"] is False
    again = camera.agent()  # never fetched or checked again
    assert again.returncode == 0 and "fetching" not in again.stderr and "up to date (no release)" in again.stderr


def test_with_the_server_down_the_camera_keeps_its_set_and_retries_with_backoff(site, keys):
    from maskgate.config import MaskGateConfig
    from maskgate.converters.signing import load_key
    from maskgate.fleet.agent import Agent, Identity

    site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub")
    take(camera, "1")
    site.server.stop()
    line = refused(camera, runs="1")
    assert site.server.url in line and "cannot fetch" in line, line
    config = MaskGateConfig.read(camera.config)
    agent = Agent(config.agent, repo=site.server.url, identity=Identity("cam-01", "lobby", "stable", (), None),
                  verify_key_path=keys / "site.key.pub", verify_key=load_key(keys / "site.key.pub"),
                  heartbeat=None, say=lambda line: None)
    waits = []
    for _ in range(4):
        agent.step()
        waits.append(agent.wait_s())
    assert [round(w / b, 1) for w, b in zip(waits, (5, 10, 20, 40))] == [pytest.approx(1, abs=0.2)] * 4, waits
    assert camera.current() == "1" and agent.state["last_error"]
    site.server.start()
    assert agent.step() == "up to date (1)" and agent.failures == 0 and agent.wait_s() == config.agent.poll_s


def test_kill_9_during_the_download_leaves_the_old_set_running_and_the_next_start_finishes(site, keys):
    from nginx import Nginx

    site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub")
    take(camera, "1")
    site.release("2", "pose-fp32")
    slow = Nginx(site.repo, site.root / "slow-nginx", limit_rate="400k").start()  # an 11.7 MB model: ~30 s
    try:
        agent = subprocess.Popen(camera.command("--repo", slow.url), cwd=camera.folder, env=camera.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        spare = camera.state / "slots" / "b"
        deadline = time.monotonic() + 60
        # the pose bundle's folder is made when its first file starts (python-tuf downloads into a
        # temporary file of its own and writes the target only once it is verified)
        while not any(spare.glob("pose_*")):
            assert time.monotonic() < deadline and agent.poll() is None, "the download never started"
            time.sleep(0.05)
        time.sleep(3)
        assert agent.poll() is None and not (spare / "slot.json").exists(), "the download ended too soon"
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    finally:
        slow.stop()
    assert camera.current() == "1" and camera.record()["active"]["release"] == "1"
    assert not (spare / "slot.json").exists()  # the half-filled slot is not a set
    take(camera, "2")  # the next start fills the spare slot again and goes on
    assert camera.record()["previous"]["release"] == "1"


def test_a_kill_between_the_switch_and_its_record_is_read_back_from_the_pointer(site, keys):
    site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub")
    take(camera, "1")
    before_switch = (camera.state / "agent.json").read_bytes()
    site.release("2", "pose-fp32")
    done = camera.agent()
    assert done.returncode == 0 and camera.current() == "2", done.stderr
    # what a kill -9 after the pointer moved, before agent.json was written, leaves on disk
    (camera.state / "agent.json").write_bytes(before_switch)
    assert camera.record()["active"]["release"] == "1"
    done = camera.agent()
    assert done.returncode == 0, done.stderr
    record = camera.record()
    assert record["active"]["release"] == "2" and record["previous"]["release"] == "1"
    assert record["probation"] is None and "release 2 kept" in done.stderr  # on probation, then kept


@pytest.fixture(scope="module")
def long_video(gate_video, tmp_path_factory):
    """The 12-person turnstile video four times over (86 s at 10 fps): a camera that runs while
    releases come and go."""
    import cv2

    from maskgate.sources import iter_frames

    video, _ = gate_video
    frames = [frame.image for frame in iter_frames(str(video))]
    out = tmp_path_factory.mktemp("long-video") / "gate-x4.avi"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, frames[0].shape[1::-1])
    for frame in frames * 4:
        writer.write(frame)
    writer.release()
    return out


def _wait_for(predicate, what: str, timeout_s: float, *processes):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for process in processes:
            assert process.poll() is None, f"{what}: {process.args[3:6]} exited {process.returncode}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.1)


def test_the_running_app_takes_each_release_between_two_frames_and_a_crash_loop_is_rolled_back(
        site, keys, long_video):
    from maskgate.turnstile.heartbeat import read_heartbeat
    from tests.streams import paced_http_stream

    site.release("1", "int8")
    camera = Camera(site.root / "cam-01", name="cam-01", repo_url=site.server.url, key=keys / "site.key.pub",
                    extra='heartbeat = "hb.json"\n\n[agent.probation]\nminutes = 0.1\nheartbeat_timeout_s = 10\n'
                          'pickup_s = 10\nmax_restarts = 1\n\n[turnstile]\nheartbeat = "hb.json"\n')
    events = camera.folder / "events.jsonl"
    beat = lambda: read_heartbeat(camera.folder / "hb.json") or {}  # noqa: E731
    status = lambda: camera.status() if (camera.state / "status.json").is_file() else {}  # noqa: E731
    with paced_http_stream(long_video, fps=10, hold_at_end=True) as (url, _):
        def app():  # the camera's supervisor starts the app on the set the pointer names (systemd, in the field)
            return camera.start_app(url)

        agent = subprocess.Popen(camera.command(), cwd=camera.folder, env=camera.env(), stdout=subprocess.DEVNULL,
                                 stderr=open(camera.folder / "agent.log", "w"))
        running = None
        try:
            _wait_for(lambda: camera.current() == "1", "release 1 in the pointer", 120, agent)
            running = app()
            _wait_for(lambda: status().get("release") == "1" and not status().get("probation"), "release 1 kept",
                      120, agent, running)
            # release 2 changes the pose model: the app swaps it in between two frames
            site.release("2", "pose-fp32")
            _wait_for(lambda: beat().get("release") == "2", "the app runs release 2", 120, agent, running)
            switched = camera.record()["probation"]["baseline"]
            _wait_for(lambda: status().get("release") == "2" and not status().get("probation"), "release 2 kept",
                      120, agent, running)
            after = beat()
            assert after["pid"] == running.pid and after["dropped"] == switched["dropped"], (switched, after)
            assert after["frames"] > switched["frames"] and after["errors"] == 0
            models = [json.loads(line) for line in events.read_text().splitlines() if '"event": "models"' in line]
            assert [m["release"] for m in models] == ["2"], models
            # release 3 crash-loops the app (killed -9 after each start, restarted as systemd would)
            site.release("3", "int8")
            _wait_for(lambda: camera.current() == "3", "release 3 in the pointer", 120, agent, running)
            for _ in range(3):
                _wait_for(lambda pid=running.pid: beat().get("pid") == pid, "the app's heartbeat", 60, agent)
                running.send_signal(signal.SIGKILL)
                running.wait()
                running = app()
                if camera.current() != "3":
                    break
            _wait_for(lambda: status().get("rollback") is not None, "the rollback", 60, agent)
            record = camera.record()
            assert camera.current() == "2" and record["active"]["release"] == "2"
            assert "3" in record["bad"] and "crash loop" in record["rollback"]["reason"], record
            _wait_for(lambda: beat().get("pid") == running.pid and beat().get("release") == "2",
                      "the app back on release 2", 60, agent, running)
            time.sleep(2)  # a few more polls: release 3 is not taken again
            assert camera.current() == "2" and agent.poll() is None
        finally:
            for process in (agent, running):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(30)
