"""LUKE span extractor: words and offsets, span enumeration, decoding, training, save/load, errors.

Unit tests build a tiny random BERT (hidden 32, 2 layers) in a temporary directory; the one
integration test builds LUKE from the packaged all-MiniLM-L6-v2 encoder.
"""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertTokenizerFast, LukeConfig, LukeModel

import nlu.luke_spans as luke_spans
from nlu.entity_metrics import entity_prf
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.luke_spans import LukeSpanConfig, LukeSpanExtractor, decode_spans, sample_spans
from nlu.types import Entity, Example
from nlu.words import Word, encode_texts, enumerate_spans, split_words, word_windows
from tests.fakes import write_tiny_bert

CITIES = ["lisbon", "paris", "berlin", "rome", "madrid", "vienna"]
DAYS = ["monday", "tuesday", "friday", "sunday"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "book a room in please i want to stay hotel for me hello thanks from cafe ##s , . ! ?".split()
)
VOCAB = [*SPECIAL, *WORDS, *CITIES, *DAYS]


def _example(template: str, **values: tuple[str, str, str | None]) -> Example:
    """`template` with {name} slots filled by (text, entity, role) values."""
    text, entities = "", []
    for piece in re.split(r"(\{\w+\})", template):
        if piece.startswith("{"):
            value, entity, role = values[piece[1:-1]]
            entities.append(Entity(len(text), len(text) + len(value), value, entity, role))
            piece = value
        text += piece
    return Example(text, "book_room", tuple(entities))


def _dataset() -> list[Example]:
    examples = []
    for i, city in enumerate(CITIES):
        name = city.capitalize()
        for template in (
            "book a room in {c}",
            "i want to stay in {c} please",
            "a hotel in {c} for me",
            "{c} please",
        ):
            examples.append(_example(template, c=(name, "city", None)))
        first, second = DAYS[i % 4], DAYS[(i + 1) % 4]
        examples.append(
            _example("stay in {c} from {a} to {b}", c=(name, "city", None),
                     a=(first, "date", "checkin"), b=(second, "date", "checkout"))
        )  # fmt: skip
    examples += [
        Example("hello", "greet"),
        Example("thanks !", "thank"),
        Example("book a room please", "book_room"),
    ]
    return examples


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), VOCAB)


@pytest.fixture(scope="module")
def tiny_config(bert_dir: Path) -> LukeSpanConfig:
    return LukeSpanConfig(
        model=str(bert_dir), epochs=30, batch_size=8, learning_rate=1e-3, entity_learning_rate=3e-3,
        max_length=32, val_fraction=0.0, seed=0, min_steps=0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_config: LukeSpanConfig) -> tuple[LukeSpanExtractor, dict[str, Any]]:
    extractor = LukeSpanExtractor(tiny_config)
    report = extractor.train(_dataset(), progress=False)
    return extractor, report


# -- words, offsets, spans ---------------------------------------------------------------------


def test_split_words_punctuation_spaces_and_unicode() -> None:
    text = "  Book  a room in São-Paulo, café!!  東京 🙂 (Paris's)"
    words = [text[s:e] for s, e in split_words(text)]
    expected = "Book a room in São-Paulo , café ! ! 東 京 🙂 ( Paris ' s )".split()
    assert words == expected


def test_emails_ids_and_dates_are_single_words() -> None:
    text = "mail ana.ruiz@example.com. re SL-482913 from 2027-01-15 to 15/01/2027, ok"
    words = [text[s:e] for s, e in split_words(text)]
    assert words == ["mail", "ana.ruiz@example.com", ".", "re", "SL-482913", "from", "2027-01-15",
                     "to", "15/01/2027", ",", "ok"]  # fmt: skip


def test_words_and_word_pieces_map_both_ways(bert_dir: Path) -> None:
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    text = "Book  a room in Lisbons,  CAFÉ!\tZürich 東京"
    (encoded,) = encode_texts(tokenizer, [text])
    pieces = tokenizer.convert_ids_to_tokens(list(encoded.token_ids))
    assert [text[w.start : w.end] for w in encoded.words] == [
        "Book", "a", "room", "in", "Lisbons", ",", "CAFÉ", "!", "Zürich", "東", "京",
    ]  # fmt: skip
    lisbons = encoded.words[4]
    assert pieces[lisbons.first_token : lisbons.last_token + 1] == ["lisbon", "##s"]
    assert pieces[encoded.words[6].first_token] == "cafe"  # accent stripped, offsets kept
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    owners = [
        [i for i, w in enumerate(encoded.words) if w.first_token <= t <= w.last_token]
        for t in range(len(offsets))
    ]
    for token, (start, end) in enumerate(offsets):  # every piece lies inside exactly one word
        assert len(owners[token]) == 1
        word = encoded.words[owners[token][0]]
        assert word.start <= start < end <= word.end


