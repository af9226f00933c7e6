"""Imports point one way: the package layers and the engine's component packages have no cycle.

Why a test: a cycle between packages is invisible until the day an import order changes and a
module sees a half-initialised neighbour; a layer broken once (strategies importing the engine)
stops the pure strategy math from running in a shard without the driver. Every module's imports
are read with `ast` (module level, inside functions and under TYPE_CHECKING alike: each is a
dependency), so nothing has to be imported to be checked.

Rules:
- `strategies/` imports neither `engine/` nor `cluster/` (pure math, shared by both);
- `cluster/` does not import `engine/` (the shards run without the driver);
- `simulator/` imports neither `engine/` nor `cluster/` (it stands in for the venue);
- `engine/enums.py`, the engine's shared bottom, imports no engine component package;
- no import cycle between engine's subpackages (`engine/{venue,oms,execution,risk,tick,...}`,
  every subpackage found, so a new one is covered too). A cycle that cannot be broken yet goes
  in KNOWN_CYCLES with a comment saying why; any other cycle fails.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The component packages of engine/ named in the README layout (others found on disk are checked too).
COMPONENTS = frozenset({
    "venue", "oms", "execution", "risk", "tick", "marketdata", "storage", "sidecar", "alerts",
    "runtime", "config", "daemon", "tools",
})  # fmt: skip

# top-level package -> top-level packages it must not import
FORBIDDEN: Mapping[str, frozenset[str]] = {
    "strategies": frozenset({"engine", "cluster"}),
    "cluster": frozenset({"engine"}),
    "simulator": frozenset({"engine", "cluster"}),
}

# Cycles between engine subpackages tolerated for now, each as the frozenset of its packages.
# The older ones (config<->execution, execution<->risk, risk<->tick) were broken by moving the
# fill-model parameters to engine/config/fill_params.py and the verdicts to
# engine/execution/verdicts.py, and by deleting the unused risk->decision-log helper.
# web<->chat was broken by moving the operator-surfaces hook (which starts both) into engine/daemon/.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, as seen from `module` (file `path`, line `line`)."""

    module: str
    target: str
    path: str  # relative to the repository root
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    """Yield every module an import in `path` names (relative imports resolved, `from m import n`
    yields both `m` and `m.n`, since `n` may be a submodule)."""
    module, rel = module_name(path, root), str(path.relative_to(root))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, rel, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield Import(module, target, rel, node.lineno)
            for alias in node.names:
                yield Import(module, f"{target}.{alias.name}", rel, node.lineno)


def all_imports(root: Path, packages: tuple[str, ...]) -> list[Import]:
    paths = [path for top in packages for path in sorted((root / top).rglob("*.py"))]
    return [imp for path in paths for imp in imports_of(path, root)]


def layer_violations(imports: list[Import], forbidden: Mapping[str, frozenset[str]]) -> list[str]:
    out = []
    for imp in imports:
        top, target_top = imp.module.split(".")[0], imp.target.split(".")[0]
        if target_top in forbidden.get(top, frozenset()):
            out.append(f"{imp.where()}: {imp.module} imports {imp.target}")
    return sorted(set(out))


def subpackage_edges(
    imports: list[Import], root: Path, top: str = "engine"
) -> dict[tuple[str, str], list[Import]]:
    """Return {(from_subpackage, to_subpackage): the imports behind that edge} inside package `top`."""
    edges: dict[tuple[str, str], list[Import]] = {}
    for imp in imports:
        src, dst = imp.module.split("."), imp.target.split(".")
        if len(src) < 3 or len(dst) < 2 or src[0] != top or dst[0] != top:
            continue  # a top-level module (engine/enums.py, entry-point shims) is no component
        if src[1] != dst[1] and (root / top / dst[1]).is_dir():
            edges.setdefault((src[1], dst[1]), []).append(imp)
    return edges


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph.get(todo.pop(), set()) - seen:
            seen.add(w)
            todo.append(w)
    return seen


