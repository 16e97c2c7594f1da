"""Independent numpy work spread over the machine's cores, in threads.

The study's per-layer and per-image steps (synthetic weights, image preprocessing, the
pattern passes of every layer) are independent of each other and spend their time inside
numpy, scipy and Pillow loops that release the interpreter lock, so threads run them on
every core without copying any array.  Each item's result is computed exactly as it would
be alone, and results come back in the order of the items, so a run gives the same
numbers with one thread or many; only wall times differ.

Inside a daemon process (a sweep's worker, which already shares the cores with its
siblings) the work stays on one thread.  The environment variable ``CR2DES_THREADS``
sets the number of threads (``1``: everything in turn, as on a one-core machine).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..errors import Cr2desError

T = TypeVar("T")
R = TypeVar("R")


#: environment variable overriding :func:`threads`
THREADS_VARIABLE = "CR2DES_THREADS"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not every platform has affinity
        return max(1, os.cpu_count() or 1)


def threads() -> int:
    """Threads for independent work: ``$CR2DES_THREADS`` when set, else :func:`cores`
    (1 in a daemon process).  A value that is not a whole number >= 1 is an error."""
    given = os.environ.get(THREADS_VARIABLE, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise Cr2desError(f"${THREADS_VARIABLE}: expected a whole number >= 1 (threads), "
                              f"got {given[:80]!r}")
        return int(given)
    if multiprocessing.current_process().daemon:
        return 1
    return cores()


def map_ordered(function: Callable[[T], R], items: Iterable[T], workers: int | None = None
                ) -> Iterator[R]:
    """``function(item)`` of every item, yielded in the order of ``items``.

    With one worker (or one item) the items run one after the other in this thread, as a
    plain loop would.  Otherwise ``workers`` threads (default :func:`threads`) run them; an
    exception raised for an item is raised here when that item's turn comes, after the
    items before it.
    """
    items = list(items)
    workers = min(threads() if workers is None else workers, len(items))
    if workers <= 1:
        for item in items:
            yield function(item)
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(function, items)
