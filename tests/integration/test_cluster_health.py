"""cluster.cluster_health: folding state-API rows, Ray's token lookup, and the HTTP contract.

The real dashboard is exercised by test_cluster_multinode / test_cluster_head_attach; here a
loopback HTTP server plays a token-protected dashboard so the 401 path and the Bearer header are
checked without starting Ray.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from cluster.cluster_health import (
    ActorRow,
    ActorState,
    DashboardAuthError,
    DashboardClient,
    DashboardError,
    NodeRow,
    auth_token,
    main,
    shard_health,
    summarize,
)

HEAD, W1 = "n-head", "n-w1"
NODES = [NodeRow(HEAD, "127.0.0.1", True, "ALIVE"), NodeRow(W1, "127.0.0.1", False, "ALIVE")]


def row(name: str, state: ActorState, node: str | None = W1, namespace: str = "aiq") -> ActorRow:
    return ActorRow(name=name, namespace=namespace, state=state, node_id=node, pid=1,
                    class_name="SignalShard", num_restarts=0)


def test_summarize_prefers_the_live_row_of_a_name_and_reports_missing_and_head_placement() -> None:
    actors = [
        row("aiq-shard-0", ActorState.DEAD),  # an earlier pool's actor under the same name
        row("aiq-shard-0", ActorState.ALIVE),
        row("aiq-shard-1", ActorState.ALIVE, node=HEAD),
        row("aiq-shard-2", ActorState.DEAD),
        row("aiq-shard-2", ActorState.RESTARTING),
        row("aiq-shard-3", ActorState.ALIVE, namespace="other"),  # another engine's namespace
        row("something-else", ActorState.ALIVE),
    ]
    health = summarize(actors, NODES, "aiq", 4)
    assert health.alive == ("aiq-shard-0", "aiq-shard-1")
    assert health.not_alive == {"aiq-shard-2": "RESTARTING"}
    assert health.missing == ("aiq-shard-3",)
    assert health.on_head == ("aiq-shard-1",)
    assert health.node_of == {"aiq-shard-0": W1, "aiq-shard-1": HEAD}
    assert not health.healthy


@pytest.mark.parametrize("state", list(ActorState))
def test_summarize_only_alive_is_healthy(state: ActorState) -> None:
    health = summarize([row("aiq-shard-0", state)], NODES, "aiq", 1)
    assert health.healthy == (state is ActorState.ALIVE)


def test_auth_token_follows_rays_lookup_order(tmp_path: Path) -> None:
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-home\n")
    (tmp_path / "tok").write_text("from-path")
    assert auth_token({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "x"}, tmp_path) is None
    assert auth_token({}, tmp_path) is None
    assert auth_token({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "direct",
                       "RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}, tmp_path) == "direct"
    by_path = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "tok")}
    assert auth_token(by_path, tmp_path) == "from-path"
    assert auth_token({"RAY_AUTH_MODE": "TOKEN"}, tmp_path) == "from-home"
    with pytest.raises(DashboardAuthError, match="no token readable"):
        auth_token({"RAY_AUTH_MODE": "token"}, tmp_path / "nowhere")


TOKEN = "s3cret-token"
ACTORS = [
    {"name": "aiq-shard-0", "ray_namespace": "aiq", "state": "ALIVE", "node_id": W1, "pid": 11,
     "class_name": "SignalShard", "num_restarts": "2"},
    {"name": "aiq-shard-1", "ray_namespace": "aiq", "state": "PENDING_CREATION", "node_id": None, "pid": 0,
     "class_name": "SignalShard", "num_restarts": "0"},
]


def fake_dashboard(seen: list[dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    """A handler answering /api/v0/actors and /nodes like Ray 2.60, only with the Bearer token."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            seen.append({"path": url.path, "query": parse_qs(url.query)})
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                self.wfile.write(b"Unauthorized: Missing authentication token")
                return
            if url.path == "/api/v0/actors":
                rows: list[dict[str, Any]] = ACTORS
            elif url.path == "/api/v0/nodes":
                rows = [{"node_id": HEAD, "node_ip": "127.0.0.1", "is_head_node": True, "state": "ALIVE",
                         "resources_total": {}},
                        {"node_id": W1, "node_ip": "127.0.0.1", "is_head_node": False, "state": "ALIVE",
                         "resources_total": {"CPU": 1.0}}]
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = {"result": {"total": len(rows), "result": rows}}
            body = json.dumps({"result": True, "msg": "", "data": data})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_args: Any) -> None:
            return

    return Handler


@pytest.fixture
def dashboard() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), fake_dashboard(seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_client_sends_the_bearer_token_and_filters_by_namespace(dashboard: tuple[str, list[Any]]) -> None:
    url, seen = dashboard
    health = shard_health(DashboardClient(url, token=TOKEN), "aiq", 2)
    assert health.alive == ("aiq-shard-0",)
    assert health.not_alive == {"aiq-shard-1": "PENDING_CREATION"}
    assert health.restarts == {"aiq-shard-0": 2, "aiq-shard-1": 0}
    assert health.on_head == ()
    actors_query = next(s["query"] for s in seen if s["path"] == "/api/v0/actors")
    assert actors_query["filter_keys"] == ["ray_namespace"] and actors_query["filter_values"] == ["aiq"]


def test_client_without_token_gets_an_auth_error_naming_the_fix(dashboard: tuple[str, list[Any]]) -> None:
    with pytest.raises(DashboardAuthError, match="RAY_AUTH_MODE=token"):
        DashboardClient(dashboard[0]).actors()


def test_client_unreachable_dashboard_is_a_dashboard_error() -> None:
    from engine.runtime.redis_server import free_port

    with pytest.raises(DashboardError, match="unreachable"):
        DashboardClient(f"127.0.0.1:{free_port()}", timeout_secs=2).nodes()


def test_cli_exit_codes_and_token_never_printed(dashboard: tuple[str, list[Any]],
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url = dashboard[0]
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", TOKEN)
    assert main(["--dashboard", url, "--shards", "1", "--json"]) == 0
    assert main(["--dashboard", url, "--shards", "2", "--json"]) == 1  # shard 1 not ALIVE
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong")
    assert main(["--dashboard", url, "--shards", "1"]) == 2
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and "wrong" not in out.out + out.err
