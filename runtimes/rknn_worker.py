"""The rknn-toolkit2 worker: runs in the toolkit's own environment (``maskgate setup rknn``),
imports nothing from maskgate, and answers one JSON request per line on stdin with one
JSON response per line on the file descriptor named by ``--reply-fd``. The toolkit prints
freely: everything on stdout is sent to stderr, which the client keeps in a log.

Requests (``maskgate.runtimes.rknn_env`` holds their typed forms):
  {"op": "build", "onnx", "target", "mean", "std", "calibration" (npz of uint8 pixels),
   "algorithm", "hybrid" ([[start tensor, end tensor], ...] kept in float), "custom_string",
   "export" (path)}  -> {"ok", "toolkit", "seconds", "inputs", "outputs"}
  {"op": "infer", "input" (npy of float pixels, NCHW), "output" (npz path)} -> {"ok", "seconds"}
  {"op": "analyze", "input", "folder"} -> {"ok", "layers": [[name, cosine, euclidean], ...]}
  {"op": "quit"}
A failed request answers {"ok": false, "error": "..."}; the worker keeps serving.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reply-fd", type=int, required=True)
    args = parser.parse_args()
    reply = os.fdopen(args.reply_fd, "w", buffering=1)
    os.dup2(2, 1)  # the toolkit's prints (Python and native) go to the log, not the protocol
    sys.stdout = sys.stderr
    state = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            answer = {"ok": True, **state.handle(request)}
        except Exception as exc:  # the toolkit raises ValueError/RuntimeError/its own: answer, keep serving
            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply.write(json.dumps(answer) + "\n")
    state.release()
    return 0


class Worker:
    def __init__(self) -> None:
        self.rknn: Any = None  # rknn.api.RKNN once built
        self.work = tempfile.mkdtemp(prefix="maskgate-rknn-")

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "build":
            return self.build(request)
        if self.rknn is None:
            raise RuntimeError(f"{op}: no model built in this worker yet (the simulator runs only what it built)")
        if op == "infer":
            return self.infer(request)
        if op == "analyze":
            return self.analyze(request)
        raise ValueError(f"unknown op {op!r}")

    def build(self, r: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        from rknn.api import RKNN

        self.release()
        start = time.perf_counter()
        pixels = np.load(r["calibration"])["pixels"]
        dataset = os.path.join(self.work, "dataset.txt")
        with open(dataset, "w") as listing:
            for k, sample in enumerate(pixels):
                np.save(os.path.join(self.work, f"calib{k}.npy"), sample[None].astype(np.float32))
                listing.write(f"calib{k}.npy\n")
        rknn = RKNN(verbose=False)
        check(rknn.config(mean_values=[r["mean"]], std_values=[r["std"]], target_platform=r["target"],
                          quantized_algorithm=r["algorithm"], custom_string=r["custom_string"]), "config")
        check(rknn.load_onnx(model=r["onnx"]), "load_onnx")
        if r.get("hybrid"):
            # Hybrid quantization: the toolkit quantizes, then rebuilds with the named stretches in float.
            cwd = os.getcwd()
            os.chdir(self.work)
            try:
                check(rknn.hybrid_quantization_step1(dataset=dataset, custom_hybrid=r["hybrid"]), "hybrid step 1")
                stem = os.path.splitext(os.path.basename(r["onnx"]))[0]
                rknn.release()
                rknn = RKNN(verbose=False)
                check(rknn.hybrid_quantization_step2(model_input=f"{stem}.model", data_input=f"{stem}.data",
                                                     model_quantization_cfg=f"{stem}.quantization.cfg"),
                      "hybrid step 2")
            finally:
                os.chdir(cwd)
        else:
            check(rknn.build(do_quantization=True, dataset=dataset), "build")
        check(rknn.export_rknn(r["export"]), "export_rknn")
        check(rknn.init_runtime(), "init_runtime (simulator)")
        self.rknn = rknn
        from importlib.metadata import version

        return {"toolkit": version("rknn-toolkit2"), "seconds": time.perf_counter() - start}

    def infer(self, r: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        start = time.perf_counter()
        outputs = self.rknn.inference(inputs=[np.load(r["input"])], data_format="nchw")
        if outputs is None:
            raise RuntimeError("the simulator returned no outputs")
        np.savez(r["output"], *[np.asarray(o, np.float32) for o in outputs])
        return {"seconds": time.perf_counter() - start}

    def analyze(self, r: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        np.save(os.path.join(self.work, "analyze.npy"), np.load(r["input"]))
        check(self.rknn.accuracy_analysis(inputs=[os.path.join(self.work, "analyze.npy")], output_dir=r["folder"]),
              "accuracy_analysis")
        return {"layers": read_error_table(os.path.join(r["folder"], "error_analysis.txt"))}

    def release(self) -> None:
        if self.rknn is not None:
            self.rknn.release()
            self.rknn = None


def read_error_table(path: str) -> list[Any]:
    """[op type, layer, entire cosine, entire euclidean, single cosine, single euclidean] per
    layer of accuracy_analysis' error_analysis.txt ("entire": the quantized model up to that
    layer against float; "single": that layer alone on float inputs). Layers the toolkit
    fused (no figures on their line) are left out."""
    rows: list[list[Any]] = []
    if not os.path.isfile(path):
        return rows
    with open(path) as table:
        for line in table:
            parts = line.split()
            if len(parts) < 3 or not (parts[0].startswith("[") and parts[0].endswith("]")):
                continue
            numbers = []
            for p in parts[2:]:
                try:
                    numbers.append(float(p))
                except ValueError:
                    continue
            if len(numbers) == 4:
                rows.append([parts[0][1:-1], parts[1], *numbers])
    return rows


def check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"rknn-toolkit2 {what} failed (returned {code}); see the worker log")


if __name__ == "__main__":
    sys.exit(main())
