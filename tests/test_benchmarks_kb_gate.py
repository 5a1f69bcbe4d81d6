"""benchmarks/kb_gate.py: right answers let through at each share of unanswerable declined."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.benchmark_scripts import load_benchmark


def test_tradeoff_reads_right_at_each_declined_share() -> None:
    script = load_benchmark("kb_gate")
    rows = [(0.9, True, True), (0.45, True, True), (0.2, True, True),  # right sentences
            (0.7, True, False),  # a wrong sentence: never right, whatever the threshold
            (0.5, False, False), (0.3, False, False), (0.1, False, False),
            (0.05, False, False), (0.01, False, False)]  # unanswerable
    out = script.tradeoff(rows, 0.4)
    assert (out["answerable"], out["unanswerable"], out["ceiling"]) == (4, 5, 0.75)
    assert out["right"] == 0.5 and out["declined"] == 0.8
    # declining 4 of 5 takes a threshold just above 0.3 (0.9 and 0.45 pass); all 5, above 0.5
    assert out["right_at"] == {"0.8": 0.5, "0.85": 0.25, "0.9": 0.25}
    assert out["auc"] == pytest.approx(13 / 18, abs=1e-4)


def test_gate_rows_score_the_best_sentence_before_the_threshold(tmp_path: Path) -> None:
    script = load_benchmark("kb_gate")
    data = {"data": [{"title": "policies/pets", "paragraphs": [{"context": "25 EUR", "qas": [
        {"id": "1", "question": "pet fee?", "is_impossible": False,
         "answers": [{"text": "25 EUR", "answer_start": 0}]},
        {"id": "2", "question": "pet spa?", "is_impossible": True, "answers": []}]}]}]}
    path = tmp_path / "set.json"
    path.write_text(json.dumps(data))

    class Answerer:  # declines both; its best sentence holds the fee
        def trace_batch(self, questions: list[str]) -> list[SimpleNamespace]:
            best = SimpleNamespace(sentence="The fee is 25 EUR per night.", text="25 EUR")
            return [SimpleNamespace(answer=SimpleNamespace(confidence=0.2), best=best)
                    for _ in questions]

    assert script.gate_rows(Answerer(), path) == [(0.2, True, True), (0.2, False, False)]


def test_the_pretrained_reader_benchmark_names_what_it_lacks(tmp_path: Path) -> None:
    script = load_benchmark("kb_pretrained_reader")
    with pytest.raises(SystemExit, match="no such file"):
        script.main([str(tmp_path / "squad.jsonl"), "--out", str(tmp_path / "r.jsonl")])
    (tmp_path / "squad.jsonl").write_text("")
    with pytest.raises(SystemExit, match="no trained knowledge directory"):
        script.main([str(tmp_path / "squad.jsonl"), "--knowledge-dir", str(tmp_path),
                     "--out", str(tmp_path / "r.jsonl")])
