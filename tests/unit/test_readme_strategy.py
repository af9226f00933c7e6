"""README "Write your own strategy" is the tested example: its code is the file the tests run, its
YAML loads, and its commands name that strategy and work (check_parity exits 0 on real candles)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from strategies.config import load_yaml_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "tests" / "data" / "user_strategy" / "my_strategies" / "ema_cross.py"


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Write your own strategy\n(.*?)^## ", text, re.S | re.M)
    assert match, "README lacks the 'Write your own strategy' section"
    return match.group(1)


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", _section(), re.S)


def test_readme_example_is_the_tested_file_verbatim() -> None:
    (code,) = _blocks("python")
    assert code == EXAMPLE.read_text()


def test_readme_yaml_loads_and_resolves_every_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE.parents[1]))
    (yaml_text,) = _blocks("yaml")
    plan = load_yaml_text(yaml_text).plan
    assert plan.primary_ref("ETH") == "my_strategies.ema_cross:EmaCross"
    assert plan.primary_ref("BTC") == "mei_alpha_v1"
    assert len(plan.shadows_for("ETH")) == 3


def test_readme_check_parity_command_passes() -> None:
    (bash,) = _blocks("bash")
    (command,) = [ln for ln in bash.splitlines() if "strategies.check_parity" in ln]
    args = command.split()[1:]
    files = sorted(str(p) for p in (ROOT / "tests" / "data" / "ohlcv").glob("*.csv"))
    argv = [sys.executable, *[a for a in args if "*" not in a], *files]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLE.parents[1])])}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["signal_mismatches"] == 0 and report["max_rel_err"] == 0.0 and report["signals"] > 0
    assert any("engine.replay" in ln and "--strategy my_strategies.ema_cross:EmaCross" in ln
               for ln in bash.splitlines())
