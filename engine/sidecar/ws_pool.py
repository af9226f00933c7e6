"""The sidecar's WebSocket connections: one `VenueSocket` per slot of the connection plan.

`engine.sidecar.plan.connection_plan` says which markets (and subscriptions) ride on which
connection; this pool keeps one socket running per slot and, when the plan changes (the fleet
moved markets), restarts only the sockets whose subscriptions changed, starts new slots and
stops slots that are gone. All sockets share the IP's message and new-connection windows.
A session start on one socket concerns only its markets (their forming candles are forgotten
and their gaps filled), and so does its end (the markets the session carried, whatever the plan
says by then: their clock-closed bars get repaired); the account channels ride on slot 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from engine.sidecar.pacing import SlidingWindow
from engine.sidecar.settings import SidecarSettings
from engine.sidecar.ws import VenueSocket, WsStats

Slot = tuple[tuple[str, ...], list[dict[str, Any]]]


class _Running:
    def __init__(self, socket: VenueSocket, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.socket = socket
        self.task = task
        self.stop = stop


class WsPool:
    """Sockets for a connection plan; `apply(plan)` while running, `run(stop)` until stopped."""

    def __init__(
        self,
        settings: SidecarSettings,
        *,
        on_session_start: Callable[[tuple[str, ...], bool], None],
        on_session_end: Callable[[tuple[str, ...]], None],
        on_frame: Callable[[str | bytes], None],
        stats: WsStats,
        log_limited: Callable[..., None],
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self._on_session_start = on_session_start
        self._on_session_end = on_session_end
        self._on_frame = on_frame
        self._stats = stats
        self._log_limited = log_limited
        self._rng = rng
        budget = settings.ws_budget
        self.messages = SlidingWindow(budget.max_messages_per_min)
        self.new_connections = SlidingWindow(budget.max_new_connections_per_min)
        self._plan: list[Slot] = []
        self._slot_of: dict[str, int] = {}
        self._running: list[_Running] = []
        self._retired: list[_Running] = []  # dropped slots still closing (kept referenced)
        self._stop: asyncio.Event | None = None

    @property
    def connected(self) -> bool:
        """True while every planned socket is subscribed and reading (no plan: nothing to read)."""
        return all(r.socket.connected for r in self._running)

    def slot_of(self, market: str) -> int | None:
        """The index of the connection that carries `market`'s candles in the current plan."""
        return self._slot_of.get(market)

    @property
    def connections(self) -> int:
        return len(self._running)

    def _socket(self, index: int) -> VenueSocket:
        def subscriptions() -> list[dict[str, Any]]:
            return list(self._plan[index][1]) if index < len(self._plan) else []

        carried: list[tuple[str, ...]] = [()]  # the markets of the session running now

        def session_start() -> None:
            markets = self._plan[index][0] if index < len(self._plan) else ()
            carried[0] = markets
            self._on_session_start(markets, index == 0)

        def session_end() -> None:
            markets, carried[0] = carried[0], ()
            self._on_session_end(markets)

        return VenueSocket(
            self.settings,
            subscriptions=subscriptions,
            on_session_start=session_start,
            on_session_end=session_end,
            on_frame=self._on_frame,
            stats=self._stats,
            log_limited=self._log_limited,
            rng=self._rng,
            messages=self.messages,
            new_connections=self.new_connections,
            name=f"ws{index}",
        )

    def _start(self, index: int) -> None:
        assert self._stop is not None
        socket = self._socket(index)
        own_stop = asyncio.Event()
        parent = self._stop

        async def run() -> None:
            # a slot ends when the pool stops or the slot is dropped from the plan
            waiter = asyncio.create_task(parent.wait())
            try:
                own = asyncio.create_task(own_stop.wait())
                runner = asyncio.create_task(socket.run(own_stop))
                await asyncio.wait([waiter, own, runner], return_when=asyncio.FIRST_COMPLETED)
                own_stop.set()
                await runner
                own.cancel()
            finally:
                waiter.cancel()

        self._running.append(_Running(socket, asyncio.create_task(run(), name=f"ws{index}"), own_stop))

    def apply(self, plan: list[Slot]) -> None:
        """Switch to a new plan: restart changed slots, start new ones, stop dropped ones."""
        old = self._plan
        self._plan = list(plan)
        self._slot_of = {m: i for i, (markets, _) in enumerate(self._plan) for m in markets}
        if self._stop is None:
            return  # not running yet: run() starts every slot
        for index, running in enumerate(self._running[: len(self._plan)]):
            if index >= len(old) or old[index] != self._plan[index]:
                running.socket.restart()
        for running in self._running[len(self._plan) :]:
            running.stop.set()
            self._retired.append(running)
        self._retired = [r for r in self._retired if not r.task.done()]
        del self._running[len(self._plan) :]
        for index in range(len(self._running), len(self._plan)):
            self._start(index)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the plan's sockets until `stop`; a socket task that fails raises here."""
        self._stop = stop
        for index in range(len(self._plan)):
            self._start(index)
        while not stop.is_set():
            for running in list(self._running):
                if running.task.done() and not running.stop.is_set():
                    running.task.result()  # a crash of a socket loop is a bug: surface it
                    raise RuntimeError(f"websocket {running.socket.name} ended by itself")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
        await asyncio.gather(*(r.task for r in self._running + self._retired), return_exceptions=True)
