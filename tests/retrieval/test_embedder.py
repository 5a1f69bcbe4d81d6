"""The sentence-transformers embedder: cheap construction, (model, device) cache, encode
contract (against a stand-in model), missing dependencies; one integration test with MiniLM."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import retrieval.embedder as embedder_module
from retrieval.embedder import SentenceTransformerEmbedder, get_embedder, resolve_device
from retrieval.errors import MissingDependencyError
from retrieval.index import KnowledgeIndex, import_faiss
from retrieval.passages import load_documents
from retrieval.types import Embedder, IndexConfig

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"


class _StandInModel:
    """Records how it was built and called; returns float64 ones like an unnormalised model."""

    created: list[tuple[str, str]] = []

    def __init__(self, path: str, device: str) -> None:
        self.created.append((path, device))
        self.max_seq_length = 256
        self.calls: list[tuple[list[str], bool]] = []

    def eval(self) -> _StandInModel:
        return self

    def get_embedding_dimension(self) -> int:
        return 4

    def encode(self, items: list[str], *, normalize_embeddings: bool, **_: Any) -> np.ndarray:
        self.calls.append((items, normalize_embeddings))
        return np.ones((len(items), 4))

    def tokenizer(self, words: list[str], add_special_tokens: bool) -> dict[str, Any]:
        return {"input_ids": [[0] * len(w) for w in words]}


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> type[_StandInModel]:
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = _StandInModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    monkeypatch.setattr(embedder_module, "_MODELS", {})
    monkeypatch.setattr(embedder_module, "resolve_model", lambda model: Path("/models") / model)
    _StandInModel.created = []
    return _StandInModel


def test_construction_is_cheap_and_models_are_cached(stand_in: type[_StandInModel]) -> None:
    first = SentenceTransformerEmbedder("org/model", device="cpu")
    assert not first.loaded and stand_in.created == [] and first.name == "org/model"
    assert isinstance(first, Embedder)
    assert first.load() is first.load()
    second = get_embedder("org/model", "cpu", batch_size=8)
    assert second.dimension == 4 and second.batch_size == 8
    assert stand_in.created == [("/models/org/model", "cpu")]  # one load per (model, device)
    get_embedder("org/model", "cuda:1").load()
    assert stand_in.created[-1] == ("/models/org/model", "cuda:1") and len(stand_in.created) == 2
    embedder_module.clear_model_cache()
    get_embedder("org/model", "cpu").load()
    assert len(stand_in.created) == 3


def test_encode_contract(stand_in: type[_StandInModel]) -> None:
    emb = SentenceTransformerEmbedder("org/model", query_prefix="query: ", passage_prefix="p: ")
    vectors = emb.encode(["a", "b"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 4)
    assert vectors.flags["C_CONTIGUOUS"]
    emb.encode(["q"], query=True)
    model = emb.load()._model
    assert model.calls == [(["p: a", "p: b"], True), (["query: q"], True)]
    assert emb.encode([]).shape == (0, 4)
    assert emb.token_lengths(["ab", "abcd"]) == [2, 4] and emb.token_lengths([]) == []
    with pytest.raises(TypeError):
        emb.encode("one string")  # type: ignore[arg-type]
    assert not SentenceTransformerEmbedder("m", normalize=False).normalize
    with pytest.raises(ValueError):
        SentenceTransformerEmbedder("m", batch_size=0)


def test_devices_and_missing_dependencies(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda")
    monkeypatch.setattr(embedder_module, "_MODELS", {})
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(MissingDependencyError, match="pip install sentence-transformers"):
        SentenceTransformerEmbedder().load()
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingDependencyError, match="pip install faiss-cpu"):
        import_faiss()


@pytest.mark.integration
def test_minilm_retrieves_paraphrased_questions() -> None:
    emb = SentenceTransformerEmbedder()  # all-MiniLM-L6-v2, resolved offline
    vectors = emb.encode(["Where is the rooftop garden?"])
    assert emb.dimension == 384 and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    docs = load_documents(KB_TINY)
    questions = {
        "Are kids allowed up on the roof alone?": "Rooftop Garden > Rules",
        "What happens if I bring the bike back too late?": "Bicycle Rental > Returns",
        "Is there a quiet place to read by the fire?": "Guest Library > Reading room",
    }
    for hybrid in (False, True):
        index = KnowledgeIndex.build(docs, emb, IndexConfig(hybrid=hybrid))
        hits = index.search(list(questions), top_k=3)
        assert [h[0].passage.title for h in hits] == list(questions.values()), hybrid
        assert all(h[0].dense_score is not None and h[0].dense_score > 0.3 for h in hits)
