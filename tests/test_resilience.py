"""The SDK under faults and load: a backend that fails mid-stream (injected through the
plugin mechanism), one pipeline shared by threads, a long run's memory and file
descriptors, and a build killed halfway."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest

from tests.conftest import ROOT

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


@pytest.fixture(scope="module")
def builds(make_builds):
    return make_builds("resilience-builds", models=("retinaface_mnet025", "mask_mobilenetv2"),
                       formats=("onnx", "openvino"), precisions=("fp32",))


@pytest.fixture(scope="module")
def frames():
    pictures = [cv2.imread(str(p)) for p in sorted(EXAMPLES.glob("*.jpg"))]
    # Eight different frames: the pictures and their mirror images.
    return [cv2.resize(p, (640, 480)) for p in pictures] + [cv2.resize(p[:, ::-1], (640, 480)) for p in pictures]


def _summary(faces) -> list[tuple]:
    return [(tuple(round(v, 3) for v in f.box), f.mask["label"], round(f.mask["prob"], 4)) for f in faces]


def test_a_backend_failing_mid_stream_falls_back_without_losing_the_frame(builds, frames, tmp_path, monkeypatch,
                                                                          testvendor_plugin):
    from maskgate import Pipeline

    lost = tmp_path / "device-lost"
    monkeypatch.setenv("MASKGATE_TESTVENDOR_FAIL", f"file:{lost}")
    with Pipeline.from_builds(builds, pose_model=None, prefer="cpu", formats=("onnx",)) as cpu:
        want = [_summary(cpu(f)) for f in frames]
    with Pipeline.from_builds(builds, pose_model=None, formats=("onnx",)) as pipeline:
        assert pipeline.selections["detector"].backend == "testvendor"  # the "NPU" plugin, chosen first
        got = [_summary(pipeline(f)) for f in frames[:3]]
        lost.touch()  # the NPU's driver resets between two frames
        faces = pipeline(frames[3])
        got.append(_summary(faces))
        got += [_summary(pipeline(f)) for f in frames[4:]]
        assert got == want  # no frame lost, none different
        assert faces and "onnxruntime/CPUExecutionProvider" in faces[0].runtime["detector"]
        assert pipeline.detector.runner.failovers and "device lost" in pipeline.detector.runner.failovers[0]
        assert any("mid-stream" in f for f in pipeline.selections["mask"].fallbacks)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_one_pipeline_used_from_several_threads_gives_the_serial_results(builds, frames, fmt):
    from maskgate import Pipeline

    work = frames * 4
    with Pipeline.from_builds(builds, pose_model=None, prefer="cpu", formats=(fmt,), threads=1) as pipeline:
        serial = [_summary(pipeline(f)) for f in work]
        with ThreadPoolExecutor(max_workers=4) as pool:
            threaded = list(pool.map(lambda f: _summary(pipeline(f)), work))
    assert threaded == serial


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc for memory and descriptors")
def test_a_long_run_does_not_grow_memory_or_file_descriptors(builds, frames):
    """600 frames here; benchmarks/soak.py runs 10,000 (figures in docs/benchmarks.md)."""
    from maskgate import Pipeline

    with Pipeline.from_builds(builds, pose_model=None, prefer="cpu", formats=("onnx",), threads=1) as pipeline:
        for f in frames * 13:  # warm-up: allocator pools and runtime caches settle
            pipeline(f)
        rss, fds = _rss_mb(), len(os.listdir("/proc/self/fd"))
        for i in range(600):
            pipeline(frames[i % len(frames)])
        grown = (_rss_mb() - rss) / rss
        assert grown < 0.05, f"resident memory grew {grown:.1%} over 600 frames"
        assert len(os.listdir("/proc/self/fd")) <= fds


_PAUSED_BUILD = """
import pathlib, sys, time
from maskgate.converters import bundle
from maskgate.cli import main
marker, placed, put_in_place = pathlib.Path(sys.argv[1]), [], bundle.replace_folder
def pause_before_the_second_new_bundle(new, final):
    if not final.exists():
        placed.append(final.name)
        if len(placed) == 2:  # the first bundle is in place, the second complete in its staging folder
            marker.write_text(final.name)
            time.sleep(3600)  # held here until the test kills the process
    return put_in_place(new, final)
bundle.replace_folder = pause_before_the_second_new_bundle
sys.exit(main(sys.argv[2:]))
"""


def test_a_build_killed_halfway_leaves_no_bundle_that_looks_complete(tmp_path):
    """The build is held at an explicit pause point (the second bundle written, not yet in
    place) and killed there, however fast or slow this machine is."""
    pytest.importorskip("onnxscript")
    from maskgate import build
    from maskgate.converters.bundle import verify_bundle

    out, marker = tmp_path / "builds", tmp_path / "paused"
    command = [sys.executable, "-c", _PAUSED_BUILD, str(marker), "build", "--models", "mask_mobilenetv2",
               "--formats", "onnx,openvino", "--precisions", "fp32,fp16", "--verify-samples", "8", "--check-runs", "2",
               "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None and not marker.is_file():
            time.sleep(0.2)
        ended = proc.stderr.read()[-2000:] if proc.poll() is not None else "still running after 900 s"
        assert marker.is_file(), f"the build never reached its pause point: {ended}"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    waiting = marker.read_text()
    assert list(out.glob(f".{waiting}.partial-*"))  # it died with a whole bundle still staged
    assert not (out / waiting).exists()
    finished = {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert len(finished) == 1
    for folder in finished:
        verify_bundle(out / folder)  # whatever looks like a bundle is a whole, verified one
    results = build(models=("mask_mobilenetv2",), formats=("onnx", "openvino"), precisions=("fp32", "fp16"),
                    out=out, progress=False, verify_samples=8, check_runs=2)
    assert all(r.error is None for r in results)
    assert {r.target for r in results if r.status == "reused"} == finished
    assert not list(out.glob(".*.partial-*")) and not list(out.glob(".work-*"))  # the stale staging is gone
    with pytest.raises(Exception, match="another 'maskgate build' is writing here"):
        from maskgate.converters.bundle import exclusive_folder

        with exclusive_folder(out):
            build(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("fp32",), out=out, progress=False)


# A 1 MB block, freed, then asked for again: is the second one mmapped (glibc's mallinfo2
# counts mmapped blocks)? With glibc's sliding threshold the first free raises it past 1 MB
# and the second block comes from the heap, where freed space is kept.
_MMAPPED_AGAIN = """
import ctypes, ctypes.util, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes, libc.mallinfo2.restype = (ctypes.c_void_p,), Info
if sys.argv[1] == "steady":
    from maskgate.memory import steady_memory
    assert steady_memory()
libc.free(libc.malloc(1 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_steady_memory_keeps_freed_frame_buffers_mmapped():
    """What ``steady_memory`` is for (benchmarks/soak.py measures the resident memory): a
    frame-sized block freed and asked for again is still mmapped, so its pages go back to
    the system when it is freed; without it, glibc serves the second from the heap."""
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system")

    def mmapped_again(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", _MMAPPED_AGAIN, mode], capture_output=True, text=True,
                              cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    assert mmapped_again("glibc") == 0  # the sliding threshold, as the test expects it
    assert mmapped_again("steady") == 1
