"""Helpers shared by the benchmarks and the tests (bench/ never imports tests/).

`percentile(values, q)` is the nearest-rank percentile every bench reports (p50 <= p90 <= max
holds for any sample size, which a truncating index does not give on two samples).

`start_simulator(args, log_dir)` starts ``python -m simulator --port 0 *args`` as a subprocess on
a free loopback port, waits for its ``listening on`` line and returns a `SimulatorProcess`
(URLs, the admin API, stop). tests/fixtures/sim_fixtures.py wraps it in pytest fixtures. The
simulator is strict about accounts by default (only funded accounts trade); unless `args` already
configure funding (`--fund ...` / `--fund-any ...`), this helper passes `--fund-any 10000
--schedule-cancel-min-volume 0`, the kindness the benches and most tests rely on (any address has
$10,000 and may arm scheduleCancel). Pass `--fund ADDRESS=USD` to test the strict venue. Unless
`args` set a `--ws-max-*` cap, it also passes the old WS caps (100 connections per IP, no
per-minute caps) instead of the venue's (10 connections, 30 new a minute, 2,000 messages a minute).

`/proc` readers for the benches that account CPU per process (bench.scale): `parse_proc_stat`
(pure: ppid and user+system CPU ms of one /proc/<pid>/stat text), `proc_table` (every process
now), `descendants` (a process tree from that table), `cpu_ms_used` (what a set of processes
used between two tables), `machine_busy_ms` (all cores) and `thread_affinity` (the union of
the CPU masks of all threads of a process: a thread started before a pin keeps its old mask, so
the process mask alone can lie).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]  # the project root: `python -m simulator` runs from here
START_TIMEOUT_SECS = 30.0
DEFAULT_FUND_ANY_USD = "10000"
STOP_TIMEOUT_SECS = 10.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def parse_proc_stat(text: str, clk_tck: int) -> tuple[int, float]:
    """(ppid, user + system CPU ms) from the text of a /proc/<pid>/stat file.

    The command name (field 2) may contain spaces and ')', so the fields are counted from the
    last ')': after it come state, ppid, ..., utime (14th field overall), stime (15th).
    """
    fields = text.rsplit(")", 1)[1].split()
    if len(fields) < 13:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    return int(fields[1]), (int(fields[11]) + int(fields[12])) * 1000.0 / clk_tck


def proc_table(pids: Iterable[int] | None = None) -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU ms so far) of every process now (or of `pids`); vanished ones are skipped."""
    clk = os.sysconf("SC_CLK_TCK")
    wanted = pids if pids is not None else (int(p) for p in os.listdir("/proc") if p.isdigit())
    table: dict[int, tuple[int, float]] = {}
    for pid in wanted:
        try:
            table[pid] = parse_proc_stat(Path(f"/proc/{pid}/stat").read_text(), clk)
        except (OSError, ValueError):
            continue  # exited between listdir and read
    return table


