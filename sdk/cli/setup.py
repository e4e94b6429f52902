"""``maskgate setup rknn``: the environments of toolchains that cannot share MaskGate's own."""
from __future__ import annotations

TOOLCHAINS = ("rknn",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "setup",
        help="set up a vendor toolchain's own environment (rknn: rknn-toolkit2 for RKNN builds and its simulator)",
        description="rknn-toolkit2 pins numpy, onnx, protobuf and torch versions that cannot share MaskGate's "
        "environment: 'maskgate setup rknn' makes a virtual environment for it under ~/.cache/maskgate/toolkits "
        "($MASKGATE_CACHE), keyed on the versions (about 1 minute from the package index; reused when present). "
        "'maskgate build --formats rknn' and 'maskgate check' drive it as a worker process.",
    )
    p.add_argument("toolchain", choices=TOOLCHAINS)
    p.add_argument("--force", action="store_true", help="make it again even when one is present")
    p.add_argument("--where", action="store_true", help="print where the environment is (or would be) and exit")
    p.set_defaults(func=main)


def main(args) -> int:
    from maskgate.runtimes import rknn_env

    if args.where:
        print(rknn_env.environment())
        return 0
    rknn_env.setup(force=args.force)
    print(f"versions: {rknn_env.versions()}")
    return 0
