"""Work beside the network instead of between its passes: image decoding in threads ahead of it
(`prefetched`), and the writing of its results in a thread behind it (`written_behind`), so
that they no longer take turns (decoders, numpy's casts and file writes release the GIL)."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Value = TypeVar("Value")


@dataclass(frozen=True)
class Loaded(Generic[Item, Value]):
    """One item with what `load` made of it, or the exception it raised (then `value` is None).

    Examples
    --------
    >>> from simsearch import Loaded
    >>> loaded = Loaded("img1.tif", None, OSError("truncated"))
    >>> loaded.item, loaded.value is None, str(loaded.error)
    ('img1.tif', True, 'truncated')
    """

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


def grouped(items: Iterable[Item], joins: Callable[[list[Item], Item], bool]) -> Iterator[list[Item]]:
    """Consecutive items in groups, in order: an item joins the group before it when
    `joins(group, item)`, else it starts the next group. Each group is yielded once the item
    after it (or the end) shows it complete; an item that joins nothing is a group of one.

    Examples
    --------
    Same-shape images embedded together, here numbers of one parity, at most three at a time:

    >>> list(grouped([2, 4, 6, 8, 1, 3, 2], lambda group, n: n % 2 == group[0] % 2 and len(group) < 3))
    [[2, 4, 6], [8], [1, 3], [2]]
    """
    group: list[Item] = []
    for item in items:
        if group and joins(group, item):
            group.append(item)
            continue
        if group:
            yield group
        group = [item]
    if group:
        yield group


def written_behind(steps: Iterable[tuple[Callable[[], None] | None, Item]], *,
                   depth: int = 1) -> Iterator[tuple[Item, BaseException | None]]:
    """For each ``(write, item)`` of `steps`: `write()` runs in a thread while the next step is
    computed, and ``(item, the exception write raised or None)`` comes once it is done, in
    order. At most `depth` writes are in flight (each holds its data); `depth=0` runs each
    write in the caller's thread before the next step (the reference behaviour). A step
    without a write (None: written already, or nothing to write) comes in its turn. Closing
    the generator early waits for the writes in flight.

    Examples
    --------
    >>> written = []
    >>> steps = ((lambda n=n: written.append(n), f"image {n}") for n in range(3))
    >>> [item for item, error in written_behind(steps)], written
    (['image 0', 'image 1', 'image 2'], [0, 1, 2])
    >>> [(item, type(error).__name__) for item, error in written_behind([(lambda: 1 / 0, "bad"), (None, "cached")])]
    [('bad', 'ZeroDivisionError'), ('cached', 'NoneType')]
    """
    if depth <= 0:
        for write, item in steps:
            yield item, _run(write)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simsearch-write")  # one writer: files in order
    pending: deque[tuple[Item, Future | None]] = deque()
    try:
        for write, item in steps:
            pending.append((item, None if write is None else pool.submit(write)))
            while len(pending) > depth or (pending and pending[0][1] is None):
                yield _written(*pending.popleft())
        while pending:
            yield _written(*pending.popleft())
    finally:
        pool.shutdown(wait=True)  # the writes in flight finish: files are whole or absent either way


def _run(write: Callable[[], None] | None) -> BaseException | None:
    try:
        if write is not None:
            write()
    except Exception as error:  # delivered with its item
        return error
    return None


def _written(item, future: Future | None) -> tuple:
    return item, None if future is None else future.exception()


def _load(load: Callable, item) -> Loaded:
    try:
        return Loaded(item, load(item))
    except Exception as error:  # delivered with its item
        return Loaded(item, None, error)


def _result(item, future: Future) -> Loaded:
    error = future.exception()
    return Loaded(item, None, error) if error is not None else Loaded(item, future.result())
