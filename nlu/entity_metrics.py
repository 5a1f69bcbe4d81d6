"""Span-level entity scores shared by the entity extractors and their experiments."""

from __future__ import annotations

from collections import Counter
from typing import Any

from nlu.types import Entity


def _key(entity: Entity) -> tuple[int, int, str, str | None]:
    return (entity.start, entity.end, entity.entity, entity.role)


def entity_prf(gold: list[list[Entity]], pred: list[list[Entity]]) -> dict[str, Any]:
    """Micro precision, recall and F1 over exact spans (start, end, entity, role), per message.

    Returns {"precision", "recall", "f1", "tp", "fp", "fn", "per_entity": {entity: {...}}}.
    With nothing gold and nothing predicted every score is 1.0 (nothing was missed or invented).
    """
    if len(gold) != len(pred):
        raise ValueError(
            f"entity_prf needs one prediction list per message: got {len(gold)} gold and "
            f"{len(pred)} predicted messages."
        )
    counts: dict[str, Counter[str]] = {}
    for gold_entities, pred_entities in zip(gold, pred, strict=True):
        gold_keys = Counter(_key(e) for e in gold_entities)
        pred_keys = Counter(_key(e) for e in pred_entities)
        for key in gold_keys | pred_keys:
            per = counts.setdefault(key[2], Counter())
            hit = min(gold_keys[key], pred_keys[key])
            per["tp"] += hit
            per["fn"] += gold_keys[key] - hit
            per["fp"] += pred_keys[key] - hit
    total: Counter[str] = Counter()
    for per in counts.values():
        total.update(per)
    out = _scores(total)
    out["per_entity"] = {name: _scores(per) for name, per in sorted(counts.items())}
    return out


def _scores(counts: Counter[str]) -> dict[str, Any]:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
    recall = tp / (tp + fn) if tp + fn else 1.0 if fp == 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}
