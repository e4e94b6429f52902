"""Convert your own checkpoint to one deployable format, calibrated on your own frames.

Adapt the constants or pass flags. Two common cases:

  # a biubug6 RetinaFace-ResNet50 checkpoint, int8 OpenVINO, calibrated on camera frames
  python examples/convert_checkpoint.py --model retinaface_resnet50 --weights Resnet50_Final.pth \
      --format openvino --precision int8 --calib my_camera_frames/ --detector-size 640x480

  # a mask classifier you trained with `maskgate train mask ...`, int8 TFLite with NHWC input
  python examples/convert_checkpoint.py --model mask_mobilenetv2 --weights runs/mask/best.pt \
      --format tflite --precision int8 --calib my_camera_frames/ --nhwc

--calib takes a folder of images (searched recursively) or a video; the classifiers are
calibrated on the faces the detector finds and aligns in those frames. --verify takes
held-out frames for the fidelity figures (default: the set that ships with MaskGate).
The bundle lands in OUT/<model>-<format>-<precision>/ with its manifest and golden data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maskgate import BuildConfig, build
from maskgate.builder.report import table
from maskgate.config import DEFAULT_BUILDS
from maskgate.formats import ConvertOptions, TfliteOptions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model name (maskgate models lists them)")
    p.add_argument("--weights", required=True, type=Path, help="your checkpoint (.pth / .pt state dict)")
    p.add_argument("--format", required=True, choices=("onnx", "openvino", "tflite"))
    p.add_argument("--precision", default="int8", choices=("fp32", "fp16", "int8"))
    p.add_argument("--calib", type=Path, help="your calibration frames (folder or video); default: the shipped set")
    p.add_argument("--verify", type=Path, help="held-out frames for the fidelity figures; default: the shipped set")
    p.add_argument("--detector-size", default="640x480", help="fixed detector input WIDTHxHEIGHT")
    p.add_argument("--nhwc", action="store_true", help="TFLite: NHWC input")
    p.add_argument("--out", type=Path, default=DEFAULT_BUILDS)
    args = p.parse_args(argv)
    if not args.weights.is_file():
        p.error(f"--weights {args.weights}: no such file")
    width, height = (int(v) for v in args.detector_size.lower().split("x"))
    config = BuildConfig(models=(args.model,), formats=(args.format,), precisions=(args.precision,), out=args.out,
                         calib=args.calib, verify=args.verify, weights={args.model: str(args.weights)},
                         detector_size=(width, height),
                         options=ConvertOptions(tflite=TfliteOptions(channel_last_io=args.nhwc)))
    results = build(config)
    print(table(results))
    for r in results:
        if r.error:
            print(f"{r.target}: {r.error}", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
