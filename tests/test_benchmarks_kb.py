"""benchmarks/kb_selection.py: the selection's top-1 / top-3 and its misses by kind."""

from __future__ import annotations

import json
from pathlib import Path

from retrieval.sentence_ranker import Calibration, Candidate
from retrieval.sentences import SentenceTable
from retrieval.types import Passage
from tests.benchmark_scripts import load_benchmark

PETS = "The fee is 25 EUR. Dog walks cost 15 EUR. Cats stay free."
PARKING = "The garage costs 30 EUR per day. It is open all night."


class FixedRanker:
    """Candidates in a fixed order per question (sentence ids), as a ranker would give."""

    def __init__(self, table: SentenceTable, orders: dict[str, list[int]]) -> None:
        self.table, self.orders = table, orders

    def candidates(self, questions: list[str], hits: object, selection: object
                   ) -> list[list[Candidate]]:
        return [[Candidate(i, {}, 1.0 / (n + 1), self.table.sentences[i].doc_id)
                 for n, i in enumerate(self.orders[q])] for q in questions]


class NoRetrieval:
    def retrieve(self, questions: list[str]) -> list[list[object]]:
        return [[] for _ in questions]


def test_selection_scores_count_top1_top3_and_the_kinds_of_miss(tmp_path: Path) -> None:
    script = load_benchmark("kb_selection")
    table = SentenceTable.from_passages({
        0: Passage("a", "policies/pets.md", "Pets", PETS, 0, len(PETS)),
        1: Passage("b", "policies/parking.md", "Parking", PARKING, 0, len(PARKING))})
    sid = {s.text.split()[1]: s.id for s in table.sentences}  # fee, walks, stay, garage, is
    questions = {  # question: (gold answer, its document, candidate order)
        "pet fee?": ("25 EUR", "policies/pets", [sid["fee"], sid["walks"]]),
        "dog walk price?": ("15 EUR", "policies/pets", [sid["fee"], sid["walks"]]),
        "cats?": ("free", "policies/pets", [sid["garage"], sid["is"], sid["stay"]]),
        "garage per night?": ("30 EUR per day. It is open", "policies/parking",
                              [sid["garage"]]),
    }
    data = {"data": [{"title": doc, "paragraphs": [{"context": gold, "qas": [
        {"id": q, "question": q, "is_impossible": False,
         "answers": [{"text": gold, "answer_start": 0}]}]}]}
        for q, (gold, doc, _) in questions.items()]}
    path = tmp_path / "set.json"
    path.write_text(json.dumps(data))
    ranker = FixedRanker(table, {q: order for q, (_, _, order) in questions.items()})
    scores = script.selection_scores(ranker, NoRetrieval(), path, Calibration())
    assert scores["answerable"] == 4
    assert scores["top1"] == 0.25 and scores["top3"] == 0.75 and scores["candidates"] == 0.75
    assert scores["top1_misses"] == {"split": 1, "wrong_doc": 1, "right_doc": 1}
