from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.strict_skips import missing

ROOT = Path(__file__).resolve().parents[1]
# The labelled data set (docs/data.md): MASKGATE_DATA where set, else ../shared/data beside the checkout.
SHARED_DATA = Path(os.environ.get("MASKGATE_DATA") or ROOT.parent / "shared" / "data")
pytest_plugins = ["tests.strict_skips"]  # under CI, a skip for a missing part fails


def _torch_cuda() -> bool:
    try:
        import torch
    except ModuleNotFoundError:
        return False
    return torch.cuda.is_available()


NO_DATA = (f"{SHARED_DATA} is absent (the data set: ../shared/data beside the checkout, or MASKGATE_DATA; see the "
           "docs/data.md)")


SERVICE_FIXTURES = {"broker": "broker", "rtsp_camera": "rtsp"}
# The longest files run first (each 1.5-4 min on a 2-core machine, junit of 2026-12-06): under
# pytest-xdist (--dist loadfile) a worker that draws one of them last finishes alone.
LONGEST_FIRST = ("test_npu.py", "test_batching.py", "test_fleet_rollout.py", "test_fleet_agent.py", "test_placement.py",
                 "test_turnstile_reuse.py", "test_fleet_hawkbit.py", "test_site.py", "test_accuracy_aware.py",
                 "test_resilience.py")


def pytest_collection_modifyitems(config, items):
    no_gpu = pytest.mark.skip(reason="no CUDA GPU visible to torch on this machine")
    has_gpu = _torch_cuda() if any("gpu" in i.keywords for i in items) else False
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(no_gpu)
        for fixture, marker in SERVICE_FIXTURES.items():  # counted per marker at the end of the run
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's order kept


def pytest_runtest_setup(item):
    if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
        missing("the data set", NO_DATA)  # skips; under CI, fails


@pytest.fixture(autouse=True)
def fresh_config():
    """Each test reads the config files it names: none read (or chosen) by another test holds."""
    from maskgate.config import reset_config

    reset_config()
    yield
    reset_config()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        missing("the data set", NO_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def detector():
    from maskgate import FaceDetector

    return FaceDetector.reference(device="cpu")


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    return sorted((ROOT / "examples" / "images").glob("*.jpg"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def testvendor_plugin(tmp_path, monkeypatch) -> Path:
    """pip-installs tests/plugins/testvendor (an 'NPU' backend for ONNX bundles, found through
    its entry point) into a folder put on sys.path for this test; returns that folder."""
    import importlib
    import shutil
    import subprocess
    import sys

    site, source = tmp_path / "site", tmp_path / "testvendor"
    # Installed from a copy: pip builds in place, which would leave build/ and egg-info in the checkout.
    shutil.copytree(ROOT / "tests" / "plugins" / "testvendor", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source)], check=True)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


@pytest.fixture(scope="session")
def bundle_store(tmp_path_factory):
    from tests.bundle_store import BundleStore, store_root

    return BundleStore(store_root(tmp_path_factory.getbasetemp()))


@pytest.fixture(scope="session")
def make_builds(bundle_store, tmp_path_factory):
    """``make_builds(name, **BuildConfig fields)``: a folder of real bundles for a test
    module's fixture, copies of those the session's store built once (tests.bundle_store:
    40 held-out inputs and 2 timed runs unless given); skips where an exporter it needs is
    missing, fails on any bundle that did not build; returns the builds folder."""

    def make(name: str, **options) -> Path:
        from maskgate.builder.config import DEFAULT_MODELS
        from maskgate.formats import DEFAULT_FORMATS, FORMATS, PRECISIONS

        formats = tuple(options.pop("formats", DEFAULT_FORMATS))
        for module in dict.fromkeys(m for fmt in formats for m in FORMATS[fmt].exporters):
            pytest.importorskip(module)
        return bundle_store.folder(tmp_path_factory.mktemp(name), models=tuple(options.pop("models", DEFAULT_MODELS)),
                                   formats=formats, precisions=tuple(options.pop("precisions", PRECISIONS)), **options)

    return make


@pytest.fixture(scope="session")
def quantized_builds(make_builds):
    """fp32 and int8 OpenVINO and TFLite builds of the three models, every one checked and
    passing its gates: the selector picks the OpenVINO int8 ones on a CPU."""
    # The store's 40 held-out inputs: with 8, the TFLite int8 detector fails its landmark gate
    # (tests.bundle_store.SHARED says why).
    return make_builds("quantized-builds", formats=("openvino", "tflite"), precisions=("fp32", "int8"))


@pytest.fixture(scope="session")
def gate_builds(quantized_builds):
    """The turnstile runs the OpenVINO int8 builds (the CPU's first choice); the test
    video's yaw labels come from the fp32 detector."""
    return quantized_builds


@pytest.fixture(scope="session")
def gate_video(gate_builds, shared_data, tmp_path_factory):
    """A turnstile video of 12 test-split people (tests.streams: HOLD frames each, GAP
    between) and its labels (examples/turnstile/make_test_video.py)."""
    import sys

    from tests.streams import FPS, GAP, HOLD

    sys.path.insert(0, str(ROOT / "examples" / "turnstile"))
    from make_test_video import make_video

    video = tmp_path_factory.mktemp("video") / "gate.avi"
    labels = make_video(shared_data, video, scenes=12, hold=HOLD, gap=GAP, fps=FPS, builds=gate_builds)
    return video, labels
