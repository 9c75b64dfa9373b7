"""Hostile test strategy (Python): attacks the sandbox from ``on_bar``.

The int param ``mode`` picks the attack, launched on the 10th bar (the
first nine behave, so the host has seen a working guest first):

* 0: behaves (does nothing)
* 1: endless loop (the host must stop it by fuel or deadline)
* 2: memory bomb: grows a list of 1 MiB bytearrays without bound (the
  host must answer with its memory limit)
* 3: unbounded recursion (CPython raises RecursionError, or the wasm
  stack overflows: either way the run must end with an error)
* 4: raises an exception
* 5: opens and reads ``/etc/passwd`` (built with ``--stub-wasi`` there is
  no filesystem: the read fails inside the guest, which logs what it got)
* 6: reads the clock (``time.time()``), logs it and trades on its parity
  (with stubbed WASI the clock reads a constant, so runs stay reproducible)
"""

from __future__ import annotations

import time

import stratbox
from stratbox import Bar, Context, Description, Level, Params, ParamSpec, log

ATTACK_BAR = 9


def recurse(depth: int) -> int:
    return recurse(depth + 1) + 1


class Hostile(stratbox.Strategy):
    @classmethod
    def describe(cls) -> Description:
        return Description(
            "hostile: python",
            "0.1.0",
            "Attacks the sandbox from Python on the 10th bar: 1 endless loop, 2 memory bomb, "
            "3 deep recursion, 4 exception, 5 reads /etc/passwd, 6 reads the clock; 0 behaves",
            params=[
                ParamSpec.int(
                    "mode", 0, range=(0.0, 6.0), step=1.0, help="The attack (0 behaves)"
                ),
            ],
        )

    def __init__(self, params: Params) -> None:
        self.mode = params.int("mode")
        self.hoard: list[bytearray] = []

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        if bar.index != ATTACK_BAR:
            return
        mode = self.mode
        if mode == 1:
            n = 0
            while True:
                n += 1
        elif mode == 2:
            while True:
                self.hoard.append(bytearray(b"\x01" * (1 << 20)))
        elif mode == 3:
            recurse(0)
        elif mode == 4:
            raise RuntimeError("hostile: an exception from on_bar")
        elif mode == 5:
            try:
                with open("/etc/passwd") as f:
                    text = f.read()
                log(Level.WARN, f"read /etc/passwd: {len(text)} chars: {text[:80]!r}")
            except OSError as e:
                log(Level.INFO, f"open /etc/passwd failed: {e!r}")
        elif mode == 6:
            now = time.time()
            ns = time.time_ns()
            log(Level.INFO, f"time.time() = {now!r}, time_ns() = {ns}")
            if ns % 2 == 0:
                ctx.buy_all()
            else:
                ctx.sell_all()


Strategy = stratbox.export(Hostile)
