"""backtesting.py's own Backtest.optimize on the grid `stratbox bench
optimize` sweeps: ema-crossover (long only, all in on a bullish cross,
close on a bearish one, market orders at the next open, commission
0.0006), fast 5..50 step 5 x slow 20..515 step 5, the same candle CSV.
Prints one JSON object with the timing."""

import json
import sys
import time

import pandas as pd
from backtesting import Backtest, Strategy
from backtesting.lib import crossover


def ema(values, n):
    # alpha = 2/(n+1), ema[0] = x[0]: docs/conventions/engine.md ("Indicators"), as the plugin computes it.
    return pd.Series(values).ewm(span=n, adjust=False).mean().to_numpy()


class EmaCross(Strategy):
    n1 = 12
    n2 = 26

    def init(self):
        self.fast = self.I(ema, self.data.Close, self.n1)
        self.slow = self.I(ema, self.data.Close, self.n2)

    def next(self):
        if crossover(self.fast, self.slow) and not self.position:
            self.buy()
        elif crossover(self.slow, self.fast) and self.position:
            self.position.close()


def main(path):
    df = pd.read_csv(path)
    df.index = pd.to_datetime(df["ts"], unit="s", utc=True)
    df = df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    try:
        # Fractional units, like stratbox (backtesting >= 0.6.3).
        from backtesting.lib import FractionalBacktest as Bt
        kwargs = {}
    except ImportError:
        Bt = Backtest
        kwargs = {}
    # Whole units only in plain Backtest: enough cash to buy some at 42,000.
    cash = 10_000 if Bt is not Backtest else 10_000_000
    bt = Bt(df, EmaCross, cash=cash, commission=0.0006, exclusive_orders=False, **kwargs)
    fast = range(5, 51, 5)
    slow = range(20, 516, 5)
    combos = len(fast) * len(slow)
    started = time.perf_counter()
    stats = bt.optimize(n1=fast, n2=slow, maximize="Sharpe Ratio")
    secs = time.perf_counter() - started
    print(json.dumps({
        "backtesting_version": __import__("backtesting").__version__,
        "engine": Bt.__name__,
        "bars": len(df),
        "combinations": combos,
        "secs": secs,
        "combos_per_sec": combos / secs,
        "best": f"n1={stats._strategy.n1} n2={stats._strategy.n2}",
    }))


if __name__ == "__main__":
    main(sys.argv[1])
