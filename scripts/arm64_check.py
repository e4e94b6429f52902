"""The device install and its checks on an emulated aarch64 CPU (run by scripts/arm64-check.sh).

    scripts/arm64-check.sh BUILDS_DIR [--data ../shared/data] [--limit N] [--formats onnx,tflite]
        [--precisions fp32,int8] [--variants litert,tflite-runtime] [--json FILE]

The environment, made once and cached under ``--env`` (default ~/.cache/maskgate/arm64, one
folder per hash of its inputs: this file and the project's dependency pins):

- an arm64 Debian bookworm root (``mmdebstrap --variant=extract``: its Python 3.11 and the
  C/C++ runtime, no package scripts run, so no binfmt registration is needed);
- the emulated core (``--core``: Cortex-A76, RK3588's big core, or Cortex-A53) and its
  description inside that root (``/proc/cpuinfo``, ``/sys/devices/system/cpu``): qemu-user
  shows a program the host's x86 files, and ONNX Runtime's CPU detection (pytorch/cpuinfo)
  dies on them; QEMU's default core made TFLite int8 compute wrong numbers;
- ``maskgate[device]`` and ``rknn-toolkit-lite2`` from the registries' aarch64 wheels,
  installed by this machine's pip (``--platform ... --only-binary``); a second variant with
  ``tflite-runtime`` 2.14 and ``numpy<2``. MaskGate itself is installed fresh from the
  checkout on every run.

Programs run as ``qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11``. The checks, each
also run on this x86 machine where they compare: ``maskgate backends``; for every ONNX and
TFLite build (format x precision) ``maskgate run --builds`` over the example images and, with
``--data``, the test-split scenes, compared face by face with the x86 run
(``maskgate.check.agreement``); ``maskgate check`` of those bundles. The last line printed is
a one-line JSON summary; the exit status is 0 when every comparison and check passed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = "usr/bin/python3.11"
MODELS = ("retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip")
VARIANTS = {  # name -> extra requirements beside the maskgate wheel
    "litert": ["{wheel}[device]", "rknn-toolkit-lite2==2.5.0"],
    "tflite-runtime": ["{wheel}[onnx]", "numpy<2", "tflite-runtime==2.14.0", "opencv-python-headless<4.12"],
}
ROOT_PACKAGES = "python3.11,libpython3.11-stdlib,libstdc++6,libgomp1,zlib1g"
CPUS = 2  # cores the description shows: as many as this machine gives the emulation


class Unavailable(SystemExit):
    pass


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def need_tools() -> None:
    missing = [tool for tool in ("qemu-aarch64-static", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"arm64-check: {', '.join(missing)} missing; install them with: "
                          "apt-get install qemu-user-static mmdebstrap")


def env_key() -> str:
    """What the cached environment is made of: the root's packages, the variants' pins and the
    project's dependencies (editing the rest of this script does not remake it)."""
    text = json.dumps([ROOT_PACKAGES, VARIANTS]) + (ROOT / "pyproject.toml").read_text()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# The cores qemu emulates and how the kernel describes them (/proc/cpuinfo): the description
