"""`python -m strategies list [--json]`: the strategies the registry knows (built-ins, entry points).

Prints one name per line, or with `--json` one JSON document:
`{"strategies": [{"name": ..., "origin": "builtin"|"entry_point", "ref": "module:Class"}, ...]}`.
Exit 0; exit 2 when the registry itself is misconfigured (an entry point shadowing a name).
User strategies referenced by module path in the YAML are not listed (they are not registered).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from strategies.sdk.errors import StrategyConfigError
from strategies.sdk.registry import StrategyRegistry


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strategies", description="Strategy SDK tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print the registered strategy names")
    listing.add_argument("--json", action="store_true", help="print JSON instead of one name per line")
    args = parser.parse_args(argv)
    try:
        registry = StrategyRegistry.installed()
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
