"""The core imports without torch; README, .ci/run and the registry agree."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
sys.meta_path.insert(0, _Block())
"""


def test_import_sdk_without_torch():
    code = BLOCK_TORCH + """
import maskgate, maskgate.runtimes
from maskgate import list_models, get_spec, create_model, DependencyError
assert "retinaface_mnet025" in list_models()
assert get_spec("retinaface_mnet025").input.size == (640, 480)
try:
    create_model("retinaface_mnet025")
except DependencyError as exc:
    assert "pip install 'maskgate[torch]'" in str(exc), exc
else:
    raise AssertionError("create_model worked without torch")
assert "torch" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


OPTIONAL = ("torch", "onnx", "onnxruntime", "openvino", "nncf", "ai_edge_litert", "tflite_runtime", "cryptography",
            "matplotlib", "litert_torch", "onnxscript")
BLOCK_OPTIONAL = f"""
import sys
OPTIONAL = {OPTIONAL!r}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _Block())
"""


def test_with_only_the_core_maskgate_imports_whole():
    """No optional dependency importable: the package, its facade and every layer's entry
    points still import (they import frameworks only when used)."""
    code = BLOCK_OPTIONAL + """
import maskgate
from maskgate import Pipeline, build, BuildConfig, compare, formats
import maskgate.runtimes.select, maskgate.converters.bundle, maskgate.check, maskgate.turnstile, maskgate.cli
assert Pipeline and formats.FORMATS
assert not [m for m in sys.modules if m.split(".")[0] in OPTIONAL], sorted(sys.modules)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_the_distribution_installs_nothing_generic_at_the_top_level(tmp_path):
    """The wheel holds one top-level package, maskgate (sdk/, runtimes/, ... are mapped into it);
    importing a folder by its own name from the checkout says what to import instead."""
    import shutil
    import zipfile

    source = tmp_path / "src"  # built from a copy: setuptools' build/ folder would land in the checkout
    for name in ("sdk", "runtimes", "converters", "calibration"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("maskgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"maskgate"}, top
    assert {"maskgate/runtimes/select.py", "maskgate/converters/bundle.py", "maskgate/calibration/frames.py",
            "maskgate/formats/onnx.py", "maskgate/weights/mask_mobilenetv2.pt"} <= set(names)
    mapped = {"sdk": "maskgate", "runtimes": "maskgate/runtimes", "converters": "maskgate/converters",
              "calibration": "maskgate/calibration"}
    for folder, package in mapped.items():  # every module of the checkout is in the wheel
        for path in (ROOT / folder).rglob("*.py"):
            assert f"{package}/{path.relative_to(ROOT / folder).as_posix()}" in names, path
    for folder in mapped:
        out = subprocess.run([sys.executable, "-c", f"import {folder}"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode != 0 and "import maskgate" in out.stderr, (folder, out.stderr[-300:])


def test_readme_first_lines_and_ci_agree():
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```bash") + 1 : readme.index("```bash") + 3]
    install_and_run, test_command = block
    assert readme.index("```bash") < 4  # the commands come first
    assert install_and_run.endswith("maskgate build") and "pip install" in install_and_run
    assert "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
    assert re.search(r'"\$rc" -eq 5', ci)  # no tests collected fails CI


def test_registry_refuses_duplicates_and_unknown_names():
    from maskgate import ModelError, get_spec, register

    with pytest.raises(ModelError, match="already registered"):
        register(get_spec("retinaface_mnet025"))
    with pytest.raises(ModelError, match="registered models: .*retinaface_mnet025"):
        get_spec("nope")


def test_console_script_is_installed():
    out = subprocess.run(["maskgate", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("maskgate ")


def test_under_ci_an_import_related_skip_fails_and_other_skips_stay_skips(tmp_path):
    import os

    (tmp_path / "test_module_level.py").write_text("import pytest\npytest.importorskip('no_such_module_mg1')\n"
                                                  "def test_a():\n    pass\n")
    (tmp_path / "test_in_tests.py").write_text(
        "import pytest\n"
        "def test_needs_a_module():\n    pytest.importorskip('no_such_module_mg2')\n"
        "def test_needs_a_gpu():\n    pytest.skip('no CUDA GPU visible to torch on this machine')\n"
        "def test_runs():\n    pass\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)

    def pytest_on(*paths, ci: bool):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.strict_skips",
                   *map(str, paths)]
        return subprocess.run(command, capture_output=True, text=True, env={**env, **({"CI": "true"} if ci else {})},
                              cwd=tmp_path, timeout=120)

    relaxed = pytest_on(tmp_path, ci=False)
    assert relaxed.returncode == 0 and "1 passed, 3 skipped" in relaxed.stdout, relaxed.stdout
    in_tests = pytest_on(tmp_path / "test_in_tests.py", ci=True)
    assert in_tests.returncode == 1 and "1 failed, 1 passed, 1 skipped" in in_tests.stdout, in_tests.stdout
    assert "an import-related skip is a broken install" in in_tests.stdout
    module_level = pytest_on(tmp_path / "test_module_level.py", ci=True)  # a collection error stops the run
    assert module_level.returncode != 0 and "an import-related skip is a broken install" in module_level.stdout