# must match the emulated core, or the runtimes pick kernels for instructions it lacks.
# QEMU 7.2's default ("max") core gave TFLite int8 wrong numbers (XNNPACK's newest kernels).
CORES = {
    "cortex-a76": {"part": "0xd0b", "variant": "0x4", "revision": "1", "max_khz": 2400000,  # RK3588's big cores
                   "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                               "lrcpc dcpop asimddp ssbs"},
    "cortex-a53": {"part": "0xd03", "variant": "0x0", "revision": "4", "max_khz": 1512000,  # RK3328-class cameras
                   "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"},
}


def write_cpu(root: Path, core: str) -> None:
    """/proc/cpuinfo and /sys/devices/system/cpu of ``core``, inside the root (qemu-user looks
    there first for a program's absolute paths; otherwise it shows the host's x86 files)."""
    spec = CORES[core]
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc/cpuinfo").write_text("".join(
        f"processor\t: {i}\nBogoMIPS\t: 48.00\nFeatures\t: {spec['features']}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {spec['variant']}\nCPU part\t: {spec['part']}\n"
        f"CPU revision\t: {spec['revision']}\n\n" for i in range(CPUS)))
    cpu = root / "sys/devices/system/cpu"
    cpu.mkdir(parents=True, exist_ok=True)
    every = f"0-{CPUS - 1}\n"
    for name, text in (("possible", every), ("present", every), ("online", every), ("kernel_max", "255\n")):
        (cpu / name).write_text(text)
    for i in range(CPUS):
        core_dir = cpu / f"cpu{i}"
        files = {"cpufreq/cpuinfo_max_freq": f"{spec['max_khz']}\n", "cpufreq/cpuinfo_min_freq": "408000\n",
                 "topology/physical_package_id": "0\n", "topology/cluster_cpus_list": every,
                 "topology/core_cpus_list": f"{i}\n", "topology/thread_siblings_list": f"{i}\n",
                 "topology/core_siblings_list": every, "topology/package_cpus_list": every}
        for index, (level, size, kind) in enumerate(((1, "32K", "Data"), (1, "32K", "Instruction"),
                                                     (2, "512K", "Unified"))):
            files.update({f"cache/index{index}/level": f"{level}\n", f"cache/index{index}/size": f"{size}\n",
                          f"cache/index{index}/type": f"{kind}\n",
                          f"cache/index{index}/shared_cpu_list": f"{i}\n" if level == 1 else every})
        for rel, text in files.items():
            (core_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (core_dir / rel).write_text(text)


def pip_aarch64(target: Path, requirements: list[str], *, deps: bool = True) -> None:
    platforms = [f"manylinux_2_{v}_aarch64" for v in range(17, 37)] + ["manylinux2014_aarch64", "linux_aarch64"]
    command = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "--upgrade",
               "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--only-binary=:all:",
               *[arg for p in platforms for arg in ("--platform", p)], *([] if deps else ["--no-deps"]), *requirements]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise Unavailable(f"arm64-check: pip could not install aarch64 wheels of {requirements}: "
                          f"{' '.join(errors)[-800:]}")


def maskgate_wheel(folder: Path, *, python: str = sys.executable) -> Path:
    """A wheel of this checkout, built by ``python``'s pip: in its own environment where that
    one's setuptools is older than pyproject.toml asks (68: a system Python's 65 cannot read
    ``project.license``), else with the setuptools already there (no download)."""
    isolate = subprocess.run([python, "-c", "import setuptools, sys; "
                              "sys.exit(int(setuptools.__version__.split('.')[0]) < 68)"],
                             capture_output=True).returncode != 0
    done = subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", *([] if isolate else
                                                                             ["--no-build-isolation"]),
                           "-w", str(folder), str(ROOT)], capture_output=True, text=True)
    if done.returncode != 0:
        tail = " ".join(line.strip() for line in done.stderr.splitlines() if line.strip())[-600:]
        raise Unavailable(f"arm64-check: cannot build the maskgate wheel with {python} ({tail})")
    return next(folder.glob("maskgate-*.whl"))


def ensure_env(base: Path, variants: list[str], wheel: Path) -> tuple[Path, dict]:
    """The cached environment (made where missing); returns its folder and how long each part took."""
    need_tools()
    env = base / env_key()
    took = {}
    root = env / "root"
    if not (env / "root.done").is_file():
        start = time.monotonic()
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        say(f"arm64-check: making the arm64 Debian root in {root}")
        done = subprocess.run(["mmdebstrap", "--arch=arm64", "--variant=extract", "--mode=auto",
                               f"--include={ROOT_PACKAGES}", "bookworm", str(root), "http://deb.debian.org/debian"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise Unavailable(f"arm64-check: mmdebstrap failed: {done.stderr[-800:]}")
        (env / "root.done").write_text("")
        took["root_s"] = round(time.monotonic() - start, 1)
    for variant in variants:
        site = env / f"site-{variant}"
        if not (env / f"{variant}.done").is_file():
            start = time.monotonic()
            say(f"arm64-check: installing the {variant} variant's aarch64 wheels")
            shutil.rmtree(site, ignore_errors=True)
            pip_aarch64(site, [r.format(wheel=wheel) for r in VARIANTS[variant]])
            shutil.rmtree(site / "maskgate", ignore_errors=True)  # maskgate itself comes fresh on every run
            (env / f"{variant}.done").write_text("")
            took[f"{variant}_s"] = round(time.monotonic() - start, 1)
    return env, took


class Arm:
    """Runs Python code and maskgate commands on the emulated CPU."""

    def __init__(self, env: Path, variant: str, fresh: Path, core: str):
        self.root = env / "root"
        self.path = f"{fresh}:{env / f'site-{variant}'}"
        self.core = core
        write_cpu(self.root, core)  # one description at a time: runs for two cores at once would clash

    def run(self, *argv: str, timeout: int = 7200) -> subprocess.CompletedProcess:
        code = "import sys; from maskgate.cli import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run(["qemu-aarch64-static", "-L", str(self.root), str(self.root / PYTHON), "-c", code,
                               *argv], capture_output=True, text=True, timeout=timeout,
                              env={"PATH": os.environ["PATH"], "PYTHONPATH": self.path, "PYTHONNOUSERSITE": "1",
                                   "QEMU_CPU": self.core,
                                   "HOME": os.environ.get("HOME", "/root"), "LC_ALL": "C.UTF-8"})


