"""The extractive reader on a tiny random BERT (hidden 32, 2 layers, a word vocabulary written
in tmp_path): windows, stride and offset mapping; the null score and the margin decision with
FIXED logits (a fake model at `Reader.logits`); save/load; training and calibration. One
integration test fine-tunes the real all-MiniLM-L6-v2 backbone (fresh QA head) on 64 inline QA
pairs (4 short epochs, 32 steps, about a minute) and checks two extracted spans."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.qa_metrics import QAExample
from retrieval.reader import (READER_CONFIG, Reader, ReaderConfig, ReaderResult, Span,
                              encode_windows, quantize_dynamic)
from retrieval.reader_training import (choose_margin, label_windows, make_negatives,
                                       split_holdout, train_reader)

WORDS = ("the pet fee is 25 eur per night dogs and cats are welcome at every hotel breakfast "
         "served from 07:00 to 10:30 in restaurant how much what time can i bring my dog when "
         "checkout noon late costs extra room seven days parking garage costs 30 . , ? : ! - "
         "0 1 2 3 4 5 6 7 8 9 a b c d e f g h i j k l m n o p q r s t u v w x y z").split()
CONTEXT = ("The pet fee is 25 EUR per night. Dogs and cats are welcome at every hotel. "
           "Breakfast is served from 07:00 to 10:30 in the restaurant.")


def tiny_model_dir(path: Path, seed: int = 0) -> Path:
    """A random 2-layer BERT QA model with a word-level vocabulary, saved to `path`."""
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(WORDS)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)})
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertForQuestionAnswering(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def reader(model_dir: Path) -> Reader:
    return Reader(ReaderConfig(model=str(model_dir), max_length=64, doc_stride=8,
                               max_question_tokens=16, max_answer_tokens=6)).load()


def fixed_logits(reader: Reader, *, start_word: str, end_word: str, null: float = 0.0,
                 value: float = 5.0, null_by_first: dict[str, float] | None = None) -> Any:
    """A fake model: start logit `value` on `start_word`, end logit on `end_word`, [CLS] gets
    null/2 each (or null_by_first[first context word of the window]), -5 elsewhere."""
    vocab = reader.tokenizer.get_vocab()
    sid, eid = vocab[start_word], vocab[end_word]
    sep = vocab["[SEP]"]

    def logits(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch["input_ids"]  # (B, L)
        start = torch.full(ids.shape, -5.0)  # (B, L)
        end = torch.full(ids.shape, -5.0)  # (B, L)
        start[ids == sid] = value
        end[ids == eid] = value
        for row in range(ids.shape[0]):
            n = null
            if null_by_first:
                first = int((ids[row] == sep).nonzero()[0]) + 1
                word = reader.tokenizer.convert_ids_to_tokens(int(ids[row, first]))
                n = null_by_first.get(word, null)
            start[row, 0] = end[row, 0] = n / 2
        return start, end

    return logits


# ------------------------------------------------------------------ windows and offsets

def test_long_passage_becomes_overlapping_windows(reader: Reader) -> None:
    context = " ".join([CONTEXT] * 4)
    config = reader.config
    windows = encode_windows(reader.tokenizer, ["how much is the pet fee?"], [context], config)
    assert len(windows.input_ids) > 2 and set(windows.pair) == {0}
    spans = [[o for o in offs if o is not None] for offs in windows.offsets]
    for ids, offs in zip(windows.input_ids, windows.offsets):
        assert len(ids) <= config.max_length and len(ids) == len(offs)
    for prev, nxt in zip(spans, spans[1:]):  # consecutive windows share doc_stride tokens
        assert prev[-config.doc_stride:] == nxt[:config.doc_stride]
    covered = {o for offs in spans for o in offs}
    every = encode_windows(reader.tokenizer, ["q"], [context],
                           ReaderConfig(model="x", max_length=400, doc_stride=8,
                                        max_question_tokens=16))
    assert len(every.input_ids) == 1 and covered == {o for o in every.offsets[0] if o}
    for a, b in covered:  # offsets are characters of the context
        assert context[a:b].strip() == context[a:b] and context[a:b]


def test_long_questions_are_cut(reader: Reader) -> None:
    question = " ".join(["what"] * 40)
    windows = encode_windows(reader.tokenizer, [question], [CONTEXT], reader.config)
    question_tokens = sum(1 for o in windows.offsets[0] if o is None) - 3
    assert question_tokens == reader.config.max_question_tokens


def test_spans_are_substrings_of_the_passage(reader: Reader) -> None:
    context = " ".join([CONTEXT] * 3)
    result = reader.read("how much is the pet fee?", context)
    assert result.windows > 1 and result.spans
    for span in result.spans:
        assert context[span.start:span.end] == span.text and span.text
        assert len(reader.tokenizer.tokenize(span.text)) <= reader.config.max_answer_tokens
    assert result.no_answer.is_null and result.no_answer.text == ""


def test_batch_api_keeps_the_order(reader: Reader) -> None:
    passages = [CONTEXT, "Parking in the garage costs 30 EUR per night.", CONTEXT[:40]]
    results = reader.read_batch("how much is parking?", passages)
    assert [r.context for r in results] == passages
    assert reader.read_pairs([], []) == []
    with pytest.raises(TypeError):
        reader.read_pairs("question", ["p"])  # type: ignore[arg-type]


# ------------------------------------------------------------------ fixed logits

def test_best_span_and_null_score_from_fixed_logits(reader: Reader,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "logits",
                        fixed_logits(reader, start_word="25", end_word="night", null=4.0))
    result = reader.read("how much is the pet fee?", CONTEXT)
    assert result.best is not None and result.best.text == "25 EUR per night"
    assert result.best.score == pytest.approx(10.0)
    assert result.null_score == pytest.approx(4.0) and result.gap == pytest.approx(6.0)
    assert result.has_answer and result.text == "25 EUR per night"
    assert result.prediction == result.best


def test_margin_decides_between_span_and_no_answer(reader: Reader,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reader, "logits",
                        fixed_logits(reader, start_word="25", end_word="night", null=4.0))
    strict = reader.with_margin(6.5)
    monkeypatch.setattr(strict, "logits",
                        fixed_logits(strict, start_word="25", end_word="night", null=4.0))
    result = strict.read("how much is the pet fee?", CONTEXT)
    assert result.best is not None and result.best.text == "25 EUR per night"
    assert not result.has_answer and result.text is None
    assert result.prediction.is_null and result.prediction.score == pytest.approx(4.0)
    assert reader.with_margin(5.5).model is reader.model  # shares the weights


def test_spans_outside_the_context_or_too_long_are_ignored(
        reader: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    # "fee" is in the question too: only the context occurrence may start a span
    monkeypatch.setattr(reader, "logits",
                        fixed_logits(reader, start_word="fee", end_word="eur"))
    result = reader.read("fee eur?", CONTEXT)
    assert result.best is not None and result.best.text == "fee is 25 EUR"
    assert result.best.start == CONTEXT.index("fee")
    # "pet" ... "restaurant" is longer than max_answer_tokens: never proposed
    monkeypatch.setattr(reader, "logits",
                        fixed_logits(reader, start_word="pet", end_word="restaurant"))
    best = reader.read("q", CONTEXT).best
    assert best is not None and best.score < 5.0
    # an end before the start is no span either
    monkeypatch.setattr(reader, "logits", fixed_logits(reader, start_word="night",
                                                       end_word="pet"))
    assert all(s.end > s.start for s in reader.read("q", CONTEXT).spans)


def test_null_score_is_the_minimum_over_windows(reader: Reader,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    context = " ".join([CONTEXT] * 3)
    windows = encode_windows(reader.tokenizer, ["q"], [context], reader.config)
    firsts = {reader.tokenizer.convert_ids_to_tokens(ids[offs.index(next(
        o for o in offs if o is not None))]) for ids, offs in zip(windows.input_ids,
                                                                   windows.offsets)}
    assert len(firsts) >= 2
    nulls = {word: 10.0 + i for i, word in enumerate(sorted(firsts))}
    monkeypatch.setattr(reader, "logits", fixed_logits(reader, start_word="25",
                                                       end_word="night",
                                                       null_by_first=nulls))
    result = reader.read("q", context)
    assert result.null_score == pytest.approx(min(nulls.values()))
    assert result.windows == len(windows.input_ids)


# ------------------------------------------------------------------ config, save, load

def test_config_validation() -> None:
    with pytest.raises(RetrievalConfigError):
        ReaderConfig(max_length=64, doc_stride=60)
    with pytest.raises(RetrievalConfigError):
        ReaderConfig(n_best=0)
    config = ReaderConfig.from_mapping({"max_length": 128, "unknown": 1}, doc_stride=16)
    assert (config.max_length, config.doc_stride) == (128, 16)


def test_save_and_from_dir_keep_the_margin(reader: Reader, tmp_path: Path) -> None:
    saved = reader.with_margin(1.25).save(tmp_path / "reader")
    assert (saved / "model.safetensors").exists() and (saved / READER_CONFIG).exists()
    loaded = Reader.from_dir(saved)
    assert loaded.margin == 1.25 and loaded.model is None  # cheap until load()
    a = loaded.read("how much is the pet fee?", CONTEXT)
    b = reader.read("how much is the pet fee?", CONTEXT)
    assert a.spans == b.spans and a.null_score == pytest.approx(b.null_score)
    assert Reader.from_dir(saved, no_answer_margin=-2.0).margin == -2.0
    with pytest.raises(RetrievalError):
        Reader.from_dir(tmp_path / "missing")


def test_quantized_reader_still_reads(model_dir: Path) -> None:
    reader = Reader(ReaderConfig(model=str(model_dir), max_length=64, doc_stride=8,
                                 max_question_tokens=16, quantize=True)).load()
    result = reader.read("how much is the pet fee?", CONTEXT)
    assert isinstance(result, ReaderResult) and result.spans
    assert quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 4))) is not None


# ------------------------------------------------------------------ training pieces

def _examples() -> list[QAExample]:
    out = []
    for n in range(12):
        title = f"doc{n % 3}"
        context = f"Room {n} costs {20 + n} EUR per night. Breakfast is served at 07:00."
        answer = f"{20 + n} EUR"
        out.append(QAExample(f"q{n}", f"how much is room {n}?", context,
                             ((answer, context.index(answer)),), title))
    out.append(QAExample("u1", "can i bring my dog?", out[0].context, (), "doc0"))
    out.append(QAExample("u2", "is parking free?", out[1].context, (), "doc1"))
    return out


def test_holdout_is_stratified_and_disjoint() -> None:
    examples = _examples()
    train, held = split_holdout(examples, 0.2, seed=1)
    assert {e.id for e in train}.isdisjoint({e.id for e in held})
    assert len(train) + len(held) == len(examples)
    assert any(e.is_impossible for e in held) and any(not e.is_impossible for e in held)
    assert split_holdout(examples, 0.2, seed=1) == (train, held)


def test_generated_negatives_come_from_other_documents() -> None:
    examples = _examples()
    negatives = make_negatives(examples, examples, 1, random.Random(0))
    assert len(negatives) == sum(not e.is_impossible for e in examples)
    by_id = {e.id: e for e in examples}
    for neg in negatives:
        source = by_id[neg.id.split("#")[0]]
        assert neg.is_impossible and neg.title != source.title
        assert source.answer_texts[0] not in neg.context


def test_labels_point_at_the_answer_or_cls(reader: Reader) -> None:
    examples = _examples()[:2] + _examples()[-1:]
    ids, _, starts, ends = label_windows(reader.tokenizer, examples, reader.config)
    offsets = encode_windows(reader.tokenizer, [e.question for e in examples],
                             [e.context for e in examples], reader.config).offsets
    a, b = offsets[0][starts[0]], offsets[0][ends[0]]
    assert a is not None and b is not None
    assert examples[0].context[a[0]:b[1]] == "20 EUR"
    assert (starts[-1], ends[-1]) == (0, 0)


def test_margin_grid_search_separates_answers_from_negatives() -> None:
    def result(gap: float, text: str) -> ReaderResult:
        span = Span(text, 0, len(text), gap, gap / 2, gap / 2)
        return ReaderResult("q", text, (span,), Span("", 0, 0, 0.0, 0.0, 0.0, True), 0.0)

    examples = [QAExample("a", "q", "x", (("yes", 0),)), QAExample("b", "q", "x", (("no", 0),)),
                QAExample("c", "q", "x", ()), QAExample("d", "q", "x", ())]
    results = [result(3.0, "yes"), result(2.0, "no"), result(1.0, "maybe"), result(-1.0, "x")]
    chosen = choose_margin(results, examples)
    assert 1.0 < chosen["margin"] < 2.0
    assert chosen["no_ans_accuracy"] == 1.0 and chosen["has_ans_exact"] == 1.0
    assert chosen["at_margin_0"]["no_ans_accuracy"] == 0.5


def test_train_reader_saves_a_calibrated_reader(model_dir: Path, tmp_path: Path) -> None:
    report = train_reader(_examples(), base_model=str(model_dir), out_dir=tmp_path / "r",
                          epochs=1, lr=1e-3, batch_size=4, max_length=64, doc_stride=8,
                          max_question_tokens=16, holdout_fraction=0.2, progress=False,
                          num_threads=None)
    saved = json.loads((tmp_path / "r" / READER_CONFIG).read_text())
    assert saved["no_answer_margin"] == report.margin
    assert report.steps == report.windows // 4 + (report.windows % 4 > 0)
    assert report.counts["generated_negatives"] > 0 and report.holdout["ids"]
    assert (tmp_path / "r" / "training_report.json").exists()
    assert Reader.from_dir(tmp_path / "r").read("how much is room 3?", CONTEXT).no_answer


# ------------------------------------------------------------------ the real backbone

SIZES = {"small": 18, "medium": 25, "large": 32, "family": 40}
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple"]


def _inline_pairs() -> list[QAExample]:
    """64 questions on 32 room descriptions: the colour of the walls and the floor."""
    rng = random.Random(3)
    out = []
    for n in range(32):
        name, colour, floor = f"Room {100 + n}", COLOURS[n % len(COLOURS)], f"floor {n % 7 + 1}"
        size = rng.choice(list(SIZES))
        context = (f"{name} is a {size} room on {floor}. Its walls are painted {colour}, and "
                   f"it costs {SIZES[size] * 5} EUR per night.")
        for k, (question, answer) in enumerate(((f"What colour are the walls of {name}?",
                                                 colour),
                                                (f"Which floor is {name} on?", floor))):
            out.append(QAExample(f"i{n}-{k}", question, context,
                                 ((answer, context.index(answer)),), f"d{n % 5}"))
    return out


@pytest.mark.integration
def test_minilm_reader_learns_spans(tmp_path: Path) -> None:
    started = time.perf_counter()
    examples = _inline_pairs()
    assert len(examples) == 64
    report = train_reader(examples, out_dir=tmp_path / "minilm", epochs=4, lr=3e-4,
                          batch_size=8, max_length=96, doc_stride=16, max_question_tokens=24,
                          negatives_per_question=0, holdout_fraction=0.0, progress=False,
                          num_threads=1)
    reader = Reader.from_dir(tmp_path / "minilm", no_answer_margin=-100.0)
    context = ("Room 555 is a large room on floor 3. Its walls are painted green, and it "
               "costs 160 EUR per night.")
    got = reader.read_batch("What colour are the walls of Room 555?", [context])[0]
    floor = reader.read("Which floor is Room 555 on?", context)
    assert got.text is not None and re.fullmatch(r"(painted )?green", got.text), got.spans
    assert floor.text is not None and "3" in floor.text, floor.spans
    assert report.steps == 32  # about a minute on two busy cores
    logging.getLogger(__name__).info("minilm reader test took %.0f s",
                                     time.perf_counter() - started)


def test_spans_are_widened_to_whole_words() -> None:
    from retrieval.reader import snap_to_words

    text = "High chairs and children's cutlery are available."
    cut = text.index("cutlery") + 4  # a span ending after the piece "cutl"
    assert snap_to_words(text, text.index("High"), cut) == (0, text.index(" are"))
    assert snap_to_words(text, text.index("hairs"), text.index(" and")) == (5, 11)
    assert snap_to_words(text, 0, 4) == (0, 4)  # already whole
    assert snap_to_words(text, text.index("'s"), text.index(" cut")) == (
        text.index("'s"), text.index(" cut"))  # punctuation is a boundary


def test_reader_training_precision_is_checked() -> None:
    from retrieval.errors import RetrievalConfigError
    from retrieval.reader_training import TrainConfig

    assert TrainConfig().precision == "auto"
    with pytest.raises(RetrievalConfigError, match="precision"):
        TrainConfig(precision="half")
