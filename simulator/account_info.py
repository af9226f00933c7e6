"""User /info answers built from an account and the market, beside clearinghouseState: userFees,
activeAssetData and userNonFundingLedgerUpdates (shapes as the venue documents them). Pure: no
clock, no I/O, no locking (the exchange core calls these under its lock).
"""

from __future__ import annotations

from typing import Any

from simulator.accounts import Account, MarketPort, margin_summary
from simulator.matching import floor_size, wire


def user_fees_json(taker_fee_rate: float, maker_fee_rate: float) -> dict[str, Any]:
    """``userFees``: the simulator has one flat schedule, no tiers, referral or staking discounts."""
    cross, add = wire(taker_fee_rate, 8), wire(maker_fee_rate, 8)
    return {
        "dailyUserVlm": [],
        "feeSchedule": {"cross": cross, "add": add, "spotCross": cross, "spotAdd": add,
                        "tiers": {"vip": [], "mm": []}, "referralDiscount": "0.0",
                        "stakingDiscountTiers": []},
        "userCrossRate": cross,
        "userAddRate": add,
        "userSpotCrossRate": cross,
        "userSpotAddRate": add,
        "activeReferralDiscount": "0.0",
        "trial": None,
        "feeTrialReward": "0.0",
        "nextTrialAvailableTimestamp": None,
        "stakingLink": None,
        "activeStakingDiscount": {"bpsOfMaxSupply": "0.0", "discount": "0.0"},
    }


def active_asset_data_json(account: Account, market: MarketPort, coin: str) -> dict[str, Any] | None:
    """``activeAssetData``: the coin's leverage setting and what the free margin could still buy or
    sell ([buy, sell], in coins and in USD); None for an unlisted coin."""
    if coin not in market.coins():
        return None
    setting = account.leverage_for(coin, market.max_leverage(coin))
    mid = market.mid(coin)
    szd = market.sz_decimals(coin)
    usd = max(0.0, margin_summary(account, market).free_collateral) * setting.value
    size = floor_size(usd / mid, szd) if mid > 0 else 0.0
    return {
        "user": account.address,
        "coin": coin,
        "leverage": {"type": "cross" if setting.is_cross else "isolated", "value": setting.value},
        "maxTradeSzs": [wire(size, szd), wire(size, szd)],
        "availableToTrade": [wire(usd, 6), wire(usd, 6)],
        "markPx": wire(mid),
    }


def ledger_updates_json(account: Account, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """``userNonFundingLedgerUpdates`` between two times (deposits made through the simulator)."""
    return [u for u in account.ledger_updates if start_ms <= u["time"] <= end_ms]
