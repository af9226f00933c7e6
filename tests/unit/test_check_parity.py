"""check_parity CLI on vendored candles: report shape, the BTC gate with a BTC series, mismatch
detection (indicators, signal, score, BTC trend), bad input exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from cluster.anchor import AnchorTrend
from strategies.check_parity import (
    EXIT_BAD_INPUT,
    EXIT_MISMATCH,
    EXIT_OK,
    IncrementalBtcTrend,
    batch_btc_gate,
    main,
    read_candles,
    rel_err,
    run,
)
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import IndicatorParams
from tests.fixtures.data_files import OHLCV_BARS, ohlcv_path

XRP = ohlcv_path("XRP_USDT_USDT-5m-futures")
ETH = ohlcv_path("ETH_BTC-5m")
# No BTC/USD candles are vendored; LTC/BTC shares ETH/BTC's window and trends both ways, which is
# all the gate needs from its anchor (Close above or below its EMA50).
BTC_STANDIN = ohlcv_path("LTC_BTC-5m")


def test_check_parity_real_file_passes_with_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(XRP)]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["bars"] == OHLCV_BARS[XRP.stem] and report["ok"] is True and report["btc"] is None
    assert report["max_rel_err"] <= 1e-9
    assert report["signal_mismatches"] == report["score_mismatches"] == report["nan_mismatches"] == 0
    (per_file,) = report["files"]
    assert per_file["bars"] == OHLCV_BARS[XRP.stem] and per_file["symbol"] == "XRP"
    assert per_file["signals"] > 0
    assert per_file["btc_gate_blocked_bars"] == 0  # no BTC series: the gate's input is unknown, it passes


def test_check_parity_with_a_btc_series_exercises_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--btc", str(BTC_STANDIN), str(ETH)]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["btc"] == str(BTC_STANDIN)
    assert report["signal_mismatches"] == report["score_mismatches"] == report["btc_trend_mismatches"] == 0
    (gated,) = report["files"]
    assert gated["btc_known_bars"] == OHLCV_BARS[ETH.stem] - 49  # EMA50 warm-up, same timeline
    assert gated["btc_gate_blocked_bars"] > 0
    status, ungated = run([str(ETH)])
    assert status == EXIT_OK and ungated["files"][0]["signals"] > gated["signals"]  # the gate closed some


def test_incremental_btc_trend_is_the_shards_anchor_trend_and_the_batch_series() -> None:
    btc = read_candles(BTC_STANDIN)
    times, closes = btc["t"].astype("int64").tolist(), btc["c"].astype(float).tolist()
    ours, anchor = IncrementalBtcTrend(times, closes), AnchorTrend()
    answers = []
    for t, c in zip(times, closes, strict=True):
        anchor.update(t, t + 299_999, c)
        answers.append(ours.bullish_at(t))
        assert answers[-1] == anchor.bullish_at(t), t
    assert answers == batch_btc_gate(btc, times)
    assert answers[:49] == [None] * 49 and {True, False} <= set(answers[49:])
    half_bar_later = [t + 150_000 for t in times]  # between BTC bars: the newest BTC bar before
    assert batch_btc_gate(btc, half_bar_later) == answers
    assert batch_btc_gate(btc, [times[0] - 1]) == [None]


class InvertedBtcTrend(IncrementalBtcTrend):
    """A broken incremental BTC gate input: bullish and bearish swapped."""

    def bullish_at(self, t: int) -> bool | None:
        bullish = super().bullish_at(t)
        return None if bullish is None else not bullish


def test_check_parity_detects_a_broken_incremental_btc_trend() -> None:
    status, report = run([str(ETH)], btc_path=str(BTC_STANDIN), make_btc_trend=InvertedBtcTrend)
    assert status == EXIT_MISMATCH and report["ok"] is False
    assert report["btc_trend_mismatches"] == OHLCV_BARS[ETH.stem] - 49
    assert report["signal_mismatches"] > 0 and report["max_rel_err"] == 0.0


class AdxNudgedIncremental(IncrementalIndicators):
    """An incremental engine whose ADX is 1e-6 high: signals mostly agree, the rank score does not."""

    def recent_rows(self, n: int) -> list[dict[str, Any]]:
        rows = [dict(r) for r in super().recent_rows(n)]
        for r in rows:
            r["ADX"] = r["ADX"] * (1 + 1e-6)
        return rows


def test_check_parity_compares_the_score() -> None:
    status, report = run([str(XRP)], make_incremental=lambda p: AdxNudgedIncremental(p))
    assert status == EXIT_MISMATCH and report["max_rel_err"] == 0.0  # update() rows are untouched
    (per_file,) = report["files"]
    assert per_file["score_mismatches"] > 0 and per_file["first_score_mismatch_bar"] is not None


class SkewedIncremental(IncrementalIndicators):
    """An incremental engine that sees every close 0.1 % higher: a deliberately broken path."""

    def update(self, t_open_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
        return super().update(t_open_ms, o, h * 1.001, l, c * 1.001, v)


def test_check_parity_detects_a_broken_incremental_path() -> None:
    status, report = run([str(XRP)], make_incremental=lambda p: SkewedIncremental(p))
    assert status == EXIT_MISMATCH and report["ok"] is False
    assert report["max_rel_err"] > 1e-9
    assert report["files"][0]["worst"]["column"] is not None


def _make_factory() -> Any:
    def factory(params: IndicatorParams) -> IncrementalIndicators:
        return IncrementalIndicators(params)

    return factory


def test_check_parity_totals_over_several_files() -> None:
    status, report = run([str(XRP), str(ETH)], make_incremental=_make_factory())
    assert status == EXIT_OK
    expected = OHLCV_BARS[XRP.stem] + OHLCV_BARS[ETH.stem]
    assert report["bars"] == sum(f["bars"] for f in report["files"]) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("t,o,h,l,c\n1,1,1,1,1\n", "missing columns"),
        ("t,o,h,l,c,v\n", "no rows"),
        ("t,o,h,l,c,v\n1,1,1,1,x,1\n", "column c"),
        ("t,o,h,l,c,v\n1,1,1,1,,1\n", "column c"),
        ("t,o,h,l,c,v\n2,1,1,1,1,1\n1,1,1,1,1,1\n", "strictly increasing"),
    ],
)
def test_check_parity_bad_input_exits_2(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    assert main([str(XRP), str(path)]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and str(path) in captured.err


def test_check_parity_btc_series_that_never_covers_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # XRP's candles are from 2021, ETH/BTC's from 2018: no XRP candle precedes any ETH bar.
    assert main(["--btc", str(XRP), str(ETH)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert str(XRP) in err and "0 candles at or before the last bar" in err
    assert main(["--btc", str(tmp_path / "missing.csv"), str(ETH)]) == EXIT_BAD_INPUT
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1.0, 1.0, 0.0),
        (0.0, 0.0, 0.0),
        (math.nan, math.nan, 0.0),
        (2.0, 1.0, 0.5),
        (-1.0, 1.0, 2.0),
    ],
)
def test_check_parity_rel_err(a: float, b: float, expected: float) -> None:
    assert rel_err(a, b) == expected


def test_check_parity_rel_err_one_sided_nan() -> None:
    assert math.isnan(rel_err(math.nan, 1.0)) and math.isnan(rel_err(0.0, math.nan))
