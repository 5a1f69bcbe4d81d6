"""Models the actions load once per directory (the knowledge answerer, the small-talk generator).

A directory that failed to load is tried again after `retry_s`, so a model trained while the
action server runs is picked up; until then the action says what it says without a model.
With a `version` (what changes when the folder is rebuilt: the knowledge answerer's is its
knowledge.json's time), a new version is loaded at once and replaces the old model; the old
one answers until then, and on when the new one fails to load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class ModelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # dir -> (model or None, its version, when last tried, the version last tried)
        self._models: dict[str, tuple[Any, Hashable, float, Hashable]] = {}

    def get(self, path: str, load: Callable[[str], Any], retry_s: float,
            on_failure: Callable[[Exception, bool], None],
            version: Callable[[str], Hashable] | None = None) -> Any | None:
        """The model of `path`, loaded by `load` on first use and again when `version(path)`
        changes; None when it cannot be loaded (`on_failure(error, tried_before)` is told)."""
        with self._lock:
            seen = version(path) if version is not None else None
            cached = self._models.get(path)
            if cached is not None:
                model, model_version, tried, tried_version = cached
                if model is not None and model_version == seen:
                    return model
                if tried_version == seen and time.monotonic() - tried < retry_s:
                    return model  # this version failed a moment ago: the old one, or None
            try:
                model, model_version = load(path), seen
            except Exception as exc:  # noqa: BLE001 - a missing or broken model must not crash
                on_failure(exc, cached is not None)
                model, model_version = (cached[0], cached[1]) if cached else (None, None)
            self._models[path] = (model, model_version, time.monotonic(), seen)
            return model

    def loaded(self, path: str) -> Any | None:
        """The model of `path` loaded so far (None: none yet), loading nothing."""
        with self._lock:
            cached = self._models.get(path)
            return cached[0] if cached is not None else None

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
