"""HIP-3 perp dexes on the engine side, pure parts: AI_QUANT_PERP_DEXES (one parser, the same refusal in
the driver and the sidecar), symbol spelling (`dex:COIN` kept exact), the per-dex and per-collateral
notional caps, the per-dex fee multiplier of the paper fill model, and the merged account state.
"""

from __future__ import annotations

import pytest

from engine.config.env import ConfigError
from engine.config.fill_params import FeeSchedule, FillModelParams
from engine.config.perp_dexes import PerpDexSelection, dex_of, normalise_symbol, parse_perp_dex_selection
from engine.config.settings import DaemonSettings
from engine.enums import Mode, RiskReason
from engine.execution.broker import AccountSnapshot, OrderIntent, Position
from engine.execution.verdicts import ALLOW, Deny
from engine.risk.check import RiskSnapshot, check
from engine.risk.limits import RiskLimits
from engine.sidecar.settings import SidecarSettings
from engine.tick.watchlist import apply_watchlist_exclude
from engine.venue.account import MarginSummary, UserState
from engine.venue.dexes import merge_user_states, parse_perp_dexs, resolve_selection
from strategies.enums import EntryKind, PositionSide, TradeAction

NOW = 1_764_000_000_000


def test_selection_default_all_and_lists() -> None:
    assert parse_perp_dex_selection("").original_only
    every = parse_perp_dex_selection(" all ")
    assert every.every and every.to_env() == "all"
    listed = parse_perp_dex_selection("main, xyz,flx,xyz")
    assert listed.names == ("", "xyz", "flx") and listed.to_env() == "main,xyz,flx"
    assert parse_perp_dex_selection("xyz").names == ("xyz",)  # builder dexes only is allowed


@pytest.mark.parametrize("value", ["XYZ", "toolongname", "x-y", "all,xyz", "a:b"])
def test_driver_and_sidecar_refuse_a_bad_dex_naming_the_value(value: str) -> None:
    for parse in (DaemonSettings.from_env, SidecarSettings.from_env):
        with pytest.raises(ConfigError, match="AI_QUANT_PERP_DEXES") as err:
            parse({"AI_QUANT_PERP_DEXES": value, "AI_QUANT_MODE": "paper"})
        assert repr(value) in str(err.value) or value.split(",")[-1] in str(err.value)


def test_driver_and_sidecar_read_the_same_selection() -> None:
    env = {"AI_QUANT_PERP_DEXES": "main,flx", "AI_QUANT_SYMBOLS": "eth,flx:kBONK,xyz:TSLA"}
    driver = DaemonSettings.from_env(env)
    wanted = PerpDexSelection(names=("", "flx"))
    assert driver.perp_dexes == SidecarSettings.from_env(env).perp_dexes == wanted
    # original-dex names upper-cased as always; a builder dex's dex:COIN exactly as written
    assert driver.symbols == ("ETH", "flx:kBONK", "xyz:TSLA") and driver.mode is Mode.PAPER


def test_dex_symbols_round_trip_exactly() -> None:
    assert normalise_symbol("kpepe") == "KPEPE" and normalise_symbol(" xyz:kBONK ") == "xyz:kBONK"
    assert dex_of("xyz:kBONK") == "xyz" and dex_of("BTC") == ""
    assert apply_watchlist_exclude(["btc", "xyz:kBONK", "flx:GOLD"], ["flx:GOLD"]) == ("BTC", "xyz:kBONK")
    assert apply_watchlist_exclude(["xyz:kBONK"], ["xyz:KBONK"]) == ("xyz:kBONK",)  # case matters there
    _intent("xyz:kBONK")  # accepted as spelled
    with pytest.raises(ValueError, match="dex:COIN"):
        _intent("eth")


def test_resolve_refuses_a_dex_the_venue_does_not_list_and_numbers_assets_like_the_sdk() -> None:
    listed = parse_perp_dexs([None, {"name": "xyz", "deployerFeeScale": "1.0"}, {"name": "flx"}])
    assert [(d.name, d.asset_offset, d.fee_multiplier) for d in listed] == [
        ("", 0, 1.0), ("xyz", 110_000, 2.0), ("flx", 120_000, 1.0)]
    every = resolve_selection(PerpDexSelection(every=True, names=()), listed)
    assert [d.name for d in every] == ["", "xyz", "flx"]
    with pytest.raises(ValueError, match="nope not listed"):
        resolve_selection(parse_perp_dex_selection("main,nope"), listed)


def _intent(symbol: str, size: float = 1.0, price: float = 100.0) -> OrderIntent:
    return OrderIntent(symbol=symbol, action=TradeAction.OPEN, side=PositionSide.LONG, reference_price=price,
                       event_ms=NOW, reason=EntryKind.STANDARD, size_coins=size)