def cycles(edges: Mapping[tuple[str, str], object]) -> list[frozenset[str]]:
    """Return every set of packages that import each other round a loop (strongly connected, > 1)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    reach = {v: reachable(graph, v) for v in graph}
    # v is on a loop when it reaches itself; its loop is everything it reaches that reaches it back.
    found = {frozenset(w for w in reach[v] if v in reach.get(w, set())) for v in graph if v in reach[v]}
    return sorted(found, key=sorted)


def describe(cycle: frozenset[str], edges: Mapping[tuple[str, str], list[Import]]) -> str:
    lines = [f"cycle between engine/{{{', '.join(sorted(cycle))}}}:"]
    for (a, b), imps in sorted(edges.items()):
        if a in cycle and b in cycle:
            lines += [f"  {a} -> {b}: {imp.where()} imports {imp.target}" for imp in imps]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports(ROOT, ("engine", "cluster", "strategies", "simulator"))


def test_the_component_packages_exist() -> None:
    on_disk = {p.parent.name for p in (ROOT / "engine").glob("*/__init__.py")}
    assert on_disk >= COMPONENTS, f"README layout names missing packages: {sorted(COMPONENTS - on_disk)}"


def test_strategies_cluster_and_simulator_do_not_import_upwards(imports: list[Import]) -> None:
    violations = layer_violations(imports, FORBIDDEN)
    assert not violations, "imports against the layers:\n" + "\n".join(violations)


def test_engine_enums_imports_no_component(imports: list[Import]) -> None:
    bad = [f"{i.where()}: {i.target}" for i in imports
           if i.module == "engine.enums" and i.target.split(".")[:1] == ["engine"]]  # fmt: skip
    assert not bad, "engine/enums.py is the shared bottom of engine/:\n" + "\n".join(bad)


def test_no_new_cycle_between_engine_packages(imports: list[Import]) -> None:
    edges = subpackage_edges(imports, ROOT)
    found = cycles(edges)
    new = [c for c in found if c not in KNOWN_CYCLES]
    assert not new, "\n".join(describe(c, edges) for c in new)
    stale = KNOWN_CYCLES - set(found)
    assert not stale, f"KNOWN_CYCLES lists cycles that are gone, remove them: {sorted(map(sorted, stale))}"


# --- the checker itself can fail -----------------------------------------------------------------


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_checker_finds_a_cycle_through_a_lazy_relative_import(tmp_path: Path) -> None:
    _write(tmp_path, "engine/__init__.py", "")
    _write(tmp_path, "engine/a/__init__.py", "")
    _write(tmp_path, "engine/a/x.py", "from engine.b import y\n")
    _write(tmp_path, "engine/b/__init__.py", "")
    _write(tmp_path, "engine/b/y.py", "def f():\n    from ..c.z import g\n")
    _write(tmp_path, "engine/c/__init__.py", "")
    _write(tmp_path, "engine/c/z.py", "import typing\nif typing.TYPE_CHECKING:\n    import engine.a.x\n")
    _write(tmp_path, "engine/d/__init__.py", "")
    _write(tmp_path, "engine/d/w.py", "import engine.a.x\n")
    edges = subpackage_edges(all_imports(tmp_path, ("engine",)), tmp_path)
    assert cycles(edges) == [frozenset({"a", "b", "c"})]
    assert ("d", "a") in edges and "engine/c/z.py:3" in describe(frozenset({"a", "b", "c"}), edges)


def test_checker_flags_a_layer_violation(tmp_path: Path) -> None:
    _write(tmp_path, "strategies/__init__.py", "")
    _write(tmp_path, "strategies/s.py", "from engine.tick import engine as e\n")
    _write(tmp_path, "cluster/__init__.py", "")
    _write(tmp_path, "cluster/k.py", "import strategies.s\n")
    violations = layer_violations(all_imports(tmp_path, ("strategies", "cluster")), FORBIDDEN)
    assert violations and all("strategies.s imports engine.tick" in v for v in violations)
