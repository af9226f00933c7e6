"""Under CI=true a pytest run in which any test skipped exits non-zero (tests/fixtures/ci.py).

Runs a throw-away test directory in a pytest subprocess that loads the project's plugin, once
with CI=true and once without: the same skip fails the first run and is only reported in the second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.support import REPO_ROOT

CONFTEST = 'pytest_plugins = ["tests.fixtures.ci"]\n'
TESTS = '''
import pytest

def test_runs():
    assert True

def test_needs_a_tool():
    pytest.skip("frobnicator not installed")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False
'''


def _pytest(where: Path, ci: str | None, extra: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *extra, str(where)]
    return subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, timeout=120, check=False)


# Serial, and on pytest-xdist workers as the README's command runs it: there the skip happens in a
# worker and the guard in the controller must still see it.
@pytest.mark.parametrize("extra", [[], ["-n", "2", "--dist", "loadfile"]], ids=["serial", "xdist"])
def test_a_skip_fails_the_run_under_ci_and_not_elsewhere(tmp_path: Path, extra: list[str]) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_sample.py").write_text(TESTS)
    strict = _pytest(tmp_path, "true", extra)
    assert strict.returncode == 1, strict.stdout
    assert "CI=true: 1 test(s) skipped, which fails the run" in strict.stdout
    listed = strict.stdout.split("which fails the run")[1]
    assert "test_sample.py::test_needs_a_tool" in listed and "test_known_bug" not in listed
    relaxed = _pytest(tmp_path, None, extra)
    assert relaxed.returncode == 0, relaxed.stdout
    assert "frobnicator not installed" in relaxed.stdout and "which fails the run" not in relaxed.stdout
