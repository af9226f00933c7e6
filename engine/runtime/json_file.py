"""A small JSON status file the daemon rewrites every tick for `engine.status` and the web page.

Written to a temporary name and renamed, so a reader never sees half a file. A failed write is
logged once (until one succeeds again) and never raises: a full disk must not stop the loop.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class StatusFile:
    """See the module docstring; `what` names the file in the warning."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._what = what
        self._failed = False

    def write(self, doc: dict[str, Any]) -> bool:
        """Replace the file with `doc`; False (logged once) when it could not be written."""
        tmp = self.path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(doc, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:
                log.warning("%s file not written path=%s error=%s", self._what, self.path, exc)
            self._failed = True
            return False
        self._failed = False
        return True
