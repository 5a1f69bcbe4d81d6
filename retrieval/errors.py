"""Retrieval errors.

    RetrievalError
     +-- CorpusError            a knowledge-base file or record cannot be read or is inconsistent
     +-- IndexMismatchError     a saved index was built with another embedder, dimension or format
 +-- IndexNotFoundError     no saved index where one is loaded from
     +-- RetrievalConfigError   a retrieval setting is out of range or unknown
     +-- MissingDependencyError an optional package (faiss) is not installed
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class of the retrieval package."""


class CorpusError(RetrievalError):
    """A knowledge-base source (file, record) is unreadable, empty where it must not be, or
    clashes with another source (for example two records with the same id)."""


class IndexMismatchError(RetrievalError, ValueError):
    """A saved index does not fit what loads it (embedder, dimension, normalisation, format)."""


class IndexNotFoundError(RetrievalError, FileNotFoundError):
    """No saved index (manifest) in the directory an index is loaded from."""


class RetrievalConfigError(RetrievalError, ValueError):
    """A retrieval setting is unknown or out of range."""


class MissingDependencyError(RetrievalError, ImportError):
    """An optional dependency is missing; the message names the package to install."""