def test_words_without_pieces_are_dropped(bert_dir: Path) -> None:
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    text = "in \u200b lisbon"  # a zero-width space is no word piece
    (encoded,) = encode_texts(tokenizer, [text])
    assert [text[w.start : w.end] for w in encoded.words] == ["in", "lisbon"]


def test_enumerate_spans_up_to_max_length() -> None:
    assert enumerate_spans(0, 3, 2) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]
    assert len(enumerate_spans(0, 10, 8)) == sum(min(8, 10 - i) for i in range(10))
    assert enumerate_spans(2, 4, 8) == [(2, 2), (2, 3), (3, 3)]


def test_windows_cover_every_span_of_a_long_text() -> None:
    words = tuple(Word(3 * i, 3 * i + 2, 2 * i, 2 * i + 1) for i in range(40))  # two pieces a word
    windows = word_windows(words, max_tokens=10, overlap=2)
    for w0, w1 in windows:
        assert words[w1 - 1].last_token - words[w0].first_token < 10
    inside = {span for w0, w1 in windows for span in enumerate_spans(w0, w1, 3)}
    assert inside == set(enumerate_spans(0, 40, 3))
    assert word_windows((), 10, 2) == []


def test_sampling_keeps_every_gold_span_and_bounds_the_negatives() -> None:
    spans = tuple(enumerate_spans(0, 12, 4))
    labels = tuple(1 if span in {(3, 4), (9, 9)} else 0 for span in spans)
    chosen = sample_spans(spans, labels, 2.0, random.Random(0))
    gold = [k for k, label in enumerate(labels) if label]
    assert set(gold) <= set(chosen) and len(chosen) == 2 + 4
    assert any(
        not labels[k] and spans[k][0] <= 4 and 3 <= spans[k][1] for k in chosen
    )  # boundary mistakes
    assert sample_spans(spans, labels, 0, random.Random(0)) == list(range(len(spans)))
    assert len(sample_spans(spans, (0,) * len(spans), 3.0, random.Random(0))) == 3


# -- decoding ----------------------------------------------------------------------------------


def test_decode_keeps_the_best_non_overlapping_spans() -> None:
    text = "stay in Lisbon from monday to friday"
    labels = [("city", None, None), ("date", "checkin", None), ("date", "checkout", None)]
    char_spans = [(0, 4), (8, 14), (8, 19), (20, 26), (15, 26), (30, 36)]
    logits = torch.tensor([
        [5.0, 0.0, 0.0, 0.0],  # "stay": O
        [0.0, 4.0, 0.0, 0.0],  # "Lisbon": city, beats the overlapping longer span
        [0.0, 2.0, 0.0, 0.0],  # "Lisbon from"
        [0.0, 0.0, 1.5, 0.0],  # "monday": checkin, loses to "from monday"...
        [0.0, 0.0, 3.0, 0.0],  # "from monday": ...which scores higher
        [0.0, 0.0, 0.0, 2.5],  # "friday": checkout
    ])  # fmt: skip
    entities = decode_spans(text, char_spans, logits.softmax(dim=-1), labels)
    assert [(e.value, e.entity, e.role) for e in entities] == [
        ("Lisbon", "city", None),
        ("from monday", "date", "checkin"),
        ("friday", "date", "checkout"),
    ]
    assert entities[0].confidence == pytest.approx(float(logits[1].softmax(-1)[1]))
    assert all(e.extractor == "LukeSpanExtractor" for e in entities)
    assert decode_spans(text, [], torch.zeros(0, 4), labels) == []


# -- training, inference, save/load ------------------------------------------------------------


