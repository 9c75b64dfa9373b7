"""The base class an author subclasses."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .context import Context
from .params import Description, Params
from .types import Bar

__all__ = ["Strategy"]


class Strategy(ABC):
    """What an author implements. One instance lives for a whole run.

    * ``describe()`` (a classmethod or staticmethod): name, version, summary,
      params schema and the bar columns read. Called without params.
    * ``__init__(self, params)`` (or ``init(self, params)``, which the base
      ``__init__`` calls): builds the strategy from params the host has
      already checked against the schema. Raising (e.g. ``ValueError``) ends
      the run with that message.
    * ``on_bar(self, bar, ctx)``: called for every bar, oldest first, after
      that bar's fills.
    """

    @classmethod
    @abstractmethod
    def describe(cls) -> Description:
        raise NotImplementedError

    def __init__(self, params: Params) -> None:
        self.init(params)

    def init(self, params: Params) -> None:
        """Set-up from params, for authors who prefer it to ``__init__``
        (called by the base ``__init__``; does nothing by default)."""

    @abstractmethod
    def on_bar(self, bar: Bar, ctx: Context) -> None:
        raise NotImplementedError
