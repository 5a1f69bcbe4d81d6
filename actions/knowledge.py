"""Answer guests' questions from the knowledge base (hotel policies, hotels, city guides).

`action_answer_question` answers the text of the latest user message with `retrieval`'s
Answerer: it retrieves passages, chooses the answer SENTENCE among their sentences (a
fine-tuned sentence encoder fused with BM25), and the reader marks the span inside it. It
utters that sentence (after the sentence before it when it refers back: "It costs 25 EUR."),
with message metadata that lets a UI highlight the span:

    {"knowledge": {"answer": "25 EUR per pet per night", "span": [13, 37],   # in the text
                   "passage": "...", "passage_span": [s, e], "source": "Pets Policy > Fees",
                   "doc_id": "policies/pets.md", "passage_id": "...", "confidence": 0.83}}

`answer.confidence` is ONE calibrated probability in [0, 1] that the sentence answers the
question (fitted on held-out questions when the model was trained); the Answerer answers
when it is at least `answerer.threshold` (chosen on the same held-out slice, saved in
knowledge.json), and otherwise returns the explicit no-answer result `answer.text is None`
(its confidence is still that of the best sentence). Then this action utters
`utter_cannot_answer`; when the knowledge model is missing or broken it logs a warning and
utters `utter_cannot_answer` too - it never crashes. It returns no events, so an active form
keeps its state (the stories and rules re-run the form after it). While the model is still
being built in the background (`xingkong train --knowledge-in-background`, as `make run`
does) and none was loaded before, it utters `utter_knowledge_building` when the domain has
that response.

The knowledge model directory is `$XINGKONG_KNOWLEDGE_DIR` (default "models/knowledge"), as
written by `retrieval.knowledge_build.build_knowledge`:

    models/knowledge/
      knowledge.json    embedder id, top_k, the calibration (sentence selection, confidence,
                        threshold), fingerprints, the build report
      index/            the passage index (manifest.json, passages.jsonl, documents.json,
                        index.faiss)
      reader/           the reader: model.safetensors, config.json, tokenizer files,
                        reader_config.json, training_report.json
      sentence_encoder/ the fine-tuned sentence encoder (sentence-transformers format)
      sentences.npy     the vectors of every KB sentence

The answerer loads once per process, on the first question (torch and the models are not
imported before), and answering runs in a worker thread so the action server stays
responsive.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.model_cache import ModelCache

logger = logging.getLogger(__name__)

KNOWLEDGE_DIR_ENV = "XINGKONG_KNOWLEDGE_DIR"
DEFAULT_KNOWLEDGE_DIR = "models/knowledge"
CANNOT_ANSWER = "utter_cannot_answer"
BUILDING = "utter_knowledge_building"  # no model yet, a build running (used when the domain
# has the response; otherwise CANNOT_ANSWER)

RETRY_SECONDS = 60.0  # a knowledge dir that failed to load is tried again after this

_ANSWERERS = ModelCache()  # dir -> Answerer


def knowledge_dir() -> str:
    return os.environ.get(KNOWLEDGE_DIR_ENV) or DEFAULT_KNOWLEDGE_DIR


def load_answerer(path: str) -> Any:
    """The Answerer of the knowledge directory `path`, models loaded (the patch point)."""
    from retrieval.answerer import load_answerer as load

    return load(path).load()


def get_answerer(path: str | None = None) -> Any | None:
    """The cached Answerer for `path` (default: knowledge_dir()); None when it cannot be
    loaded (warned once; tried again after RETRY_SECONDS). A model trained while the action
    server runs is picked up: loaded once its knowledge.json changes, while a background
    build (`xingkong train --knowledge-in-background`) writes the folder the model loaded
    before answers. `reset_answerers()` forgets them."""
    path = path or knowledge_dir()
    from retrieval.building import building

    if building(path):
        return _ANSWERERS.loaded(path)

    def unavailable(exc: Exception, tried_before: bool) -> None:
        log = logger.debug if tried_before else logger.warning
        log("actions.knowledge.unavailable dir=%s error=%s: %s. Questions get %s until "
            "`xingkong train` builds it.", path, type(exc).__name__, exc, CANNOT_ANSWER)

    return _ANSWERERS.get(path, lambda p: load_answerer(p), RETRY_SECONDS, unavailable,
                          version=model_version)


def still_building(path: str | None = None) -> bool:
    """Whether the knowledge model at `path` (default: knowledge_dir()) is being built and
    none was loaded before."""
    from retrieval.building import building

    path = path or knowledge_dir()
    return building(path) and _ANSWERERS.loaded(path) is None


def model_version(path: str) -> int | None:
    """What changes when the knowledge model at `path` is rebuilt: its knowledge.json's
    time (written when a build is done); None when there is none."""
    try:
        return os.stat(os.path.join(path, "knowledge.json")).st_mtime_ns
    except OSError:
        return None


def reset_answerers() -> None:
    _ANSWERERS.clear()


def knowledge_metadata(answer: Any) -> dict[str, Any]:
    """The `knowledge` metadata of an answer uttered as its reply (see module docstring)."""
    start, end = answer.span_in_reply
    return {"knowledge": {
        "answer": answer.text, "span": [start, end], "passage": answer.passage,
        "passage_span": list(answer.span), "sentence_span": list(answer.sentence_span),
        "source": answer.title, "doc_id": answer.doc_id, "passage_id": answer.passage_id,
        "confidence": round(float(answer.confidence), 4)}}


class ActionAnswerQuestion(Action):
    """Answer the latest user message from the knowledge base, or say it cannot."""

    def name(self) -> str:
        return "action_answer_question"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        question = (tracker.latest_message or {}).get("text") or ""
        if not question.strip():
            dispatcher.utter_message(response=CANNOT_ANSWER)
            return []
        try:
            answer = await asyncio.to_thread(self._answer, question)
        except Exception:  # noqa: BLE001 - answering failed: say so, do not crash the turn
            logger.exception("actions.knowledge.failed question=%r", question[:200])
            answer = None
        if answer is None or answer.text is None:
            logger.info("actions.knowledge.no_answer question=%r confidence=%s", question[:200],
                        getattr(answer, "confidence", None))
            dispatcher.utter_message(response=BUILDING if answer is None and
                                     BUILDING in (domain.get("responses") or {}) and
                                     still_building() else CANNOT_ANSWER)
            return []
        logger.info("actions.knowledge.answer doc=%s confidence=%.3f", answer.doc_id,
                    answer.confidence)
        dispatcher.utter_message(text=answer.reply,
                                 metadata=knowledge_metadata(answer))
        return []

    @staticmethod
    def _answer(question: str) -> Any:
        answerer = get_answerer()
        return answerer.answer(question) if answerer is not None else None
