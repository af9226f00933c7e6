"""Shard health as Ray's dashboard sees it: which `aiq-shard-<i>` actors are ALIVE, and where.

Reads the dashboard's state API (`/api/v0/actors`, `/api/v0/nodes`, what the Actors and Cluster
pages show) over HTTP. That works from any process that can reach the dashboard, and the process
does not need to join the cluster, so an operator's shell or a monitoring cron can run it:

    python -m cluster.cluster_health --dashboard http://127.0.0.1:8265 --namespace aiq --shards 2

It exits 0 when every expected shard is ALIVE and 1 otherwise, and prints JSON with --json.

Token auth (Ray 2.60 turns it on by default): with RAY_AUTH_MODE=token the dashboard answers
401 unless the request has `Authorization: Bearer <token>`. The token comes from the same places
Ray reads it: RAY_AUTH_TOKEN, then the file named by RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token.
The token is sent only in that header and is never logged or printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

SHARD_PREFIX = "aiq-shard-"  # cluster.pool.ACTOR_NAME_FORMAT without its index
DEFAULT_DASHBOARD = "http://127.0.0.1:8265"
_LIST_LIMIT = 10_000


class ActorState(StrEnum):
    """Actor states of Ray's state API (gcs.proto ActorTableData.ActorState)."""

    DEPENDENCIES_UNREADY = "DEPENDENCIES_UNREADY"
    PENDING_CREATION = "PENDING_CREATION"
    ALIVE = "ALIVE"
    RESTARTING = "RESTARTING"
    DEAD = "DEAD"


# When one name has several rows (a killed pool leaves DEAD rows behind under the same name),
# the row that best describes the name now wins: ALIVE, then on its way back, then DEAD.
_PRECEDENCE = {ActorState.ALIVE: 0, ActorState.RESTARTING: 1, ActorState.PENDING_CREATION: 2,
               ActorState.DEPENDENCIES_UNREADY: 3, ActorState.DEAD: 4}


class DashboardError(RuntimeError):
    """The dashboard could not be reached or answered something other than the state API."""


class DashboardAuthError(DashboardError):
    """The dashboard refused the request (401/403): token missing, wrong, or RAY_AUTH_MODE mismatch."""


@dataclass(frozen=True, slots=True)
class ActorRow:
    name: str
    namespace: str
    state: ActorState
    node_id: str | None
    pid: int | None
    class_name: str
    num_restarts: int | None


@dataclass(frozen=True, slots=True)
class NodeRow:
    node_id: str
    node_ip: str
    is_head: bool
    state: str
    resources_total: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ShardHealth:
    """The expected shards, by state and by node. `healthy` = every expected shard ALIVE."""

    namespace: str
    expected: tuple[str, ...]
    alive: tuple[str, ...]
    not_alive: Mapping[str, str]  # name -> state, for names present but not ALIVE
    missing: tuple[str, ...]  # expected names the dashboard does not know at all
    node_of: Mapping[str, str | None]  # ALIVE shard name -> node id
    on_head: tuple[str, ...]  # ALIVE shards placed on the head node (should be empty in a cluster)
    restarts: Mapping[str, int | None]

    @property
    def healthy(self) -> bool:
        return not self.missing and not self.not_alive

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["healthy"] = self.healthy
        return out


