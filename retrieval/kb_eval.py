"""Build, calibrate and evaluate the knowledge-base question answering.

    report = build_knowledge("data/kb", "models/knowledge")          # index + reader + calibration
    answerer = load_answerer("models/knowledge")
    result = evaluate_kb(answerer, "tests/kb_test.json", out_path="kb_report.json")

Evaluation: retrieval recall@1/@5 and MRR on answerable questions (a hit is a retrieved
passage of the gold document - the SQuAD title is the document path without suffix - that
contains a gold answer text); EM/F1 on answerable questions through the whole pipeline and
with the gold context (reader alone); no-answer accuracy on unanswerable ones (both ways);
latency per question; the list of wrong answers with what went wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from retrieval.answerer import (INDEX_DIR, KNOWLEDGE_FILE, KNOWLEDGE_FORMAT, READER_DIR, Answerer,
                                AnswererConfig, AnswerTrace, KnowledgeSettings)
from retrieval.errors import RetrievalError
from retrieval.qa_metrics import (QAExample, exact_match, f1, first_hit_rank, load_qa,
                                  mean_reciprocal_rank, percentile, recall_at_k, squad_scores)
from retrieval.reader import Reader

logger = logging.getLogger(__name__)

_SUFFIXES = (".md", ".markdown", ".txt", ".json", ".jsonl")


def doc_key(doc_id: str) -> str:
    """A document id without its file suffix ("policies/pets.md" -> "policies/pets")."""
    path = PurePosixPath(doc_id)
    return str(path.with_suffix("")) if path.suffix in _SUFFIXES else doc_id


def is_hit(hit_doc_id: str, passage_text: str, example: QAExample) -> bool:
    return doc_key(hit_doc_id) == doc_key(example.title) and any(
        a and a in passage_text for a in example.answer_texts)


def evaluate_kb(answerer: Answerer, test_path: str | Path | Sequence[QAExample], *,
                batch_size: int = 1, limit: int | None = None, gold_context: bool = True,
                out_path: str | Path | None = None, max_errors: int = 500) -> dict[str, Any]:
    """The evaluation report (a JSON-able dict; also written to `out_path`). `batch_size=1`
    times each question alone, as a user would see it."""
    examples = (load_qa(test_path) if isinstance(test_path, (str, Path))
                else list(test_path))[:limit]
    answerer.load()
    traces: list[AnswerTrace] = []
    started = time.perf_counter()
    for b in range(0, len(examples), batch_size):
        traces += answerer.trace_batch([e.question for e in examples[b:b + batch_size]])
    seconds = time.perf_counter() - started
    answerable = [(e, t) for e, t in zip(examples, traces) if not e.is_impossible]
    ranks = [first_hit_rank([is_hit(h.passage.doc_id, h.passage.text, e) for h in t.hits])
             for e, t in answerable]
    predictions = {e.id: t.answer.text for e, t in zip(examples, traces)}
    pipeline = _summary(squad_scores(predictions, examples))
    report: dict[str, Any] = {
        "test_path": str(test_path) if isinstance(test_path, (str, Path)) else "<examples>",
        "questions": len(examples), "answerable": len(answerable),
        "unanswerable": len(examples) - len(answerable),
        "retrieval": {"recall@1": round(recall_at_k(ranks, 1), 4),
                      "recall@5": round(recall_at_k(ranks, 5), 4),
                      "mrr": round(mean_reciprocal_rank(ranks), 4),
                      "top_k": answerer.config.top_k},
        "pipeline": pipeline,
    }
    if gold_context:
        read = answerer.reader.read_pairs([e.question for e in examples],
                                          [e.context for e in examples])
        report["gold_context"] = _summary(squad_scores(
            {e.id: r.text for e, r in zip(examples, read)}, examples))
    per_q = [t.retrieve_ms + t.read_ms for t in traces]
    report["latency_ms"] = {
        "batch_size": batch_size, "mean": round(seconds * 1000 / max(1, len(examples)), 2),
        "p50": round(percentile(per_q, 50), 2), "p95": round(percentile(per_q, 95), 2),
        "retrieve_p50": round(percentile([t.retrieve_ms for t in traces], 50), 2),
        "read_p50": round(percentile([t.read_ms for t in traces], 50), 2)}
    report["settings"] = {"reader": answerer.reader.config.to_dict(),
                          "answerer": {"top_k": answerer.config.top_k,
                                       "read_k": answerer.config.read_k,
                                       "min_confidence": answerer.config.min_confidence,
                                       "retrieval_temperature":
                                           answerer.config.retrieval_temperature}}
    rank_of = {e.id: r for (e, _), r in zip(answerable, ranks)}
    errors = [err for e, t in zip(examples, traces)
              if (err := _error(e, t, rank_of.get(e.id))) is not None]
    report["error_counts"] = _count(err["kind"] for err in errors)
    report["errors"] = errors[:max_errors]
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")
    logger.info("retrieval.kb_eval recall@5=%.3f em=%.3f f1=%.3f no_answer=%.3f",
                report["retrieval"]["recall@5"], pipeline["exact"], pipeline["f1"],
                pipeline["no_answer_accuracy"])
    return report


def _summary(scores: Mapping[str, float]) -> dict[str, float]:
    return {"exact": round(scores["has_ans_exact"], 4), "f1": round(scores["has_ans_f1"], 4),
            "no_answer_accuracy": round(scores["no_ans_exact"], 4),
            "overall_exact": round(scores["all_exact"], 4),
            "overall_f1": round(scores["all_f1"], 4)}


def _error(example: QAExample, trace: AnswerTrace, rank: int | None) -> dict[str, Any] | None:
    answer = trace.answer
    golds = example.answer_texts
    if exact_match(answer.text, golds) == 1.0:
        return None
    if example.is_impossible:
        kind = "false_answer"
    elif rank is None:
        kind = "retrieval_miss"
    elif answer.text is None:
        kind = "missed_answer"
    else:
        kind = "wrong_span"
    top = trace.hits[0].passage.doc_id if trace.hits else None
    return {"id": example.id, "kind": kind, "question": example.question, "expected": golds,
            "predicted": answer.text, "f1": round(f1(answer.text, golds), 3),
            "confidence": answer.confidence, "answer_doc": answer.doc_id, "gold_doc":
            example.title, "gold_rank": rank, "top_doc": top}


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ calibration

def calibrate_answerer(answerer: Answerer, examples: Sequence[QAExample], *,
                       answer_weight: float | None = None,
                       margin_steps: Sequence[float] = (-4, -3, -2, -1.5, -1, -0.5, 0, 0.5, 1,
                                                        2),
                       confidences: Sequence[float] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3,
                                                       0.4, 0.5)) -> dict[str, Any]:
    """Grid search over (reader margin + step, min_confidence) of the whole pipeline on
    `examples` (read once; only the decision is replayed), maximising
    reader_training.objective (by default per question: (EM + F1) / 2 on answerable,
    no-answer correctness on unanswerable). Ties prefer the smallest change."""
    from retrieval.reader_training import objective

    traces = answerer.trace_batch([e.question for e in examples])
    base_margin, base_conf = answerer.reader.margin, answerer.config.min_confidence
    rows = []
    for step in margin_steps:
        for conf in confidences:
            probe = Answerer(answerer.index, answerer.embedder, answerer.reader,
                             config=replace(answerer.config, min_confidence=conf))
            preds = []
            for t in traces:
                results = [replace(r, margin=base_margin + step) for r in t.results]
                preds.append(probe.combine(t.question, t.hits, results)[0].text)
            em, fs, na = [], [], []
            for e, p in zip(examples, preds):
                if e.is_impossible:
                    na.append(float(p is None))
                else:
                    em.append(exact_match(p, e.answer_texts))
                    fs.append(f1(p, e.answer_texts))
            score = objective(em, fs, na, answer_weight)
            cost = abs(step) + abs(conf - base_conf)
            rows.append((round(score, 6), -cost, base_margin + step, conf, _mean(em),
                         _mean(fs), _mean(na)))
    best = max(rows)
    return {"margin": round(best[2], 4), "min_confidence": best[3], "objective": best[0],
            "has_ans_exact": round(best[4], 4), "has_ans_f1": round(best[5], 4),
            "no_ans_accuracy": round(best[6], 4), "questions": len(examples),
            "before": {"margin": base_margin, "min_confidence": base_conf}}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


# ------------------------------------------------------------------ building

def build_knowledge(kb_dir: str | Path, out_dir: str | Path = "models/knowledge",
                    embedder_id: str | None = None,
                    reader_options: Mapping[str, Any] | None = None, *,
                    qa_path: str | Path | None = None, index_config: Any = None,
                    top_k: int = 5, read_k: int | None = None, rebuild: bool = False,
                    retrain: bool = False, calibrate: bool = True,
                    embedder: Any = None, reader_from: str | Path | None = None) -> dict[str, Any]:
    """Build the knowledge directory `out_dir`: index/ (the KB index, updated in place when
    only documents changed), reader/ (trained on `qa_path`, default kb_dir/qa.json, with
    `reader_options` for train_reader: base_model, epochs, lr, extra_qa_paths, ...; skipped
    when the QA data and options are unchanged unless `retrain`) and knowledge.json (embedder,
    top_k, the pipeline-calibrated margin and min_confidence). `embedder` replaces the one
    named by `embedder_id` (tests). `reader_from`: copy this already-trained reader directory
    instead of training (then calibrated on its report's holdout). Returns a report."""
    from retrieval.embedder import DEFAULT_MODEL, get_embedder
    from retrieval.index import build_or_load
    from retrieval.reader_training import TRAINING_REPORT, train_reader

    started = time.perf_counter()
    root, options = Path(out_dir), dict(reader_options or {})
    qa = Path(qa_path) if qa_path is not None else Path(kb_dir) / "qa.json"
    embedder = embedder or get_embedder(embedder_id or DEFAULT_MODEL)
    index = build_or_load(kb_dir, root / INDEX_DIR, embedder, index_config, rebuild=rebuild)
    fingerprint = hashlib.sha256(qa.read_bytes() + json.dumps(
        [options, str(reader_from)], sort_keys=True, default=str).encode()).hexdigest()[:16]
    previous = _previous(root)
    reuse = (not retrain and previous is not None and previous.fingerprint == fingerprint
             and (root / READER_DIR / TRAINING_REPORT).exists())
    if reuse:
        assert previous is not None
        logger.info("retrieval.knowledge.reader_up_to_date path=%s", root / READER_DIR)
        train = json.loads((root / READER_DIR / TRAINING_REPORT).read_text(encoding="utf-8"))
        margin, min_conf = previous.reader_margin, previous.min_confidence
        calibration = previous.report.get("calibration", {})
    else:
        if reader_from is not None:
            target = root / READER_DIR
            if Path(reader_from).resolve() != target.resolve():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(reader_from, target)
            train = json.loads((target / TRAINING_REPORT).read_text(encoding="utf-8")) if (
                target / TRAINING_REPORT).exists() else {"holdout": {}}
        else:
            options.setdefault("out_dir", root / READER_DIR)
            train = train_reader(load_qa(qa), **options).to_dict()
        margin, min_conf, calibration = None, 0.1, {}
        if calibrate and train["holdout"].get("ids"):
            held = set(train["holdout"]["ids"])
            examples = [e for e in load_qa(qa) if e.id in held]
            device = options.get("device", "cpu")
            answerer = Answerer(index, None, Reader.from_dir(root / READER_DIR, device=device),
                                config=AnswererConfig(top_k=top_k, read_k=read_k))
            calibration = calibrate_answerer(answerer, examples)
            margin, min_conf = calibration["margin"], calibration["min_confidence"]
    settings = KnowledgeSettings(
        embedder=embedder.name, top_k=top_k, min_confidence=min_conf, read_k=read_k,
        reader_margin=margin, built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        fingerprint=fingerprint, report={"calibration": calibration, "qa_path": str(qa)})
    data = {k: getattr(settings, k) for k in KnowledgeSettings.__dataclass_fields__}
    (root / KNOWLEDGE_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n",
                                       encoding="utf-8")
    return {"out_dir": str(root), "index": {"passages": len(index), "documents":
                                            len(index.doc_slots), "kind": index.kind},
            "reader": {k: v for k, v in train.items() if k != "holdout"},
            "reader_holdout": {k: v for k, v in train.get("holdout", {}).items() if k != "ids"},
            "calibration": calibration, "reused_reader": reuse,
            "seconds": round(time.perf_counter() - started, 1)}


def _previous(root: Path) -> KnowledgeSettings | None:
    from retrieval.answerer import read_settings

    try:
        settings = read_settings(root)
    except (RetrievalError, OSError, ValueError, TypeError) as exc:
        logger.debug("retrieval.knowledge.no_previous reason=%s", exc)
        return None
    return settings if settings.format_version == KNOWLEDGE_FORMAT else None
