"""retrieval.qa_sentences: SQuAD examples cut to the sentence the reader reads."""

from __future__ import annotations

import random

from retrieval.qa_metrics import QAExample
from retrieval.qa_sentences import rerank_groups, sentence_examples, sentence_triples

CONTEXT = ("Check-in opens at 3:00 pm. Breakfast costs 14 EUR per adult. "
           "Dogs are welcome for 18 EUR per night. Parking costs 9 EUR a day.")


def _answerable(text: str, qid: str = "a") -> QAExample:
    return QAExample(qid, "how much is a dog", CONTEXT, ((text, CONTEXT.index(text)),), "t")


def test_an_answer_keeps_its_sentence_and_its_place_in_it() -> None:
    [cut] = sentence_examples([_answerable("18 EUR per night")])
    assert cut.context == "Dogs are welcome for 18 EUR per night."
    (text, start), = cut.answers
    assert cut.context[start:start + len(text)] == text == "18 EUR per night"
    assert (cut.id, cut.question, cut.title) == ("a", "how much is a dog", "t")


def test_an_answer_over_two_sentences_keeps_both() -> None:
    [cut] = sentence_examples([_answerable("14 EUR per adult. Dogs")])
    assert cut.context == "Breakfast costs 14 EUR per adult. Dogs are welcome for 18 EUR per night."
    (text, start), = cut.answers
    assert cut.context[start:start + len(text)] == text


def test_an_unanswerable_question_gets_the_sentence_most_like_it() -> None:
    question = QAExample("u", "is breakfast free for a child", CONTEXT, (), "t")
    [cut] = sentence_examples([question])
    assert cut.context == "Breakfast costs 14 EUR per adult." and cut.answers == ()


def test_a_context_without_sentences_is_kept() -> None:
    empty = QAExample("e", "anything", "  ", (), "t")
    assert sentence_examples([empty]) == [empty]


def test_triples_pair_a_question_with_its_sentence_and_another_of_its_passage() -> None:
    unanswerable = QAExample("u", "is there a gym", CONTEXT, (), "hotels/Pinecrest")
    alone = QAExample("s", "check-in?", "Check-in opens at 3:00 pm.",
                      (("3:00 pm", 18),), "Pinecrest")
    [(question, positive, negative)] = sentence_triples(
        [_answerable("18 EUR per night"), unanswerable, alone], random.Random(1))
    assert question == "how much is a dog"
    assert positive == "t: Dogs are welcome for 18 EUR per night."
    assert negative.startswith("t: ") and negative[3:] in CONTEXT and negative != positive


def test_rerank_groups_rank_an_answer_above_the_sentences_most_like_the_question() -> None:
    unanswerable = QAExample("u", "is breakfast free for a child", CONTEXT, (), "hotels/Pine")
    alone = QAExample("s", "check-in?", "Check-in opens at 3:00 pm.",
                      (("3:00 pm", 18),), "Pine")
    groups = rerank_groups([_answerable("18 EUR per night"), unanswerable, alone], 2)
    assert len(groups) == 2  # a context of one sentence has nothing to rank below it
    (question, answer, wrong), (_, none, tempting) = groups
    assert question == "how much is a dog"
    assert answer == "t: Dogs are welcome for 18 EUR per night."
    assert len(wrong) == 2 and answer not in wrong
    assert none is None and tempting[0] == "Pine: Breakfast costs 14 EUR per adult."
