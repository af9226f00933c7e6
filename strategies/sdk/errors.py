"""The Strategy SDK's error types, sorted by the action they call for.

* `StrategyConfigError` and its subclasses are configuration problems: a bad parameter, an unknown
  strategy name, a user module that does not import or does not define a valid strategy. The
  daemon stops at start (or keeps the last good config on a hot reload) and exits with
  `StrategyConfigError.exit_code` (2, "configuration problem: do not restart").
* `StrategyOutputError` is a strategy that ran but returned something unusable (NaN score, a
  wrong type, a missing column). It is raised by `strategies.sdk.strategy.validate_decision` and
  turned into a `StrategyFault` record by the fence (`strategies.sdk.strategy.evaluate`), so one
  broken strategy on one symbol never takes the daemon down.

Pure: no I/O.
"""

from __future__ import annotations

EXIT_CONFIG = 2  # the project's exit status for "configuration problem"


class StrategySdkError(Exception):
    """Base of every error the SDK raises on purpose."""


class StrategyConfigError(StrategySdkError, ValueError):
    """A strategy cannot be configured or loaded; the caller exits with `exit_code` (2)."""

    exit_code: int = EXIT_CONFIG


class StrategyParamError(StrategyConfigError):
    """A parameter is unknown, of the wrong type or out of bounds.

    The message names the strategy, the symbol (``*`` for the global layer) and the field, so an
    operator can find the YAML line without reading code.
    """

    def __init__(self, strategy: str, symbol: str | None, field: str, problem: str) -> None:
        self.strategy = strategy
        self.symbol = symbol if symbol is not None else "*"
        self.field = field
        self.problem = problem
        super().__init__(f"strategy {strategy!r}, symbol {self.symbol}: parameter {field!r}: {problem}")


class StrategyNotFoundError(StrategyConfigError):
    """No built-in, entry point or module path answers to this strategy reference."""

    def __init__(self, ref: str, known: tuple[str, ...]) -> None:
        self.ref = ref
        self.known = known
        names = ", ".join(known) if known else "none"
        super().__init__(
            f"unknown strategy {ref!r}; registered: {names} "
            "(a user strategy is referenced as 'package.module:ClassName')"
        )


class StrategyLoadError(StrategyConfigError):
    """A strategy reference resolved but could not be loaded (import error, bad class, bad declaration)."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"cannot load strategy {ref!r}: {reason}")


class IndicatorDeclarationError(StrategyConfigError):
    """A strategy's indicator declarations are inconsistent (duplicate column, unknown source, ...)."""


class StrategyOutputError(StrategySdkError):
    """A strategy's decision is unusable (NaN or non-finite score, wrong type, bad exit level)."""

    def __init__(self, strategy: str, symbol: str, problem: str) -> None:
        self.strategy = strategy
        self.symbol = symbol
        self.problem = problem
        super().__init__(f"strategy {strategy!r}, symbol {symbol}: {problem}")
