"""The package's layers: no import circle, no import that goes up a layer, and the turnstile
app on the pipeline and the runtimes only. Every import counts, the ones made inside a
function too: a lazy import is still a dependency.

Bottom to top (maskgate.*):
  core       version, errors, specs, config, files, console, progress, memory, metrics, formats, profiles,
             native_calls, ast_race
  publish    publish: the spool and the targets events go to (MQTT, webhooks), fleet check records
  bundle     converters.bundle / manifest / binding / signing: the bundle format that runtimes trust
  runtimes   runtimes
  pipeline   pre/post-processing, models, registry, compare, detector, classifier, pipeline
  makers     calibration, converters
  apps       check, turnstile, training, fleet (releases and the camera's agent), bench (maskgate benchmark)
  build      builder (maskgate.build() and its steps)
  cli        cli, and the package's own __init__ (the public facade)
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

FOLDERS = {"sdk": "maskgate", "runtimes": "maskgate.runtimes", "converters": "maskgate.converters",
           "calibration": "maskgate.calibration"}
LAYERS = [
    ("core", ("version", "errors", "specs", "config", "files", "console", "progress", "memory", "metrics", "formats",
              "profiles", "native_calls", "ast_race")),
    ("publish", ("publish",)),
    ("bundle", ("converters.bundle", "converters.binding", "converters.signing", "converters.manifest",
                "converters.__init__")),
    ("runtimes", ("runtimes",)),
    ("pipeline", ("preprocess", "postprocess", "align", "pose", "draw", "voc", "sources", "image_size", "registry",
                  "zoo", "models",
                  "compare", "detector", "classifier", "classifier_eval", "pipeline", "deployed", "datasets")),
    ("makers", ("calibration", "converters")),
    ("apps", ("check", "turnstile", "training", "fleet", "bench")),
    ("build", ("builder",)),
    ("cli", ("cli", "__init__", "__main__")),
]
TURNSTILE_MAY_USE = {"core", "publish", "bundle", "runtimes", "pipeline"}


def modules() -> dict[str, Path]:
    """Module name -> file, for every module the distribution installs."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def layer_of(module: str) -> str:
    """The layer of a module: its longest matching prefix in LAYERS."""
    relative = module.removeprefix("maskgate").lstrip(".") or "__init__"
    if relative == "converters":
        relative = "converters.__init__"
    best, length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (relative == prefix or relative.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return best


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The maskgate modules ``module`` imports (anywhere in the file): for ``from P import n``
    the submodule ``P.n`` where there is one, else ``P``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else resolve(base)
                       for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t and t != module}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def test_there_is_no_import_circle():
    assert circles(graph()) == []


def test_no_import_goes_up_a_layer():
    wrong = [f"{a} ({layer_of(a)}) imports {b} ({layer_of(b)})" for a, targets in graph().items() for b in targets
             if RANK[layer_of(b)] > RANK[layer_of(a)]]
    assert wrong == []


def test_the_turnstile_app_needs_only_the_pipeline_and_the_runtimes():
    wrong = [f"{a} imports {b} ({layer_of(b)})" for a, targets in graph().items() if a.startswith("maskgate.turnstile")
             for b in targets if layer_of(b) not in TURNSTILE_MAY_USE and not b.startswith("maskgate.turnstile")]
    assert wrong == []


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_the_checks_can_fail():
    """A circle and an upward import planted in a copy of the graph are caught."""
    edges = graph()
    edges["maskgate.errors"] = edges["maskgate.errors"] | {"maskgate.pipeline"}
    assert any("maskgate.errors" in c for c in circles(edges))
    assert RANK[layer_of("maskgate.pipeline")] > RANK[layer_of("maskgate.errors")]
    assert layer_of("maskgate.runtimes.select") == "runtimes" and layer_of("maskgate.converters.onnx") == "makers"
    assert layer_of("maskgate.converters.bundle") == "bundle" and layer_of("maskgate") == "cli"
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("maskgate.newthing")
