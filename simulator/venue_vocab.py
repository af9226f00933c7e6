"""The simulated venue's closed vocabularies and the exact texts it answers with.

Every rejection the exchange core can produce is built here, so tests and clients compare against
one list. Texts marked [docs] are Hyperliquid's documented strings (gitbook "Error responses",
rendered on the wire with a trailing " asset=N"); [seen] were observed from the venue by users;
[sim] are our best phrasing where no real text was available.
"""

from __future__ import annotations

from enum import StrEnum


class Tif(StrEnum):
    GTC = "Gtc"
    IOC = "Ioc"
    ALO = "Alo"


class Tpsl(StrEnum):
    TP = "tp"
    SL = "sl"


class Grouping(StrEnum):
    """How the orders of one batch relate: `na` independent; `normalTpsl` the trigger orders are
    take-profit / stop-loss children of the batch's first order, live once it fills; `positionTpsl`
    the trigger orders protect the whole position (sized to it when they fire, cancelled with it)."""

    NA = "na"
    NORMAL_TPSL = "normalTpsl"
    POSITION_TPSL = "positionTpsl"


class OrderStatus(StrEnum):
    """Values of orderStatus / orderUpdates "status" (the venue's camelCase spelling)."""

    OPEN = "open"
    FILLED = "filled"
    CANCELED = "canceled"
    TRIGGERED = "triggered"
    SIBLING_FILLED_CANCELED = "siblingFilledCanceled"
    LIQUIDATED_CANCELED = "liquidatedCanceled"
    ORACLE_REJECTED = "oracleRejected"
    REJECTED = "rejected"
    MARGIN_CANCELED = "marginCanceled"
    REDUCE_ONLY_CANCELED = "reduceOnlyCanceled"
    SCHEDULED_CANCEL = "scheduledCancel"
    TICK_REJECTED = "tickRejected"
    MIN_TRADE_NTL_REJECTED = "minTradeNtlRejected"
    PERP_MARGIN_REJECTED = "perpMarginRejected"
    REDUCE_ONLY_REJECTED = "reduceOnlyRejected"
    BAD_ALO_PX_REJECTED = "badAloPxRejected"
    IOC_CANCEL_REJECTED = "iocCancelRejected"


class FillDir(StrEnum):
    OPEN_LONG = "Open Long"
    OPEN_SHORT = "Open Short"
    CLOSE_LONG = "Close Long"
    CLOSE_SHORT = "Close Short"
    LONG_TO_SHORT = "Long > Short"
    SHORT_TO_LONG = "Short > Long"


class EventChannel(StrEnum):
    """Channels the exchange core pushes to its event sink (same names as the venue's WS channels)."""

    USER_FILLS = "userFills"
    ORDER_UPDATES = "orderUpdates"
    USER_FUNDINGS = "userFundings"


class RejectKind(StrEnum):
    """Why a single order in a batch was refused; maps to the text and to the recorded order status."""

    TICK = "tick"
    INVALID_SIZE = "invalid_size"
    INVALID_PRICE = "invalid_price"
    MIN_NOTIONAL = "min_notional"
    MARGIN = "margin"
    REDUCE_ONLY = "reduce_only"
    BAD_ALO_PX = "bad_alo_px"
    IOC_CANCEL = "ioc_cancel"
    DUPLICATE_CLOID = "duplicate_cloid"
    UNKNOWN_ASSET = "unknown_asset"
    BAD_ORDER_TYPE = "bad_order_type"
    PRICE_BAND = "price_band"
    OPEN_ORDER_CAP = "open_order_cap"
    EMPTY_BATCH = "empty_batch"
    TPSL_NOT_REDUCE_ONLY = "tpsl_not_reduce_only"


# Rejections decided from the payload alone: the venue refuses the whole batch with one error
# (docs, "Error responses": "only one error is returned for the entire payload").
PREVALIDATION_KINDS = frozenset({RejectKind.INVALID_PRICE, RejectKind.EMPTY_BATCH,
                                 RejectKind.TPSL_NOT_REDUCE_ONLY})


REJECT_STATUS: dict[RejectKind, OrderStatus] = {
    RejectKind.TICK: OrderStatus.TICK_REJECTED,
    RejectKind.INVALID_SIZE: OrderStatus.REJECTED,
    RejectKind.INVALID_PRICE: OrderStatus.TICK_REJECTED,
    RejectKind.MIN_NOTIONAL: OrderStatus.MIN_TRADE_NTL_REJECTED,
    RejectKind.MARGIN: OrderStatus.PERP_MARGIN_REJECTED,
    RejectKind.REDUCE_ONLY: OrderStatus.REDUCE_ONLY_REJECTED,
    RejectKind.BAD_ALO_PX: OrderStatus.BAD_ALO_PX_REJECTED,
    RejectKind.IOC_CANCEL: OrderStatus.IOC_CANCEL_REJECTED,
    RejectKind.DUPLICATE_CLOID: OrderStatus.REJECTED,
    RejectKind.UNKNOWN_ASSET: OrderStatus.REJECTED,
    RejectKind.BAD_ORDER_TYPE: OrderStatus.REJECTED,
    RejectKind.PRICE_BAND: OrderStatus.ORACLE_REJECTED,
    RejectKind.OPEN_ORDER_CAP: OrderStatus.REJECTED,
    RejectKind.EMPTY_BATCH: OrderStatus.REJECTED,
    RejectKind.TPSL_NOT_REDUCE_ONLY: OrderStatus.REJECTED,
}


