"""Strategy SDK tools: `python -m strategies list [--json]` and `python -m strategies describe REF`.

`list` prints the registered names, one per line, or with `--json` one JSON document:
`{"strategies": [{"name": ..., "origin": "builtin"|"entry_point", "ref": "module:Class"}, ...]}`.
User strategies referenced by module path in the YAML are not listed (they are not registered).

`describe REF` (a name or 'package.module:Class') prints, as JSON, what a YAML author needs: the summary,
the parameter schema (type, default, bounds, meaning), and, with default parameters, the
declared indicators, the rows a decision reads, the warm-up and the exit rules.

Exit 0; exit 2 on a configuration problem (unknown name, import error, a misconfigured registry),
with the reason on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from strategies.sdk.errors import StrategyConfigError
from strategies.sdk.registry import StrategyRegistry
from strategies.sdk.strategy import Strategy


def describe(registry: StrategyRegistry, ref: str) -> dict[str, Any]:
    """Return the JSON-able description of a strategy (raises StrategyConfigError)."""
    cls = registry.resolve(ref)
    strategy = cls.configure()
    return {
        "name": cls.NAME,
        "summary": cls.SUMMARY,
        "params": [p.to_dict() for p in cls.PARAMS.schema()],
        "indicators": [repr(spec) for spec in strategy.indicator_set.specs],
        "columns": list(strategy.indicator_set.columns),
        "lookback_rows": cls.LOOKBACK_ROWS,
        "warmup_bars": strategy.warmup,
        "exit_rules": dataclasses.asdict(strategy.rules),
        "array_form": cls.decide_columns is not Strategy.decide_columns,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m strategies", description="Strategy SDK tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print the registered strategy names")
    listing.add_argument("--json", action="store_true", help="print JSON instead of one name per line")
    desc = sub.add_parser("describe", help="print a strategy's parameters, indicators and exits")
    desc.add_argument("ref", help="a registered name or 'package.module:ClassName' (prints JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        registry = StrategyRegistry.installed()
        if args.command == "describe":
            print(json.dumps(describe(registry, args.ref), indent=2))
            return 0
    except StrategyConfigError as e:
        print(f"strategies: {e}", file=sys.stderr)
        return e.exit_code
    entries = registry.entries()
    if args.json:
        print(json.dumps({"strategies": [e.to_dict() for e in entries]}, indent=2))
    else:
        for entry in entries:
            print(entry.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
