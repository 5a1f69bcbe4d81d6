"""data/qa_pretrain/house_qa*.json: SQuAD 2.0 format, every answer a span of its passage, and no
question near a question the knowledge answers are measured or trained on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from retrieval.qa_metrics import load_qa

REPO = Path(__file__).resolve().parents[1]
HOUSE = sorted((REPO / "data" / "qa_pretrain").glob("house_qa*.json"))


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.mark.parametrize("house", HOUSE, ids=lambda p: p.name)
def test_every_answer_is_a_span_of_its_passage(house: Path) -> None:
    data = json.loads(house.read_text(encoding="utf-8"))
    ids, answerable, unanswerable = set(), 0, 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                assert qa["id"] not in ids
                ids.add(qa["id"])
                if qa["is_impossible"]:
                    assert qa["answers"] == []
                    unanswerable += 1
                    continue
                answerable += 1
                for a in qa["answers"]:
                    start = a["answer_start"]
                    assert paragraph["context"][start:start + len(a["text"])] == a["text"]
    assert answerable > 900 and unanswerable > 900
    assert len(load_qa(house)) == len(ids)


@pytest.mark.parametrize("house", HOUSE, ids=lambda p: p.name)
def test_no_question_is_near_a_knowledge_question(house: Path) -> None:
    others = [_tokens(e.question) for path in (*sorted((REPO / "tests").glob("*.json")),
                                               REPO / "data" / "kb" / "qa.json",
                                               REPO / "data" / "kb" / "guest_questions.json")
              for e in load_qa(path)]
    near = []
    for e in load_qa(house):
        mine = _tokens(e.question)
        if any(len(mine & o) / len(mine | o) >= 0.5 for o in others if mine | o):
            near.append(e.question)
    assert near == []
