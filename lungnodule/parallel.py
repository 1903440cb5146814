"""Per-scan work over a pool of processes, in order, with bounded memory.

Every per-scan step (the stages' preprocessing, candidate extraction, `lungnodule detect`) maps a function over
scans. :func:`ordered_map` runs it in `workers` processes: results come back in the items' order, so what is
written is byte-identical to one worker, and at most `2 x workers` scans are in flight, so memory stays at a few
scans however many there are. Processes are started fresh ("spawn"), never forked from a parent that has
already started TensorFlow's threads.

What every item needs (the dataset, a trained model) is passed once as `shared`: each worker receives it once,
not once per scan. A :class:`Loaded` inside it travels as its recipe (a loader and its arguments) and is loaded
once in each worker, so a model or a dataset index is never pickled; in this process its value is used as is.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Loaded:
    """A value made by `load(*args)`: used as is in this process, loaded again (once) in each worker.

    Pickles as (`load`, `args`) only, so a Keras model or a dataset with its cached tables never crosses to a
    worker; `load` must be a module-level function (or class) and `args` picklable.
    """

    def __init__(self, load: Callable[..., Any], *args: Any, value: Any = None):
        self.load, self.args, self._value = load, args, value

    def get(self) -> Any:
        """The value, loaded on first use."""
        if self._value is None:
            self._value = self.load(*self.args)
        return self._value

    def __getstate__(self) -> dict:
        return {"load": self.load, "args": self.args, "_value": None}


_SHARED: Any = None


def _set_shared(shared: Any) -> None:
    global _SHARED
    _SHARED = shared


def _call(fn: Callable[[Any, T], R], item: T) -> R:
    return fn(_SHARED, item)


def ordered_map(fn: Callable[[Any, T], R], items: Iterable[T], workers: int = 1, shared: Any = None) -> Iterator[R]:
    """`fn(shared, item)` for each item, over `workers` processes (<= 1: in this process), in the items' order.

    At most 2 x workers items are in flight, so results are consumed as they come and memory stays bounded.
    `fn` must be a module-level function and the items and `shared` picklable (see :class:`Loaded`). An
    exception in a worker is raised here, at its item, and the pool is shut down."""
    if workers is None or workers <= 1:
        for item in items:
            yield fn(shared, item)
        return
    context = multiprocessing.get_context("spawn")
    # Each worker runs its own network threads: keep TensorFlow's inter-op pool from multiplying them further.
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_set_shared,
                             initargs=(shared,)) as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(_call, fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