def test_training_learns_spans_and_roles(trained: tuple[LukeSpanExtractor, dict[str, Any]]) -> None:
    extractor, report = trained
    losses = [point["train_loss"] for point in report["epochs"]]
    assert losses[-1] < 0.5 * losses[0]
    assert report["labels"] == ["city", "date#checkin", "date#checkout"]
    data = _dataset()
    predicted = extractor.extract_batch([e.text for e in data])
    scores = entity_prf([list(e.entities) for e in data], predicted)
    assert scores["f1"] > 0.5, scores  # no collapse to "no entity everywhere"
    roles = {e.role for entities in predicted for e in entities if e.entity == "date"}
    assert {"checkin", "checkout"} & roles
    for text, entities in zip([e.text for e in data], predicted):
        assert all(e.value == text[e.start : e.end] for e in entities)


def test_learning_curve_and_early_stopping(bert_dir: Path, tiny_config: LukeSpanConfig) -> None:
    config = replace(tiny_config, epochs=4, val_fraction=0.25, early_stopping_patience=1)
    report = LukeSpanExtractor(config).train(_dataset() * 2, progress=False)
    assert report["n_validation"] == len(_dataset()) * 2 // 4
    assert 1 <= len(report["epochs"]) <= 4
    assert {"epoch", "train_loss", "val_f1", "val_precision", "val_recall", "seconds"} <= set(
        report["epochs"][0]
    )
    assert report["best_val_f1"] == max(point["val_f1"] for point in report["epochs"])
    assert report["seconds"] > 0


def test_long_messages_are_windowed_and_chunked(
    trained: tuple[LukeSpanExtractor, dict[str, Any]],
) -> None:
    extractor = copy.deepcopy(trained[0])
    extractor.config = replace(extractor.config, max_entities=7)
    text = " ".join(
        ["book a room in Lisbon please ,"] * 12
    )  # 84 words: several windows of 30 pieces
    (entities,) = extractor.extract_batch([text])
    assert entities, "no city found in a long message"
    assert all(e.value == text[e.start : e.end] for e in entities)
    assert all(a.end <= b.start for a, b in zip(entities, entities[1:]))
    assert extractor.extract("") == []