def descendants(table: Mapping[int, tuple[int, float]], roots: Iterable[int]) -> set[int]:
    """`roots` (those present in `table`) and every process below them in the tree."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def cpu_ms_used(before: Mapping[int, tuple[int, float]], after: Mapping[int, tuple[int, float]],
                pids: Iterable[int]) -> float:
    """CPU ms `pids` used from `before` to `after`. A pid born in between counts from 0; a pid
    gone by `after` counts nothing (its last share is lost: keep the window short)."""
    total = 0.0
    for pid in pids:
        if pid in after:
            total += after[pid][1] - (before[pid][1] if pid in before else 0.0)
    return total


def machine_busy_ms() -> float:
    """CPU time all cores spent busy so far (every process on the box, other users' too), ms."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) * 1000.0 / os.sysconf("SC_CLK_TCK")


def thread_affinity(pid: int) -> list[int] | None:
    """The union of the CPU masks of every thread of `pid`, sorted; None once it is gone."""
    cores: set[int] = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread may end while we look
                cores |= os.sched_getaffinity(int(tid))
    except OSError:
        return None
    return sorted(cores) or None


class SimulatorStartError(RuntimeError):
    pass


@dataclass
class SimulatorProcess:
    """A running simulator: URLs plus helpers for its loopback admin API."""

    proc: subprocess.Popen[str]
    base_url: str
    args: list[str]
    stderr_path: Path
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url[len("http"):] + "/ws"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def info(self, body: dict[str, Any], timeout: float = 10.0) -> requests.Response:
        """POST /info with ``body`` (raw response; callers check status)."""
        return self.session.post(self.base_url + "/info", json=body, timeout=timeout)

    def state(self) -> dict[str, Any]:
        """GET /admin/state: clock, counters (exchange_posts, info_posts, ...), faults."""
        return self._admin("GET", "state")

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """POST /admin/faults; e.g. set_faults(rest_error_rate=1.0) or set_faults(reset=True)."""
        return self._admin("POST", "faults", changes)["faults"]

    def advance(self, *, ms: int = 0, bars: int = 0) -> int:
        """POST /admin/advance: move the market clock forward; returns the new market time (ms)."""
        return self._admin("POST", "advance", {"ms": ms, "bars": bars})["now_ms"]

    def drop_ws(self) -> int:
        """POST /admin/drop_ws: abort every WS connection now; returns how many."""
        return self._admin("POST", "drop_ws")["dropped"]

    def fund(
        self, address: str, usd: float, *, volume_usd: float = 0.0, mode: str | None = None
    ) -> dict[str, Any]:
        """POST /admin/fund: deposit ``usd`` to ``address`` (and credit earlier traded volume; ``mode``
        "unified" / "standard" sets its account mode)."""
        body: dict[str, Any] = {"address": address, "usd": usd, "volume_usd": volume_usd}
        if mode is not None:
            body["mode"] = mode
        return self._admin("POST", "fund", body)

    def shock(self, coin: str, pct: float) -> dict[str, Any]:
        """POST /admin/shock: jump ``coin``'s price by ``pct`` percent now (mid_before, mid_after)."""
        return self._admin("POST", "shock", {"coin": coin, "pct": pct})

    def orders(self, user: str | None = None) -> list[dict[str, Any]]:
        """POST /admin/orders: every order the venue recorded (of ``user``), with its status."""
        return self._admin("POST", "orders", {} if user is None else {"user": user})["orders"]

    def _admin(self, method: str, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self.session.request(method, f"{self.base_url}/admin/{name}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        self.session.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_SECS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def start_simulator(args: list[str], log_dir: Path) -> SimulatorProcess:
    """Start ``python -m simulator --port 0 *args`` and wait for its listening line (adding
    ``--fund-any 10000`` when `args` configure no funding)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    if not any(a == "--fund" or a.startswith("--fund=") or a.startswith("--fund-any") for a in args):
        args = [*args, "--fund-any", DEFAULT_FUND_ANY_USD]
        if not any(a.startswith("--schedule-cancel-min-volume") for a in args):
            args += ["--schedule-cancel-min-volume", "0"]
    if not any(a.startswith("--ws-max-") for a in args):  # the old, looser WS caps
        args = [*args, "--ws-max-connections", "100", "--ws-max-new-connections-per-min", "0",
                "--ws-max-messages-per-min", "0"]
    stderr_path = log_dir / f"simulator-{len(list(log_dir.glob('simulator-*.log')))}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with stderr_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "simulator", "--port", "0", *args], cwd=REPO_ROOT,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(START_TIMEOUT_SECS)
    first = line[0].strip() if line else ""
    if not first.startswith("listening on http://"):
        proc.kill()
        proc.wait()
        tail = stderr_path.read_text()[-2000:]
        raise SimulatorStartError(f"simulator did not start (got {first!r}): {tail}")
    return SimulatorProcess(proc=proc, base_url=first.removeprefix("listening on "), args=args,
                            stderr_path=stderr_path)
