"""Where bench.scale's processes run and what CPU they use (split out of bench/scale.py).

Pinning: each Ray worker node's process tree (raylet, agents, workers, every thread) and, with
`--head-cores layout`, the head, the driver and Redis, pinned by CPU affinity; `check_pinning`
proves from /proc and the dashboard's state API that the shards ran where the layout says (the
bench exits 1 otherwise). Accounting: `process_groups` names our processes by owner and
`CpuWindows` sums each group's CPU time inside the timed windows only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from bench.support import cpu_ms_used, descendants, machine_busy_ms, proc_table, thread_affinity
from cluster.cluster_health import DashboardClient, auth_token


class PinningError(RuntimeError):
    """A pinned layout did not run as claimed (shards on one node, or a process off its core)."""


def _set_all_threads(cores: set[int], pid: int | None = None) -> dict[int, set[int]]:
    """Pin every thread of process `pid` (default: this one) to `cores`; return their old masks."""
    before: dict[int, set[int]] = {}
    for tid in (int(t) for t in os.listdir(f"/proc/{pid or os.getpid()}/task")):
        with contextlib.suppress(OSError):
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cores)
    return before


def node_roots(node: Any) -> list[int]:
    """The pids of the processes a Ray node started itself (raylet, GCS, agents...)."""
    return [p.process.pid for infos in node.all_processes.values() for p in infos if p.process is not None]


def pin_tree(roots: list[int], cores: set[int]) -> int:
    """Pin every thread of `roots` and of every process below them to `cores`; return how many
    processes. Processes and threads they start later inherit the mask."""
    tree = descendants(proc_table(), roots)
    for pid in tree:
        _set_all_threads(cores, pid)
    return len(tree)


def pin_workers(cluster: Any) -> None:
    """(Re-)pin each worker node's process tree to its cores. Run once the nodes are up and again
    once the shards are: a worker forked while the tree was walked would otherwise escape."""
    for node, pin in cluster.aiq_nodes:
        if pin is not None:
            pin_tree(node_roots(node), pin)


def pin_head(cluster: Any, cores: set[int], redis_pid: int, stack: contextlib.ExitStack) -> None:
    """Confine the head node's process tree, every thread of this driver and Redis to `cores`.

    Done once the cluster is up (a node started on one core of a loaded box can miss Ray's fixed
    30 s start-up deadline); threads and processes they start later inherit the mask. The
    driver's and Redis's old masks come back when `stack` closes (the head dies with the cluster).
    """
    pin_tree(node_roots(cluster.head_node), cores)
    for pid in (os.getpid(), redis_pid):
        for tid, mask in _set_all_threads(cores, pid).items():
            stack.callback(_restore_mask, tid, mask)


def _restore_mask(tid: int, mask: set[int]) -> None:
    with contextlib.suppress(OSError):  # the thread may be gone
        os.sched_setaffinity(tid, mask)


def dashboard_url(cluster: Any) -> str:
    url = cluster.webui_url or ""
    return url if url.startswith("http") else f"http://{url}"


def process_groups(cluster: Any, redis_pid: int) -> dict[str, list[int]]:
    """Our processes by owner: the head node's tree, each worker node's tree (raylet, its workers
    and their children), this driver alone, Redis. Resolved once the shards are up."""
    table = proc_table()

    def tree(node: Any) -> list[int]:
        return sorted(descendants(table, node_roots(node)))
    groups = {"head": tree(cluster.head_node)}
    groups.update((f"node_{i}", tree(node)) for i, (node, _pin) in enumerate(cluster.aiq_nodes))
    groups.update(driver=[os.getpid()], redis=[redis_pid])
    return groups


class CpuWindows:
    """CPU ms each process group and the whole machine used inside the timed windows only."""

    def __init__(self, groups: Mapping[str, list[int]]) -> None:
        self.groups = groups
        self._pids = sorted({p for pids in groups.values() for p in pids})
        self.used = dict.fromkeys(groups, 0.0)
        self.machine = 0.0
        self._open: tuple[dict[int, tuple[int, float]], float] | None = None

    def start(self) -> None:
        self._open = (proc_table(self._pids), machine_busy_ms())

    def stop(self) -> None:
        after, busy = proc_table(self._pids), machine_busy_ms()
        if self._open is None:
            raise RuntimeError("CpuWindows.stop() without start()")
        before, busy_before = self._open
        for name, pids in self.groups.items():
            self.used[name] += cpu_ms_used(before, after, pids)
        self.machine += busy - busy_before
        self._open = None

    def per_tick(self, ticks: int) -> dict[str, float]:
        out = {name: round(ms / ticks, 2) for name, ms in self.used.items()}
        out["machine_busy"] = round(self.machine / ticks, 2)
        out["other_processes"] = round((self.machine - sum(self.used.values())) / ticks, 2)
        return out


def observed_affinity(groups: Mapping[str, list[int]]) -> dict[str, list[int] | None]:
    """Per group, the union of the CPU masks of every thread of every live process in it."""
    out: dict[str, list[int] | None] = {}
    for name, pids in groups.items():
        masks = [m for m in (thread_affinity(p) for p in pids) if m is not None]
        out[name] = sorted({c for m in masks for c in m}) if masks else None
    return out


def check_pinning(cluster: Any, namespace: str, n_shards: int, groups: Mapping[str, list[int]],
                  head_pin: set[int] | None) -> dict[str, Any]:
    """Prove where the shards ran: one node per worker entry, distinct node ids when there are
    several, each shard in its node's process tree, every thread of every node process (and of
    the head, driver and Redis with `head_pin`) on the cores it was pinned to.

    Raises PinningError otherwise (the bench then exits 1: its numbers would mean nothing).
    """
    client = DashboardClient(dashboard_url(cluster), token=auth_token())
    rows = [r for r in client.actors(namespace) if r.state == "ALIVE" and r.name.startswith("aiq-shard-")]
    node_index = {node.node_id: i for i, (node, _pin) in enumerate(cluster.aiq_nodes)}
    shards = {r.name: {"node": f"node_{node_index[r.node_id]}" if r.node_id in node_index else None,
                       "node_id": r.node_id, "pid": r.pid,
                       "affinity": thread_affinity(r.pid) if r.pid else None} for r in rows}
    nodes = {v["node_id"] for v in shards.values()}
    want = len(cluster.aiq_nodes)
    if len(shards) != n_shards or len(nodes) != want:
        raise PinningError(f"{len(shards)} shards on {len(nodes)} node(s), wanted {n_shards} on {want}: "
                           f"{shards}")
    observed = observed_affinity(groups)
    pins = {f"node_{i}": sorted(pin or ()) for i, (_node, pin) in enumerate(cluster.aiq_nodes)}
    if head_pin is not None:
        pins.update((name, sorted(head_pin)) for name in ("head", "driver", "redis"))
    off = {name: (observed[name], cores) for name, cores in pins.items() if observed[name] != cores}
    off.update({name: (v["pid"], groups.get(v["node"] or "", [])) for name, v in shards.items()
                if v["pid"] not in groups.get(v["node"] or "", [])})
    if off:
        raise PinningError(f"processes not where they were pinned (observed, wanted): {off}")
    return {"distinct_nodes": len(nodes), "shards": shards, "pinned_to": pins, "observed_affinity": observed,
            "processes_per_group": {name: len(pids) for name, pids in groups.items()}}
