"""Command line of ``python -m simulator``: parse flags, build the venue, serve until SIGTERM/SIGINT.

Owns the flags and their defaults (each written once, here) and process start-up/shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from simulator.address_limit import INITIAL_REQUESTS, SCHEDULE_CANCEL_MIN_VOLUME_USD
from simulator.dexes import MAX_BUILDER_DEXES, BuilderDex, make_builder_dexes
from simulator.faults import Faults, FaultSettings
from simulator.feed import WsLimits
from simulator.identity import ADDRESS_RE
from simulator.market import INTERVAL_MS, Market, MarketClock
from simulator.ratelimit import DEFAULT_WEIGHT_PER_MIN, RateLimiter
from simulator.series import MultiSeries, Series, SeriesError, load_csv_dir, merge, synthetic_series
from simulator.server import ExchangePort, ServerConfig, Venue, serve

SHIPPED_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_TAKER_FEE_RATE = 0.00045
DEFAULT_MAKER_FEE_RATE = 0.00015
DEFAULT_HISTORY_BARS = 300

DESCRIPTION = """\
Loopback Hyperliquid-compatible venue: POST /info, POST /exchange, WS /ws on one port.

Market data: replays CSV candles (t,o,h,l,c,v; file SYMBOL-interval.csv, coin = SYMBOL up to the
first '_', e.g. ETH_BTC-5m.csv -> ETH) and/or seeded random-walk symbols SYN0001... . The shipped
data (simulator/data, 2018 BTC-quoted 5m candles) is used when neither --data nor --synthetic is
given. Prices are RESCALED: each CSV symbol is multiplied by the power of ten that brings its first
close to >= 1, then rounded to the venue's precision (5 significant figures), so they look like USD
prices. Candle times are REBASED: bar number --history-bars of the data is the bar containing the
start time (--start-ms, default now); earlier bars are history for candleSnapshot backfill. The
market clock is start + speed x elapsed wall time (+ admin advances), so at --speed 1 candle times
match wall-clock time; at other speeds they run ahead of it. When the data runs out the series
continues as a seeded random walk. Same --seed, data and --start-ms with --speed 0 give
byte-identical answers and streams.

HIP-3 builder dexes: --builder-dexes N adds N builder-deployed perp dexes (xyz, flx, vntl, ...: each with
its own meta, collateral token and deployer fee scale) of --markets-per-dex synthetic markets named
dex:COIN. perpDexs lists them; meta, metaAndAssetCtxs, allMids (REST and WS), clearinghouseState,
openOrders and frontendOpenOrders take a "dex" parameter; asset ids are 110000 + i*10000 + index, as
the SDK computes them. One collateral pool per account serves every dex (see simulator/dexes.py).

Accounts: like the real venue, only funded accounts trade. Fund them with --fund ADDRESS=USD
(repeatable) or POST /admin/fund; an agent wallet trades for its master once the master approved it
(approveAgent). --fund-any USD funds every address on first sight (the old behaviour, for quick
tests and the offline demo).

