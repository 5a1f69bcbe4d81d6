"""Give freed memory back to the system in a long-running server (glibc only).

glibc serves a large allocation from the heap once a freed one of that size raised its
dynamic mmap threshold, and a heap rarely shrinks: after a burst of batched parses the
activations' memory stayed resident (on Rasa's formbot, about 160 MB after 300 turns). With a
fixed threshold, every allocation over 128 KiB is its own mapping, returned on free; two
malloc arenas instead of one per thread (the store and parse thread pools). Measured in
benchmarks/formbot.py (RSS after start and after load).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters, glibc's malloc.h
MMAP_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def release_freed_memory() -> bool:
    """Set glibc's malloc so that freed large blocks leave the process; False where the C
    library has no mallopt (musl, macOS), which changes nothing."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_ARENA_MAX, ARENA_MAX))
    logger.debug("serving.memory.mallopt ok=%s", done)
    return done
