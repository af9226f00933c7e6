"""Factory-promoted config overlay, chosen by role at start-up (`AI_QUANT_PROMOTED_ROLE`).

A research pipeline writes `<artifacts>/<YYYY-MM-DD>/run_*/promoted_configs/<role>.yaml`. When a
role (primary, fallback or conservative) is set, the newest such file is deep-merged over the
base strategy YAML (promoted values win), written atomically next to the base file as
`strategy_overrides._promoted_<role>.yaml` (mode 0600, with a do-not-edit header), and the daemon
points its StrategyManager at it. No promoted file, an empty one, or an unreadable one is a clear
fallback to the base YAML (logged, and reported in the result), never a crash. An unknown role
is a configuration error.

`promote_variant` writes a shadow variant (issue 11) as such a promoted file, so promoting a
variant is the same path as promoting a research config.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from engine.config.env import ConfigError, env_int, env_opt_str, env_str
from engine.config.shared import env_strategy_yaml
from strategies.config import deep_merge
from strategies.enums import StrategyMode
from strategies.sdk.errors import StrategyConfigError
from strategies.sdk.variants import Variant, expand_grid

log = logging.getLogger(__name__)

PROMOTED_ROLES = (StrategyMode.PRIMARY, StrategyMode.FALLBACK, StrategyMode.CONSERVATIVE)
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class PromotedConfig:
    """What start-up decided: the YAML to use, and where it came from."""

    role: StrategyMode | None
    strategy_yaml: Path
    source: Path | None
    fell_back: bool
    reason: str


def parse_role(env: Mapping[str, str]) -> StrategyMode | None:
    """Read AI_QUANT_PROMOTED_ROLE; raise ConfigError for anything but primary/fallback/conservative."""
    raw = env_opt_str("AI_QUANT_PROMOTED_ROLE", env)
    if raw is None:
        return None
    for role in PROMOTED_ROLES:
        if raw.lower() == role.value:
            return role
    valid = ", ".join(role.value for role in PROMOTED_ROLES)
    raise ConfigError(f"AI_QUANT_PROMOTED_ROLE={raw!r} is not valid; expected one of: {valid}")


def _children(directory: Path, pattern: re.Pattern[str] | None, prefix: str | None) -> list[Path]:
    try:
        entries = [p for p in directory.iterdir() if p.is_dir()]
    except OSError:
        return []
    if pattern is not None:
        entries = [p for p in entries if pattern.match(p.name)]
    if prefix is not None:
        entries = [p for p in entries if p.name.startswith(prefix)]
    return sorted(entries, key=lambda p: p.name, reverse=True)


def _candidates(
    artifacts_dir: Path, role: StrategyMode, max_dates: int | None, max_runs: int | None
) -> Iterator[Path]:
    for date_dir in _children(artifacts_dir, _DATE_DIR, None)[:max_dates]:
        for run_dir in _children(date_dir, None, "run_")[:max_runs]:
            yield run_dir / "promoted_configs" / f"{role.value}.yaml"


def find_promoted_config(
    artifacts_dir: Path, role: StrategyMode, *, max_date_dirs: int = 90, max_runs_per_date: int = 200
) -> Path | None:
    """Return the newest promoted file for `role` (newest date, then newest run), or None.

    The bounded scan runs first; if it finds nothing, an unbounded scan follows.
    """
    for dates, runs in ((max_date_dirs, max_runs_per_date), (None, None)):
        for candidate in _candidates(artifacts_dir, role, dates, runs):
            if candidate.is_file():
                return candidate
    return None


def _read_mapping(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: root is not a mapping")
    return doc


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def artifacts_dir(env: Mapping[str, str]) -> Path:
    """AI_QUANT_ARTIFACTS_DIR (default `artifacts`): where promoted configs are written and found."""
    return Path(env_str("AI_QUANT_ARTIFACTS_DIR", "artifacts", env))


def apply_promoted_config(env: Mapping[str, str]) -> PromotedConfig:
    """Decide which strategy YAML the daemon loads, merging the promoted overlay when there is one."""
    base, _named = env_strategy_yaml(env)
    role = parse_role(env)
    if role is None:
        return PromotedConfig(None, base, None, False, "no promoted role")
    artifacts = artifacts_dir(env)
    source = find_promoted_config(
        artifacts,
        role,
        max_date_dirs=env_int("AI_QUANT_PROMOTED_SCAN_DATE_DIRS", 90, env, lo=1, hi=10_000),
        max_runs_per_date=env_int("AI_QUANT_PROMOTED_SCAN_RUN_DIRS_PER_DATE", 200, env, lo=1, hi=10_000),
    )
    if source is None:
        log.warning("no promoted config for role=%s under %s; using base %s", role, artifacts, base)
        return PromotedConfig(role, base, None, True, "no promoted file")
    try:
        promoted = _read_mapping(source)
        base_doc = _read_mapping(base) if base.exists() else {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        log.warning("promoted config unusable role=%s source=%s error=%s; using base", role, source, exc)
        return PromotedConfig(role, base, source, True, "unreadable promoted file")
    if not promoted:
        log.warning("promoted config empty role=%s source=%s; using base %s", role, source, base)
        return PromotedConfig(role, base, source, True, "empty promoted file")
    merged = deep_merge(base_doc, promoted)
    target = base.with_name(f"{base.stem}._promoted_{role.value}.yaml")
    header = (
        f"# AUTO-GENERATED by engine.tick.promoted_config. Role: {role.value}. Source: {source}. "
        f"Base: {base}. Do not edit; edit the base or promote a new config.\n"
    )
    _write_atomic(target, header + yaml.safe_dump(merged, sort_keys=True))
    log.info("promoted config applied role=%s source=%s written=%s", role, source, target)
    return PromotedConfig(role, target, source, False, "promoted")


# ---------------------------------------------------------------------------- promoting a shadow variant


@dataclass(frozen=True, slots=True)
class VariantPromotion:
    """A shadow variant written as the promoted primary: where, and what."""

    variant: str
    strategy: str
    params: Mapping[str, object]
    path: Path
    role: StrategyMode


def _shadow_variants(doc: Mapping[str, object], source: Path) -> list[Variant]:
    """The base YAML's `strategies.shadows` entries, grids expanded (strategies.sdk.variants)."""
    block = doc.get("strategies")
    shadows = block.get("shadows", []) if isinstance(block, Mapping) else []
    if not isinstance(shadows, list):
        raise ConfigError(f"{source}: strategies.shadows must be a list")
    out: list[Variant] = []
    for entry in shadows:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{source}: every strategies.shadows entry needs a name")
        strategy, params = entry.get("strategy"), entry.get("params") or {}
        if not isinstance(strategy, str) or not isinstance(params, Mapping):
            raise ConfigError(f"{source}: shadow {entry['name']!r} needs a strategy ref and a params mapping")
        try:
            out += expand_grid(entry["name"], strategy, entry.get("grid") or {}, base_overrides=params)
        except StrategyConfigError as e:
            raise ConfigError(f"{source}: shadow {entry['name']!r}: {e}") from None
    return out


