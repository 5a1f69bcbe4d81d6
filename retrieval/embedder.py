"""Sentence embeddings with sentence-transformers, offline first.

The default model is all-MiniLM-L6-v2, found through `resolver.resolve_model` (a packaged copy,
a local path or the Hugging Face cache; the hub only when not offline). Vectors are float32 and,
by default, L2-normalised so inner product is cosine similarity. Loaded models are cached by
(model, device): embedders created for the same pair share one copy of the weights.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from resolver import resolve_model
from retrieval.errors import MissingDependencyError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def resolve_device(device: str | None) -> str:
    """"auto" (or None) becomes "cuda" when torch sees a GPU, else "cpu"."""
    if device in (None, "", "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def load_sentence_transformer(model: str, device: str) -> Any:
    """The SentenceTransformer for (model, device), loaded once per process."""
    key = (model, device)
    with _LOCK:
        cached = _MODELS.get(key)
        if cached is not None:
            return cached
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError(
                "sentence-transformers is not installed. Fix: pip install sentence-transformers"
            ) from exc
        path = resolve_model(model)
        logger.info("retrieval.embedder.load model=%s path=%s device=%s", model, path, device)
        loaded = SentenceTransformer(str(path), device=device)
        loaded.eval()
        _MODELS[key] = loaded
        return loaded


def clear_model_cache() -> None:
    with _LOCK:
        _MODELS.clear()


class SentenceTransformerEmbedder:
    """An `Embedder` over any sentence-transformers model id or local path.

    Construction is cheap; `load()` (idempotent, also called on first use) loads the weights.
    `query_prefix`/`passage_prefix` serve asymmetric models (e5: "query: ", "passage: ")."""

    def __init__(self, model: str = DEFAULT_MODEL, *, device: str | None = "cpu",
                 batch_size: int = 64, normalize: bool = True, query_prefix: str = "",
                 passage_prefix: str = "", max_seq_length: int | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._model_id = model
        self._device_spec = device
        self.batch_size = batch_size
        self._normalize = normalize
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.max_seq_length = max_seq_length
        self._model: Any = None
        self._device: str | None = None
        self.onnx: Any = None  # an OnnxPass of the transformer (retrieval.onnx_pass), or None

    def __repr__(self) -> str:
        return (f"SentenceTransformerEmbedder(model={self._model_id!r}, "
                f"device={self._device or self._device_spec!r}, loaded={self.loaded})")

    @property
    def name(self) -> str:
        return self._model_id

    @property
    def normalize(self) -> bool:
        return self._normalize

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self._device_spec)
        return self._device

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> SentenceTransformerEmbedder:
        if self._model is None:
            model = load_sentence_transformer(self._model_id, self.device)
            if self.max_seq_length is not None:
                # the cached model is shared: only ever lower its limit, never raise it
                model.max_seq_length = min(int(model.max_seq_length or self.max_seq_length),
                                           self.max_seq_length)
            self._model = model
        return self

    @property
    def dimension(self) -> int:
        model = self.load()._model
        getter = getattr(model, "get_embedding_dimension", None) or getattr(
            model, "get_sentence_embedding_dimension")
        dim = getter()
        if dim is None:  # some models only know it after a forward pass
            dim = int(self.encode(["dimension probe"]).shape[1])
        return int(dim)

    @property
    def max_tokens(self) -> int:
        """The model's input limit in word pieces (longer passages are truncated)."""
        return int(self.load()._model.max_seq_length or 512)

    def encode(self, texts: Sequence[str], *, query: bool = False,
               batch_size: int | None = None) -> np.ndarray:
        """(len(texts), dimension) float32, C-contiguous; unit rows when `normalize`."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        import torch

        model = self.load()._model
        prefix = self.query_prefix if query else self.passage_prefix
        items = [prefix + t for t in texts] if prefix else list(texts)
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with torch.inference_mode():
            if self.onnx is not None:
                return self._encode_onnx(model, items, batch_size or self.batch_size)
            vectors = model.encode(items, batch_size=batch_size or self.batch_size,
                                   normalize_embeddings=self._normalize, convert_to_numpy=True,
                                   show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _encode_onnx(self, model: Any, items: list[str], batch_size: int) -> np.ndarray:
        """`encode` with the transformer in ONNX Runtime and the model's own pooling and
        normalisation modules after it (the same vectors within 1e-6)."""
        import torch

        transformer, rest = model[0], list(model)[1:]
        parts = []
        for at in range(0, len(items), batch_size):
            features = model.preprocess(items[at:at + batch_size])
            hidden = self.onnx(features)[0]  # (B, L, D)
            features[transformer.module_output_name] = torch.from_numpy(hidden)
            for module in rest:
                features = module(features)
            vectors = features["sentence_embedding"]
            if self._normalize:
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            parts.append(vectors.float().numpy())
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def use_onnx(self, graph: Any, threads: int = 1) -> bool:
        """Encode with the transformer's ONNX graph at `graph` (a Path: exported there when
        missing or stale); False, PyTorch kept, when the model is not a plain transformer
        followed by pooling, is not on the CPU, or ONNX Runtime cannot run it."""
        from pathlib import Path

        from retrieval.onnx_pass import cached_pass

        model = self.load()._model
        transformer = model[0]
        inner = getattr(transformer, "auto_model", None)
        if inner is None or type(transformer).__name__ != "Transformer" or \
                not hasattr(model, "preprocess") or self.device != "cpu":
            return False
        self.onnx = cached_pass(inner, ("last_hidden_state",), graph,
                                Path(resolve_model(self._model_id)), threads)
        return self.onnx is not None

    def vocabulary(self) -> frozenset[str]:
        """The tokenizer's whole words (no "##" pieces, no special tokens)."""
        tokenizer = self.load()._model.tokenizer
        return frozenset(w for w in tokenizer.get_vocab()
                         if not w.startswith("##") and not (w.startswith("[") and w.endswith("]")))

    def token_lengths(self, words: Sequence[str]) -> list[int]:
        """Word pieces per word, without special tokens (for token-budget splitting)."""
        if not words:
            return []
        tokenizer = self.load()._model.tokenizer
        ids = tokenizer(list(words), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]


def get_embedder(model: str = DEFAULT_MODEL, device: str | None = "cpu",
                 **options: Any) -> SentenceTransformerEmbedder:
    """An embedder for `model` on `device`; the weights come from the (model, device) cache."""
    return SentenceTransformerEmbedder(model, device=device, **options)
