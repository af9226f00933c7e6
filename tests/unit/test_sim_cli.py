"""Simulator command line: defaults, fault flags, validation, data selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import DEFAULT_MAKER_FEE_RATE, DEFAULT_TAKER_FEE_RATE, build_series, parse_options


def test_cli_defaults_are_loopback_free_port_shipped_data() -> None:
    opts = parse_options([])
    assert opts.server.host == "127.0.0.1" and opts.server.port == 0
    assert opts.data_dir is None and opts.synthetic == 0 and opts.interval == "5m"
    assert opts.speed == 1.0 and opts.rate_limit_per_min == 1200
    assert (opts.taker_fee_rate, opts.maker_fee_rate) == (DEFAULT_TAKER_FEE_RATE, DEFAULT_MAKER_FEE_RATE)
    assert opts.is_mainnet is False and opts.server.ws_idle_timeout_secs == 60.0
    assert [c.name for c in build_series(opts).coins] == ["ADA", "DASH", "ETC", "ETH", "LTC", "XLM", "XMR"]


def test_cli_fault_flags_become_initial_fault_settings() -> None:
    opts = parse_options(["--ws-drop-every-secs", "5", "--rest-error-rate", "0.25",
                          "--rest-error-status", "503", "--rest-delay-rate", "1", "--rest-delay-secs", "3",
                          "--lost-ack-next", "2",
                          "--pause-candle-feed"])
    f = opts.faults
    assert (f.ws_drop_every_secs, f.rest_error_rate, f.rest_error_status) == (5.0, 0.25, 503)
    assert (f.rest_delay_rate, f.rest_delay_secs, f.lost_ack_next) == (1.0, 3.0, 2)
    assert f.pause_candle_feed and not f.pause_market_feed


@pytest.mark.parametrize("argv", [["--speed", "-1"], ["--testnet", "--mainnet"], ["--interval", "7m"],
                                  ["--tick-ms", "0"], ["--port", "x"]])
def test_cli_rejects_bad_flags_with_usage_error(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_options(argv)
    assert exc.value.code == 2


def test_cli_data_and_synthetic_combine(tmp_path: Path) -> None:
    (tmp_path / "FOO_USD-5m.csv").write_text("t,o,h,l,c,v\n0,10,11,9,10.5,1\n300000,10.5,12,10,11,2\n")
    series = build_series(parse_options(["--data", str(tmp_path), "--synthetic", "3", "--seed", "4"]))
    assert [c.name for c in series.coins] == ["FOO", "SYN0001", "SYN0002", "SYN0003"]
    only_syn = build_series(parse_options(["--synthetic", "2"]))
    assert [c.name for c in only_syn.coins] == ["SYN0001", "SYN0002"]
