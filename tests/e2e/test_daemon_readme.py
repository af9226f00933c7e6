"""The README's run command, exactly as written (second line of its first bash block), is the paper
daemon, offline: it starts the simulator, embedded Redis and embedded Ray, and prints one readable
status line per tick. Only the state directory is redirected, so the test leaves no files behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATUS = re.compile(
    r"^\S+Z INFO \[paper\] engine\.daemon[.\w]*: tick=(\d+) symbols=\d+ evaluated=\d+ open_pos=\d+ .* "
    r"cash=[\d.]+ equity=[\d.]+ config=\w+ .*total=[\d.]+ms$"
)


def readme_run_command() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README has no bash block"
    lines = [ln.strip() for ln in block.group(1).strip().splitlines()]
    assert len(lines) >= 2
    return lines[1]


def test_readme_second_command_is_the_offline_paper_daemon():
    command = readme_run_command()
    assert command == "AI_QUANT_VENUE=simulator .venv/bin/python -m engine.daemon"


@pytest.mark.slow
def test_readme_run_command_prints_a_status_line_per_tick(tmp_path):
    command = readme_run_command()
    if not (ROOT / ".venv" / "bin" / "python").exists():
        command = command.replace(".venv/bin/python", sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    env["AI_QUANT_STATE_DIR"] = str(tmp_path / "state")
    env["AI_QUANT_WEB_PORT"] = "0"  # parallel tests' daemons never fight over the page's port 8765
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", command], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            ticks: list[int] = []
            while time.monotonic() < deadline and proc.poll() is None:
                lines = log_path.read_text(errors="replace").splitlines()
                ticks = [int(m.group(1)) for ln in lines if (m := STATUS.match(ln))]
                if len(ticks) >= 4:
                    break
                time.sleep(0.3)
            assert ticks[:4] == [1, 2, 3, 4], log_path.read_text()[-3000:]
            text = log_path.read_text()
            assert "simulator ready" in text and "embedded redis" in text and "ray embedded" in text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