Admin (loopback only): GET /admin/state, POST /admin/faults {...}, POST /admin/advance
{"ms": N} or {"bars": N}, POST /admin/drop_ws, POST /admin/fund {"address": "0x..", "usd": N,
"volume_usd": N (optional: earlier traded volume), "mode": "standard" | "unified" (optional)},
POST /admin/shock {"coin": "ETH", "pct": -8} (jump a coin's price now: the bar in progress and
later ones are scaled), POST /admin/orders {"user": "0x.." (optional)} (every order the venue
accepted or rejected, with its status).
"""


@dataclass(frozen=True, kw_only=True)
class VenueOptions:
    """Everything the command line decides."""

    server: ServerConfig
    data_dir: Path | None
    synthetic: int
    builder_dexes: int
    markets_per_dex: int
    interval: str
    speed: float
    seed: int
    start_ms: int | None
    history_bars: int
    fund_any_usd: float | None
    address_request_buffer: int
    schedule_cancel_min_volume_usd: float
    funded: tuple[tuple[str, float], ...]
    unified: tuple[str, ...]
    taker_fee_rate: float
    maker_fee_rate: float
    is_mainnet: bool
    rate_limit_per_min: int
    faults: FaultSettings
    log_level: str


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulator", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="listen port; 0 picks a free one (default 0)")
    p.add_argument("--data", type=Path, default=None, help="directory of SYMBOL-interval.csv files")
    p.add_argument("--synthetic", type=int, default=0, help="number of random-walk symbols (<= 10000)")
    p.add_argument("--builder-dexes", type=int, default=0, metavar="N",
                   help=f"add N HIP-3 builder-deployed perp dexes (0..{MAX_BUILDER_DEXES}; names, collateral "
                        "and fee scale from a fixed catalogue); their coins are named dex:COIN (default 0)")
    p.add_argument("--markets-per-dex", type=int, default=20, metavar="M",
                   help="synthetic markets on each builder dex (default 20)")
    p.add_argument("--interval", default="5m", choices=sorted(INTERVAL_MS, key=INTERVAL_MS.__getitem__),
                   help="base candle interval of the data (default 5m)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="market seconds per wall second; 0 = clock moves only via /admin/advance")
    p.add_argument("--seed", type=int, default=0, help="seed for paths, books, synthetic data, faults")
    p.add_argument("--start-ms", type=int, default=None, help="market clock start (default: now)")
    p.add_argument("--history-bars", type=int, default=DEFAULT_HISTORY_BARS,
                   help=f"bars before the start served as history (default {DEFAULT_HISTORY_BARS})")
    p.add_argument("--fund", action="append", default=[], metavar="ADDRESS=USD", type=_funding,
                   help="deposit USD to ADDRESS at start (repeatable); only funded accounts can trade")
    p.add_argument("--unified", action="append", default=[], metavar="ADDRESS", type=_address,
                   help="put a funded ADDRESS in unified account mode: its USDC shows in "
                        "spotClearinghouseState and the perp accountValue is not its equity (repeatable)")
    p.add_argument("--fund-any", type=float, default=None, metavar="USD",
                   help="fund every address with USD the first time it is queried or approves an agent "
                        "(default: off, only --fund / admin-funded accounts exist)")
    p.add_argument("--address-request-buffer", type=int, default=INITIAL_REQUESTS, metavar="N",
                   help="requests every address may send before it earns more by trading (1 per USDC) "
                        f"or is throttled to 1 per 10 s (default {INITIAL_REQUESTS}, as the venue)")
    p.add_argument("--schedule-cancel-min-volume", type=float, default=SCHEDULE_CANCEL_MIN_VOLUME_USD,
                   metavar="USD", help="traded volume an account needs before scheduleCancel is accepted "
                   f"(default {SCHEDULE_CANCEL_MIN_VOLUME_USD:.0f}, as the venue)")
    p.add_argument("--taker-fee-rate", type=float, default=DEFAULT_TAKER_FEE_RATE)
    p.add_argument("--maker-fee-rate", type=float, default=DEFAULT_MAKER_FEE_RATE)
    p.add_argument("--testnet", action="store_true",
                   help="verify signatures as testnet (source 'b'); the SDK signs so for any non-mainnet URL")
    p.add_argument("--mainnet", action="store_true", help="verify signatures as mainnet (source 'a')")
    p.add_argument("--rate-limit-per-min", type=int, default=DEFAULT_WEIGHT_PER_MIN,
                   help=f"REST weight budget per IP per minute; 0 = off (default {DEFAULT_WEIGHT_PER_MIN})")
    p.add_argument("--tick-ms", type=int, default=250, help="wall ms between market ticks (default 250)")
    ws = WsLimits()
    p.add_argument("--ws-max-connections", type=int, default=ws.max_connections, metavar="N",
                   help=f"simultaneous WS connections per IP (default {ws.max_connections}, as the venue)")
    p.add_argument("--ws-max-new-connections-per-min", type=int, default=ws.max_new_per_min, metavar="N",
                   help=f"new WS connections per IP a minute; 0 = no cap (default {ws.max_new_per_min})")
    p.add_argument("--ws-max-messages-per-min", type=int, default=ws.max_messages_per_min, metavar="N",
                   help=f"WS messages per IP a minute; 0 = no cap (default {ws.max_messages_per_min})")
    p.add_argument("--ws-max-subscriptions", type=int, default=ws.max_subscriptions, metavar="N",
                   help=f"WS subscriptions per IP (default {ws.max_subscriptions}, as the venue)")
    p.add_argument("--ws-idle-timeout-secs", type=float, default=60.0,
                   help="close WS connections silent this long (default 60, like the venue)")
    f = p.add_argument_group("fault injection (also switchable at run time via POST /admin/faults)")
    f.add_argument("--ws-drop-every-secs", type=float, default=0.0, help="drop all WS connections every N s")
    f.add_argument("--rest-error-rate", type=float, default=0.0, help="fraction of REST calls failed (5xx)")
    f.add_argument("--rest-error-status", type=int, default=502)
    f.add_argument("--rest-delay-rate", type=float, default=0.0, help="fraction of REST calls delayed")
    f.add_argument("--rest-delay-secs", type=float, default=0.0, help="delay for delayed REST calls")
    f.add_argument("--lost-ack-next", type=int, default=0,
                   help="process the next N orders but drop their HTTP responses")
    f.add_argument("--lost-ack-rate", type=float, default=0.0, help="fraction of orders losing their answer")
    f.add_argument("--pause-candle-feed", action="store_true", help="start with WS candle pushes paused")
    f.add_argument("--pause-market-feed", action="store_true", help="start with allMids/bbo/l2Book paused")
    p.add_argument("--log-level", default="WARNING")
    return p


def _address(text: str) -> str:
    if not ADDRESS_RE.match(text):
        raise argparse.ArgumentTypeError(f"expected a 0x + 40 hex address, got {text!r}")
    return text.lower()


def _funding(text: str) -> tuple[str, float]:
    """Parse one --fund value, ADDRESS=USD."""
    address, sep, usd = text.partition("=")
    if not sep or not ADDRESS_RE.match(address):
        raise argparse.ArgumentTypeError(f"expected ADDRESS=USD with a 0x + 40 hex address, got {text!r}")
    try:
        amount = float(usd)
    except ValueError:
        raise argparse.ArgumentTypeError(f"USD amount of {text!r} is not a number") from None
    if not amount >= 0:
        raise argparse.ArgumentTypeError(f"USD amount of {text!r} must be >= 0")
    return address.lower(), amount


def parse_options(argv: list[str] | None = None) -> VenueOptions:
    """Parse and validate the command line (argparse exits with status 2 on errors)."""
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.testnet and a.mainnet:
        parser.error("--testnet and --mainnet are exclusive")
    if a.fund_any is not None and not a.fund_any >= 0:
        parser.error("--fund-any must be >= 0")
    if set(a.unified) - {address for address, _ in a.fund}:
        parser.error("--unified ADDRESS needs --fund ADDRESS=USD too")
    if a.address_request_buffer < 0 or not a.schedule_cancel_min_volume >= 0:
        parser.error("--address-request-buffer and --schedule-cancel-min-volume must be >= 0")
    if a.ws_max_connections < 1 or a.ws_max_new_connections_per_min < 0 or a.ws_max_messages_per_min < 0 \
            or a.ws_max_subscriptions < 1:
        parser.error("--ws-max-connections, --ws-max-subscriptions must be >= 1, the per-minute WS caps >= 0")
    if a.speed < 0 or a.history_bars < 0 or a.tick_ms <= 0 or a.synthetic < 0:
        parser.error("--speed, --history-bars, --synthetic must be >= 0 and --tick-ms > 0")
    try:
        make_builder_dexes(a.builder_dexes, a.markets_per_dex)
    except ValueError as e:
        parser.error(str(e))
    faults = FaultSettings(
        ws_drop_every_secs=a.ws_drop_every_secs, rest_error_rate=a.rest_error_rate,
        rest_error_status=a.rest_error_status, rest_delay_rate=a.rest_delay_rate,
        rest_delay_secs=a.rest_delay_secs, lost_ack_next=a.lost_ack_next, lost_ack_rate=a.lost_ack_rate,
        pause_candle_feed=a.pause_candle_feed, pause_market_feed=a.pause_market_feed)
    return VenueOptions(
        server=ServerConfig(host=a.host, port=a.port, tick_ms=a.tick_ms,
                            ws_idle_timeout_secs=a.ws_idle_timeout_secs,
                            ws_limits=WsLimits(max_connections=a.ws_max_connections,
                                               max_new_per_min=a.ws_max_new_connections_per_min,
                                               max_messages_per_min=a.ws_max_messages_per_min,
                                               max_subscriptions=a.ws_max_subscriptions)),
        data_dir=a.data, synthetic=a.synthetic, builder_dexes=a.builder_dexes,
        markets_per_dex=a.markets_per_dex, interval=a.interval, speed=a.speed, seed=a.seed,
        start_ms=a.start_ms, history_bars=a.history_bars, fund_any_usd=a.fund_any, funded=tuple(a.fund),
        unified=tuple(a.unified),
        address_request_buffer=a.address_request_buffer,
        schedule_cancel_min_volume_usd=a.schedule_cancel_min_volume,
        taker_fee_rate=a.taker_fee_rate, maker_fee_rate=a.maker_fee_rate, is_mainnet=a.mainnet,
        rate_limit_per_min=a.rate_limit_per_min, faults=faults, log_level=a.log_level)


def build_series(opts: VenueOptions, builders: tuple[BuilderDex, ...] = ()) -> Series | MultiSeries:
    """The base candles: --data and/or --synthetic, else the shipped data; then each builder dex's
    synthetic markets (their own random stream, so adding a dex never changes another's prices)."""
    iv_ms = INTERVAL_MS[opts.interval]
    parts = []
    if opts.data_dir is not None or opts.synthetic == 0:
        parts.append(load_csv_dir(opts.data_dir or SHIPPED_DATA, interval=opts.interval, interval_ms=iv_ms,
                                  seed=opts.seed))
    if opts.synthetic:
        parts.append(synthetic_series(opts.synthetic, seed=opts.seed))
    for i, dex in enumerate(builders):
        parts.append(synthetic_series(len(dex.coins), seed=opts.seed, names=dex.coins, stream=100 + i))
    return merge(parts)


def build_venue(opts: VenueOptions) -> Venue:
    """Market, faults, rate limit, WS hub and (if importable) the exchange core, wired together."""
    start_ms = opts.start_ms if opts.start_ms is not None else int(time.time() * 1000)
    clock = MarketClock(start_ms=start_ms, speed=opts.speed)
    builders = make_builder_dexes(opts.builder_dexes, opts.markets_per_dex)
    market = Market(build_series(opts, builders), clock, interval_ms=INTERVAL_MS[opts.interval],
                    seed=opts.seed, history_bars=opts.history_bars, builders=builders)
    market.mids_at(market.now_ms())  # grow the series now, not on the first request
    faults = Faults(opts.faults, seed=opts.seed)
    venue = Venue(market, limiter=RateLimiter(opts.rate_limit_per_min), faults=faults, config=opts.server)
    core = _exchange_core(opts, market, venue)
    if core is not None:
        venue.attach_core(core)
    return venue


def _exchange_core(opts: VenueOptions, market: Market, venue: Venue) -> ExchangePort | None:
    try:
        from simulator.exchange import ExchangeCore
    except ImportError:
        logging.getLogger(__name__).warning("simulator.exchange unavailable; /exchange answers 503")
        return None
    core = ExchangeCore(market, fund_any_usd=opts.fund_any_usd, taker_fee_rate=opts.taker_fee_rate,
                        maker_fee_rate=opts.maker_fee_rate, is_mainnet=opts.is_mainnet,
                        event_sink=venue.hub.publish_user, initial_requests=opts.address_request_buffer,
                        schedule_cancel_min_volume_usd=opts.schedule_cancel_min_volume_usd)
    for address, usd in opts.funded:
        core.fund(address, usd, unified=address in opts.unified)
    return core


async def _run(venue: Venue) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(venue, stop)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    opts = parse_options(argv)
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        venue = build_venue(opts)
    except (SeriesError, OSError) as e:
        logging.getLogger(__name__).error("cannot start simulator: %s", e)
        return 2
    asyncio.run(_run(venue))
    return 0