def auth_token(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str | None:
    """Return the Ray auth token when RAY_AUTH_MODE=token, else None (auth off: send nothing)."""
    env = os.environ if environ is None else environ
    if env.get("RAY_AUTH_MODE", "").strip().lower() != "token":
        return None
    direct = env.get("RAY_AUTH_TOKEN", "").strip()
    if direct:
        return direct
    path_name = env.get("RAY_AUTH_TOKEN_PATH", "").strip()
    path = Path(path_name) if path_name else (home or Path.home()) / ".ray" / "auth_token"
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise DashboardAuthError(f"RAY_AUTH_MODE=token but no token readable at {path}") from exc
    if not token:
        raise DashboardAuthError(f"RAY_AUTH_MODE=token but {path} is empty")
    return token


class DashboardClient:
    """Minimal reader of the dashboard state API (stdlib HTTP; no Ray import needed)."""

    def __init__(self, url: str = DEFAULT_DASHBOARD, *, token: str | None = None,
                 timeout_secs: float = 10.0) -> None:
        if "://" not in url:
            url = f"http://{url}"
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout_secs

    def _get(self, path: str, params: Mapping[str, str | int]) -> Any:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{self.url}{path}?{query}")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise DashboardAuthError(
                    f"dashboard {self.url} refused {path} ({exc.code}); set RAY_AUTH_MODE=token and "
                    "provide the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
                ) from exc
            raise DashboardError(f"dashboard {self.url}{path} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DashboardError(f"dashboard {self.url}{path} unreachable or not JSON: {exc}") from exc
        try:
            if not body["result"]:
                raise DashboardError(f"dashboard {path} failed: {body.get('msg')}")
            return body["data"]["result"]["result"]
        except (KeyError, TypeError) as exc:
            raise DashboardError(f"dashboard {path}: unexpected payload shape") from exc

    def actors(self, namespace: str | None = None) -> list[ActorRow]:
        """Return every actor row (of `namespace` when given), DEAD rows included."""
        params: dict[str, str | int] = {"limit": _LIST_LIMIT, "detail": "true"}
        if namespace is not None:
            params.update(filter_keys="ray_namespace", filter_predicates="=", filter_values=namespace)
        return [_actor_row(raw) for raw in self._get("/api/v0/actors", params)]

    def nodes(self) -> list[NodeRow]:
        rows = self._get("/api/v0/nodes", {"limit": _LIST_LIMIT, "detail": "true"})
        return [NodeRow(node_id=r["node_id"], node_ip=r.get("node_ip", ""),
                        is_head=bool(r.get("is_head_node")), state=r.get("state", ""),
                        resources_total=r.get("resources_total") or {})
                for r in rows]


def _actor_row(raw: Mapping[str, Any]) -> ActorRow:
    try:
        state = ActorState(raw["state"])
    except (KeyError, ValueError) as exc:
        raise DashboardError(f"actor row with unknown state: {raw.get('state')!r}") from exc
    restarts = raw.get("num_restarts")
    return ActorRow(name=raw.get("name") or "", namespace=raw.get("ray_namespace") or "", state=state,
                    node_id=raw.get("node_id") or None, pid=raw.get("pid") or None,
                    class_name=raw.get("class_name") or "",
                    num_restarts=int(restarts) if restarts is not None else None)


def summarize(actors: Sequence[ActorRow], nodes: Sequence[NodeRow], namespace: str,
              n_shards: int, prefix: str = SHARD_PREFIX) -> ShardHealth:
    """Fold state-API rows into the health of shards `<prefix>0 .. <prefix>{n_shards-1}`. Pure."""
    expected = tuple(f"{prefix}{i}" for i in range(n_shards))
    best: dict[str, ActorRow] = {}
    for row in actors:
        if row.namespace != namespace or row.name not in expected:
            continue
        current = best.get(row.name)
        if current is None or _PRECEDENCE[row.state] < _PRECEDENCE[current.state]:
            best[row.name] = row
    heads = {n.node_id for n in nodes if n.is_head}
    alive = tuple(n for n in expected if n in best and best[n].state is ActorState.ALIVE)
    return ShardHealth(
        namespace=namespace,
        expected=expected,
        alive=alive,
        not_alive={n: best[n].state.value for n in expected if n in best and n not in alive},
        missing=tuple(n for n in expected if n not in best),
        node_of={n: best[n].node_id for n in alive},
        on_head=tuple(n for n in alive if best[n].node_id in heads),
        restarts={n: best[n].num_restarts for n in expected if n in best},
    )


def shard_health(client: DashboardClient, namespace: str, n_shards: int,
                 prefix: str = SHARD_PREFIX) -> ShardHealth:
    """Ask the dashboard once for actors and nodes; raises DashboardError / DashboardAuthError."""
    return summarize(client.actors(namespace), client.nodes(), namespace, n_shards, prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Are the shard actors ALIVE? (Ray dashboard state API)")
    parser.add_argument("--dashboard", default=os.environ.get("RAY_DASHBOARD_URL", DEFAULT_DASHBOARD))
    parser.add_argument("--namespace", default="aiq")
    parser.add_argument("--shards", type=int, required=True, help="number of shards the pool runs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        client = DashboardClient(args.dashboard, token=auth_token())
        health = shard_health(client, args.namespace, args.shards)
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(health.to_json()))
    else:
        for name in health.expected:
            state = "ALIVE" if name in health.alive else health.not_alive.get(name, "MISSING")
            node = health.node_of.get(name) or "-"
            print(f"{name}\t{state}\tnode={node}\trestarts={health.restarts.get(name)}")
    return 0 if health.healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
