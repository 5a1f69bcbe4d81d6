"""SQuAD-style normalisation, exact match and F1 (v2.0 no-answer rules), QA loading, and the
retrieval metrics recall@k and MRR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.errors import CorpusError
from retrieval.qa_metrics import (QAExample, exact_match, f1, first_hit_rank, load_qa,
                                  mean_reciprocal_rank, normalize_answer, percentile,
                                  recall_at_k, squad_scores)


def test_normalisation_follows_squad() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("  A  ") == ""
    assert normalize_answer("18:00") == "1800"


def test_exact_match_and_f1() -> None:
    assert exact_match("the 25 EUR", ["25 EUR", "twenty-five euros"]) == 1.0
    assert exact_match("25 EUR per night", ["25 EUR"]) == 0.0
    assert f1("25 EUR per night", ["25 EUR"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1("nothing alike", ["25 EUR"]) == 0.0
    assert f1("a", ["the"]) == 1.0  # both normalise to empty


def test_unanswerable_is_right_only_when_empty() -> None:
    assert exact_match(None, []) == 1.0 and exact_match("", []) == 1.0
    assert exact_match("something", []) == 0.0 and f1("something", []) == 0.0
    assert exact_match(None, ["25 EUR"]) == 0.0 and f1(None, ["25 EUR"]) == 0.0


def test_squad_scores_split_answerable_and_unanswerable() -> None:
    examples = [QAExample("a", "q", "25 EUR", (("25 EUR", 0),)),
                QAExample("b", "q", "x", (("x", 0),)), QAExample("c", "q", "x", ())]
    scores = squad_scores({"a": "25 EUR", "b": "y", "c": None}, examples)
    assert scores["has_ans_exact"] == 0.5 and scores["no_ans_exact"] == 1.0
    assert scores["all_exact"] == pytest.approx(2 / 3)
    assert scores["has_ans_count"] == 2 and scores["no_ans_count"] == 1


def test_retrieval_metrics() -> None:
    ranks = [first_hit_rank([False, True]), first_hit_rank([True]), first_hit_rank([False])]
    assert ranks == [2, 1, None]
    assert recall_at_k(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 5) == pytest.approx(2 / 3)
    assert mean_reciprocal_rank(ranks) == pytest.approx((0.5 + 1) / 3)
    assert recall_at_k([], 5) == 0.0
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 95) == 0.0


def test_load_squad_json_and_jsonl(tmp_path: Path) -> None:
    squad = {"data": [{"title": "policies/pets", "paragraphs": [{
        "context": "Dogs are welcome.", "qas": [
            {"id": "1", "question": "Dogs?", "is_impossible": False,
             "answers": [{"text": "welcome", "answer_start": 9}]},
            {"id": "2", "question": "Birds?", "is_impossible": True, "answers": [],
             "plausible_answers": [{"text": "Dogs", "answer_start": 0}]}]}]}]}
    (tmp_path / "qa.json").write_text(json.dumps(squad))
    examples = load_qa(tmp_path / "qa.json")
    assert [e.id for e in examples] == ["1", "2"]
    assert examples[0].answers == (("welcome", 9),) and examples[0].title == "policies/pets"
    assert examples[1].is_impossible and not examples[0].is_impossible
    rows = [{"id": "x", "passage_id": "p", "title": "T", "context": "abc def",
             "question": "q?", "answers": [{"text": "def", "answer_start": 4}],
             "is_impossible": False}]
    (tmp_path / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert load_qa(tmp_path / "qa.jsonl")[0].answer_texts == ["def"]
    assert load_qa(tmp_path / "qa.json", limit=1) == examples[:1]


def test_alternatives_are_accepted_beside_the_gold_answers(tmp_path: Path) -> None:
    squad = {"data": [{"title": "hotels/a", "paragraphs": [{
        "context": "Dogs are welcome.",
        "qas": [{"id": "1", "question": "Dogs?", "is_impossible": False,
                 "answers": [{"text": "welcome", "answer_start": 9}],
                 "alternatives": [{"text": "pets stay free", "doc": "policies/pets.md"},
                                  "dogs allowed"]},
                {"id": "2", "question": "Birds?", "is_impossible": True, "answers": [],
                 "alternatives": [{"text": "ignored", "doc": "x.md"}]}]}]}]}
    (tmp_path / "qa.json").write_text(json.dumps(squad))
    answerable, impossible = load_qa(tmp_path / "qa.json")
    assert answerable.answer_texts == ["welcome"]
    assert answerable.accepted_texts() == ["welcome", "pets stay free", "dogs allowed"]
    assert answerable.accepted_texts(alternatives=False) == ["welcome"]
    assert impossible.alternatives == () and impossible.accepted_texts() == []


def test_bad_qa_data_is_a_corpus_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CorpusError):
        load_qa(tmp_path / "bad.json")
    wrong = {"data": [{"title": "t", "paragraphs": [{"context": "abc", "qas": [
        {"id": "1", "question": "q", "answers": [{"text": "xyz", "answer_start": 0}]}]}]}]}
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    with pytest.raises(CorpusError, match="not at 0"):
        load_qa(tmp_path / "wrong.json")
    with pytest.raises(CorpusError):
        load_qa(tmp_path / "missing.json")


def test_the_kb_training_and_test_sets_load(repo_root: Path) -> None:
    train = load_qa(repo_root / "data" / "kb" / "qa.json")
    test = load_qa(repo_root / "tests" / "kb_test.json")
    assert sum(not e.is_impossible for e in train) == 587
    assert sum(e.is_impossible for e in test) == 42
    assert not {e.id for e in train} & {e.id for e in test}


def test_squad_scores_accept_the_alternatives() -> None:
    from retrieval.qa_metrics import QAExample, squad_scores

    example = QAExample("1", "Dogs?", "Dogs are welcome.", (("welcome", 9),),
                        alternatives=("pets stay free",))
    scores = squad_scores({"1": "pets stay free"}, [example])
    assert scores["has_ans_exact"] == 1.0 and scores["has_ans_f1"] == 1.0
