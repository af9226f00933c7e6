"""The parallel plan (tests/fixtures/xdist_plan.py) really applies under `-n 3 --dist loadfile`.

A plan that silently falls back to xdist's own order still passes every test, only slower and
with Ray clusters started side by side; so a throw-away tree with the plan's file names runs in a
pytest subprocess, and its verbose output must show the Ray-cluster files on one worker and the
slow files started before the rest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bench.support import REPO_ROOT
from tests.fixtures.xdist_plan import RAY_CLUSTER_FILES, SLOW_FILES

BODY = "def test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
OTHERS = ("tests/unit/test_a.py", "tests/unit/test_b.py", "tests/unit/test_c.py")


def test_ray_cluster_files_share_one_worker_and_slow_files_go_first(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.fixtures.xdist_plan"]\n')
    names = (*OTHERS, *RAY_CLUSTER_FILES, *SLOW_FILES[:3])  # collection order puts the plan's last
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(BODY)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-n", "3", "--dist", "loadfile",
            "--rootdir", str(tmp_path), "tests"]  # fmt: skip
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    runs = re.findall(r"\[(gw\d)\] \[\s*\d+%\] PASSED (\S+)::", done.stdout)
    assert len(runs) == 2 * len(names), done.stdout[-3000:]
    workers = {path: worker for worker, path in runs}
    assert len({workers[path] for path in RAY_CLUSTER_FILES}) == 1, runs
    # each worker starts on one of the first three units: the Ray clusters and the two slowest files
    first = {worker: path for worker, path in reversed(runs)}
    assert set(first.values()) <= {*RAY_CLUSTER_FILES, *SLOW_FILES[:2]} and len(first) == 3, runs
