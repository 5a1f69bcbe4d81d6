"""The sentence ranker and the encoder's training loop on the real MiniLM backbone and the tiny
KB: untrained selection weights already pick the answer sentence of paraphrased questions, and
a few training steps on generated questions gives a loadable sentence-transformers model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from retrieval.embedder import SentenceTransformerEmbedder
from retrieval.index import KnowledgeIndex
from retrieval.passages import load_documents
from retrieval.question_gen import generate_answerable
from retrieval.sentence_encoder import SentenceEncoderConfig, fit_sentence_encoder
from retrieval.sentence_ranker import DEFAULT_SELECTION, SentenceRanker
from retrieval.sentences import SentenceTable
from retrieval.types import IndexConfig

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"


@pytest.mark.integration
def test_minilm_sentence_ranker_and_a_short_training(tmp_path: Path) -> None:
    emb = SentenceTransformerEmbedder()
    index = KnowledgeIndex.build(load_documents(KB_TINY), emb, IndexConfig())
    table = SentenceTable.from_passages(index.passages)
    vectors = emb.encode([s.search_text for s in table.sentences])
    ranker = SentenceRanker(table, index.passages, emb, vectors)
    questions = {"what does an e-bike cost for a day?": "25 EUR per day",
                 "by what time must the bike be back?": "20:00"}
    hits = index.search(list(questions), top_k=3)
    for (question, answer), candidates in zip(questions.items(),
                                              ranker.candidates(list(questions), hits,
                                                                DEFAULT_SELECTION)):
        assert answer in table.sentences[candidates[0].sentence].text, question
        assert all(0.0 <= c.prob <= 1.0 for c in candidates)

    generated = generate_answerable(table.sentences, random.Random(0))[:16]
    triples = [(g.question, table.sentences[g.sentence].search_text, None) for g in generated]
    report = fit_sentence_encoder(triples, tmp_path / "enc",
                                  SentenceEncoderConfig(batch_size=16, num_threads=None))
    assert report["steps"] >= 1 and report["final_loss"] is not None
    trained = SentenceTransformerEmbedder(str(tmp_path / "enc"))
    assert trained.encode(["pet fee?"], query=True).shape == (1, 384)


@pytest.mark.integration
def test_embed_by_length_gives_the_batchs_own_embeddings_in_order() -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from resolver import resolve_model
    from retrieval.embedder import DEFAULT_MODEL
    from retrieval.sentence_encoder import embed_by_length

    model = SentenceTransformer(str(resolve_model(DEFAULT_MODEL)), device="cpu").eval()
    texts = ["pet fee?", "The spa opens at 7 and closes at 22 every day, holidays included.",
             "breakfast", "How much is parking at the Rome hotel for one night?", "x"] * 3
    with torch.no_grad():
        chunked = embed_by_length(model, texts, chunk=4)
        whole = model(dict(model.preprocess(texts)))["sentence_embedding"]
    assert chunked.shape == whole.shape
    assert torch.allclose(chunked, whole, atol=1e-5)
