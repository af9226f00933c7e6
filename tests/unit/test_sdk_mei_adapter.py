"""mei_alpha_v1 on the SDK decides exactly like the legacy path, bar for bar, on every shipped candle file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from strategies.check_parity import read_candles, symbol_from_path
from strategies.config import load_yaml_text
from strategies.mei_alpha_v1 import analyze_series, frame_from_ohlcv
from strategies.sdk.builtin.mei import MeiAlphaV1
from strategies.sdk.registry import StrategyRegistry
from strategies.sdk.strategy import DecisionContext, StrategyDecision, evaluate

OHLCV = sorted((Path(__file__).parents[1] / "data" / "ohlcv").glob("*.csv"))
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("path", OHLCV[:4], ids=lambda p: p.stem)
def test_adapter_equals_legacy_decisions_on_real_candles(path: Path) -> None:
    df = frame_from_ohlcv(read_candles(path)).rename(columns={"t": "timestamp"})
    symbol = symbol_from_path(path)
    # a non-default config: the adapter must carry the YAML's nested sections, not the defaults
    cfg = load_yaml_text("global:\n  trade:\n    entry_min_confidence: low\n  indicators:\n"
                         "    ema_fast_window: 9\n").resolve(symbol)
    legacy = analyze_series(df, symbol, cfg)
    adapter = MeiAlphaV1.from_config(cfg)
    rows = adapter.indicator_set.batch(df).to_dict("records")
    signals = 0
    for i, ref in enumerate(legacy):
        got = evaluate(adapter, rows[max(0, i - 3): i + 1], DecisionContext(symbol=symbol, bars=i + 1))
        assert isinstance(got, StrategyDecision)
        assert (got.signal, got.confidence, got.score) == (ref.signal, ref.confidence, ref.score), i
        assert got.reason == ref.entry_kind.value
        signals += got.side is not None
    assert signals > 0  # a parity over zero entries would prove little


def test_mei_is_registered_and_refuses_flat_params() -> None:
    registry = StrategyRegistry.installed()
    assert "mei_alpha_v1" in registry.names()
    from strategies.sdk.errors import StrategyParamError

    with pytest.raises(StrategyParamError, match="sl_atr_mult"):
        registry.configure("mei_alpha_v1", [{"sl_atr_mult": 3.0}], symbol="ETH")


@pytest.mark.parametrize("ref", ["mei_alpha_v1", "donchian_breakout", "rsi_bollinger_reversion"])
def test_check_parity_strategy_zero_mismatches_on_real_candles(ref: str) -> None:
    out = subprocess.run([sys.executable, "-m", "strategies.check_parity", "--strategy", ref,
                          *map(str, OHLCV)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["strategy"] == ref and report["bars"] > 10_000
    assert report["max_rel_err"] == 0.0 and report["signal_mismatches"] == 0
    assert report["faults"] == 0 and report["signals"] > 100


def test_check_parity_unknown_strategy_exits_2() -> None:
    out = subprocess.run([sys.executable, "-m", "strategies.check_parity", "--strategy", "nope",
                          str(OHLCV[0])], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 2 and "unknown strategy 'nope'" in out.stderr
