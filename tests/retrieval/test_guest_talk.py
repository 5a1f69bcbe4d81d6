"""What guests write around a question: the lines ask nothing and state no hotel fact, and a
wrapped question keeps its own words at the end of what was said before it."""

from __future__ import annotations

import random
import re
from pathlib import Path

from retrieval.guest_talk import load_talk, talk_copies, talk_groups, wrap
from retrieval.qa_metrics import QAExample

HOTELS = re.compile(r"starlight|aurora|nova grand|comet", re.I)


def test_the_lines_ask_nothing_and_name_no_hotel():
    talk = load_talk()
    assert len(talk.before) >= 200 and len(talk.after) >= 50
    for line in (*talk.before, *talk.after):
        assert "?" not in line and not re.match(r"(can|is|are|do|does) (i|we|you|there)\b",
                                                line, re.I), line
        assert not HOTELS.search(line), line


def test_a_wrapped_question_ends_with_the_question_or_one_thing_said_after():
    talk = load_talk()
    rng = random.Random(3)
    for _ in range(50):
        text = wrap("Is there parking at the hotel?", rng)
        head, _, tail = text.partition("is there parking at the hotel?")
        assert head and head.rstrip()[-1] in ".!,;:", text
        assert not tail or tail.strip() in talk.after, text


def test_wrapping_is_seeded():
    assert wrap("what time is breakfast", random.Random(7)) == \
        wrap("what time is breakfast", random.Random(7))


def test_a_file_of_ones_own_is_read_with_its_after_lines(tmp_path: Path):
    path = tmp_path / "talk.txt"
    path.write_text("# a comment\nwe land at noon\n\n> thanks!\n", encoding="utf-8")
    talk = load_talk(path)
    assert talk.before == ("we land at noon",) and talk.after == ("thanks!",)


def test_talk_copies_wrap_a_share_of_the_answerable_questions_under_their_own_ids():
    examples = [QAExample(f"q{i}", f"question number {i}?", "Some context.",
                          (("context", 5),), "doc") for i in range(400)]
    examples.append(QAExample("none", "nothing here?", "Some context.", (), "doc"))
    copies = talk_copies(examples, random.Random(1), share=0.25)
    assert 60 < len(copies) < 140
    assert all(c.id.endswith("#talk") and c.answers == (("context", 5),) for c in copies)
    assert all(f"question number {c.id[1:-5]}?" in c.question for c in copies)


def test_talk_groups_wrap_a_share_of_the_questions_and_keep_their_sentences():
    groups = [(f"question {i}?", f"answer {i}", (f"wrong {i}",)) for i in range(300)]
    wrapped = talk_groups(groups, random.Random(2), share=0.2)
    changed = [(g, w) for g, w in zip(groups, wrapped) if g != w]
    assert 30 < len(changed) < 90
    for (question, answer, wrong), (text, answer2, wrong2) in changed:
        assert question in text and len(text) > len(question)
        assert (answer2, wrong2) == (answer, wrong)
    assert talk_groups(groups, random.Random(2), share=0.0) == groups
