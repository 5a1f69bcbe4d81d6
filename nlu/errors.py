"""NLU errors.

    NLUError
     +-- NLUTrainingError   training data or training run is unusable
     +-- NLUModelError      a saved model is missing, incomplete or incompatible
"""

from __future__ import annotations


class NLUError(Exception):
    """Base class of the NLU package."""


class NLUTrainingError(NLUError, ValueError):
    """Training data or a training run is unusable."""


class NLUModelError(NLUError, FileNotFoundError):
    """A saved NLU model is missing, incomplete or incompatible."""
