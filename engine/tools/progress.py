"""Progress on long jobs (download, replay, backfill): a bar on a terminal, periodic counts otherwise.

Why one helper: every long job should tell the operator how far it is, and a log file or CI output
must not fill with carriage returns. On a terminal the bar redraws in place at most every
`redraw_secs`; elsewhere one plain line (`label: done/total (pct%)`) is written every
`every_secs`. Both end with one final line from `close()`. The clock and the stream are injected.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 30


class Progress:
    """Counts `done` of `total` units (total 0 or less: unknown) and reports it."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        every_secs: float = 10.0,
        redraw_secs: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = max(0, int(total))
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._period_secs = redraw_secs if self._tty else every_secs
        self._clock = clock
        self._started = clock()
        self._last_report: float | None = None
        self._closed = False

    def advance(self, units: int = 1) -> None:
        """Add `units` done and report if the period has passed."""
        self.update(self.done + units)

    def update(self, done: int, total: int | None = None) -> None:
        """Set the count done (and the total, when it becomes known); report if the period has passed.

        The first call reports. Fits the `progress(done, total)` hooks of long jobs (replay).
        """
        if total is not None:
            self.total = max(0, int(total))
        self.done = max(0, int(done))
        now = self._clock()
        if self._last_report is not None and now - self._last_report < self._period_secs:
            return
        self._last_report = now
        self._write(final=False)

    def close(self) -> None:
        """Write the final line (once)."""
        if self._closed:
            return
        self._closed = True
        self._write(final=True)

    def text(self) -> str:
        """The current count as one line, without a bar: `label: done/total (pct%) elapsed`."""
        elapsed = self._clock() - self._started
        if self.total > 0:
            pct = min(100.0, 100.0 * self.done / self.total)
            return f"{self.label}: {self.done}/{self.total} ({pct:.0f}%) {elapsed:.0f}s"
        return f"{self.label}: {self.done} {elapsed:.0f}s"

    def _bar(self) -> str:
        if self.total <= 0:
            return self.text()
        filled = min(BAR_WIDTH, BAR_WIDTH * self.done // self.total)
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.text()}"

    def _write(self, *, final: bool) -> None:
        if self._tty:
            self._stream.write("\r" + self._bar() + ("\n" if final else ""))
        else:
            self._stream.write(self.text() + (" done" if final else "") + "\n")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