def test_save_and_load_round_trip(
    trained: tuple[LukeSpanExtractor, dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extractor, _ = trained
    texts = ["book a room in Rome", "stay in Paris from monday to friday", "hello"]
    extractor.save(tmp_path / "luke")
    assert {"model.safetensors", "config.json", "luke_spans.json", "tokenizer.json"} <= {
        p.name for p in (tmp_path / "luke").iterdir()
    }

    def no_resolver(model_id: str) -> Path:
        raise AssertionError(f"load_from must not resolve '{model_id}'")

    monkeypatch.setattr(luke_spans, "resolve_model", no_resolver)
    loaded = LukeSpanExtractor.load_from(tmp_path / "luke")
    loaded.load()  # idempotent
    assert loaded.labels == extractor.labels and loaded.config == extractor.config
    for ours, theirs in zip(loaded.extract_batch(texts), extractor.extract_batch(texts)):
        assert [(e.start, e.end, e.entity, e.role) for e in ours] == [
            (e.start, e.end, e.entity, e.role) for e in theirs
        ]
        assert [e.confidence for e in ours] == pytest.approx(
            [e.confidence for e in theirs], abs=1e-5
        )
    quantized = LukeSpanExtractor.load_from(tmp_path / "luke", quantize=True)
    assert quantized.config.quantize
    assert "quantized.dynamic" in type(quantized._model.classifier).__module__  # int8 Linear
    for ours, theirs in zip(quantized.extract_batch(texts), extractor.extract_batch(texts)):
        assert [e.confidence for e in ours] == pytest.approx(
            [e.confidence for e in theirs], abs=0.1) or len(ours) != len(theirs)


def test_pretrained_luke_checkpoint_is_fine_tuned(bert_dir: Path, tmp_path: Path) -> None:
    luke_dir = tmp_path / "tiny_luke"
    BertTokenizerFast.from_pretrained(bert_dir).save_pretrained(luke_dir)
    config = LukeConfig(
        vocab_size=len(VOCAB), entity_vocab_size=10, hidden_size=32, entity_emb_size=16,
        num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, type_vocab_size=1, pad_token_id=0,
    )  # fmt: skip
    LukeModel(config).save_pretrained(luke_dir)
    (luke_dir / "entity_vocab.json").write_text(
        json.dumps({"[PAD]": 0, "[UNK]": 1, "[MASK]": 2, "Lisbon": 3})
    )
    extractor = LukeSpanExtractor(
        LukeSpanConfig(luke_model=str(luke_dir), epochs=2, max_length=32, val_fraction=0,
                       min_steps=0)
    )
    report = extractor.train(_dataset(), progress=False)
    assert len(report["epochs"]) == 2
    extractor.save(tmp_path / "saved")
    loaded = LukeSpanExtractor.load_from(tmp_path / "saved")
    assert (
        loaded._model is not None
        and loaded._model.luke.entity_embeddings.entity_embeddings.num_embeddings == 3
    )
    assert isinstance(loaded.extract("book a room in Rome"), list)


# -- errors ------------------------------------------------------------------------------------


def test_training_without_entities_is_refused(tiny_config: LukeSpanConfig) -> None:
    with pytest.raises(NLUTrainingError, match="none of the 2 training examples has an entity"):
        LukeSpanExtractor(tiny_config).train([Example("hello", "greet"), Example("bye", "goodbye")])
    with pytest.raises(NLUTrainingError, match="no training examples"):
        LukeSpanExtractor(tiny_config).train([])


def test_entities_longer_than_max_span_length_are_refused(tiny_config: LukeSpanConfig) -> None:
    text = "book a room in lisbon please"
    examples = [Example(text, "book_room", (Entity(0, len(text), text, "city"),))]
    with pytest.raises(NLUTrainingError, match="max_span_length=2"):
        LukeSpanExtractor(replace(tiny_config, max_span_length=2)).train(examples, progress=False)


def test_missing_or_broken_model_directory(tmp_path: Path) -> None:
    with pytest.raises(
        NLUModelError, match="missing luke_spans.json, config.json, model.safetensors"
    ):
        LukeSpanExtractor.load_from(tmp_path / "absent")
    for name in ("luke_spans.json", "config.json", "model.safetensors"):
        (tmp_path / name).write_text("{not json", encoding="utf-8")
    with pytest.raises(NLUModelError, match="Unreadable"):
        LukeSpanExtractor.load_from(tmp_path)


def test_untrained_extractor_and_unknown_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(NLUModelError, match="call train"):
        LukeSpanExtractor().extract("book a room in Lisbon")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    examples = [Example("in Lisbon", "inform", (Entity(3, 9, "Lisbon", "city"),))]
    with pytest.raises(NLUModelError, match="no-such-model"):
        LukeSpanExtractor(LukeSpanConfig(model=str(tmp_path / "no-such-model"))).train(examples)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="max_span_length must be >= 1"):
        LukeSpanConfig(max_span_length=0)
    with pytest.raises(ValueError, match="val_fraction"):
        LukeSpanConfig(val_fraction=1.0)


# -- integration: MiniLM-built LUKE ------------------------------------------------------------

TRAIN_CITIES = ["Lisbon", "Paris", "Berlin", "Rome", "Madrid", "Vienna", "Prague", "Amsterdam"]
TEMPLATES = [
    "book a room in {}",
    "I want to stay in {} next week",
    "any hotels in {}?",
    "{} please",
]


@pytest.mark.integration
def test_minilm_luke_finds_an_unseen_city() -> None:
    examples = [
        _example(t.replace("{}", "{c}"), c=(city, "city", None))
        for t in TEMPLATES
        for city in TRAIN_CITIES
    ] + [
        Example(text, "other")
        for text in ("hello there", "thanks a lot", "book a room please", "what time is it?")
    ]
    config = LukeSpanConfig(epochs=5, batch_size=8, val_fraction=0.0, min_steps=0)  # ~15 s
    extractor = LukeSpanExtractor(config)
    report = extractor.train(examples, progress=False)
    assert report["epochs"][-1]["train_loss"] < report["epochs"][0]["train_loss"]
    entities = extractor.extract("can you book a room in Barcelona for me")
    assert [(e.value, e.entity) for e in entities] == [("Barcelona", "city")]
    sentence = (
        "I would like to book a room in Oslo for two nights, "
        "and then another one in Seville next month please."
    )
    long_entities = extractor.extract(" ".join([sentence] * 6))  # > max_length pieces
    assert {e.value for e in long_entities} == {"Oslo", "Seville"}
    assert len(long_entities) >= 6
