"""The FAISS index with a fake deterministic embedder: search, persistence, mismatch errors,
incremental add/delete, HNSW tombstones, rebuild-only-when-changed, ANN kinds, BM25 fusion."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from retrieval.bm25 import BM25, fuse, reciprocal_rank_fusion, tokenize
from retrieval.errors import CorpusError, IndexMismatchError, IndexNotFoundError
from retrieval.index import KnowledgeIndex, VectorStore, build_or_load
from retrieval.passages import load_documents
from retrieval.types import Document, Embedder, IndexConfig, Manifest, SplitConfig
from tests.fakes import FakeEmbedder

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"


def _config(**kw: object) -> IndexConfig:
    return IndexConfig(**{"hybrid": False, **kw})  # type: ignore[arg-type]


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(n // 100, 4), dim))
    x = centers[rng.integers(0, len(centers), n)] + 0.4 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def docs() -> list[Document]:
    return load_documents(KB_TINY)


def test_fake_embedder_fits_the_protocol() -> None:
    vectors = FakeEmbedder().encode(["a b", "a b"])
    assert isinstance(FakeEmbedder(), Embedder)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1)
    assert np.array_equal(vectors[0], vectors[1])


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_by_text_and_vector(docs: list[Document], kind: str) -> None:
    emb = FakeEmbedder()
    index = KnowledgeIndex.build(docs, emb, _config(kind=kind))
    assert index.kind == kind and len(index) == 20
    hits = index.search(["coin operated washing machine dryer basement",
                         "shuttle bus timetable every 30 minutes"], top_k=3)
    assert [h[0].passage.title for h in hits] == ["Laundry Service > Self-service",
                                                  "City Shuttle Bus > Timetable"]
    assert [h.rank for h in hits[0]] == [1, 2, 3]
    assert hits[0][0].score >= hits[0][1].score >= hits[0][2].score
    assert hits[0][0].dense_score == hits[0][0].score and hits[0][0].sparse_score is None
    by_vector = index.search(emb.encode(["coin operated washing machine dryer basement"]), 3)
    assert [h.passage.id for h in by_vector[0]] == [h.passage.id for h in hits[0]]
    assert len(index.search(["laundry"], top_k=50)[0]) == 20
    with pytest.raises(IndexMismatchError, match="dimension 32"):
        index.search(np.zeros((1, 8), np.float32))
    with pytest.raises(TypeError):
        index.search("one string")  # type: ignore[arg-type]


def test_hybrid_fuses_bm25(docs: list[Document]) -> None:
    index = KnowledgeIndex.build(docs, FakeEmbedder(), _config(hybrid=True))
    hit = index.search(["How much is dry cleaning of suits?"], top_k=2)[0][0]
    assert hit.passage.title == "Laundry Service > Dry cleaning"
    assert hit.sparse_score is not None and hit.dense_score is not None
    assert hit.score == pytest.approx(2 / (index.config.rrf_k + 1))  # first in both rankings
    assert index.search(np.zeros((1, 32), np.float32), 1)[0][0].sparse_score is None


def test_save_load_manifest_and_passages(docs: list[Document], tmp_path: Path) -> None:
    emb = FakeEmbedder()
    index = KnowledgeIndex.build(docs, emb, _config())
    path = index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["embedder"] == "fake-hash" and manifest["dimension"] == 32
    assert manifest["normalized"] is True and manifest["index_kind"] == "flat"
    assert manifest["passage_count"] == 20 and manifest["document_count"] == 5
    assert manifest["corpus_hash"] == index.corpus_hash and manifest["created_at"]
    rows = [json.loads(line) for line in (path / "passages.jsonl").read_text().splitlines()]
    assert len(rows) == 20
    assert {"slot", "id", "doc_id", "title", "text", "start", "end"} <= set(rows[0])
    loaded = KnowledgeIndex.load(path, FakeEmbedder())
    query = ["rooftop garden opening hours"]
    assert ([h.passage for h in loaded.search(query)[0]]
            == [h.passage for h in index.search(query)[0]])
    index.save(path)  # saving over an existing index replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]


def test_load_refuses_another_embedder(docs: list[Document], tmp_path: Path) -> None:
    KnowledgeIndex.build(docs, FakeEmbedder(), _config()).save(tmp_path / "idx")
    with pytest.raises(IndexMismatchError) as err:
        KnowledgeIndex.load(tmp_path / "idx", FakeEmbedder("other-model"))
    message = str(err.value)
    assert "fake-hash" in message and "other-model" in message
    assert "xingkong index --rebuild" in message
    with pytest.raises(IndexMismatchError, match="dimension 32.*dimension 16"):
        KnowledgeIndex.load(tmp_path / "idx", FakeEmbedder(dimension=16))
    with pytest.raises(IndexNotFoundError, match="xingkong index --rebuild"):
        KnowledgeIndex.load(tmp_path / "empty", FakeEmbedder())


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_incremental_add_and_remove(docs: list[Document], kind: str, tmp_path: Path) -> None:
    emb = FakeEmbedder()
    index = KnowledgeIndex.build(docs[:3], emb, _config(kind=kind))
    assert len(index) == 12
    added = index.add_documents(docs[3:])
    assert len(added) == 8 and len(index) == 20
    assert index.remove_documents(["laundry.md", "unknown.md"]) == 4
    titles = {h.passage.title for h in index.search(["laundry washing dry cleaning"], 20)[0]}
    assert len(titles) == 16 and not any(t.startswith("Laundry") for t in titles)
    changed = Document("bicycle_rental.md", "Bicycle Rental",
                       "# Bicycle Rental\n\n## Prices\n\nTandem bikes cost 40 EUR per day.\n")
    before = emb.encoded
    index.add_documents([changed])  # replaces the old document
    assert emb.encoded - before == 1 and len(index) == 13
    top = index.search(["tandem bikes cost"], 1)[0][0].passage
    assert top.text == "Tandem bikes cost 40 EUR per day." and top.doc_id == "bicycle_rental.md"
    index.save(tmp_path / "idx")
    reloaded = KnowledgeIndex.load(tmp_path / "idx", emb)
    assert len(reloaded) == 13
    assert reloaded.search(["tandem bikes cost"], 1)[0][0].passage == top
    with pytest.raises(CorpusError, match="Duplicate"):
        index.add_documents([changed, changed])


def test_hnsw_tombstones_and_compaction(docs: list[Document], tmp_path: Path) -> None:
    index = KnowledgeIndex.build(docs, FakeEmbedder(), _config(kind="hnsw", compact_ratio=0.5))
    assert index.store is not None
    index.remove_documents(["laundry.md"])
    assert len(index.store.tombstones) == 4 and index.store.index.ntotal == 20
    hits = index.search(["laundry washing"], 20)[0]
    assert len(hits) == 16 and all(h.passage.doc_id != "laundry.md" for h in hits)
    index.save(tmp_path / "idx")
    reloaded = KnowledgeIndex.load(tmp_path / "idx", FakeEmbedder())
    assert reloaded.store is not None and reloaded.store.tombstones == index.store.tombstones
    assert all(h.passage.doc_id != "laundry.md" for h in reloaded.search(["laundry"], 20)[0])
    index.remove_documents(["guest_library.md", "shuttle_bus.md"])  # 12 of 20 > 0.5
    assert not index.store.tombstones and index.store.index.ntotal == 8
    assert {h.passage.doc_id for h in index.search(["rooftop"], 8)[0]} == {
        "rooftop_garden.md", "bicycle_rental.md"}


def test_build_or_load_rebuilds_only_when_changed(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    kb, idx = tmp_path / "kb", tmp_path / "idx"
    shutil.copytree(KB_TINY, kb)
    emb = FakeEmbedder()
    first = build_or_load(kb, idx, emb, _config())
    assert emb.encoded == 20 and len(first) == 20
    (kb / "qa.json").write_text(json.dumps({"version": "v2.0", "data": [
        {"title": "laundry", "paragraphs": [{"context": "x", "qas": []}]}]}))
    again = build_or_load(kb, idx, emb, _config())
    assert emb.encoded == 20 and again.corpus_hash == first.corpus_hash  # loaded, not rebuilt
    text = (kb / "laundry.md").read_text().replace("6 EUR", "7 EUR")
    (kb / "laundry.md").write_text(text)
    (kb / "shuttle_bus.md").unlink()
    updated = build_or_load(kb, idx, emb, _config())
    assert emb.encoded == 24 and len(updated) == 16  # only the 4 laundry passages re-embedded
    assert "7 EUR" in updated.search(["shirt ironing prices"], 1)[0][0].passage.text
    assert build_or_load(kb, idx, emb, _config()).corpus_hash == updated.corpus_hash
    assert emb.encoded == 24
    other = FakeEmbedder("other-model")
    with caplog.at_level(logging.WARNING, logger="retrieval.index"):
        rebuilt = build_or_load(kb, idx, other, _config())
    assert other.encoded == 16 and "other-model" in caplog.text
    assert Manifest.read(idx).embedder == "other-model" and len(rebuilt) == 16
    build_or_load(kb, idx, other, _config(split=SplitConfig(max_tokens=100, overlap=10)))
    assert other.encoded == 32  # split settings changed: rebuilt
    build_or_load(kb, idx, other, _config(kind="hnsw"))
    assert other.encoded == 48 and Manifest.read(idx).index_kind == "hnsw"
    build_or_load(kb, idx, other, _config(kind="hnsw"), rebuild=True)
    assert other.encoded == 64
    build_or_load(kb, idx, other, _config(kind="hnsw", rrf_k=7))  # a search setting only
    assert other.encoded == 64 and Manifest.read(idx).config["rrf_k"] == 7  # saved, not rebuilt


def test_auto_kind_follows_size(docs: list[Document]) -> None:
    assert KnowledgeIndex.build(docs, FakeEmbedder(), _config()).kind == "flat"
    assert KnowledgeIndex.build(docs, FakeEmbedder(), _config(flat_max=10)).kind == "hnsw"
    assert KnowledgeIndex.build(docs, FakeEmbedder(), _config(kind="ivfpq")).kind == "flat"


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_hnsw_and_ivfpq_on_random_vectors() -> None:
    x = _clustered(4000)
    keys = np.arange(10_000, 14_000, dtype=np.int64)
    noisy = x[::80] + 0.3 * np.random.default_rng(1).standard_normal((50, 32))
    queries = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    flat = VectorStore("flat", 32, _config())
    flat.add(keys, x)
    _, exact = flat.search(queries, 10)
    hnsw = VectorStore("hnsw", 32, _config(hnsw_m=16, hnsw_ef_construction=64))
    hnsw.add(keys, x)
    _, approx = hnsw.search(queries, 10)
    assert _recall(approx, exact) >= 0.9
    ivf = VectorStore("ivfpq", 32, _config(ivf_nprobe=16, pq_m=16))
    ivf.add(keys, x)
    assert ivf.index.nlist == 4000 // 39 and ivf.size == 4000  # >= 39 training points a list
    _, approx = ivf.search(queries, 10)
    assert _recall(approx, exact) >= 0.7  # compressed codes: approximate by design
    removed = exact[:, 0]
    for store in (flat, hnsw, ivf):
        store.remove(removed)
        _, found = store.search(queries, 10)
        assert not set(found.ravel()) & set(removed.tolist())
    assert flat.size == hnsw.size == ivf.size == 4000 - len(set(removed.tolist()))


def test_gpu_request_falls_back_to_cpu(docs: list[Document],
                                       caplog: pytest.LogCaptureFixture) -> None:
    faiss = pytest.importorskip("faiss")
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is present")
    index = KnowledgeIndex.build(docs, FakeEmbedder(), _config(gpu=True))
    with caplog.at_level(logging.WARNING, logger="retrieval.index"):
        assert index.search(["bike helmets"], 1)[0][0].passage.doc_id == "bicycle_rental.md"
    assert "gpu_unavailable" in caplog.text


def test_bm25_and_rrf() -> None:
    assert tokenize("The Rooms and ferries!") == ["room", "ferry"]
    bm = BM25()
    bm.add([1, 2, 3], ["dogs and cats welcome", "parking garage prices", "cats only"])
    assert [k for k, _ in bm.search(["cats"], 5)[0]] == [3, 1]
    bm.remove([3])
    bm.add([2], ["cats parking"])  # replaces key 2
    assert [k for k, _ in bm.search(["cats"], 5)[0]] == [2, 1] and len(bm) == 2
    assert bm.search(["unknown words"], 5) == [[]]
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=10)
    assert [k for k, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 11 + 1 / 12)
    assert fuse([(5, 0.9)], [(6, 3.0)], k=60)[0][2:] == (0.9, None)
