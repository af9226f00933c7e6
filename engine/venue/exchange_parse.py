"""`POST /exchange` reply records and their parser: an ack with one status per item, or a
whole-request error. Re-exported by `engine.venue.types` (import from there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.venue.fields import _Ctx, _int, _items, _num, _obj, _opt_cloid, _opt_field, _str, _sub, _unknown

# --- /exchange replies --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestingStatus:
    oid: int
    cloid: str | None = None


@dataclass(frozen=True, slots=True)
class FilledStatus:
    oid: int
    total_sz: float
    avg_px: float
    cloid: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """A per-item rejection inside an ok reply (e.g. the $10 minimum); the message is the venue's."""

    message: str


@dataclass(frozen=True, slots=True)
class TextStatus:
    """A bare string status: "success" for cancels, "waitingForFill"/"waitingForTrigger" for triggers."""

    text: str


ActionStatus = RestingStatus | FilledStatus | ErrorStatus | TextStatus


@dataclass(frozen=True, slots=True)
class ExchangeAck:
    """`{"status":"ok","response":{"type":..., "data":{"statuses":[...]}}}`: one status per item."""

    response_type: str
    statuses: tuple[ActionStatus, ...] = ()

    @property
    def all_ok(self) -> bool:
        return not any(isinstance(s, ErrorStatus) for s in self.statuses)


@dataclass(frozen=True, slots=True)
class ExchangeErr:
    """`{"status":"err","response":"<message>"}`: the whole request was refused."""

    message: str


def _action_status(item: Any, ctx: _Ctx) -> ActionStatus:
    if isinstance(item, str):
        return TextStatus(item)
    obj = _obj(item, ctx)
    if "error" in obj:
        return ErrorStatus(_str(obj, "error", ctx, nonempty=False))
    if "resting" in obj:
        r, rctx = _sub(obj, "resting", ctx)
        return RestingStatus(oid=_int(r, "oid", rctx), cloid=_opt_cloid(r, "cloid", rctx))
    if "filled" in obj:
        f, fctx = _sub(obj, "filled", ctx)
        return FilledStatus(
            oid=_int(f, "oid", fctx),
            total_sz=_num(f, "totalSz", fctx, sign="nonneg"),
            avg_px=_num(f, "avgPx", fctx, sign="nonneg"),
            cloid=_opt_cloid(f, "cloid", fctx),
        )
    raise ctx.fail(f"unknown status keys {sorted(obj)[:5]}")


def parse_exchange_reply(body: Any, request: str = "exchange") -> ExchangeAck | ExchangeErr:
    """Parse a `POST /exchange` JSON reply into an ack (with statuses) or a whole-request error."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    status = _str(obj, "status", ctx)
    if status == "err":
        response = obj.get("response")
        return ExchangeErr(response if isinstance(response, str) else str(response)[:500])
    if status != "ok":
        raise _unknown(ctx.at("status"), status)
    response, rctx = _sub(obj, "response", ctx)
    rtype = _str(response, "type", rctx)
    statuses: tuple[ActionStatus, ...] = ()
    data = _opt_field(response, "data", rctx, _obj)
    if data is not None and "statuses" in data:
        statuses = _items(data["statuses"], rctx.at("data").at("statuses"), _action_status)
    return ExchangeAck(response_type=rtype, statuses=statuses)