def _position(symbol: str, notional: float) -> Position:
    return Position(symbol=symbol, side=PositionSide.LONG, size_coins=1.0, entry_price=notional, leverage=1.0,
                    margin_used_usd=notional, open_trade_id=1, opened_ms=NOW, last_funding_ms=NOW)


ACCOUNT = AccountSnapshot(mode=Mode.PAPER, equity_usd=100_000.0, cash_usd=100_000.0, margin_used_usd=0.0,
                          unrealised_pnl_usd=0.0, open_positions=3, recorded_ms=NOW)
HELD = {"BTC": _position("BTC", 500.0), "xyz:TSLA": _position("xyz:TSLA", 300.0),
        "flx:GOLD": _position("flx:GOLD", 200.0)}
COLLATERAL = {"": "USDC", "xyz": "USDC", "flx": "USDH"}


def _verdict(symbol: str, limits: RiskLimits, collateral: dict[str, str] = COLLATERAL) -> object:
    state = RiskSnapshot(dex_collateral=collateral)
    return check(_intent(symbol), ACCOUNT, HELD, limits, state, NOW)


def test_dex_cap_counts_only_that_dexs_positions() -> None:
    limits = RiskLimits(max_dex_notional_usd=450.0)
    assert _verdict("xyz:kBONK", limits) == ALLOW  # 300 + 100 on xyz
    assert _verdict("flx:kBONK", limits) == ALLOW  # 200 + 100 on flx
    denied = _verdict("ETH", limits)  # 500 + 100 on the original dex
    assert isinstance(denied, Deny) and denied.reason is RiskReason.DEX_NOTIONAL
    assert denied.details["dex"] == "" and denied.details["notional_usd"] == 600.0


def test_collateral_cap_groups_dexes_by_token_and_fails_closed_on_an_unknown_one() -> None:
    limits = RiskLimits(max_collateral_notional_usd=850.0)
    denied = _verdict("xyz:kBONK", limits)  # USDC: 500 + 300 + 100
    assert isinstance(denied, Deny) and denied.reason is RiskReason.COLLATERAL_NOTIONAL
    assert denied.details["collateral"] == "USDC" and denied.details["notional_usd"] == 900.0
    assert _verdict("flx:kBONK", limits) == ALLOW  # USDH: 200 + 100
    unknown = _verdict("cash:TSLA", limits)
    assert isinstance(unknown, Deny) and unknown.details == {"dex": "cash", "collateral": None}


def test_risk_limits_read_the_new_caps_from_yaml_and_env() -> None:
    env = {"AI_QUANT_RISK_MAX_COLLATERAL_NOTIONAL_USD": "5"}
    limits = RiskLimits.from_sources({"max_dex_notional_usd": 1000}, env)
    assert (limits.max_dex_notional_usd, limits.max_collateral_notional_usd) == (1000.0, 5.0)
    with pytest.raises(ConfigError, match="max_dex_notional_usd"):
        RiskLimits.from_sources({"max_dex_notional_usd": -1})


def test_paper_fee_rate_follows_the_dex_fee_multiplier() -> None:
    params = FillModelParams(fees=FeeSchedule(taker_rate=0.0004), dex_fee_multipliers=(("flx", 1.5),))
    assert params.fee_rate_for("ETH") == pytest.approx(0.0004)
    assert params.fee_rate_for("flx:GOLD") == pytest.approx(0.0006)
    assert params.fee_rate_for("xyz:TSLA") == pytest.approx(0.0004)  # no deployer fee known: base
    with pytest.raises(ValueError, match="below 1"):
        FillModelParams(dex_fee_multipliers=(("flx", 0.5),))


def _state(value: float, ntl: float, margin: float) -> UserState:
    summary = MarginSummary(account_value_usd=value, total_margin_used_usd=margin, total_ntl_pos_usd=ntl,
                            total_raw_usd=value - ntl)
    return UserState(margin_summary=summary, cross_margin_summary=summary, withdrawable_usd=value - margin,
                     positions=(), cross_maintenance_margin_used_usd=margin / 2)


def test_merged_account_sums_exposure_and_keeps_each_dexs_state() -> None:
    main, xyz = _state(1000.0, 400.0, 40.0), _state(1000.0, 100.0, 10.0)
    merged = merge_user_states({"": main, "xyz": xyz})
    assert merged.margin_summary.account_value_usd == 1000.0  # one pool: not 2000
    summary = merged.margin_summary
    assert summary.total_ntl_pos_usd == 500.0 and summary.total_margin_used_usd == 50.0
    assert merged.cross_maintenance_margin_used_usd == 25.0 and merged.withdrawable_usd == 960.0
    assert dict(merged.dex_states) == {"": main, "xyz": xyz}
