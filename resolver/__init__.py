"""Offline-first model resolution: one place maps a model id to a local directory."""

from resolver.resolve import PACKAGED_MODELS, ModelNotFoundError, resolve_model

__all__ = ["PACKAGED_MODELS", "ModelNotFoundError", "resolve_model"]
