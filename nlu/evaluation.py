"""Evaluate the NLU on held-out examples, writing Rasa's report files.

results/
  intent_report.json          per-intent precision/recall/F1, accuracy, macro-F1, ECE
  intent_errors.json          misclassified examples
  intent_confusion_matrix.png
  intent_histogram.png        confidence of right and wrong predictions
  intent_reliability.png      reliability diagram (ours; calibration at a glance)
  <Extractor>_report.json     entity precision/recall/F1, exact span + type (+ role), and
                              `spans`: how whole each date mention came out (span_report)
  <Extractor>_errors.json
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from nlu.types import Entity, Example, ParseResult

logger = logging.getLogger(__name__)


def evaluate(parse_batch: Any, examples: list[Example], out_dir: Path | None = None,
             fallback_intent: str = "nlu_fallback", batch_size: int = 64) -> dict[str, Any]:
    """Parse every example and score intents and entities. `parse_batch(texts)` returns
    ParseResults (nlu.interpreter.NLUInterpreter.parse_batch)."""
    parses = parse_all(parse_batch, [e.text for e in examples], batch_size)
    return score(examples, parses, out_dir, fallback_intent)


def parse_all(parse_batch: Any, texts: list[str], batch_size: int = 64) -> list[ParseResult]:
    parses: list[ParseResult] = []
    for i in range(0, len(texts), batch_size):
        parses += parse_batch(texts[i:i + batch_size])
    return parses


def score(examples: list[Example], parses: list[ParseResult], out_dir: Path | None = None,
          fallback_intent: str = "nlu_fallback") -> dict[str, Any]:
    """The intent and entity reports of `parses` (one per example), written to `out_dir`."""
    report = {"intent": intent_report(examples, parses, fallback_intent),
              "entities": entity_report(examples, parses)}
    if out_dir is not None:
        write_reports(report, examples, parses, out_dir)
    return report


def intent_report(examples: list[Example], parses: list[ParseResult],
                  fallback_intent: str) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    gold = [e.intent or "" for e in examples]
    predicted = [_top_real_intent(p, fallback_intent) for p in parses]
    labels = sorted(set(gold))
    confidences = np.array([_confidence(p, g) for p, g in zip(parses, predicted)])
    correct = np.array([g == p for g, p in zip(gold, predicted)])
    below = sum(1 for p in parses if p.intent is not None and p.intent.name == fallback_intent)
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1_score(gold, predicted, labels=labels, average="macro",
                                   zero_division=0)),
        "weighted_f1": float(f1_score(gold, predicted, labels=labels, average="weighted",
                                      zero_division=0)),
        "ece": expected_calibration_error(confidences, correct),
        "below_threshold": below,
        "report": classification_report(gold, predicted, labels=labels, output_dict=True,
                                         zero_division=0),
        "n": len(examples),
    }


def entity_report(examples: list[Example], parses: list[ParseResult]) -> dict[str, Any]:
    gold = [_keys(e.entities) for e in examples]
    pred = [_keys(p.entities) for p in parses]
    tp = sum(len(g & p) for g, p in zip(gold, pred))
    fp = sum(len(p - g) for g, p in zip(gold, pred))
    fn = sum(len(g - p) for g, p in zip(gold, pred))
    per_type: dict[str, dict[str, float]] = {}
    types = sorted({k[2] for g in gold for k in g} | {k[2] for p in pred for k in p})
    for name in types:
        t = sum(len({k for k in g & p if k[2] == name}) for g, p in zip(gold, pred))
        f = sum(len({k for k in p - g if k[2] == name}) for g, p in zip(gold, pred))
        n = sum(len({k for k in g - p if k[2] == name}) for g, p in zip(gold, pred))
        per_type[name] = _prf(t, f, n)
    return {**_prf(tp, fp, fn), "per_type": per_type, "spans": span_report(examples, parses)}


SPAN_TYPES = ("date",)


def span_report(examples: list[Example], parses: list[ParseResult],
                names: tuple[str, ...] = SPAN_TYPES) -> dict[str, dict[str, Any]]:
    """Per entity type in `names`, how whole each gold mention came out, role aside: `exact`
    (one predicted entity of the type over the same characters), `split` (cut into two or
    more, "sept 30" + "2027"), `partial` (one that starts or ends elsewhere), `missed`, and
    `extra` (predicted ones over no gold mention). `exact_rate` = exact / gold mentions."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        counts = Counter({"exact": 0, "split": 0, "partial": 0, "missed": 0, "extra": 0})
        for example, parse in zip(examples, parses):
            gold = [e for e in example.entities if e.entity == name]
            pred = [e for e in parse.entities if e.entity == name]
            for mention in gold:
                over = [e for e in pred if e.start < mention.end and mention.start < e.end]
                if not over:
                    counts["missed"] += 1
                elif len(over) > 1:
                    counts["split"] += 1
                elif (over[0].start, over[0].end) == (mention.start, mention.end):
                    counts["exact"] += 1
                else:
                    counts["partial"] += 1
            counts["extra"] += sum(not any(g.start < e.end and e.start < g.end for g in gold)
                                   for e in pred)
        n = sum(counts[k] for k in ("exact", "split", "partial", "missed"))
        if n or counts["extra"]:
            out[name] = {**counts, "n": n,
                         "exact_rate": round(counts["exact"] / n, 4) if n else None}
    return out


