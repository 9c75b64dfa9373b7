"""stratbox: write a trading strategy as a Python class, build it into a
WebAssembly component with ``componentize-py``.

.. code-block:: python

    import stratbox
    from stratbox import Bar, Context, Description, Params

    class Buy(stratbox.Strategy):
        @classmethod
        def describe(cls) -> Description:
            return Description("buy", "0.1.0", "buys on the first bar")

        def on_bar(self, bar: Bar, ctx: Context) -> None:
            if ctx.is_flat():
                ctx.buy_all()

    Strategy = stratbox.export(Buy)  # what componentize-py exports

A strategy over several symbols subclasses ``stratbox.PortfolioStrategy``
(``on_step(step, ctx)``) and ends with ``Portfolio = stratbox.export(...)``;
it is built with world ``portfolio-plugin`` (see ``stratbox.portfolio``).
"""

from .context import Context
from .indicators import (
    Atr,
    Bands,
    BollingerBands,
    Ema,
    Macd,
    MacdValue,
    Rsi,
    Sma,
    crossed_above,
    crossed_below,
)
from .log import Level, log
from .params import Column, Description, ParamError, ParamSpec, ParamType, ParamValue, Params
from .portfolio import (
    PortfolioContext,
    PortfolioStrategy,
    Position,
    Step,
    SymbolAction,
    SymbolFill,
    SymbolRef,
)
from .runtime import export
from .strategy import Strategy
from .types import Action, Bar, Fill, FillReason, Market, Order, OrderKind, Portfolio, Quantity, Side

__all__ = [
    "Action",
    "Atr",
    "Bands",
    "Bar",
    "BollingerBands",
    "Column",
    "Context",
    "Description",
    "Ema",
    "Fill",
    "FillReason",
    "Level",
    "Macd",
    "MacdValue",
    "Market",
    "Order",
    "OrderKind",
    "ParamError",
    "ParamSpec",
    "ParamType",
    "ParamValue",
    "Params",
    "Portfolio",
    "PortfolioContext",
    "PortfolioStrategy",
    "Position",
    "Quantity",
    "Rsi",
    "Side",
    "Sma",
    "Step",
    "Strategy",
    "SymbolAction",
    "SymbolFill",
    "SymbolRef",
    "crossed_above",
    "crossed_below",
    "export",
    "log",
]

__version__ = "0.1.0"
