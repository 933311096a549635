#!/usr/bin/env python3
"""backtesting.py 0.6.6 running the SMA(fast)/SMA(slow) crossover that `tradeflow backtest
--strategy sma_cross` runs: long only, all in, FractionalBacktest with a 1e-8 unit, commission on
each fill, finalize_trades=True. `tradeflow bench backtest` runs it beside ours on the same CSV.

Usage: backtesting_py_sma.py FILE [--fast 10] [--slow 20] [--cash 10000] [--commission 0.001]
Prints one JSON object: the seconds of `Backtest.run()` alone (CSV reading and the import of
pandas excluded), the bars, the trades and the return.
"""
import argparse
import json
import sys
import time

try:
    import pandas as pd
    from backtesting import Strategy, __version__
    from backtesting.lib import FractionalBacktest, crossover
    from backtesting.test import SMA
except ImportError as e:  # the bench reports the peer as not measured, with this reason
    print(json.dumps({"error": f"backtesting.py not importable ({e}); pip install backtesting==0.6.6"}))
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("file")
p.add_argument("--fast", type=int, default=10)
p.add_argument("--slow", type=int, default=20)
p.add_argument("--cash", type=float, default=10_000.0)
p.add_argument("--commission", type=float, default=0.001)
args = p.parse_args()

df = pd.read_csv(args.file)
df.index = pd.to_datetime(df.pop("timestamp"), unit="ms")
df.columns = [c.capitalize() for c in df.columns]


class SmaCross(Strategy):
    fast = args.fast
    slow = args.slow

    def init(self):
        self.sma1 = self.I(SMA, self.data.Close, self.fast)
        self.sma2 = self.I(SMA, self.data.Close, self.slow)

    def next(self):
        if crossover(self.sma1, self.sma2):
            if not self.position:
                self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


bt = FractionalBacktest(df, SmaCross, cash=args.cash, commission=args.commission,
                        fractional_unit=1e-8, finalize_trades=True)
started = time.perf_counter()
stats = bt.run()
run_s = time.perf_counter() - started
print(json.dumps({
    "backtesting_version": __version__,
    "run_s": run_s,
    "bars": len(df),
    "trades": int(stats["# Trades"]),
    "return_pct": float(stats["Return [%]"]),
}))
