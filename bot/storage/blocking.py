"""Store I/O off the event loop, with a deadline.

The Redis and SQL clients are blocking. Called on the event loop, one stalled store call froze
every request of the server, ``/version`` included. ``run_blocking`` runs a call on a thread
pool of its own (so stalled store calls can never starve the threads the NLU uses) and stops
waiting after ``timeout_s``: the caller gets StoreError, which the server answers with 503 and
Retry-After. The stalled thread itself ends when the client's socket timeout fires.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bot.errors import StoreError

DEFAULT_IO_TIMEOUT_S = 5.0  # far above a healthy store's milliseconds; a user still gets an answer
_POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="store-io")
T = TypeVar("T")


async def run_blocking(call: Callable[..., T], *args: Any, timeout_s: float = DEFAULT_IO_TIMEOUT_S,
                       doing: str = "use the store") -> T:
    """``call(*args)`` on the store thread pool; StoreError when it takes over ``timeout_s``."""
    future = asyncio.get_running_loop().run_in_executor(_POOL, functools.partial(call, *args))
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)
    except TimeoutError:
        future.add_done_callback(_consume)
        raise StoreError(f"The store did not answer within {timeout_s:g} s when asked to "
                         f"{doing}.") from None


def _consume(future: asyncio.Future[Any]) -> None:
    """Read a late call's outcome, so its exception is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
