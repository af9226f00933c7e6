"""check_parity CLI: report shape on a real file, mismatch detection, bad input exit codes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from strategies.check_parity import EXIT_BAD_INPUT, EXIT_MISMATCH, EXIT_OK, main, rel_err, run
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import IndicatorParams

DATA = Path("/work/shared/data/ohlcv")
XRP = DATA / "XRP_USDT_USDT-5m-futures.csv"


def test_check_parity_real_file_passes_with_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(XRP)]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["bars"] == 1999 and report["ok"] is True
    assert (
        report["max_rel_err"] <= 1e-9 and report["signal_mismatches"] == 0 and report["nan_mismatches"] == 0
    )
    (per_file,) = report["files"]
    assert per_file["bars"] == 1999 and per_file["symbol"] == "XRP" and per_file["signals"] > 0


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
    files = [str(XRP), str(DATA / "ETH_BTC-5m.csv")]
    status, report = run(files, make_incremental=_make_factory())
    assert status == EXIT_OK
    assert report["bars"] == sum(f["bars"] for f in report["files"]) == 1999 + 5760


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("t,o,h,l,c\n1,1,1,1,1\n", "missing columns"),
        ("t,o,h,l,c,v\n", "no rows"),
        ("t,o,h,l,c,v\n1,1,1,1,x,1\n", "column c"),
        ("t,o,h,l,c,v\n1,1,1,1,,1\n", "column c"),
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
