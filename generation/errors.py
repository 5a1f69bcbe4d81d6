"""Generation errors.

    GenerationError
     +-- GenerationConfigError   a generation setting is unknown or out of range (also ValueError)
     +-- CorpusError             the training conversations cannot be read or are empty
     +-- ModelLoadError          no generator model where one is loaded from (also OSError)
"""

from __future__ import annotations


class GenerationError(Exception):
    """Base class of the generation package."""


class GenerationConfigError(GenerationError, ValueError):
    """A generation setting is unknown or out of range."""


class CorpusError(GenerationError):
    """The conversation corpus is missing, unreadable or empty."""


class ModelLoadError(GenerationError, OSError):
    """A generator model directory is missing or incomplete."""
