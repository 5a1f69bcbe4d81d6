"""The server's malloc settings (bot/serving/memory.py)."""

from __future__ import annotations

import platform

import pytest

from bot.serving.memory import release_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_glibc_takes_the_settings() -> None:
    assert release_freed_memory() is True
