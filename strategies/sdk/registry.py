"""Where strategies come from: built-ins by name, entry points, and 'package.module:Class' paths.

`StrategyRegistry(builtins, entry_points)` is a plain value built once at start (no module-level
state); `StrategyRegistry.installed()` builds it from the built-ins and the installed packages'
`ai_quant.strategies` entry points. `resolve(ref)` accepts:

* a built-in or entry-point name (`donchian_breakout`);
* a module path (`mypkg.my_strategy:MyStrategy`), imported on demand.

Every failure raises a `StrategyConfigError` subclass (exit 2) with the reason:
`StrategyNotFoundError` for an unknown name, `StrategyLoadError` for an import error, a missing
attribute, a class that is not a `Strategy`, or a strategy whose defaults do not validate (so a
broken user strategy fails at start, not mid-trade). Importing user code is the only side effect.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from strategies.sdk.enums import StrategyOrigin
from strategies.sdk.errors import StrategyConfigError, StrategyLoadError, StrategyNotFoundError
from strategies.sdk.params import StrategyParams
from strategies.sdk.strategy import Strategy

ENTRY_POINT_GROUP = "ai_quant.strategies"

StrategyClass = type[Strategy[Any]]


class EntryPointLike(Protocol):
    """What the registry needs of an `importlib.metadata.EntryPoint` (fakes implement it in tests)."""

    name: str
    value: str

    def load(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class RegisteredStrategy:
    """One registry entry as `python -m strategies list --json` prints it."""

    name: str
    origin: StrategyOrigin
    ref: str  # 'module:Class' it loads from

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "origin": self.origin.value, "ref": self.ref}


def _ref_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def check_strategy_class(obj: object, ref: str) -> StrategyClass:
    """Return `obj` if it is a usable Strategy class; raise StrategyLoadError saying why not.

    Usable: a concrete `Strategy` subclass with a NAME, a `StrategyParams` PARAMS, an int
    LOOKBACK_ROWS >= 1, whose default parameters build (declarations, warm-up and exits validate).
    """
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise StrategyLoadError(ref, f"{obj!r} is not a Strategy subclass")
    name = getattr(obj, "NAME", None)
    if not isinstance(name, str) or not name.strip():
        raise StrategyLoadError(ref, "NAME must be a non-empty string")
    params = getattr(obj, "PARAMS", None)
    if not (isinstance(params, type) and issubclass(params, StrategyParams)):
        raise StrategyLoadError(ref, "PARAMS must be a StrategyParams dataclass")
    k = obj.LOOKBACK_ROWS
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise StrategyLoadError(ref, f"LOOKBACK_ROWS must be an int >= 1, got {k!r}")
    if getattr(obj, "__abstractmethods__", None):
        raise StrategyLoadError(ref, f"abstract methods not implemented: {sorted(obj.__abstractmethods__)}")
    try:
        obj(params())
    except StrategyConfigError as e:
        raise StrategyLoadError(ref, f"default parameters do not validate: {e}") from e
    except Exception as e:  # user code at load: any failure is a load failure, with its reason
        raise StrategyLoadError(ref, f"building it with defaults raised {type(e).__name__}: {e}") from e
    return obj


def load_module_path(ref: str) -> StrategyClass:
    """Import 'package.module:ClassName' and check the class; raise StrategyLoadError on failure."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise StrategyLoadError(ref, "expected 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, SyntaxError, or whatever the user module raises on import
        raise StrategyLoadError(ref, f"import failed: {type(e).__name__}: {e}") from e
    obj: object = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise StrategyLoadError(ref, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return check_strategy_class(obj, ref)


class StrategyRegistry:
    """Built-in and entry-point strategies by name, plus module paths on demand."""

    __slots__ = ("_builtins", "_entry_points")

    def __init__(
        self, builtins: Mapping[str, StrategyClass], entry_points: Iterable[EntryPointLike] = ()
    ) -> None:
        """Raise StrategyConfigError if a built-in's key is not its NAME or an entry point shadows a name."""
        for name, cls in builtins.items():
            if getattr(cls, "NAME", None) != name:
                raise StrategyConfigError(f"built-in strategy key {name!r} differs from its NAME")
        eps: dict[str, EntryPointLike] = {}
        for ep in entry_points:
            if ep.name in builtins or ep.name in eps:
                raise StrategyConfigError(
                    f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP!r} "
                    "shadows a registered name")
            eps[ep.name] = ep
        self._builtins = MappingProxyType(dict(builtins))
        self._entry_points = MappingProxyType(eps)

    @classmethod
    def installed(cls) -> StrategyRegistry:
        """The built-ins plus the installed packages' `ai_quant.strategies` entry points."""
        from strategies.sdk.builtin import BUILTINS  # late: the built-ins import this package

        return cls(BUILTINS, importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))

    def entries(self) -> tuple[RegisteredStrategy, ...]:
        """Every registered name, built-ins first, each group sorted (entry points are not loaded)."""
        out = [RegisteredStrategy(n, StrategyOrigin.BUILTIN, _ref_of(c))
               for n, c in sorted(self._builtins.items())]
        out += [RegisteredStrategy(n, StrategyOrigin.ENTRY_POINT, ep.value)
                for n, ep in sorted(self._entry_points.items())]
        return tuple(out)

    def names(self) -> tuple[str, ...]:
        """Registered names (module paths are accepted by `resolve` but not listed)."""
        return tuple(e.name for e in self.entries())

    def resolve(self, ref: str) -> StrategyClass:
        """Return the strategy class for a name or a 'module:Class' path (see the module docstring)."""
        if not isinstance(ref, str) or not ref.strip():
            raise StrategyNotFoundError(repr(ref), self.names())
        ref = ref.strip()
        if ":" in ref:
            return load_module_path(ref)
        if ref in self._builtins:
            return self._builtins[ref]
        ep = self._entry_points.get(ref)
        if ep is None:
            raise StrategyNotFoundError(ref, self.names())
        try:
            obj = ep.load()
        except Exception as e:  # the entry point's module failed to import: a load failure
            reason = f"entry point {ep.value!r} failed to load: {type(e).__name__}: {e}"
            raise StrategyLoadError(ref, reason) from e
        cls = check_strategy_class(obj, ref)
        if cls.NAME != ref:
            raise StrategyLoadError(ref, f"entry point name differs from the class NAME {cls.NAME!r}")
        return cls

    def configure(self, ref: str, layers: Sequence[Mapping[str, Any]] = (), *,
                  symbol: str | None = None) -> Strategy[Any]:
        """Resolve `ref` and build it with merged parameter layers.

        Raises StrategyConfigError subclasses only: see `resolve`; a bad parameter is a
        StrategyParamError; any other exception raised by the strategy's own code while it is
        built becomes a StrategyLoadError with the reason.
        """
        cls = self.resolve(ref)
        try:
            return cls.configure(layers, symbol=symbol)
        except StrategyConfigError:
            raise
        except Exception as e:  # user code building itself with these params
            where = f" for {symbol}" if symbol is not None else ""
            raise StrategyLoadError(ref, f"building it{where} raised {type(e).__name__}: {e}") from e