def order_error(kind: RejectKind, asset: int, bbo: str = "") -> str:
    """Return the per-order error text for a rejection of `kind` on asset index `asset`."""
    texts = {
        RejectKind.TICK: f"Price must be divisible by tick size. asset={asset}",  # [docs]
        RejectKind.INVALID_SIZE: "Order has invalid size.",  # [seen]
        # [seen] precision (> 5 significant figures or > 6 - szDecimals decimals) or a price <= 0;
        # refused before execution, one error for the whole batch
        RejectKind.INVALID_PRICE: "Order has invalid price.",
        RejectKind.MIN_NOTIONAL: f"Order must have minimum value of $10. asset={asset}",  # [docs]
        RejectKind.MARGIN: f"Insufficient margin to place order. asset={asset}",  # [docs]
        RejectKind.REDUCE_ONLY: f"Reduce only order would increase position. asset={asset}",  # [docs]
        RejectKind.BAD_ALO_PX: (  # [docs]
            f"Post only order would have immediately matched, bbo was {bbo}. asset={asset}"
        ),
        RejectKind.IOC_CANCEL: (  # [docs]
            f"Order could not immediately match against any resting orders. asset={asset}"
        ),
        RejectKind.DUPLICATE_CLOID: "Duplicate cloid.",  # [sim]
        RejectKind.UNKNOWN_ASSET: f"Asset {asset} does not exist.",  # [sim]
        RejectKind.BAD_ORDER_TYPE: "Invalid order type.",  # [sim]
        RejectKind.PRICE_BAND: "Order price cannot be more than 80% away from the reference price",  # [seen]
        RejectKind.OPEN_ORDER_CAP: (  # [sim] the real text is not known
            f"Too many open orders: the simulator's open-order cap is reached. asset={asset}"
        ),
        RejectKind.EMPTY_BATCH: "Order batch is empty.",  # [sim]
        RejectKind.TPSL_NOT_REDUCE_ONLY: "TP/SL orders of a tpsl grouping must be reduce only.",  # [sim]
    }
    return texts[kind]


def missing_order(asset: int) -> str:
    """Cancel of an unknown / finished order. [docs]"""
    return f"Order was never placed, already canceled, or filled. asset={asset}"


def unknown_signer(address: str) -> str:
    """Whole-request error when the recovered signer is neither a user nor an approved agent. [seen]"""
    return f"User or API Wallet {address} does not exist."


def must_deposit(user: str) -> str:
    """Whole-request error for an account that never received a deposit. [seen] (testnet probe,
    2026-10; some clients quote it without the " User: …" suffix)"""
    return f"Must deposit before performing actions. User: {user}"


def usd_text(value: float) -> str:
    """A USD amount as the venue prints it inside texts: shortest decimal, no trailing zeros
    ("$0", "$4643", "$373.47205", "$87457.46")."""
    text = f"{round(value, 6):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def too_many_requests(would_use: int, cap: int, volume_usd: float) -> str:
    """Whole-request error when the per-address request budget is spent. [seen] The recorded
    testnet text read "(97460 > 97456)" while userRateLimit reported nRequestsCap 97457; this
    simulator prints the count the request would reach and the cap it compares against."""
    return (
        f"Too many cumulative requests sent ({would_use} > {cap}) for cumulative volume traded "
        f"${usd_text(volume_usd)}. Place taker orders to free up 1 request per USDC traded."
    )


def schedule_cancel_volume(required_usd: float, traded_usd: float) -> str:
    """scheduleCancel below the volume gate. [seen]"""
    return (
        "Cannot set scheduled cancel time until enough volume traded. "
        f"Required: ${usd_text(required_usd)}. Traded: ${usd_text(traded_usd)}."
    )


def duplicate_nonce(nonce: int) -> str:  # [seen]
    return f"Invalid nonce: duplicate nonce {nonce}"


def nonce_too_low(nonce: int) -> str:  # [sim]
    return f"Invalid nonce: nonce {nonce} is lower than the lowest of the 100 highest nonces used"


def nonce_too_old(nonce: int) -> str:  # [sim]
    return f"Invalid nonce: nonce {nonce} is more than 2 days in the past"


def nonce_too_new(nonce: int) -> str:  # [sim]
    return f"Invalid nonce: nonce {nonce} is more than 1 day in the future"


BAD_SIGNATURE = "Invalid signature."  # [sim] signature that cannot be recovered at all
MALFORMED_REQUEST = "Failed to deserialize the JSON body into the target type"  # [seen] HTTP 422 text
VAULT_UNSUPPORTED = "Vault trading is not supported by this venue."  # [sim]
UNKNOWN_ACTION = "Unknown action type."  # [sim]
INVALID_LEVERAGE = "Invalid leverage value."  # [sim]
CROSS_ISOLATED_SWITCH = "Cannot switch leverage type with open position."  # [sim]
LEVERAGE_MARGIN = "Insufficient margin to change leverage."  # [sim]
SCHEDULE_CANCEL_TOO_EARLY = (  # [sim]
    "Scheduled cancel time too early, must be at least 5 seconds after current time."
)
TPSL_PARENT_REJECTED = "TP/SL order not placed: its parent order was rejected."  # [sim]
MODIFY_MISSING = "Cannot modify canceled or filled order"  # [seen], quoted by users without an asset
SCHEDULE_CANCEL_DAILY_LIMIT = (  # [sim] the real text is not known
    "Scheduled cancel already triggered 10 times today (resets at 00:00 UTC)."
)
RESERVE_INSUFFICIENT = "Insufficient balance to reserve request weight."  # [sim]
WRONG_CHAIN = "Action signed for the wrong chain."  # [sim]
AGENT_IS_USER = "Agent address is already a user."  # [sim]


def action_expired(expires_after: int) -> str:  # [sim]
    return f"Action expired: expiresAfter {expires_after} is in the past"
