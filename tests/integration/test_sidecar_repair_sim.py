"""A closed bar whose final WS update never arrived is repaired (issue 14's acceptance failure).

The sidecar subprocess against the simulator at real speed (1m bars, venue time = wall time) and
a real Redis; the best-effort REST cross-check is OFF, so only the repair path can fix a bar:

1. the simulator stops pushing candle messages a few seconds before a bar closes (they are lost,
   as on a stalled socket), the sidecar's clock closes the bar as it stands (a partial bar), and
   the socket is dropped before any later message: the bar must be re-read from REST;
2. the socket is dropped just before a bar closes and the sidecar reconnects only after the close:
   the forming bar of the dead session must not be closed by the clock as it stood.

Either way, at the end Redis equals the venue's `candleSnapshot` for every market. Before the
fix both left a partial closed bar in Redis for good.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis

from cluster.redis_layout import RedisLayout
from engine.runtime.redis_server import EmbeddedRedis
from tests.fixtures.sim_fixtures import SimulatorProcess
from tests.integration.test_sidecar_sim import (
    IV,
    SidecarProc,
    _all_advanced,
    _close_keys,
    _coins,
    _matches,
    _rest,
    assert_redis_equals_sim,
    sidecars,  # noqa: F401  (fixture)
    wait_for,
)

N = 6
REAL_TIME = ("--synthetic", str(N), "--interval", "1m", "--speed", "1", "--tick-ms", "100",
             "--rate-limit-per-min", "100000000")  # fmt: skip


def _venue_ms(sim: SimulatorProcess) -> int:
    return int(sim.state()["now_ms"])


def _wait_for_second(sim: SimulatorProcess, lo: int, hi: int) -> int:
    """Wait until the venue clock is between `lo` and `hi` seconds into a bar; the bar's open time."""
    now = wait_for(lambda: (lo * 1000 <= (t := _venue_ms(sim)) % IV < hi * 1000) and t, 150,
                   f"second {lo}-{hi} of a bar")  # fmt: skip
    return int(now) // IV * IV  # type: ignore[call-overload]


def test_partial_bars_of_a_stalled_or_dropped_socket_are_repaired_to_the_venue_bar(
    simulator_factory: Callable[..., SimulatorProcess],
    redis_client: redis.Redis,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
    sidecars: list[SidecarProc],  # noqa: F811
) -> None:
    sim = simulator_factory(*REAL_TIME)
    layout = RedisLayout("rp")
    symbols = _coins(sim, N)
    sidecar = SidecarProc(sim, redis_server.url, tmp_path, "rp", AI_QUANT_TOP_N=str(N),
                          AI_QUANT_ANCHOR_SYMBOL="NONE", AI_QUANT_CANDLE_CROSS_CHECK="0")  # fmt: skip
    sidecar.env.update(HL_WS_RECONNECT_SECS="10", HL_WS_RECONNECT_MAX_SECS="20")  # back after the close
    sidecars.append(sidecar.start())
    wait_for(lambda: all(_close_keys(redis_client, layout, symbols).values()), 90, "backfill")

    # 1. candle messages stop 6 s before the close; the clock closes the partial bar; then a drop
    stalled = _wait_for_second(sim, 50, 53)
    sim.set_faults(pause_candle_feed=True)
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, stalled + IV - 1), 90,
             "the clock to close the stalled bar")  # fmt: skip
    assert sim.drop_ws() >= 1
    sim.set_faults(pause_candle_feed=False)

    # 2. a drop 3 s before a close; the reconnect comes 5-10 s later
    dropped = _wait_for_second(sim, 56, 58)
    assert sim.drop_ws() >= 1
    wait_for(lambda: _all_advanced(redis_client, layout, symbols, dropped + 2 * IV - 1), 150,
             "the bars after the drop")  # fmt: skip

    with _rest(sim) as rest:
        try:
            wait_for(lambda: _matches(redis_client, layout, rest, symbols), 60, "Redis to equal the venue")
        finally:
            assert sidecar.stop() == 0
        assert_redis_equals_sim(redis_client, layout, rest, symbols)
    assert stalled in _repaired(sidecar.log_path.read_text())


def _repaired(log_text: str) -> set[int]:
    """Open times of the bars the sidecar logged as repaired from REST."""
    out: set[int] = set()
    for line in log_text.splitlines():
        if "closed bar repaired from REST" in line and "bars=[" in line:
            inner = line.split("bars=[", 1)[1].split("]", 1)[0]
            out.update(int(x) for x in inner.split(",") if x.strip())
    return out
