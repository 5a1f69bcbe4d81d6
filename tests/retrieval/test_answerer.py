"""The answerer on the tiny KB with a fake embedder and a fake reader: the combination of
retrieval and span scores, no-answer decisions, sentences and offsets, batch API; evaluation
of the pipeline; building and loading a knowledge directory (sentence answers)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from retrieval.answerer import (KNOWLEDGE_FILE, Answerer, AnswererConfig,
                                load_answerer, passage_confidences, sentence_bounds)
from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.index import KnowledgeIndex
from retrieval.kb_eval import doc_key, evaluate_kb
from retrieval.knowledge_build import GUEST_QUESTIONS, KnowledgeBuild, build_knowledge
from retrieval.passages import load_documents
from retrieval.reader import ReaderConfig, ReaderResult, Span
from retrieval.reranker import RerankerConfig
from retrieval.sentence_encoder import SentenceEncoderConfig
from retrieval.types import IndexConfig, Passage, SearchHit
from tests.fakes import FakeEmbedder, build_tiny_reader, write_tiny_bert

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"


class FakeReader:
    """Answers from a table: question -> (answer text, span score, null score). A passage that
    contains the text gets that span; any other gets its first word at score -2, null 3."""

    def __init__(self, table: dict[str, tuple[str, float, float]], margin: float = 0.0) -> None:
        self.table, self.config = table, ReaderConfig(no_answer_margin=margin)
        self.calls: list[int] = []

    @property
    def margin(self) -> float:
        return self.config.no_answer_margin

    def load(self) -> FakeReader:
        return self

    def read_pairs(self, questions: Sequence[str],
                   passages: Sequence[str | Passage]) -> list[ReaderResult]:
        self.calls.append(len(passages))
        out = []
        for q, p in zip(questions, passages):
            text = p.text if isinstance(p, Passage) else p
            answer, score, null = self.table.get(q, ("", -2.0, 3.0))
            at = text.find(answer) if answer else -1
            if at < 0:
                word = re.match(r"\S+", text)
                span = Span(word.group(), 0, word.end(), -2.0, -1.0, -1.0) if word else None
                null = 3.0
            else:
                span = Span(answer, at, at + len(answer), score, score / 2, score / 2)
            out.append(ReaderResult(q, text, (span,) if span else (),
                                    Span("", 0, 0, null, null / 2, null / 2, True), self.margin))
        return out


TABLE = {"How much is a shirt?": ("6 EUR", 9.0, 1.0),
         "When does the shuttle leave?": ("every 30 minutes", 8.0, 1.0)}


@pytest.fixture(scope="module")
def index() -> KnowledgeIndex:
    return KnowledgeIndex.build(load_documents(KB_TINY), FakeEmbedder(),
                                IndexConfig(hybrid=False))


def _answerer(index: KnowledgeIndex, table: dict = TABLE, **kw: object) -> Answerer:
    return Answerer(index, None, FakeReader(table), **kw)  # type: ignore[arg-type]


def test_answer_is_a_span_of_a_passage_with_its_sentence(index: KnowledgeIndex) -> None:
    answer = _answerer(index).answer("How much is a shirt?")
    assert answer.text == "6 EUR" and answer.doc_id == "laundry.md"
    assert answer.passage is not None and answer.span is not None
    assert answer.passage[answer.span[0]:answer.span[1]] == "6 EUR"
    assert answer.sentence_span is not None
    assert answer.passage[slice(*answer.sentence_span)] == answer.sentence
    assert answer.sentence == ("Washing and ironing a shirt costs 6 EUR, trousers 8 EUR and a "
                               "dress 10 EUR.")
    start, end = answer.span_in_sentence or (0, 0)
    assert answer.sentence[start:end] == "6 EUR"
    assert answer.passage_id and answer.title and 0 < answer.confidence <= 1
    assert answer.score == 9.0 and answer.no_answer_score == 1.0
    assert json.loads(json.dumps(answer.to_dict()))["text"] == "6 EUR"


def test_no_answer_when_every_null_wins_or_confidence_is_low(index: KnowledgeIndex) -> None:
    nothing = _answerer(index).answer("Is there a casino?")
    assert nothing.text is None and nothing.span is None and nothing.confidence == 0.0
    timid = _answerer(index, {"How much is a shirt?": ("6 EUR", 2.0, 1.5)},
                      min_confidence=0.5).answer("How much is a shirt?")
    assert timid.text is None and 0 < timid.confidence < 0.5
    assert timid.score == 2.0 and timid.no_answer_score == 1.5


def test_confidence_combines_retrieval_and_span_scores() -> None:
    def hit(cos: float | None) -> SearchHit:
        return SearchHit(Passage("p", "d", "t", "x y", 0, 3), cos or 0.01, 1, cos)

    def result(score: float, null: float) -> ReaderResult:
        return ReaderResult("q", "x y", (Span("x", 0, 1, score, 0, 0),),
                            Span("", 0, 0, null, 0, 0, True), 0.5)

    hits, results = [hit(0.8), hit(0.6), hit(None)], [result(6, 1), result(7, 1), result(2, 4)]
    got = passage_confidences(hits, results, temperature=0.1)
    prior = np.exp(np.array([0.8, 0.6, 0.6]) / 0.1)
    prior /= prior.sum()
    share = np.exp(np.array([6, 7, 2]) + np.log(prior))
    share /= share.sum()
    gate = 1 / (1 + np.exp(-(np.array([5, 6, -2]) - 0.5)))
    assert got == pytest.approx(tuple(share * gate))
    assert math.isclose(sum(share), 1.0)


def test_same_text_from_overlapping_passages_adds_up(index: KnowledgeIndex) -> None:
    answerer = _answerer(index, {"What costs 8 EUR?": ("EUR", 5.0, 0.0)})
    trace = answerer.trace_batch(["What costs 8 EUR?"])[0]
    answering = [c for c, r in zip(trace.confidences, trace.results) if r.text == "EUR"]
    assert len(answering) > 1
    assert trace.answer.confidence == pytest.approx(min(1.0, sum(answering)), rel=1e-4)


def test_batch_api_order_read_k_and_errors(index: KnowledgeIndex) -> None:
    answerer = _answerer(index, config=AnswererConfig(top_k=4, read_k=3))
    questions = ["When does the shuttle leave?", "Is there a casino?", "How much is a shirt?"]
    answers = answerer.answer_batch(questions)
    assert [a.question for a in answers] == questions
    assert [a.text for a in answers] == ["every 30 minutes", None, "6 EUR"]
    assert answerer.reader.calls == [9]  # 3 questions x read_k passages, in one call
    trace = answerer.trace_batch(["How much is a shirt?"])[0]
    assert len(trace.hits) == 4 and len(trace.results) == 3
    assert answerer.answer_batch([]) == []
    with pytest.raises(TypeError):
        answerer.answer_batch("one string")  # type: ignore[arg-type]
    with pytest.raises(RetrievalConfigError):
        AnswererConfig(top_k=0)


def test_another_embedder_searches_by_vector(index: KnowledgeIndex) -> None:
    answerer = Answerer(index, FakeEmbedder(), FakeReader(TABLE))  # type: ignore[arg-type]
    assert answerer.answer("How much is a shirt?").text == "6 EUR"


@pytest.mark.parametrize(("text", "span", "sentence"), [
    ("One. Two three. Four.", "three", "Two three."),
    ("- Item one costs 5 EUR\n- Item two", "5 EUR", "Item one costs 5 EUR"),
    ("No end here", "end", "No end here"),
    ("| a | 7 EUR |\n| b | 9 |", "7 EUR", "a | 7 EUR"),
])
def test_sentence_bounds(text: str, span: str, sentence: str) -> None:
    start = text.index(span)
    s, e = sentence_bounds(text, start, start + len(span))
    assert text[s:e] == sentence and s <= start and e >= start + len(span)


# ------------------------------------------------------------------ evaluation, calibration

def _test_set(tmp_path: Path) -> Path:
    laundry = (KB_TINY / "laundry.md").read_text()
    paragraph = next(p for p in laundry.split("\n\n") if "shirt" in p)
    data = {"data": [{"title": "laundry", "paragraphs": [{"context": paragraph, "qas": [
        {"id": "1", "question": "How much is a shirt?", "is_impossible": False,
         "answers": [{"text": "6 EUR", "answer_start": paragraph.index("6 EUR")}]},
        {"id": "2", "question": "Washing and ironing trousers costs?", "is_impossible": False,
         "answers": [{"text": "8 EUR", "answer_start": paragraph.index("8 EUR")}]},
        {"id": "3", "question": "Is there a casino?", "is_impossible": True,
         "answers": []}]}]}]}
    path = tmp_path / "kb_test.json"
    path.write_text(json.dumps(data))
    return path


def test_evaluate_kb_reports_every_metric(index: KnowledgeIndex, tmp_path: Path) -> None:
    report = evaluate_kb(_answerer(index), _test_set(tmp_path), out_path=tmp_path / "r.json")
    assert report["questions"] == 3 and report["answerable"] == 2
    assert report["retrieval"]["recall@5"] == 1.0
    assert report["pipeline"]["exact"] == 0.5 and report["pipeline"]["no_answer_accuracy"] == 1
    assert report["gold_context"]["exact"] == 0.5
    assert report["error_counts"] == {"missed_answer": 1}
    assert report["errors"][0]["id"] == "2"
    assert report["latency_ms"]["p50"] >= 0
    assert json.loads((tmp_path / "r.json").read_text())["questions"] == 3
    assert doc_key("policies/pets.md") == "policies/pets" == doc_key("policies/pets")


# ------------------------------------------------------------------ knowledge directory

def test_build_and_load_a_knowledge_directory(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(KB_TINY, kb)
    qa = json.loads(_test_set(tmp_path).read_text())
    qa["data"].append({"title": "shuttle_bus", "paragraphs": [{
        "context": "The bus leaves every 30 minutes.", "qas": [
            {"id": f"s{n}", "question": f"When does bus {n} leave?", "is_impossible": False,
             "answers": [{"text": "every 30 minutes", "answer_start": 15}]}
            for n in range(8)]}]})
    (kb / "qa.json").write_text(json.dumps(qa))
    options = {"base_model": str(build_tiny_reader(tmp_path / "tiny")), "epochs": 1, "lr": 1e-3,
               "batch_size": 4, "max_length": 96, "doc_stride": 16, "max_question_tokens": 16,
               "holdout_fraction": 0.2, "progress": False, "num_threads": None}
    encoder = SentenceEncoderConfig(base_model=str(tiny_encoder(tmp_path / "enc")),
                                    batch_size=8, num_threads=None)
    out = tmp_path / "knowledge"
    build = KnowledgeBuild(kb_dir=kb, out_dir=out, reader=options, encoder=encoder,
                           generated=40, held_generated=10)
    report = build_knowledge(build, embedder=FakeEmbedder())
    assert report.documents == 5 and report.sentences > 20 and report.reused == ()
    assert report.generated["train_generated"] > 0
    assert 0.0 <= report.calibration["threshold"] <= 1.0
    for part in (KNOWLEDGE_FILE, "index/manifest.json", "reader/model.safetensors",
                 "sentence_encoder", "sentences.npy"):
        assert (out / part).exists(), part
    answerer = load_answerer(out, embedder=FakeEmbedder())
    assert answerer.ranker is not None
    assert answerer.threshold == report.calibration["threshold"]
    trace = answerer.trace_batch(["How much is a shirt?"])[0]
    best = trace.best
    assert best is not None and best.sentence and best.passage and best.span
    assert best.passage[best.sentence_span[0]:best.sentence_span[1]] == best.sentence
    assert best.passage[best.span[0]:best.span[1]] == best.text
    assert best.text in best.sentence and 0.0 <= best.confidence <= 1.0
    assert (trace.answer.text is None) == (best.confidence < answerer.threshold)
    # the models under bfloat16 autocast (the default where the CPU has it) or float32
    halves = [load_answerer(out, embedder=FakeEmbedder(), precision=p).trace_batch(
        ["How much is a shirt?"])[0].best for p in ("bfloat16", "float32")]
    assert all(h is not None and h.sentence for h in halves)
    assert halves[1].confidence == pytest.approx(best.confidence, abs=0.05)
    with pytest.raises(RetrievalConfigError, match="precision must be"):
        load_answerer(out, embedder=FakeEmbedder(), precision="half")
    # the models in ONNX Runtime (graphs exported beside them) or PyTorch: the same answer
    runs = [load_answerer(out, embedder=FakeEmbedder(), runtime=r, precision="float32")
            .trace_batch(["How much is a shirt?"])[0].best for r in ("torch", "onnx")]
    assert runs[1].sentence == runs[0].sentence and runs[1].text == runs[0].text
    assert runs[1].confidence == pytest.approx(runs[0].confidence, abs=1e-4)
    assert (out / "onnx" / "reader.onnx").is_file() and (out / "onnx" / "reader.json").is_file()
    again = build_knowledge(build, embedder=FakeEmbedder())
    assert again.reused == ("reader", "encoder", "calibration")
    assert again.calibration == report.calibration
    by_source = report.calibration["report"]["by_source"]
    assert by_source["qa_guest_answerable"] == by_source["qa_answerable"]  # rephrased copies
    settings = json.loads((out / KNOWLEDGE_FILE).read_text())
    del settings["calibration"]["report"]["recipe"]  # as built before the calibration recipe
    (out / KNOWLEDGE_FILE).write_text(json.dumps(settings))
    recalibrated = build_knowledge(build, embedder=FakeEmbedder())
    assert recalibrated.reused == ("reader", "encoder")
    assert recalibrated.calibration["report"]["recipe"] == report.calibration["report"]["recipe"]
    sentence = next(line for line in (KB_TINY / "shuttle_bus.md").read_text().splitlines()
                    if "every 30 minutes" in line)
    guest = {"data": [
        {"title": "shuttle_bus", "paragraphs": [{"context": sentence, "qas": [
            {"id": "g-1", "question": "how often does the shuttle go??", "is_impossible": False,
             "answers": [{"text": "every 30 minutes",
                          "answer_start": sentence.index("every 30 minutes")}]}]}]},
        {"title": "unanswerable", "paragraphs": [{"context": "", "qas": [
            {"id": "g-2", "question": "is there a casino", "is_impossible": True,
             "answers": []}]}]}]}
    (kb / GUEST_QUESTIONS).write_text(json.dumps(guest))  # a QA set: not a document
    with_guests = build_knowledge(build, embedder=FakeEmbedder())
    assert with_guests.reused == ("reader", "encoder")  # only re-calibrated
    assert with_guests.documents == report.documents
    by_source = with_guests.calibration["report"]["by_source"]
    assert by_source["guest_answerable"] == 1 and by_source["guest_unanswerable"] == 1
    guest["data"][0]["paragraphs"][0]["qas"][0]["id"] = qa["data"][0]["paragraphs"][0][
        "qas"][0]["id"]
    (kb / GUEST_QUESTIONS).write_text(json.dumps(guest))
    with pytest.raises(RetrievalConfigError, match="own ids"):
        build_knowledge(build, embedder=FakeEmbedder())
    (kb / GUEST_QUESTIONS).unlink()
    whole = build_knowledge(replace(build, paragraphs=True), embedder=FakeEmbedder())
    assert whole.reused == ("encoder",) and whole.reader["counts"]["extra"] > \
        report.reader["counts"]["extra"]
    public = _test_set(tmp_path)  # SQuAD-format QA the reader learns first, then the KB's
    first = build_knowledge(replace(build, reader={**options, "pretrain_qa": [str(public)],
                                                   "pretrain_epochs": 1}),
                            embedder=FakeEmbedder())
    assert first.reused == ("encoder",)
    assert (out / "reader_pretrained" / "model.safetensors").exists()
    assert first.reader["base_model"] == str(out / "reader_pretrained")
    assert first.reader["pretrained"]["reused"] is False and first.reader["pretrained"]["questions"]
    moved = tmp_path / "moved_project" / public.name  # the same file, where a moved project has it
    moved.parent.mkdir()
    shutil.copy(public, moved)
    moved_build = build_knowledge(replace(build, reader={
        **options, "pretrain_qa": [str(moved)], "pretrain_epochs": 1}), embedder=FakeEmbedder())
    assert "reader" in moved_build.reused
    pretrained = (out / "reader_pretrained" / "model.safetensors").stat().st_mtime_ns
    kept = build_knowledge(replace(build, retrain=True, reader={
        **options, "pretrain_qa": [str(public)], "pretrain_epochs": 1}), embedder=FakeEmbedder())
    assert "reader" not in kept.reused  # the KB's reader trained again, from the kept one
    assert kept.reader["pretrained"]["reused"] is True
    assert (out / "reader_pretrained" / "model.safetensors").stat().st_mtime_ns == pretrained
    build_knowledge(replace(build, reader={**options, "pretrain_qa": [str(public)],
                                           "pretrain_epochs": 1, "pretrain_contexts": "passage"}),
                    embedder=FakeEmbedder())  # whole passages: another pretrained reader
    assert (out / "reader_pretrained" / "model.safetensors").stat().st_mtime_ns != pretrained
    # the sentence encoder learns the public questions' sentences first, kept like the reader
    encoder_first = build_knowledge(replace(build, encoder_pretrain_qa=(str(public),)),
                                    embedder=FakeEmbedder())
    assert "encoder" not in encoder_first.reused
    pretrained = encoder_first.encoder["pretrained"]
    assert pretrained["reused"] is False and pretrained["questions"] == 2
    assert (out / "encoder_pretrained" / "pretrain_fingerprint.txt").is_file()
    encoder_kept = build_knowledge(replace(build, retrain=True, encoder_pretrain_qa=(
        str(public),)), embedder=FakeEmbedder())
    assert encoder_kept.encoder["pretrained"]["reused"] is True
    # a reranker, from the KB's reader, reorders the first selected sentences
    reranked = build_knowledge(replace(build, reranker=RerankerConfig(groups=4, top_k=3,
                                                                      num_threads=None)),
                               embedder=FakeEmbedder())
    assert "reranker" not in reranked.reused and reranked.reranker["steps"] > 0
    assert reranked.calibration["cross_k"] == 3
    assert set(reranked.calibration["confidence"]["features"]) >= {"cross", "cross_p"}
    assert (out / "reranker" / "config.json").is_file()
    answerer = load_answerer(out, embedder=FakeEmbedder())
    assert answerer.reranker is not None
    with pytest.raises(RetrievalConfigError, match="fitted with a reranker"):
        Answerer(answerer.index, None, answerer.reader, ranker=answerer.ranker,
                 calibration=answerer.calibration)
    trace = answerer.trace_batch(["How much is a shirt?"])[0]
    assert trace.best is not None and "cross" in trace.features
    # what follows an answer is the next sentence of its line, read after it
    table, questions = answerer.ranker.table, ["How much is a shirt?", "When is breakfast?"]
    for trace in answerer.trace_batch(questions):
        answer = trace.answer
        if answer.follow:
            chosen = next(s.id for s in table.sentences if s.text == answer.sentence
                          and s.doc_id == answer.doc_id)
            assert answer.follow == table.sentences[table.following[chosen]].text
            assert answer.reply.endswith(f"{answer.sentence} {answer.follow}")
    plain = load_answerer(out, embedder=FakeEmbedder(), follow=False)
    assert not any(a.follow for a in plain.answer_batch(questions))
    assert [c for c in trace.candidates[:3] if "cross_p" in c.features] == \
        sorted(trace.candidates[:3], key=lambda c: -c.features["cross_p"])
    kept_reranker = build_knowledge(replace(build, reranker=RerankerConfig(
        groups=4, top_k=3, num_threads=None)), embedder=FakeEmbedder())
    assert kept_reranker.reused == ("reader", "encoder", "reranker", "calibration")
    without = build_knowledge(build, embedder=FakeEmbedder())  # off again: recalibrated
    assert without.reused == ("reader", "encoder") and without.calibration["cross_k"] == 0
    assert not (out / "reranker").exists()
    assert load_answerer(out, embedder=FakeEmbedder()).reranker is None
    # `epochs: 0` after pretraining: the pretrained reranker as it is (its own epochs),
    # cut to its first layer
    first_build = replace(build, reranker=RerankerConfig(
        groups=4, top_k=3, epochs=0, layers=1, num_threads=None),
        reranker_pretrain_qa=(str(public),), reader={**options, "pretrain_qa": [str(public)],
                                                      "pretrain_epochs": 1})
    first_only = build_knowledge(first_build, embedder=FakeEmbedder())
    assert first_only.reranker["steps"] == 0
    assert first_only.reranker["pretrained"]["steps"] > 0
    shutil.copytree(out, tmp_path / "moved")  # a moved models folder keeps its pretraining
    moved = build_knowledge(replace(first_build, out_dir=tmp_path / "moved", retrain=True),
                            embedder=FakeEmbedder())
    assert moved.reranker["pretrained"]["reused"] is True
    for folder in ("reranker_pretrained", "reranker"):
        saved = json.loads((out / folder / "config.json").read_text(encoding="utf-8"))
        assert saved["num_hidden_layers"] == 1
    assert load_answerer(out, embedder=FakeEmbedder()).trace_batch(["How much is a shirt?"])
    # `with_pretrained`: the fine-tuned reranker reads beside the pretrained one, its twin;
    # an answer-time setting, so turning it on or off re-calibrates and trains nothing again
    paired_build = replace(first_build, reranker=replace(
        first_build.reranker, epochs=1, with_pretrained=True))
    paired = build_knowledge(paired_build, embedder=FakeEmbedder())
    assert paired.reranker["steps"] > 0 and paired.reranker["pretrained"]["reused"] is True
    assert "calibration" not in paired.reused
    reranker = load_answerer(out, embedder=FakeEmbedder()).reranker
    assert reranker is not None and reranker.twin is not None
    assert reranker.twin.path == out / "reranker_pretrained"
    assert load_answerer(out, embedder=FakeEmbedder()).trace_batch(["How much is a shirt?"])
    single = build_knowledge(replace(paired_build, reranker=replace(
        paired_build.reranker, with_pretrained=False)), embedder=FakeEmbedder())
    assert single.reused == ("reader", "encoder", "reranker")
    reranker = load_answerer(out, embedder=FakeEmbedder()).reranker
    assert reranker is not None and reranker.twin is None
    with pytest.raises(RetrievalConfigError, match="with_pretrained needs pretrain_qa"):
        build_knowledge(replace(paired_build, reranker_pretrain_qa=()), embedder=FakeEmbedder())
    with pytest.raises(RetrievalConfigError, match="encoder.pretrain_qa: cannot read"):
        build_knowledge(replace(build, encoder_pretrain_qa=(str(kb / "no.json"),)),
                        embedder=FakeEmbedder())
    with pytest.raises(RetrievalConfigError, match="pretrain_contexts must be one of"):
        build_knowledge(replace(build, reader={**options, "pretrain_qa": [str(public)],
                                               "pretrain_contexts": "paragraph"}),
                        embedder=FakeEmbedder())
    with pytest.raises(RetrievalConfigError, match="pretrain_qa: cannot read"):
        build_knowledge(replace(build, reader={**options, "pretrain_qa": [str(kb / "no.json")]}),
                        embedder=FakeEmbedder())
    with pytest.raises(RetrievalError):
        load_answerer(tmp_path / "nowhere", embedder=FakeEmbedder())


def tiny_encoder(path: Path) -> Path:
    """A random tiny BERT whose vocabulary covers the tiny KB (mean pooling when loaded)."""
    words = sorted({w for f in KB_TINY.glob("*.md")
                    for w in re.findall(r"\w+|[^\w\s]", f.read_text().lower())})
    path.mkdir(parents=True)
    return write_tiny_bert(path, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "?"])


def test_a_sentence_that_refers_back_is_read_after_its_lead() -> None:
    from retrieval.answerer import Answer
    passage = "Boats leave at noon. It costs 25 EUR per person."
    at = passage.index("It costs")
    answer = Answer("25 EUR per person", 1.0, 0.0, "h.md", "p0", "Hotel", (at + 9, at + 26),
                    "It costs 25 EUR per person.", (at, len(passage)), 0.9, passage, "price?",
                    "Boats leave at noon.")
    assert answer.reply == "Boats leave at noon. It costs 25 EUR per person."
    start, end = answer.span_in_reply
    assert answer.reply[start:end] == "25 EUR per person"
    plain = replace(answer, lead="")
    assert plain.reply == plain.sentence and plain.span_in_reply == plain.span_in_sentence
    assert replace(answer, sentence=None, text=None).reply is None