def expected_calibration_error(confidences: np.ndarray, correct: np.ndarray,
                               n_bins: int = 15) -> float:
    if len(confidences) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ece = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        mask = (confidences > low) & (confidences <= high)
        if mask.any():
            ece += mask.mean() * abs(confidences[mask].mean() - correct[mask].mean())
    return float(ece)


def write_reports(report: dict[str, Any], examples: list[Example], parses: list[ParseResult],
                  out_dir: Path, extractor: str | None = None) -> None:
    """`extractor` names the entity files; default: the model that found most entities."""
    found = Counter(x.extractor for p in parses for x in p.entities
                    if x.extractor not in (None, "RegexEntityExtractor"))
    extractor = extractor or (found.most_common(1)[0][0] if found else "LukeSpanExtractor")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "intent_report.json").write_text(json.dumps(report["intent"], indent=1))
    errors = [
        {"text": e.text, "intent": e.intent,
         "intent_prediction": p.intent.to_dict() if p.intent else None}
        for e, p in zip(examples, parses) if p.intent is None or p.intent.name != e.intent
    ]
    (out_dir / "intent_errors.json").write_text(json.dumps(errors, indent=1))
    entity_errors = [
        {"text": e.text, "entities": [x.to_dict() for x in e.entities],
         "predicted_entities": [x.to_dict() for x in p.entities]}
        for e, p in zip(examples, parses) if _keys(e.entities) != _keys(p.entities)
    ]
    (out_dir / f"{extractor}_report.json").write_text(json.dumps(report["entities"], indent=1))
    (out_dir / f"{extractor}_errors.json").write_text(json.dumps(entity_errors, indent=1))
    _plots(examples, parses, out_dir)


def _plots(examples: list[Example], parses: list[ParseResult], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    gold = [e.intent or "" for e in examples]
    predicted = [p.intent.name if p.intent else "" for p in parses]
    labels = sorted(set(gold) | set(predicted))
    with warnings.catch_warnings():  # one intent, all right: a 1x1 matrix is what we want
        warnings.filterwarnings("ignore", message="A single label was found")
        matrix = confusion_matrix(gold, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.5), max(5, len(labels) * 0.45)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            ax.text(j, i, str(value), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(out_dir / "intent_confusion_matrix.png", dpi=120)
    plt.close(fig)

    confidences = np.array([p.intent.confidence if p.intent else 0.0 for p in parses])
    correct = np.array([g == p for g, p in zip(gold, predicted)])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist([confidences[correct], confidences[~correct]], bins=20, range=(0, 1),
            label=["correct", "wrong"], color=["#3a7", "#c44"])
    ax.set_xlabel("confidence")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "intent_histogram.png", dpi=120)
    plt.close(fig)

    edges = np.linspace(0, 1, 11)
    centers, accuracy = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        mask = (confidences > low) & (confidences <= high)
        if mask.any():
            centers.append((low + high) / 2)
            accuracy.append(correct[mask].mean())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.bar(centers, accuracy, width=0.09, color="#37a")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability")
    fig.tight_layout()
    fig.savefig(out_dir / "intent_reliability.png", dpi=120)
    plt.close(fig)


def _top_real_intent(parse: ParseResult, fallback_intent: str) -> str:
    """The best intent that is not the fallback (accuracy is about the classifier)."""
    for item in parse.intent_ranking:
        if item.name != fallback_intent:
            return item.name
    return ""


def _confidence(parse: ParseResult, name: str) -> float:
    for item in parse.intent_ranking:
        if item.name == name:
            return item.confidence
    return 0.0


def _keys(entities: tuple[Entity, ...] | list[Entity]) -> set[tuple[int, int, str, str | None]]:
    return {(e.start, e.end, e.entity, e.role) for e in entities}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def intent_counts(examples: list[Example]) -> dict[str, int]:
    return dict(Counter(e.intent or "" for e in examples))