def here(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from maskgate.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", *argv], capture_output=True, text=True)


def image_folder(folder: Path, data: Path | None, limit: int | None) -> tuple[Path, int]:
    """A folder of links to the example images and, with ``data``, the test-split scenes."""
    from maskgate.datasets.crops import split_of
    from maskgate.voc import read_voc_folder

    images = sorted((ROOT / "examples" / "images").glob("*.jpg"))
    if data is not None:
        images += [s.image_path for s in read_voc_folder(data / "scenes")
                   if split_of(s.image_path.relative_to(data).as_posix()) == "test"]
    images = images[:limit] if limit else images
    folder.mkdir(parents=True, exist_ok=True)
    for path in images:
        (folder / path.name).symlink_to(path.resolve())
    return folder, len(images)


def build_folder(builds: Path, fmt: str, precision: str, into: Path) -> Path | None:
    """A builds folder holding only this format x precision's three bundles (general canvas)."""
    bundles = [builds / f"{model}-{fmt}-{precision}" for model in MODELS]
    if not all((b / "manifest.json").is_file() for b in bundles):
        return None
    into.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        (into / bundle.name).symlink_to(bundle.resolve())
    return into


def main() -> int:
    from maskgate.cli.options import whole

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("builds", type=Path)
    parser.add_argument("--data", type=Path, help="a data folder: its test-split scenes are compared too")
    parser.add_argument("--limit", type=whole(what="images"), help="at most N images")
    parser.add_argument("--formats", default="onnx,tflite")
    parser.add_argument("--precisions", default="fp32,int8")
    parser.add_argument("--variants", default="litert,tflite-runtime")
    parser.add_argument("--core", choices=sorted(CORES), default="cortex-a76",
                        help="the emulated core, with a matching /proc/cpuinfo (default cortex-a76)")
    parser.add_argument("--env", type=Path, default=Path.home() / ".cache" / "maskgate" / "arm64")
    parser.add_argument("--check-runs", type=whole(what="timed runs"),
                        default=3, help="timed runs per bundle in maskgate check")
    parser.add_argument("--skip-check", action="store_true", help="compare the runs only, no maskgate check")
    parser.add_argument("--video", type=Path, help="also run the turnstile app on this video (from "
                        "examples/turnstile/make_test_video.py) with the first int8 build, on both machines")
    parser.add_argument("--json", type=Path, help="write the full results here")
    args = parser.parse_args()
    began = time.monotonic()
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory(prefix="arm64-check-") as tmp:
        tmp = Path(tmp)
        wheel = maskgate_wheel(tmp / "wheel")
        env, took = ensure_env(args.env.resolve(), variants, wheel)
        fresh = tmp / "maskgate"
        pip_aarch64(fresh, [str(wheel)], deps=False)
        images, n_images = image_folder(tmp / "images", args.data, args.limit)
        summary = {"env": str(env), "env_made": took, "core": args.core, "images": n_images, "builds": {},
                   "variants": {}}
        for variant in variants:
            arm = Arm(env, variant, fresh, args.core)
            backends = arm.run("backends")
            rknn = [line.strip() for line in backends.stdout.splitlines() if "RKNPU" in line]
            summary["variants"][variant] = {"backends_rc": backends.returncode, "rknn": rknn[0] if rknn else None}
            say(f"arm64-check [{variant}] maskgate backends: rc {backends.returncode}; rknn: {rknn[:1]}")
            for fmt in args.formats.split(","):
                if variant == "tflite-runtime" and fmt != "tflite":
                    continue
                for precision in args.precisions.split(","):
                    folder = build_folder(args.builds, fmt, precision, tmp / f"b-{variant}-{fmt}-{precision}")
                    if folder is None:
                        say(f"arm64-check: no {fmt} {precision} bundles of all three models in {args.builds}")
                        continue
                    summary["builds"][f"{variant} {fmt} {precision}"] = check_build(
                        arm, folder, images, tmp, None if args.skip_check else args.check_runs)
        if args.video is not None:
            int8 = [k for k in summary["builds"] if k.endswith("int8") and k.startswith(variants[0])]
            if int8:
                _, fmt, precision = int8[0].split()
                folder = tmp / f"b-{variants[0]}-{fmt}-{precision}"
                summary["turnstile"] = turnstile(Arm(env, variants[0], fresh, args.core), folder, args.video, tmp)
        summary["wall_s"] = round(time.monotonic() - began, 1)
    summary["passed"] = bool(summary["builds"]) and all(b["passed"] for b in summary["builds"].values()) and \
        all(v["backends_rc"] == 0 for v in summary["variants"].values()) and \
        summary.get("turnstile", {}).get("passed", True)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    print(json.dumps({"passed": summary["passed"], "core": args.core, "images": n_images, "wall_s": summary["wall_s"],
                      "builds": {k: {"found": v["agreement"].get("found"),
                                     "mask_agreement": v["agreement"].get("mask_agreement"),
                                     "check_passed": v["check_passed"]} for k, v in summary["builds"].items()}}))
    return 0 if summary["passed"] else 1


def check_build(arm: Arm, folder: Path, images: Path, tmp: Path, check_runs: int | None) -> dict:
    from maskgate.check.agreement import agreement, load_results

    name = folder.name
    start = time.monotonic()
    x86 = here("run", str(images), "--builds", str(folder), "--json", "--threads", "1")
    arm_run = arm.run("run", str(images), "--builds", str(folder), "--json", "--threads", "1")
    arm_s = time.monotonic() - start
    if x86.returncode not in (0, 1) or arm_run.returncode not in (0, 1):
        say(f"arm64-check {name}: run failed: x86 rc {x86.returncode}, aarch64 rc {arm_run.returncode}: "
            f"{arm_run.stderr[-1500:]}")
        return {"passed": False, "agreement": {}, "check_passed": False, "error": arm_run.stderr[-1500:]}
    (tmp / f"{name}.x86.jsonl").write_text(x86.stdout)
    (tmp / f"{name}.arm.jsonl").write_text(arm_run.stdout)
    result = agreement(load_results(tmp / f"{name}.x86.jsonl"), load_results(tmp / f"{name}.arm.jsonl"))
    if check_runs is None:
        check = subprocess.CompletedProcess([], 0, "maskgate check skipped (--skip-check)", "")
    else:
        check = arm.run("check", str(folder), "--runs", str(check_runs))
    ok = result.found >= 0.99 and result.mask_agreement >= 0.995 and check.returncode == 0
    say(f"arm64-check {name}: {result.describe()}; maskgate check rc {check.returncode} "
        f"({check.stdout.strip().splitlines()[-1] if check.stdout.strip() else check.stderr[-300:]}); "
        f"{arm_s:.0f} s for both runs")
    return {"passed": ok, "agreement": result.to_dict(), "check_passed": check.returncode == 0,
            "check_tail": check.stdout.strip().splitlines()[-1:] if check.stdout.strip() else check.stderr[-500:],
            "run_s": round(arm_s, 1)}


def turnstile(arm: Arm, folder: Path, video: Path, tmp: Path) -> dict:
    """``maskgate turnstile`` on the video here and on the emulated CPU: the same passages and decisions?"""
    decisions = {}
    start = time.monotonic()
    for machine, run in (("x86", here), ("aarch64", arm.run)):
        events = tmp / f"turnstile-{machine}.jsonl"
        done = run("turnstile", str(video), "--builds", str(folder), "--events", str(events), "--threads", "1",
                   "--profile", "general")
        if done.returncode != 0 or not events.is_file():
            say(f"arm64-check turnstile on {machine}: rc {done.returncode}: {done.stderr[-1500:]}")
            return {"passed": False, "error": f"{machine}: rc {done.returncode}"}
        records = [json.loads(line) for line in events.read_text().splitlines()]
        decisions[machine] = [(round(r["start"], 1), r["decision"]) for r in records if r["event"] == "passage"]
    same = decisions["x86"] == decisions["aarch64"]
    say(f"arm64-check turnstile ({folder.name}): {len(decisions['aarch64'])} passages on aarch64, "
        f"{len(decisions['x86'])} on x86, {'the same decisions' if same else 'DIFFERENT decisions'}; "
        f"{time.monotonic() - start:.0f} s")
    return {"passed": same, "passages": len(decisions["aarch64"]), "x86": decisions["x86"],
            "aarch64": decisions["aarch64"]}


if __name__ == "__main__":
    sys.exit(main())
