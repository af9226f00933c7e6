"""Start-up imports stay lean: a shard actor and the daemon import no pandas until a batch path runs.

Why a test: every shard actor imports `cluster.shard_actor` when Ray starts (or restarts) it, and
the daemon imports its whole stack before it can tick; pandas alone is ~1 s of CPU on this 2-core
box, paid again on every shard restart (issue 12: shard kill -> deciding <= 3 s). The shards decide
from incremental state restored from checkpoints, so pandas is only needed by batch paths
(`compute_indicators`, `Indicator.batch`, `IndicatorSet.batch`, parity checks), which import it
themselves. One module-level `import pandas` anywhere in the chain brings the cost back silently;
this catches it. Each check runs in a fresh interpreter (this test process has pandas loaded).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# eth_account (with the SDK's signing module) is ~0.7 s of CPU that only a signing daemon (dry_live,
# live) needs; engine/venue/exchange_client.py imports it on first use.
HEAVY = ("pandas", "eth_account")


def _fresh_modules(code: str) -> dict[str, bool]:
    """Run `code` in a new interpreter (this repository first on the path); return which HEAVY
    modules it left imported."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", [
    "cluster.shard_actor",  # what a (re)started shard actor imports
    "cluster.pool",
    "engine.daemon.cli",  # the daemon's imports before its first line of start-up
    "engine.daemon.node",
    "engine.daemon.services",
    "strategies.sdk",
    "strategies.indicators",
])
def test_start_up_modules_do_not_import_pandas_or_eth_account(module: str) -> None:
    assert _fresh_modules(f"import {module}") == {"pandas": False, "eth_account": False}


def test_batch_paths_import_pandas_themselves() -> None:
    """The lazy import is not a missing import: each batch path works in a fresh process."""
    code = """
import numpy as np
from strategies.indicators import compute_indicators
from strategies.sdk.indicator_set import IndicatorSet
from strategies.sdk.library import LIBRARY
n = 300
close = 100 + np.cumsum(np.sin(np.arange(n) / 7.0))
cols = {"Open": close, "High": close + 1, "Low": close - 1, "Close": close, "Volume": np.full(n, 10.0)}
specs = [spec for cls in LIBRARY.values() for spec in cls.examples()]
for spec in specs:  # before anything else imported pandas
    assert all(len(a) == n for a in spec.batch(cols)), spec
import pandas as pd
assert len(compute_indicators(pd.DataFrame(cols))) == n
assert len(IndicatorSet(specs[:3]).batch(pd.DataFrame(cols))) == n
"""
    assert _fresh_modules(code)["pandas"] is True


def test_signing_imports_eth_account_itself() -> None:
    """The lazy import is not a missing one: a key signs an order in a fresh process."""
    code = """
from engine.venue.exchange_client import ActionSigner, OrderSpec, SigningKey
key = SigningKey.from_hex("11" * 32)
signed = ActionSigner(key, is_mainnet=False).sign_orders(
    [OrderSpec(asset=1, is_buy=True, sz=1.0, limit_px=10.0)])
assert signed.signer_address == key.address and b'"signature"' in signed.body
"""
    assert _fresh_modules(code)["eth_account"] is True
