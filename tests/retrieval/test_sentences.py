"""Sentence candidates, generated questions and the calibration pieces, without models."""

from __future__ import annotations

import random
import re

import pytest

from retrieval.answer_calibration import LabelledQuestion, choose_threshold
from retrieval.errors import RetrievalConfigError
from retrieval.kb_eval import contains_answer, plot_reliability, reliability, roc_auc
from retrieval.question_gen import (answers_in, generate_answerable, generate_unanswerable,
                                    guest_rephrase, guest_voice)
from retrieval.sentence_encoder import batches
from retrieval.sentence_ranker import (DEFAULT_RERANK, RERANK_FEATURES, Calibration, Candidate,
                                       Logistic, choose, fit_selection)
from retrieval.sentences import SentenceTable, answer_sentences, sentence_spans
from retrieval.types import Passage

DOC = ("Pets are welcome. The fee is 25 EUR per night, or 35 EUR in Rome.\n"
       "- Dog walks cost 15 EUR and last 30 minutes.\n"
       "| Breakfast | 07:00 to 10:30 |\n")


def passages() -> dict[int, Passage]:
    """Two overlapping passages of one document (the second starts at its second sentence)."""
    cut = DOC.index("The fee")
    return {0: Passage("p0", "pets.md", "Pets Policy > Fees", DOC[:DOC.index("- Dog")].strip(),
                       0, DOC.index("- Dog") - 1),
            1: Passage("p1", "pets.md", "Pets Policy > Fees", DOC[cut:], cut, len(DOC))}


def test_sentence_spans_cut_lines_and_sentences_without_markers() -> None:
    spans = [DOC[s:e] for s, e in sentence_spans(DOC)]
    assert spans == ["Pets are welcome.", "The fee is 25 EUR per night, or 35 EUR in Rome.",
                     "Dog walks cost 15 EUR and last 30 minutes.", "Breakfast | 07:00 to 10:30"]


def test_overlapping_passages_share_their_sentences() -> None:
    table = SentenceTable.from_passages(passages())
    assert len(table) == 4
    fee = next(s for s in table.sentences if s.text.startswith("The fee"))
    assert set(fee.passages) == {0, 1}
    for slot, at in fee.passages.items():
        text = passages()[slot].text
        assert text[at:at + len(fee.text)] == fee.text
    assert DOC[fee.start:fee.end] == fee.text
    assert fee.search_text == "Pets Policy > Fees: " + fee.text
    assert table.by_passage[1][0] == fee.id


def test_answer_sentences_find_the_gold_sentence_by_position() -> None:
    table = SentenceTable.from_passages(passages())
    context = DOC[DOC.index("The fee"):DOC.index("\n")]
    gold = answer_sentences(table, {"pets.md": DOC}, "pets.md", context,
                            [("35 EUR", context.index("35 EUR"))])
    assert [table.sentences[i].text[:7] for i in gold] == ["The fee"]
    assert answer_sentences(table, {"pets.md": DOC}, None, "not in the KB", [("x", 0)]) == []


def test_generated_answers_are_verbatim_in_their_sentence() -> None:
    table = SentenceTable.from_passages(passages())
    kinds = {k for s in table.sentences for k, _, _ in answers_in(s.text)}
    assert {"price", "duration", "time"} <= kinds
    generated = generate_answerable(table.sentences, random.Random(0))
    assert generated
    for g in generated:
        sentence = table.sentences[g.sentence]
        assert sentence.text[g.start:g.start + len(g.answer)] == g.answer
        assert g.question.strip()


def test_unanswerable_questions_avoid_every_word_of_the_kb() -> None:
    kb = "Our hotel has a casino and a tennis court. " + DOC
    out = generate_unanswerable(kb, ["Starlight Rome"], random.Random(0), count=60)
    assert len(out) == 60 and all(g.sentence is None and g.answer is None for g in out)
    text = " ".join(g.question.lower() for g in out)
    assert "casino" not in text and "tennis" not in text


def test_guest_voice_is_seeded_and_keeps_the_words_mostly() -> None:
    one = [guest_voice("How much is the pet fee at Starlight Rome?", random.Random(n))
           for n in range(20)]
    two = [guest_voice("How much is the pet fee at Starlight Rome?", random.Random(n))
           for n in range(20)]
    assert one == two and len(set(one)) > 5