def promote_variant(
    strategy_yaml: Path,
    variant: str,
    artifacts_dir: Path,
    *,
    role: StrategyMode = StrategyMode.PRIMARY,
    now: datetime | None = None,
) -> VariantPromotion:
    """Write shadow `variant` of `strategy_yaml` as the promoted `role` config; return where.

    The file is `<artifacts>/<date>/run_<UTC stamp>_shadow/promoted_configs/<role>.yaml`, the newest
    one `apply_promoted_config` finds, holding `strategies: {primary: <ref>, params: {<ref>:
    <overrides>}}`: merged over the base it makes the variant's strategy the global primary with its
    overrides over the base's global params for that ref (exactly the variant's own layers; a
    `strategies.symbols.<SYM>` primary or params still apply on top, as for any primary). It takes
    effect on the next start with `AI_QUANT_PROMOTED_ROLE=<role>`. Raises ConfigError (exit 2) for
    an unreadable base, an unknown variant or a role outside PROMOTED_ROLES.
    """
    if role not in PROMOTED_ROLES:
        valid = ", ".join(r.value for r in PROMOTED_ROLES)
        raise ConfigError(f"cannot promote to role {role.value!r}; expected one of: {valid}")
    try:
        doc = _read_mapping(strategy_yaml)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"strategy YAML {strategy_yaml} unreadable: {exc}") from None
    found = {v.name: v for v in _shadow_variants(doc, strategy_yaml)}
    if variant not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"no shadow variant {variant!r} in {strategy_yaml} (known: {known})")
    chosen = found[variant]
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    target = (artifacts_dir / stamp.strftime("%Y-%m-%d") / f"run_{stamp.strftime('%Y%m%dT%H%M%SZ')}_shadow"
              / "promoted_configs" / f"{role.value}.yaml")  # fmt: skip
    params = dict(chosen.overrides)
    body = {"strategies": {"primary": chosen.strategy, "params": {chosen.strategy: params}}}
    header = (f"# Promoted shadow variant {variant!r} ({chosen.strategy}) from {strategy_yaml} by "
              f"engine.shadow_report --promote at {stamp.isoformat()}.\n")  # fmt: skip
    _write_atomic(target, header + yaml.safe_dump(body, sort_keys=True))
    log.info("promoted shadow variant=%s strategy=%s role=%s written=%s",
             variant, chosen.strategy, role.value, target)  # fmt: skip
    return VariantPromotion(variant, chosen.strategy, params, target, role)
