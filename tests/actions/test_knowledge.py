"""action_answer_question through rasa_sdk's ActionExecutor, on a tiny real pipeline: the
tiny KB indexed with a deterministic fake embedder, a tiny BERT reader whose logits are fixed
(start on "6", end on "eur"), a knowledge directory as build_knowledge lays it out."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from rasa_sdk.executor import ActionExecutor

import actions.knowledge as knowledge
from retrieval.answerer import KNOWLEDGE_FILE, load_answerer
from retrieval.index import KnowledgeIndex
from retrieval.passages import load_documents
from retrieval.reader import Reader, ReaderConfig
from retrieval.types import IndexConfig
from tests.fakes import FakeEmbedder

KB_TINY = Path(__file__).resolve().parent.parent / "fixtures" / "kb_tiny"


@pytest.fixture(scope="module")
def knowledge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    root = tmp_path_factory.mktemp("knowledge")
    KnowledgeIndex.build(load_documents(KB_TINY), FakeEmbedder(),
                         IndexConfig(hybrid=False)).save(root / "index")
    words = sorted({w for f in KB_TINY.glob("*.md")
                    for w in re.findall(r"\w+|[^\w\s]", f.read_text().lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "?", "casino"]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    reader = Reader(ReaderConfig(model="tiny", max_length=128, doc_stride=16,
                                 max_question_tokens=16, no_answer_margin=0.0))
    reader.set_model(BertForQuestionAnswering(config).eval(),
                     BertTokenizer(vocab=dict(zip(dict.fromkeys(vocab), range(len(vocab))))))
    reader.save(root / "reader")
    (root / KNOWLEDGE_FILE).write_text(json.dumps({"embedder": "fake-hash", "top_k": 5,
                                                   "min_confidence": 0.1}))
    return root


@pytest.fixture
def answering(knowledge_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Point the action at the tiny knowledge dir; returns the (mutable) null logit."""
    monkeypatch.setenv(knowledge.KNOWLEDGE_DIR_ENV, str(knowledge_dir))
    monkeypatch.setattr(knowledge, "load_answerer",
                        lambda path: load_answerer(path, embedder=FakeEmbedder()).load())
    settings = {"null": 0.0}

    def fixed(self: Reader, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        vocab = self.tokenizer.get_vocab()
        ids = batch["input_ids"]  # (B, L)
        start = torch.where(ids == vocab["6"], 5.0, -5.0)  # (B, L)
        end = torch.where(ids == vocab["eur"], 5.0, -5.0)  # (B, L)
        start[:, 0] = end[:, 0] = settings["null"] / 2
        return start, end

    monkeypatch.setattr(Reader, "logits", fixed)
    knowledge.reset_answerers()
    yield settings
    knowledge.reset_answerers()


def _call(text: str, form: str | None = None,
          responses: tuple[str, ...] = ("utter_cannot_answer",)) -> dict[str, Any]:
    executor = ActionExecutor()
    executor.register_action(knowledge.ActionAnswerQuestion())
    parse = {"text": text, "intent": {"name": "ask_question", "confidence": 0.9},
             "entities": []}
    tracker = {"sender_id": "guest", "slots": {}, "latest_message": parse, "paused": False,
               "events": [{"event": "user", "text": text, "parse_data": parse}],
               "followup_action": None, "active_loop": {"name": form} if form else {},
               "latest_action_name": "action_listen"}
    body = {"next_action": "action_answer_question", "sender_id": "guest", "tracker": tracker,
            "domain": {"responses": {name: [{"text": "Not sure."}] for name in responses}},
            "version": "3.6.21"}
    result = asyncio.run(executor.run(json.loads(json.dumps(body))))
    assert result is not None
    return json.loads(result.model_dump_json(by_alias=True))


def test_answers_with_the_sentence_and_highlight_metadata(answering: dict[str, float]) -> None:
    reply = _call("How much is a shirt?", form="booking_form")
    assert reply["events"] == []  # nothing that would disturb the active form
    [message] = reply["responses"]
    text = message["text"]
    assert text == "Washing and ironing a shirt costs 6 EUR, trousers 8 EUR and a dress 10 EUR."
    meta = message["metadata"]["knowledge"]
    assert meta["answer"] == "6 EUR" and text[slice(*meta["span"])] == "6 EUR"
    assert meta["passage"][slice(*meta["passage_span"])] == "6 EUR"
    assert meta["doc_id"] == "laundry.md" and meta["source"] == "Laundry Service > Prices"
    assert 0.1 <= meta["confidence"] <= 1.0


def test_unsure_answers_become_cannot_answer(answering: dict[str, float]) -> None:
    answering["null"] = 40.0  # the no-answer score wins in every passage
    [message] = _call("How much is a shirt?")["responses"]
    assert message["response"] == "utter_cannot_answer" and message["text"] is None


def test_a_missing_knowledge_model_is_a_warning_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(knowledge.KNOWLEDGE_DIR_ENV, str(tmp_path / "missing"))
    knowledge.reset_answerers()
    with caplog.at_level(logging.WARNING, logger="actions.knowledge"):
        first = _call("Can I bring my dog?")
        second = _call("Is there a pool?")
    knowledge.reset_answerers()
    assert [m["response"] for m in first["responses"] + second["responses"]] == [
        "utter_cannot_answer"] * 2
    assert first["events"] == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "missing" in warnings[0].getMessage()


def test_a_model_that_appears_later_is_picked_up(knowledge_dir: Path,
                                                 answering: dict[str, float],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = knowledge.load_answerer
    monkeypatch.setattr(knowledge, "load_answerer", lambda path: (_ for _ in ()).throw(
        FileNotFoundError(path)))
    assert knowledge.get_answerer() is None
    monkeypatch.setattr(knowledge, "load_answerer", real)
    assert knowledge.get_answerer() is None  # within RETRY_SECONDS: still the failure
    monkeypatch.setattr(knowledge, "RETRY_SECONDS", 0.0)
    assert knowledge.get_answerer() is not None


def test_a_rebuilt_model_replaces_the_loaded_one_once_its_build_is_done(
        knowledge_dir: Path, answering: dict[str, float]) -> None:
    import os

    from retrieval.building import mark_building, marker

    first = knowledge.get_answerer()
    assert first is not None and knowledge.get_answerer() is first
    settings = knowledge_dir / KNOWLEDGE_FILE
    stat = settings.stat()
    os.utime(settings, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    mark_building(knowledge_dir, os.getpid())  # a build writes the folder: keep the old one
    try:
        assert knowledge.get_answerer() is first
    finally:
        marker(knowledge_dir).unlink()
    second = knowledge.get_answerer()  # done: the new knowledge.json, loaded at once
    assert second is not None and second is not first
    assert knowledge.get_answerer() is second


def test_while_the_first_model_is_built_the_action_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from retrieval.building import mark_building

    monkeypatch.setenv(knowledge.KNOWLEDGE_DIR_ENV, str(tmp_path / "knowledge"))
    knowledge.reset_answerers()
    mark_building(tmp_path / "knowledge", os.getpid())
    both = ("utter_cannot_answer", knowledge.BUILDING)
    assert [m["response"] for m in _call("Is there a pool?", responses=both)["responses"]] \
        == [knowledge.BUILDING]
    # a domain without the response (a Rasa project's): the usual one
    assert [m["response"] for m in _call("Is there a pool?")["responses"]] == [
        "utter_cannot_answer"]
    (tmp_path / "knowledge.building").unlink()
    assert [m["response"] for m in _call("Is there a pool?", responses=both)["responses"]] \
        == ["utter_cannot_answer"]  # no build running: the model is just missing
    knowledge.reset_answerers()


def test_warm_up_waits_for_a_background_build_then_loads_the_model(
        knowledge_dir: Path, answering: dict[str, float],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading
    import time

    import actions
    import actions.fallback
    from retrieval.building import mark_building, marker

    monkeypatch.setattr(actions.fallback, "get_generator", lambda: None)
    monkeypatch.setattr(actions, "WAIT_S", 0.05)
    mark_building(knowledge_dir, os.getpid())
    thread = threading.Thread(target=actions.warm_up, daemon=True)
    try:
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive() and knowledge._ANSWERERS.loaded(str(knowledge_dir)) is None
    finally:
        marker(knowledge_dir).unlink()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert knowledge._ANSWERERS.loaded(str(knowledge_dir)) is not None


def test_empty_text_cannot_be_answered(answering: dict[str, float]) -> None:
    [message] = _call("  ")["responses"]
    assert message["response"] == "utter_cannot_answer"


def test_the_action_module_loads_no_model_at_import() -> None:
    assert knowledge.ActionAnswerQuestion().name() == "action_answer_question"
    assert knowledge.knowledge_dir()  # env var or the default models/knowledge
