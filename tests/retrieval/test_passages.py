"""Ingest and splitting: sections, token budgets, overlap, offsets, stable ids, loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.errors import CorpusError, RetrievalConfigError
from retrieval.passages import (corpus_hash, documents_from_records, embedding_text,
                                load_documents, passage_id, sections, split_document,
                                split_documents)
from retrieval.types import Document, IndexConfig, SplitConfig

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"

MARKDOWN = """# Pets Policy

Intro line before any section.

## Fees

The pet fee is 25 EUR per night.

## Rules

### Public areas

Pets stay on a lead.

```
## not a heading inside code
```

## Fees

A second section with the same heading.
"""


def _doc(text: str = MARKDOWN, doc_id: str = "policies/pets.md") -> Document:
    return Document(doc_id, "Pets Policy", text, {"source": doc_id})


def _long_doc(sentences: int = 60) -> Document:
    body = " ".join(f"Sentence number {i} has exactly seven words." for i in range(sentences))
    return Document("long.md", "Long", f"# Long\n\n## Part\n\n{body}\n", {"source": "long.md"})


def test_markdown_sections_titles_and_offsets() -> None:
    doc = _doc()
    passages = split_document(doc)
    titles = [p.title for p in passages]
    assert titles == ["Pets Policy", "Pets Policy > Fees", "Pets Policy > Rules > Public areas",
                      "Pets Policy > Fees"]
    for p in passages:
        assert doc.text[p.start:p.end] == p.text
        assert p.doc_id == doc.id and p.metadata["source"] == doc.id
    assert passages[0].text == "Intro line before any section."
    assert passages[2].metadata["section_path"] == ["Rules", "Public areas"]
    assert "## not a heading inside code" in passages[2].text  # fenced code is body text
    assert passages[1].id != passages[3].id  # repeated heading, distinct ids
    assert embedding_text(passages[1]) == "Pets Policy > Fees\nThe pet fee is 25 EUR per night."
    assert embedding_text(passages[1], with_title=False) == passages[1].text


def test_sections_skip_empty_bodies() -> None:
    doc = Document("t.md", "T", "# T\n\n## Empty\n\n## Full\n\nBody.\n")
    assert [path for path, _, _ in sections(doc)] == [("Full",)]
    # an H1 that is not the document title is a section of its own
    assert [path for path, _, _ in sections(_doc("# Other\n\nBody.\n"))] == [("Other",)]


def test_token_budget_overlap_and_sentence_cuts() -> None:
    doc = _long_doc()
    config = SplitConfig(max_tokens=40, overlap=10)
    passages = split_document(doc, config)
    assert len(passages) > 5
    for p in passages:
        assert doc.text[p.start:p.end] == p.text
        assert len(p.text.split()) <= 40
        assert p.text.endswith(".")  # every cut falls at a sentence end
    for a, b in zip(passages, passages[1:]):
        assert b.start < a.end  # overlap ...
        assert len(doc.text[b.start:a.end].split()) <= 10  # ... within its budget
        assert b.text.startswith("Sentence")  # snapped to a sentence start
    assert passages[-1].end == doc.text.rstrip().__len__()  # the whole section is covered
    assert [p.metadata["chunk"] for p in passages] == list(range(len(passages)))


def test_no_overlap_chunks_tile_the_section() -> None:
    doc = _long_doc(20)
    passages = split_document(doc, SplitConfig(max_tokens=30, overlap=0))
    words = sum(len(p.text.split()) for p in passages)
    assert words == 20 * 7
    assert all(a.end <= b.start for a, b in zip(passages, passages[1:]))


def test_token_lengths_callable_counts_model_tokens() -> None:
    doc = _long_doc(20)
    whitespace = split_document(doc, SplitConfig(max_tokens=40, overlap=0))
    doubled = split_document(doc, SplitConfig(max_tokens=40, overlap=0, tokenizer="embedder"),
                             token_lengths=lambda words: [2] * len(words))
    assert len(doubled) >= 2 * len(whitespace) - 1
    assert all(len(p.text.split()) <= 20 for p in doubled)


def test_ids_stable_when_other_docs_or_sections_change() -> None:
    other = Document("b.md", "B", "# B\n\n## X\n\nOne.\n")
    before = {p.id: p for p in split_documents([_doc(), other])}
    changed_other = Document("b.md", "B", "# B\n\n## X\n\nTwo, and longer.\n\n## Y\n\nNew.\n")
    after = {p.id: p for p in split_documents([_doc(), changed_other])}
    pets_before = {i for i, p in before.items() if p.doc_id == "policies/pets.md"}
    pets_after = {i for i, p in after.items() if p.doc_id == "policies/pets.md"}
    assert pets_before == pets_after
    edited = split_document(_doc(MARKDOWN.replace("25 EUR", "30 EUR")))
    assert [p.id for p in edited] == [p.id for p in split_document(_doc())]
    assert passage_id("a", ["S"], 0) == passage_id("a", ("S",), 0) != passage_id("a", ["S"], 1)
    assert len(before) == len(split_documents([_doc(), other]))  # ids are unique


def test_load_tiny_kb_fixture() -> None:
    docs = load_documents(KB_TINY)
    assert [d.id for d in docs] == sorted(d.id for d in docs)
    assert len(docs) == 5
    passages = split_documents(docs)
    assert len(passages) == 20
    assert {p.title for p in passages} >= {"Laundry Service > Dry cleaning",
                                          "City Shuttle Bus > Timetable"}


def test_load_directory_formats_and_skips(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Alpha\n\n## S\n\nText.\n", encoding="utf-8")
    (tmp_path / "notes_file.txt").write_text("Plain text.\n\n# not a heading in text\n")
    (tmp_path / ".hidden.md").write_text("# Hidden\n\nNo.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "recs.jsonl").write_text(
        json.dumps({"id": "r1", "title": "R1", "text": "Record one.", "url": "http://x/1"})
        + "\n\n" + json.dumps({"title": "R2", "content": "Record two.",
                                "metadata": {"lang": "en"}}) + "\n")
    (tmp_path / "list.json").write_text(json.dumps({"documents": [{"text": "Untitled."}]}))
    squad = {"version": "v2.0", "data": [{"title": "a", "paragraphs": [{"context": "c",
                                                                          "qas": []}]}]}
    (tmp_path / "qa.json").write_text(json.dumps(squad))
    (tmp_path / "skip.md").write_text("# Skip\n")
    docs = {d.id: d for d in load_documents(tmp_path, exclude=["skip.*"])}
    assert set(docs) == {"a.md", "notes_file.txt", "r1", "sub/recs.jsonl#R2", "list.json#0"}
    assert docs["a.md"].title == "Alpha"
    assert docs["notes_file.txt"].title == "Notes file" and docs["notes_file.txt"].format == "text"
    assert len(split_document(docs["notes_file.txt"])) == 1  # no markdown sections in text
    assert docs["r1"].metadata == {"source": "sub/recs.jsonl", "url": "http://x/1"}
    assert docs["sub/recs.jsonl#R2"].metadata["lang"] == "en"
    single = load_documents(tmp_path / "a.md")
    assert [d.id for d in single] == ["a.md"]


@pytest.mark.parametrize("content, fragment", [
    ('{"id": 1, "text": "x"}\n{"id": 1, "text": "y"}\n', "Duplicate document id '1'"),
    ('{"text": "x"}\n{broken\n', "bad.jsonl:2: invalid JSON"),
    ('{"title": "no text"}\n', "missing 'text'"),
    ('[1, 2]\n', "expected an object"),
])
def test_bad_records_raise_corpus_error(tmp_path: Path, content: str, fragment: str) -> None:
    (tmp_path / "bad.jsonl").write_text(content)
    with pytest.raises(CorpusError, match=fragment):
        load_documents(tmp_path)


def test_missing_kb_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents(tmp_path / "nope")
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(CorpusError, match="list of records"):
        load_documents(tmp_path)
    with pytest.raises(CorpusError, match="Duplicate"):
        documents_from_records([{"title": "T", "text": "a"}, {"title": "T", "text": "b"}],
                               source="s")


def test_corpus_hash_tracks_content_and_settings() -> None:
    docs = [_doc(), Document("b.md", "B", "text")]
    base = corpus_hash(docs, SplitConfig())
    assert corpus_hash(list(reversed(docs)), SplitConfig()) == base
    assert corpus_hash([_doc(MARKDOWN + "x"), docs[1]], SplitConfig()) != base
    assert corpus_hash(docs, SplitConfig(max_tokens=100)) != base
    assert corpus_hash(docs, SplitConfig(), embed_titles=False) != base


def test_config_validation_and_mapping() -> None:
    with pytest.raises(RetrievalConfigError, match="overlap"):
        SplitConfig(max_tokens=20, overlap=15)
    with pytest.raises(RetrievalConfigError, match="tokenizer"):
        SplitConfig(tokenizer="chars")
    with pytest.raises(RetrievalConfigError, match="kind"):
        IndexConfig(kind="annoy")
    config = IndexConfig.from_mapping({"kind": "hnsw", "max_tokens": 120, "hybrid": False,
                                       "model": "ignored-here", "split": {"overlap": 20}})
    assert config.kind == "hnsw" and not config.hybrid
    assert config.split == SplitConfig(max_tokens=120, overlap=20)
    assert IndexConfig.from_mapping(config.to_dict()) == config
    assert IndexConfig(flat_max=10).choose_kind(10) == "flat"
    assert IndexConfig(flat_max=10).choose_kind(11) == "hnsw"
    assert IndexConfig(kind="ivfpq").choose_kind(50) == "flat"  # too small to train
