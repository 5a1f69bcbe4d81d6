"""BIO tagger baseline: tag decoding, training on a tiny random BERT, save/load, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import BertTokenizerFast

import nlu.bio_tagger as bio_tagger
from nlu.bio_tagger import BioTagger, BioTaggerConfig, decode_tags, tag_names
from nlu.entity_metrics import entity_prf
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.types import Entity, Example
from nlu.words import encode_texts
from tests.fakes import write_tiny_bert

CITIES = ["Lisbon", "Paris", "Berlin", "Rome", "Madrid", "Vienna"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = "book a room in please new york from monday to friday hello !".split()
VOCAB = [*SPECIAL, *WORDS, *[c.lower() for c in CITIES]]
LABELS = [("city", None, None), ("date", "checkin", None), ("date", "checkout", None)]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), VOCAB)


def _dataset() -> list[Example]:
    examples = []
    for city in CITIES:
        for prefix in ("book a room in ", "in ", "a room in "):
            text = f"{prefix}{city} please"
            examples.append(
                Example(
                    text, "book_room", (Entity(len(prefix), len(prefix) + len(city), city, "city"),)
                )
            )
    text = "book a room in New York please"
    examples.append(Example(text, "book_room", (Entity(15, 23, "New York", "city"),)))
    examples += [Example("hello !", "greet"), Example("book a room please", "book_room")]
    return examples


@pytest.fixture(scope="module")
def trained(bert_dir: Path) -> tuple[BioTagger, dict[str, Any]]:
    config = BioTaggerConfig(
        model=str(bert_dir), epochs=25, batch_size=8, learning_rate=1e-3, head_learning_rate=3e-3,
        max_length=32, val_fraction=0.0, seed=0, min_steps=0,
    )  # fmt: skip
    tagger = BioTagger(config)
    return tagger, tagger.train(_dataset(), progress=False)


def test_tag_names() -> None:
    assert tag_names(LABELS) == ["O", "B-city", "I-city", "B-date#checkin", "I-date#checkin",
                                 "B-date#checkout", "I-date#checkout"]  # fmt: skip


def test_decode_tags_repairs_stray_inside_tags(bert_dir: Path) -> None:
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    text = "New York from monday to friday"
    (encoded,) = encode_texts(tokenizer, [text])
    # New=B-city York=I-city from=O monday=I-checkin (stray I-) to=O friday=B-checkout
    tags = {0: (1, 0.9), 1: (2, 0.7), 2: (0, 0.99), 3: (4, 0.6), 4: (0, 0.9), 5: (5, 0.8)}
    entities = decode_tags(text, encoded, tags, LABELS)
    assert [(e.value, e.entity, e.role) for e in entities] == [
        ("New York", "city", None), ("monday", "date", "checkin"), ("friday", "date", "checkout"),
    ]  # fmt: skip
    assert entities[0].confidence == pytest.approx(0.8)
    assert all(e.extractor == "BioTagger" for e in entities)


def test_training_finds_entities(trained: tuple[BioTagger, dict[str, Any]]) -> None:
    tagger, report = trained
    losses = [point["train_loss"] for point in report["epochs"]]
    assert losses[-1] < 0.5 * losses[0]
    data = _dataset()
    predicted = tagger.extract_batch([e.text for e in data])
    assert entity_prf([list(e.entities) for e in data], predicted)["f1"] > 0.5
    long_text = " ".join(["book a room in Paris please"] * 10)  # more pieces than max_length
    assert all(e.value == long_text[e.start : e.end] for e in tagger.extract(long_text))


def test_save_and_load_round_trip(
    trained: tuple[BioTagger, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tagger, _ = trained
    tagger.save(tmp_path / "bio")

    def no_resolver(model_id: str) -> Path:
        raise AssertionError(f"load_from must not resolve '{model_id}'")

    monkeypatch.setattr(bio_tagger, "resolve_model", no_resolver)
    loaded = BioTagger.load_from(tmp_path / "bio")
    texts = ["book a room in Rome please", "hello !"]
    assert loaded.extract_batch(texts) == tagger.extract_batch(texts)


def test_errors(bert_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NLUTrainingError, match="none of the 1 training examples has an entity"):
        BioTagger(BioTaggerConfig(model=str(bert_dir))).train([Example("hello", "greet")])
    with pytest.raises(NLUModelError, match="missing bio_tagger.json"):
        BioTagger.load_from(tmp_path)
    with pytest.raises(NLUModelError, match="call train"):
        BioTagger().extract("hello")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        BioTaggerConfig(epochs=0)
