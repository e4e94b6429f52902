"""``maskgate models``: the registered models and their preprocessing."""
from __future__ import annotations

import dataclasses
import json

from ..registry import get_spec, list_models


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list registered models and their input specs")
    p.add_argument("--json", action="store_true", help="print one JSON object per model")
    p.set_defaults(func=main)


def main(args) -> int:
    for name in list_models():
        spec = get_spec(name)
        inp = spec.input
        if args.json:
            print(
                json.dumps(
                    {
                        "name": name,
                        "task": spec.task,
                        "input": {
                            "size": list(inp.size),
                            "color": inp.color,
                            "mean": list(inp.mean),
                            "std": list(inp.std),
                            "layout": inp.layout,
                        },
                        "outputs": list(spec.outputs),
                        "weights": spec.weights,
                        "class_names": list(spec.class_names),
                        "classifier": dataclasses.asdict(spec.classifier) if spec.classifier else None,
                    }
                )
            )
        else:
            print(
                f"{name:24s} {spec.task[:14]:14s} {inp.size[0]}x{inp.size[1]} {inp.color} mean={inp.mean}  "
                f"{spec.description}"
            )
            print(f"{'':24s} weights: {spec.weights or 'none ship; pass --weights PATH'}")
    return 0
