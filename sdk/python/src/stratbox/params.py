"""The parameter schema a strategy describes and the validated values it
is built from (the host validates them against the schema first)."""

from __future__ import annotations

import builtins
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "Column",
    "Description",
    "ParamError",
    "ParamSpec",
    "ParamType",
    "ParamValue",
    "Params",
]

ParamValue = builtins.int | builtins.float | builtins.bool
"""A param value. Its Python type is its WIT type: ``bool`` is a bool param,
``int`` an int (s64), ``float`` a float."""


class ParamError(ValueError):
    """A param is missing or has the wrong type."""


class ParamType(Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


def type_of(value: ParamValue) -> ParamType:
    """The WIT type of a Python param value."""
    if isinstance(value, builtins.bool):
        return ParamType.BOOL
    if isinstance(value, builtins.int):
        return ParamType.INT
    return ParamType.FLOAT


def format_value(value: ParamValue) -> str:
    """``Int(2)``, ``Float(1.5)``, ``Bool(true)``: as the Rust SDK words them."""
    kind = type_of(value)
    if kind is ParamType.BOOL:
        return f"Bool({'true' if value else 'false'})"
    if kind is ParamType.INT:
        return f"Int({value})"
    return f"Float({format_float_debug(builtins.float(value))})"


def format_float(x: builtins.float) -> str:
    """A float as Rust's ``{}`` prints it (``1`` for 1.0, ``NaN``, ``inf``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == math.floor(x) and abs(x) < 1e16:
        return str(builtins.int(x)) if x != 0 or math.copysign(1.0, x) > 0 else "-0"
    return repr(x)


def format_float_debug(x: builtins.float) -> str:
    """A float as Rust's ``{:?}`` prints it (``1.0``, ``NaN``)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One entry of the parameter schema. Build with ``ParamSpec.int``,
    ``ParamSpec.float`` or ``ParamSpec.bool``; ``range`` gives inclusive
    bounds, ``step`` the grid step an optimizer uses by default (both are
    ignored for bools)."""

    name: str
    kind: ParamType
    default: ParamValue
    min: builtins.float | None = None
    max: builtins.float | None = None
    step: builtins.float | None = None
    help: str = ""

    @staticmethod
    def int(
        name: str,
        default: builtins.int,
        *,
        range: tuple[builtins.float, builtins.float] | None = None,
        step: builtins.float | None = None,
        help: str = "",
    ) -> ParamSpec:
        if isinstance(default, builtins.bool) or not isinstance(default, builtins.int):
            raise TypeError(f"param `{name}`: an int default is needed")
        return ParamSpec._new(name, ParamType.INT, default, range, step, help)

    @staticmethod
    def float(
        name: str,
        default: builtins.float,
        *,
        range: tuple[builtins.float, builtins.float] | None = None,
        step: builtins.float | None = None,
        help: str = "",
    ) -> ParamSpec:
        if isinstance(default, builtins.bool) or not isinstance(
            default, (builtins.int, builtins.float)
        ):
            raise TypeError(f"param `{name}`: a float default is needed")
        return ParamSpec._new(
            name, ParamType.FLOAT, builtins.float(default), range, step, help
        )

    @staticmethod
    def bool(name: str, default: builtins.bool, *, help: str = "") -> ParamSpec:
        if not isinstance(default, builtins.bool):
            raise TypeError(f"param `{name}`: a bool default is needed")
        return ParamSpec._new(name, ParamType.BOOL, default, None, None, help)

    @staticmethod
    def _new(
        name: str,
        kind: ParamType,
        default: ParamValue,
        bounds: tuple[builtins.float, builtins.float] | None,
        step: builtins.float | None,
        help: str,
    ) -> ParamSpec:
        lo = hi = None
        if bounds is not None:
            lo, hi = builtins.float(bounds[0]), builtins.float(bounds[1])
        return ParamSpec(
            name,
            kind,
            default,
            lo,
            hi,
            None if step is None else builtins.float(step),
            help,
        )


class Column(Enum):
    """A field of a bar."""

    TS = "ts"
    OPEN = "open"
    HIGH = "high"
    LOW = "low"
    CLOSE = "close"
    VOLUME = "volume"


ALL_COLUMNS: tuple[Column, ...] = tuple(Column)


@dataclass(slots=True)
class Description:
    """What a strategy says about itself.

    ``columns`` are the only bar fields the strategy reads: the host sends
    just those, plus the opens (each column costs a copy per bar), and the
    others read as NaN (``ts`` as 0). All six by default.
    """

    name: str
    version: str
    summary: str
    params: list[ParamSpec] = field(default_factory=list)
    columns: list[Column] = field(default_factory=lambda: list(ALL_COLUMNS))

    def param(self, spec: ParamSpec) -> Description:
        """Adds one param to the schema; returns self (builder style)."""
        self.params.append(spec)
        return self

    def with_columns(self, columns: Iterable[Column]) -> Description:
        """Declares the only bar fields read; returns self (builder style)."""
        self.columns = list(columns)
        return self


class Params:
    """Concrete params for one run, as checked by the host."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[tuple[str, ParamValue]] = ()) -> None:
        self._values: dict[str, ParamValue] = dict(values)

    @staticmethod
    def defaults(description: Description) -> Params:
        """The schema defaults, for native tests."""
        return Params((spec.name, spec.default) for spec in description.params)

    def with_(self, name: str, value: ParamValue) -> Params:
        """A copy with one value replaced (or added); for native tests."""
        values = dict(self._values)
        values[name] = value
        return Params(values.items())

    def get(self, name: str) -> ParamValue | None:
        return self._values.get(name)

    def int(self, name: str) -> builtins.int:
        value = self._values.get(name)
        if isinstance(value, builtins.int) and not isinstance(value, builtins.bool):
            return value
        raise ParamError(_mismatch(name, "int", value))

    def float(self, name: str) -> builtins.float:
        """A float param; an int value is widened."""
        value = self._values.get(name)
        if isinstance(value, builtins.float):
            return value
        if isinstance(value, builtins.int) and not isinstance(value, builtins.bool):
            return builtins.float(value)
        raise ParamError(_mismatch(name, "float", value))

    def bool(self, name: str) -> builtins.bool:
        value = self._values.get(name)
        if isinstance(value, builtins.bool):
            return value
        raise ParamError(_mismatch(name, "bool", value))

    def items(self) -> Iterator[tuple[str, ParamValue]]:
        return iter(self._values.items())

    def __iter__(self) -> Iterator[tuple[str, ParamValue]]:
        return self.items()

    def __len__(self) -> builtins.int:
        return len(self._values)

    def __eq__(self, other: object) -> builtins.bool:
        if not isinstance(other, Params):
            return NotImplemented
        return self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={format_value(v)}" for n, v in self._values.items())
        return f"Params({inner})"


def _mismatch(name: str, wanted: str, got: ParamValue | None) -> str:
    if got is None:
        return f"param `{name}` is missing"
    return f"param `{name}` must be {wanted}, got {format_value(got)}"


def check_params(spec: Sequence[ParamSpec], params: Params) -> None:
    """Validates ``params`` against a schema as the host does (types and
    inclusive bounds; unknown names refused); raises ``ParamError``."""
    known = {s.name: s for s in spec}
    for name, _ in params.items():
        if name not in known:
            raise ParamError(f"unknown param `{name}`")
    for s in spec:
        value = params.get(s.name)
        if value is None:
            raise ParamError(f"param `{s.name}` is missing")
        kind = type_of(value)
        if kind is not s.kind and not (s.kind is ParamType.FLOAT and kind is ParamType.INT):
            raise ParamError(_mismatch(s.name, s.kind.value, value))
        if s.kind is ParamType.BOOL:
            continue
        x = builtins.float(value)
        if math.isnan(x) or (s.min is not None and x < s.min) or (
            s.max is not None and x > s.max
        ):
            raise ParamError(
                f"param `{s.name}` must be between {format_float(s.min if s.min is not None else -math.inf)}"
                f" and {format_float(s.max if s.max is not None else math.inf)}, got {format_value(value)}"
            )
