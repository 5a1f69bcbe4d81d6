"""What this CPU computes natively, from its feature flags (Linux: /proc/cpuinfo; none
elsewhere): bfloat16 (autocast pays) and int8 dot products (int8 graphs pay). The NLU's
sampler and the knowledge models ask here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def cpu_flags() -> frozenset[str]:
    try:
        return frozenset(Path("/proc/cpuinfo").read_text(encoding="utf-8").split())
    except OSError:
        return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_int8_dot() -> bool:
    """Whether this CPU has int8 dot-product instructions (VNNI, AMX), which make int8
    matrix products about twice as fast as float32 ones."""
    return bool(cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})
