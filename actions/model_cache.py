"""Models the actions load once per directory (the knowledge answerer, the small-talk generator).

A directory that failed to load is tried again after `retry_s`, so a model trained while the
action server runs is picked up; until then the action says what it says without a model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[Any, float]] = {}  # dir -> (model or None, when tried)

    def get(self, path: str, load: Callable[[str], Any], retry_s: float,
            on_failure: Callable[[Exception, bool], None]) -> Any | None:
        """The model of `path`, loaded by `load` on first use; None when it cannot be loaded
        (`on_failure(error, tried_before)` is told)."""
        with self._lock:
            cached = self._models.get(path)
            if cached is not None and (cached[0] is not None
                                       or time.monotonic() - cached[1] < retry_s):
                return cached[0]
            try:
                model = load(path)
            except Exception as exc:  # noqa: BLE001 - a missing or broken model must not crash
                on_failure(exc, cached is not None)
                model = None
            self._models[path] = (model, time.monotonic())
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
