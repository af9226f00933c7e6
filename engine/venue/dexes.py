"""HIP-3 perp dexes: the venue's `perpDexs` list, which dexes this engine trades, and the arithmetic
that spans one account over several of them. Pure, no I/O (the info client does the requests).

Facts from the venue (hyperliquid-python-sdk 0.24, `Info.__init__` / `Exchange._get_dex`): `perpDexs`
answers ``[null, {name, fullName, deployer, ...}, ...]`` where null is the original dex; the i-th
builder dex (0-based, after the null) numbers its assets ``110000 + i * 10000 + index in its meta``;
its coins are named ``dex:COIN`` (case kept: ``xyz:kBONK`` is not ``XYZ:KBONK``); `meta`,
`metaAndAssetCtxs`, `allMids`, `clearinghouseState`, `openOrders` and `frontendOpenOrders` take a
``dex`` parameter ("" = the original dex). Each dex settles in its own collateral token
(`meta.collateralToken`, an index into `spotMeta.tokens`) and may charge a deployer fee on top of
the base rate (`deployerFeeScale`: fee = base x (1 + scale)).

Account model: one collateral pool shared by the dexes (the venue's dex abstraction; the simulator
models exactly this), so a merged account takes accountValue and withdrawable from the original
dex's state and sums positions, notional and margin over every dex. Each dex's own state is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.config.perp_dexes import ORIGINAL_DEX, ORIGINAL_DEX_WORD, PerpDexSelection
from engine.venue.account import MarginSummary, UserState
from engine.venue.errors import ParseError
from engine.venue.fields import _Ctx, _int, _list, _obj, _opt_num, _opt_str, _str
from engine.venue.market import AssetCtx, AssetMeta, MarginTable, Meta, MetaAndAssetCtxs

BUILDER_ASSET_BASE = 110_000
BUILDER_ASSET_STRIDE = 10_000


@dataclass(frozen=True, slots=True)
class PerpDex:
    """One perp dex as the engine trades it. `asset_offset` is added to its meta indexes."""

    name: str  # "" for the original dex
    asset_offset: int = 0
    full_name: str = ""
    fee_scale: float = 0.0  # deployerFeeScale: fees are base x (1 + fee_scale)
    collateral_token: int | None = None  # index into spotMeta.tokens (None: the original dex's USDC)

    @property
    def fee_multiplier(self) -> float:
        return 1.0 + self.fee_scale


ORIGINAL = PerpDex(ORIGINAL_DEX)


def _perp_dex(item: object, ctx: _Ctx, position: int) -> PerpDex:
    obj = _obj(item, ctx)
    name = _str(obj, "name", ctx)
    scale = _opt_num(obj, "deployerFeeScale", ctx, sign="nonneg") or 0.0
    return PerpDex(name=name, asset_offset=BUILDER_ASSET_BASE + position * BUILDER_ASSET_STRIDE,
                   full_name=_opt_str(obj, "fullName", ctx) or "", fee_scale=scale)


def parse_perp_dexs(body: object, request: str = "perpDexs") -> tuple[PerpDex, ...]:
    """Parse `perpDexs`: the original dex (the leading null) and each builder dex with its offset."""
    ctx = _Ctx(request)
    items = _list(body, ctx)
    if not items or items[0] is not None:
        raise ctx.at(0).fail("the first entry must be null (the original dex)")
    return (ORIGINAL, *(_perp_dex(item, ctx.at(i + 1), i) for i, item in enumerate(items[1:])))


def parse_token_names(body: object, request: str = "spotMeta") -> dict[int, str]:
    """`spotMeta.tokens` as {index: name} (for naming each dex's collateral token)."""
    ctx = _Ctx(request)
    tctx = ctx.at("tokens")
    tokens = _obj(body, ctx).get("tokens", [])
    out: dict[int, str] = {}
    for i, item in enumerate(_list(tokens, tctx)):
        obj = _obj(item, tctx.at(i))
        out[_int(obj, "index", tctx.at(i))] = _str(obj, "name", tctx.at(i))
    return out


def collateral_token_of(body: object, request: str = "meta") -> int | None:
    """`meta.collateralToken` (absent on the original dex's answer)."""
    ctx = _Ctx(request)
    obj = _obj(body, ctx)
    return None if obj.get("collateralToken") is None else _int(obj, "collateralToken", ctx)


def resolve_selection(selection: PerpDexSelection, listed: Sequence[PerpDex]) -> tuple[PerpDex, ...]:
    """The selected dexes among those the venue lists; ValueError naming any it does not list."""
    if selection.every:
        return tuple(listed)
    by_name = {d.name: d for d in listed}
    missing = [n or ORIGINAL_DEX_WORD for n in selection.names if n not in by_name]
    if missing:
        known = ",".join(d.name or ORIGINAL_DEX_WORD for d in listed)
        raise ValueError(f"perp dex(es) {','.join(missing)} not listed by the venue (it lists {known})")
    return tuple(by_name[n] for n in selection.names)


# --- spanning several dexes -------------------------------------------------------------------------


def offset_meta(meta: Meta, offset: int) -> Meta:
    """`meta` with each asset id moved by the dex's offset (builder dexes' ids start at 110000)."""
    if offset == 0:
        return meta
    universe = tuple(
        AssetMeta(asset_id=a.asset_id + offset, name=a.name, sz_decimals=a.sz_decimals,
                  max_leverage=a.max_leverage, only_isolated=a.only_isolated, is_delisted=a.is_delisted,
                  margin_table_id=a.margin_table_id)
        for a in meta.universe
    )  # fmt: skip
    return Meta(universe=universe, margin_tables=meta.margin_tables)


def merge_metas(metas: Iterable[Meta]) -> Meta:
    """One universe over several dexes (ids already offset); margin tables de-duplicated by id."""
    universe: list[AssetMeta] = []
    tables: dict[int, MarginTable] = {}
    for meta in metas:
        universe.extend(meta.universe)
        for table in meta.margin_tables:
            tables.setdefault(table.table_id, table)
    return Meta(universe=tuple(universe), margin_tables=tuple(tables.values()))


def merge_meta_and_ctxs(answers: Iterable[MetaAndAssetCtxs]) -> MetaAndAssetCtxs:
    answers = list(answers)
    ctxs: list[AssetCtx] = [c for a in answers for c in a.ctxs]
    return MetaAndAssetCtxs(meta=merge_metas(a.meta for a in answers), ctxs=tuple(ctxs))


def _summed(summaries: Sequence[MarginSummary], account_value: float) -> MarginSummary:
    return MarginSummary(
        account_value_usd=account_value,
        total_margin_used_usd=sum(s.total_margin_used_usd for s in summaries),
        total_ntl_pos_usd=sum(s.total_ntl_pos_usd for s in summaries),
        total_raw_usd=account_value - sum(s.account_value_usd - s.total_raw_usd for s in summaries),
    )


def merge_user_states(states: Mapping[str, UserState]) -> UserState:
    """One account over several dexes (see the module docstring): positions of every dex; notional,
    margin and maintenance summed; accountValue and withdrawable from the original dex (or the first
    one read when the original dex is not traded)."""
    if not states:
        raise ParseError("clearinghouseState", "", "no perp dex state to merge")
    base = states.get(ORIGINAL_DEX) or next(iter(states.values()))
    parts = list(states.values())
    value = base.margin_summary.account_value_usd
    cross = [s.cross_margin_summary for s in parts if s.cross_margin_summary is not None]
    maint = [m for m in (s.cross_maintenance_margin_used_usd for s in parts) if m is not None]
    return UserState(
        margin_summary=_summed([s.margin_summary for s in parts], value),
        cross_margin_summary=_summed(cross, value) if len(cross) == len(parts) else None,
        withdrawable_usd=base.withdrawable_usd,
        positions=tuple(p for s in parts for p in s.positions),
        cross_maintenance_margin_used_usd=sum(maint) if len(maint) == len(parts) else None,
        time_ms=base.time_ms,
        dex_states=tuple(states.items()),
    )