def test_guest_rephrase_is_seeded_varied_and_keeps_the_topic() -> None:
    question = "How much is the pet fee at Starlight Rome?"
    one = [guest_rephrase(question, random.Random(n)) for n in range(40)]
    assert one == [guest_rephrase(question, random.Random(n)) for n in range(40)]
    assert len(set(one)) > 30 and question not in one
    # the content words survive (a typo may touch one of them, never all)
    assert all(sum(w in q.lower() for w in ("pet", "fee", "rome")) >= 2 for q in one)
    # some drop the question words, some become statements
    assert any(not re.search(r"how much", q, re.I) for q in one)
    assert any(re.search(r"\b(?:need to know|wondering|tell me|like to know)\b", q) for q in one)


def test_guest_rephrase_turns_yes_no_questions_into_indirect_ones() -> None:
    out = {guest_rephrase("Is there a sauna at Starlight Berlin?", random.Random(n))
           for n in range(60)}
    assert any(re.search(r"\bif there is a sauna\b", q, re.I) for q in out)
    assert any(re.match(r"^(?:\W*\w+[,!:]?\s)?sauna at", q, re.I) for q in out)


def test_encoder_batches_never_repeat_a_positive() -> None:
    triples = [(f"q{i}", f"s{i % 5}", None) for i in range(40)]
    out = batches(triples, 4, random.Random(0))
    placed = [i for b in out for i in b]
    assert len(placed) == len(set(placed)) >= 36  # a leftover single (no negative) is dropped
    for b in out:
        positives = [triples[i][1] for i in b]
        assert len(positives) == len(set(positives)) and len(b) <= 4


def test_logistic_fits_and_round_trips() -> None:
    rows = [{"a": x / 10, "b": 1.0} for x in range(10)]
    model = Logistic.fit(rows, [int(x >= 5) for x in range(10)], ("a", "b"))
    assert model.prob({"a": 0.9, "b": 1.0}) > 0.5 > model.prob({"a": 0.0, "b": 1.0})
    assert Logistic.from_dict(model.to_dict()) == model
    with pytest.raises(RetrievalConfigError, match="one class"):
        Logistic.fit(rows, [1] * 10, ("a", "b"))
    calibration = Calibration(threshold=0.3)
    assert Calibration.from_dict(calibration.to_dict()).threshold == 0.3
    with pytest.raises(RetrievalConfigError, match=r"\[0, 1\]"):
        Calibration(threshold=1.5)


def test_threshold_balances_answered_right_and_declined() -> None:
    questions = [LabelledQuestion("a", (1,)), LabelledQuestion("b", (2,)),
                 LabelledQuestion("c", ()), LabelledQuestion("d", ())]
    right = [1, 1, 0, 0]
    probs = {0: 0.9, 1: 0.6, 2: 0.4, 3: 0.2}
    threshold, table = choose_threshold(questions, right, probs)
    assert 0.4 < threshold <= 0.6
    best = next(r for r in table if r["threshold"] == threshold)
    assert best["answered_right"] == 1.0 and best["declined"] == 1.0


def test_threshold_takes_the_lowest_near_the_best() -> None:
    """A flat top: the lower threshold, 0.0025 under the best mean, answers one more right
    question and lets two unanswerable ones through (guests score lower than the slice)."""
    questions = [LabelledQuestion(f"a{i}", (i,)) for i in range(200)] + \
        [LabelledQuestion(f"u{i}", ()) for i in range(200)]
    right = [1] * 200 + [0] * 200
    probs = {i: 0.9 for i in range(200)} | {i: 0.1 for i in range(200, 400)}
    probs |= {0: 0.32, 200: 0.37, 201: 0.37}
    threshold, table = choose_threshold(questions, right, probs)
    objective = {r["threshold"]: r["objective"] for r in table}
    assert max(objective, key=lambda t: (objective[t], -t)) == 0.38
    assert threshold == 0.11 and objective[0.11] == pytest.approx(objective[0.38] - 0.0025)


def test_threshold_tolerance_grows_with_the_slices_noise() -> None:
    """20 + 20 questions: the best mean (0.85, from 0.36) is 0.05 above the lower thresholds'
    (0.80, from 0.06), under its standard error (0.056): the lowest of them is taken."""
    questions = [LabelledQuestion(f"a{i}", (i,)) for i in range(20)] + \
        [LabelledQuestion(f"u{i}", ()) for i in range(20)]
    right = [1] * 18 + [0] * 2 + [0] * 20
    probs = dict(enumerate([0.9] * 16 + [0.3] * 2 + [0.1] * 2 + [0.05] * 14 + [0.35] * 4
                           + [0.95] * 2))
    threshold, table = choose_threshold(questions, right, probs)
    objective = {r["threshold"]: r["objective"] for r in table}
    assert objective[0.36] == pytest.approx(0.85) and objective[0.06] == pytest.approx(0.8)
    assert max(objective.values()) == pytest.approx(0.85)
    assert threshold == 0.06


