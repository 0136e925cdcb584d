"""The house rules of docs/architecture.md, read from the package's own source (ast).

Fails on: an import cycle; an import that points up a layer; mlflow imported outside
nova_mlflow/tracking/; an MLflow internal (private module or attribute, a reserved
`mlflow.*` tag or metadata key written as a string) outside tracking/_compat.py; click
outside cli.py; a module over 400 lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nova_mlflow"

#: Layer of each top-level part of the package; imports may only point to the same or a
#: lower number (docs/architecture.md). The package's own __init__ is its face (lazy api).
LAYERS = {
    "cli": 6, "__main__": 6,
    "api": 5,
    "pipeline": 4,
    "scoring": 3, "report": 3, "analysis": 3, "calls": 3, "tracking": 3, "judge": 3,
    "testing": 3,
    "metrics": 2, "parsing": 2, "data": 2, "providers": 2, "prompts": 2, "memo": 2,
    "schemas": 1, "errors": 1, "paths": 1, "config": 1, "secrets": 1, "pricing": 1,
    "wordnet": 1, "names": 1,
}
PRIVATE_MODULES = re.compile(r"^mlflow(\.\w+)*\.(_\w+)|^mlflow\.(store|tracing\.trace_manager|"
                             r"tracing\.constant|types\.utils|utils)\b")
PRIVATE_ATTRS = {"_tracing_client", "ManagedSessionMaker", "InMemoryTraceManager", "_get_store",
                 "_infer_schema", "SqlAssessments", "SqlTraceInfo"}
RESERVED_KEY = re.compile(r"^mlflow\.(?!db$)[a-z]+[A-Za-z]*(\.[a-zA-Z]+)*$")
COMPAT = "nova_mlflow.tracking._compat"


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported dotted name) for every import in the module, function-level too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append((node.lineno, mod))
            out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
    return out


def _internal_module(target: str) -> str | None:
    hits = [m for m in MODULES if target == m or target.startswith(m + ".")]
    return max(hits, key=len) if hits else None


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for m, p in MODULES.items():
        for _, t in _imports(m, p):
            k = _internal_module(t)
            if k and k != m and not (k.startswith(m + ".") or m.startswith(k + ".")):
                edges[m].add(k)
    return edges


def test_every_part_has_a_layer():
    parts = {_part(m) for m in MODULES} - {"__init__"}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS: {sorted(parts - set(LAYERS))}"


def test_no_import_cycles():
    edges = _edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_imports_point_down():
    up = []
    for m, p in MODULES.items():
        src = _part(m)
        if src == "__init__":
            continue
        for line, t in _imports(m, p):
            k = _internal_module(t)
            if k is None or _part(k) == "__init__":
                continue
            if LAYERS[_part(k)] > LAYERS[src]:
                up.append(f"{p.relative_to(PKG.parent)}:{line}: {m} ({LAYERS[src]}) imports "
                          f"{k} ({LAYERS[_part(k)]})")
    assert not up, "imports pointing up a layer:\n" + "\n".join(up)


def test_mlflow_only_under_tracking_and_internals_only_in_compat():
    bad = []
    for m, p in MODULES.items():
        in_tracking = m == "nova_mlflow.tracking" or m.startswith("nova_mlflow.tracking.")
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for line, t in _imports(m, p):
            if t == "mlflow" or t.startswith("mlflow."):
                if not in_tracking:
                    bad.append(f"{p.name}:{line}: imports {t} outside tracking/")
                elif m != COMPAT and PRIVATE_MODULES.search(t):
                    bad.append(f"{p.name}:{line}: MLflow internal {t} outside _compat.py")
        if m == COMPAT:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRS:
                bad.append(f"{p.name}:{node.lineno}: MLflow internal .{node.attr}")
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and RESERVED_KEY.match(node.value)):
                bad.append(f"{p.name}:{node.lineno}: reserved MLflow key {node.value!r} "
                           "written outside _compat.py")
    assert not bad, "\n".join(bad)


def test_click_only_in_the_cli():
    bad = [f"{p.name}:{line}" for m, p in MODULES.items() if m != "nova_mlflow.cli"
           for line, t in _imports(m, p) if t == "click" or t.startswith("click.")]
    assert not bad, f"click imported outside cli.py: {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_is_short(module):
    n = MODULES[module].read_text(encoding="utf-8").count("\n") + 1
    assert n <= 400, f"{MODULES[module].relative_to(PKG.parent)} has {n} lines (> 400)"


def test_the_checks_catch_what_they_should(tmp_path):
    """The checks themselves can fail: a cycle, an upward import and a stray internal."""
    mods = {"nova_mlflow.metrics.a": "from nova_mlflow.pipeline import run\n",
            "nova_mlflow.tracking.b": "from mlflow.tracing.trace_manager import X\n"
                                      "TAG = 'mlflow.loggedArtifacts'\n"}
    for name, src in mods.items():
        p = tmp_path / (name.replace(".", "/") + ".py")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(src)
        imports = _imports(name, p)
        if name.endswith(".a"):
            k = _internal_module(imports[0][1])
            assert k is not None and LAYERS[_part(k)] > LAYERS[_part(name)]
        else:
            assert any(PRIVATE_MODULES.search(t) for _, t in imports)
            consts = [n.value for n in ast.walk(ast.parse(src))
                      if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            assert any(RESERVED_KEY.match(c) for c in consts)
