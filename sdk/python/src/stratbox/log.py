"""Logging into the run's log (the host caps lines and bytes). Inside the
sandbox it goes through the component's ``log`` import; natively (tests)
it goes to stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from typing import Any

__all__ = ["Level", "log"]


class Level(Enum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


_sink: Callable[[Level, str], None] | None = None


def _wit_sink() -> Callable[[Level, str], None]:
    if sys.platform != "wasi":
        # Native (tests): even with generated bindings on the path, their
        # import functions only work inside the component.
        return _stderr_sink
    try:
        from wit_world.imports import log as wit_log  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _stderr_sink
    wit_level: Any = wit_log.Level
    levels = {
        Level.DEBUG: wit_level.DEBUG,
        Level.INFO: wit_level.INFO,
        Level.WARN: wit_level.WARN,
        Level.ERROR: wit_level.ERROR,
    }
    emit: Callable[[Any, str], None] = wit_log.log

    def sink(level: Level, message: str) -> None:
        emit(levels[level], message)

    return sink


def _stderr_sink(level: Level, message: str) -> None:
    print(f"[{level.name.capitalize()}] {message}", file=sys.stderr)


def log(level: Level, message: str) -> None:
    """Writes one line to the run's log."""
    global _sink
    sink = _sink
    if sink is None:
        sink = _sink = _wit_sink()
    sink(level, message)
