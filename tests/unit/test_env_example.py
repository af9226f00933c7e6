"""`.env.example` is the list of every `AI_QUANT_*` variable: each one the code reads is in it, and
each one in it is read by the code (a documented setting that nothing reads is a broken promise).

"Read by the code" = a string literal that is exactly a variable name (how every reader names one:
`env_int("AI_QUANT_X", ...)`, `ENV_X = "AI_QUANT_X"`), in the packages that run (engine, cluster,
strategies, simulator), plus the names the risk limits derive from their YAML keys.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engine.risk.limits import ENV_NAMES as RISK_ENV_NAMES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine", "cluster", "strategies", "simulator")
NAME = re.compile(r"AI_QUANT_[A-Z0-9_]*[A-Z0-9]")
EXAMPLE_LINE = re.compile(r"^#?\s*(AI_QUANT_[A-Z0-9_]+)=", re.MULTILINE)


def names_read_by_code() -> set[str]:
    names = set(RISK_ENV_NAMES)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if NAME.fullmatch(node.value):
                        names.add(node.value)
    return names


def names_in_example() -> set[str]:
    return set(EXAMPLE_LINE.findall((ROOT / ".env.example").read_text(encoding="utf-8")))


def test_every_variable_the_code_reads_is_in_env_example():
    missing = sorted(names_read_by_code() - names_in_example())
    assert not missing, f"read by the code but not documented in .env.example: {missing}"


def test_every_variable_in_env_example_is_read_by_the_code():
    unread = sorted(names_in_example() - names_read_by_code())
    assert not unread, f"documented in .env.example but read nowhere: {unread}"


def test_the_scan_finds_the_readers_it_claims_to():
    found = names_read_by_code()
    # one of each way a name is spelled: env helper call, module constant, derived risk name
    assert {"AI_QUANT_INTERVAL", "AI_QUANT_KILL_SWITCH", "AI_QUANT_RISK_MAX_DRAWDOWN_PCT"} <= found
    assert len(found) > 100
