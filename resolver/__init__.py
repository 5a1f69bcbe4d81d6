"""Offline-first model resolution: one place maps a model id to a local directory."""

from resolver.resolve import (PACKAGED_GGUF, PACKAGED_MODELS, ModelNotFoundError, packaged_gguf,
                              resolve_model)

__all__ = ["PACKAGED_GGUF", "PACKAGED_MODELS", "ModelNotFoundError", "packaged_gguf",
           "resolve_model"]
