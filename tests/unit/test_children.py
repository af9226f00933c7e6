"""engine.runtime.children: readiness by output line, clean stop, and failure when the child dies."""

from __future__ import annotations

import pytest

from engine.runtime.children import ChildProcess, ChildStartError


def test_child_ready_line_is_captured_and_stop_reaps() -> None:
    child = ChildProcess(
        "httpd",
        "http.server",
        ["0", "--bind", "127.0.0.1"],
        ready_pattern=r"port (\d+)",
    )
    child.start(ready_timeout_secs=20)
    assert child.alive()
    assert child.ready_match is not None and int(child.ready_match.group(1)) > 0
    code = child.stop()
    assert code is not None and not child.alive()


def test_child_that_exits_before_ready_raises() -> None:
    child = ChildProcess("bad", "json.tool", ["/nonexistent/file.json"], ready_pattern="never")
    with pytest.raises(ChildStartError, match="exited with code"):
        child.start(ready_timeout_secs=20)