def test_reliability_bins_and_diagram(tmp_path) -> None:
    table = reliability([0.05, 0.15, 0.95, 0.95, 1.0], [False, False, True, True, False])
    assert table["questions"] == 5 and [r["count"] for r in table["bins"]] == [1, 1, 3]
    assert 0.0 <= table["ece"] <= 1.0
    # right answers at 0.95, 0.95; wrong ones at 0.05, 0.15 and 1.0: 4 of 6 pairs ordered
    assert table["auc"] == pytest.approx(4 / 6, abs=1e-4)
    assert roc_auc([0.2, 0.8, 0.5], [False, True, True]) == 1.0
    assert roc_auc([0.5, 0.5], [False, True]) == 0.5 and roc_auc([0.3], [True]) is None
    png = plot_reliability(table, tmp_path / "r.png", "test")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert contains_answer("The fee is 25 EUR.", ["25 eur"])
    assert not contains_answer(None, ["25 EUR"]) and not contains_answer("x", ["25 EUR"])


def test_selection_fit_ranks_the_gold_candidate_first() -> None:
    rng = random.Random(0)
    groups = []
    for _ in range(30):  # the gold sentence has the higher cosine, BM25 is noise
        rows = [{"cosine": rng.uniform(0.2, 0.5), "bm25_rel": rng.random(), "bm25": 0.0,
                 "passage_rr": 0.0, "type_miss": 0.0, "place_clash": 0.0} for _ in range(5)]
        rows[0]["cosine"] = 0.6
        groups.append((rows, [1, 0, 0, 0, 0]))
    model = fit_selection(groups)
    assert model.weights[model.features.index("cosine")] > 5
    for rows, _ in groups:
        assert max(range(5), key=lambda j: model.logit(rows[j])) == 0
    with pytest.raises(RetrievalConfigError, match="gold sentence"):
        fit_selection([(groups[0][0], [0] * 5)])


def test_choose_lets_the_reader_overturn_a_close_selection() -> None:
    cands = [Candidate(1, {"cosine": 0.5, "bm25_rel": 1.0}, 0.55),
             Candidate(2, {"cosine": 0.5, "bm25_rel": 1.0}, 0.45)]
    kept = choose(cands, [-5.0, 5.0], DEFAULT_RERANK)  # default: selection order only
    assert kept.index == 0 and kept.reader_gap == -5.0
    reader_heavy = Logistic(RERANK_FEATURES, (1.0, 4.0), 0.0)
    flipped = choose(cands, [-5.0, 5.0], reader_heavy)
    assert flipped.index == 1 and 0.5 < flipped.share <= 1.0 and flipped.lead > 0
    assert Calibration.from_dict(Calibration(rerank=reader_heavy).to_dict()).rerank == \
        Logistic(RERANK_FEATURES, (1.0, 4.0), 0.0)


def test_a_sentence_that_refers_back_is_searched_with_the_one_before() -> None:
    doc = ("The hotel has its own boat for canal trips. It costs 25 EUR per person.\n"
           "It is moored at the door.\n"
           "Bikes can be rented. Guests there pay 15 EUR. Parking costs 30 EUR.\n"
           "Cancel by noon. Later cancellations are charged.")
    table = SentenceTable.from_passages({0: Passage("p0", "h.md", "Hotel > Extras", doc, 0,
                                                    len(doc))})
    by_text = {s.text: s for s in table.sentences}
    cost = by_text["It costs 25 EUR per person."]
    assert cost.lead == "The hotel has its own boat for canal trips."
    assert cost.search_text == ("Hotel > Extras: The hotel has its own boat for canal trips. "
                                "It costs 25 EUR per person.")
    assert by_text["It is moored at the door."].lead == ""   # a new line: no sentence before
    assert by_text["Guests there pay 15 EUR."].lead == "Bikes can be rented."
    assert by_text["Parking costs 30 EUR."].lead == ""       # it does not refer back
    assert by_text["Later cancellations are charged."].lead == "Cancel by noon."
    assert by_text["Bikes can be rented."].search_text == "Hotel > Extras: Bikes can be rented."
