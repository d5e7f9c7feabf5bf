"""Work on the next items while the current one is used: image decoding in threads, ahead of
the network, so that the two no longer take turns (the decoders release the GIL)."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")


@dataclass(frozen=True)
class Loaded(Generic[Item, Value]):
    """One item with what `load` made of it, or the exception it raised (then `value` is None)."""

    item: Item
    value: Value | None
    error: BaseException | None = None


def prefetched(items: Iterable[Item], load: Callable[[Item], Value], *, ahead: int = 2,
               threads: int = 1) -> Iterator[Loaded[Item, Value]]:
    """`load(item)` for every item, in order, computed up to `ahead` items before it is asked for.

    An exception raised by `load` is delivered with its item (`Loaded.error`), not raised, so
    that one bad file does not stop the others. Closing the generator early (a `break`, a
    cancelled run) waits for the loads in flight and starts no more. `ahead=0` loads each item
    when it is asked for, in the caller's thread (the reference behaviour).

    Examples
    --------
    >>> [(x.item, x.value) for x in prefetched([1, 2, 3], lambda n: n * n)]
    [(1, 1), (2, 4), (3, 9)]
    >>> [type(x.error).__name__ for x in prefetched([1, 0], lambda n: 1 / n)]
    ['NoneType', 'ZeroDivisionError']
    """
    if ahead <= 0:
        for item in items:
            yield _load(load, item)
        return
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="simsearch-prefetch")
    pending: deque[tuple[Item, Future]] = deque()
    source = iter(items)
    try:
        for item in source:
            pending.append((item, pool.submit(load, item)))
            if len(pending) > ahead:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def _load(load: Callable, item) -> Loaded:
    try:
        return Loaded(item, load(item))
    except Exception as error:  # delivered with its item
        return Loaded(item, None, error)


def _result(item, future: Future) -> Loaded:
    error = future.exception()
    return Loaded(item, None, error) if error is not None else Loaded(item, future.result())
