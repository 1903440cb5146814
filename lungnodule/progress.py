"""Progress that reads well on a terminal and in a log file.

On a terminal: a tqdm bar. Redirected to a file (a CI log, `> run.log`): plain lines, at most one every
`LOG_EVERY_S` seconds plus the last, each with the count, the elapsed time and an estimate of what is left,
instead of a wall of carriage returns. `keras_verbose()` gives Keras' `fit` the same choice: a bar per step
on a terminal, one line per epoch otherwise.
"""

from __future__ import annotations

import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LOG_EVERY_S = 20.0


def on_terminal() -> bool:
    """True when stderr is a terminal (progress bars are drawn there)."""
    return sys.stderr.isatty()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "scan",
          enabled: bool = True) -> Iterator[T]:
    """Iterate `items`, showing progress as `desc: i/n unit, elapsed, about T left` (see the module docstring)."""
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None
    if on_terminal():
        from tqdm.auto import tqdm

        yield from tqdm(items, desc=desc, total=total, unit=unit)
        return
    start = last = time.perf_counter()
    n = 0
    for item in items:
        yield item
        n += 1
        now = time.perf_counter()
        if now - last >= LOG_EVERY_S or (total is not None and n == total):
            last = now
            elapsed = now - start
            left = f", about {_duration(elapsed / n * (total - n))} left" if total and n < total else ""
            of = f"/{total}" if total is not None else ""
            print(f"{desc}: {n}{of} {unit}s, {_duration(elapsed)}{left}", file=sys.stderr, flush=True)


def keras_verbose() -> int | str:
    """Keras `fit` verbosity: "auto" (a bar per step) on a terminal, 2 (one line per epoch) in a log."""
    return "auto" if on_terminal() else 2
