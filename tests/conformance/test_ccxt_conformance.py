"""ccxt's `hyperliquid` class (the client freqtrade uses), with its default settings, as a second
independent client of the loopback simulator: load_markets (perp, spot and HIP-3 dex discovery),
ticker, balance, leverage, market and limit orders, cancel, a stop-loss trigger order, positions,
trades, funding and fees. ccxt signs as mainnet by default, so the simulator runs with --mainnet;
the account is funded explicitly (the strict venue).
"""

from __future__ import annotations

from collections.abc import Callable

import ccxt
import eth_account
import pytest

from tests.fixtures.sim_fixtures import SimulatorProcess

SYMBOL = "ETH/USDC:USDC"


@pytest.fixture
def client(simulator_factory: Callable[..., SimulatorProcess]) -> ccxt.hyperliquid:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--mainnet", "--fund", f"{wallet.address}=10000")
    exchange = ccxt.hyperliquid({"walletAddress": wallet.address, "privateKey": wallet.key.hex()})
    exchange.urls["api"] = {"public": sim.base_url, "private": sim.base_url}
    return exchange


def test_ccxt_default_settings_trade_through_the_simulator(client: ccxt.hyperliquid) -> None:
    markets = client.load_markets()
    assert SYMBOL in markets and markets[SYMBOL]["swap"] and markets[SYMBOL]["settle"] == "USDC"
    last = float(client.fetch_ticker(SYMBOL)["last"])
    assert last > 0
    assert client.fetch_balance()["total"]["USDC"] == 10_000.0
    amount = float(client.amount_to_precision(SYMBOL, 20 / last))

    client.set_leverage(5, SYMBOL)
    bought = client.create_order(SYMBOL, "market", "buy", amount, price=last)
    assert float(bought["info"]["filled"]["totalSz"]) == amount
    [position] = client.fetch_positions([SYMBOL])
    assert position["contracts"] == amount and position["side"] == "long" and position["leverage"] == 5

    below = float(client.price_to_precision(SYMBOL, last * 0.9))
    resting = client.create_order(SYMBOL, "limit", "buy", amount, price=below)
    assert [o["id"] for o in client.fetch_open_orders(SYMBOL)] == [resting["id"]]
    client.cancel_order(resting["id"], SYMBOL)
    assert client.fetch_open_orders(SYMBOL) == []

    stop = client.create_order(SYMBOL, "market", "sell", amount, price=below,
                               params={"stopLossPrice": below, "reduceOnly": True})
    [listed] = client.fetch_open_orders(SYMBOL)
    assert listed["id"] == stop["id"] and listed["triggerPrice"] == below and listed["reduceOnly"] is True

    trades = client.fetch_my_trades(SYMBOL)
    assert len(trades) == 1 and trades[0]["side"] == "buy" and trades[0]["amount"] == amount
    assert client.fetch_funding_rate(SYMBOL)["fundingRate"] is not None
    fee = client.fetch_trading_fee(SYMBOL)
    assert (fee["taker"], fee["maker"]) == (0.00045, 0.00015)


def test_ccxt_reads_a_unified_accounts_balance_from_spot(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--mainnet", "--fund", f"{wallet.address}=7500",
                            "--unified", wallet.address)
    exchange = ccxt.hyperliquid({"walletAddress": wallet.address, "privateKey": wallet.key.hex()})
    exchange.urls["api"] = {"public": sim.base_url, "private": sim.base_url}
    exchange.load_markets()
    perp = sim.info({"type": "clearinghouseState", "user": wallet.address}).json()
    assert perp["marginSummary"]["accountValue"] == "0.0"  # so the 7,500 below can only come from spot
    assert exchange.fetch_balance()["total"]["USDC"] == 7_500.0
