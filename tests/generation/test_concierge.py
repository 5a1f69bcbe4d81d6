"""What a concierge would not say (generation/concierge.py) and the reranking terms that
prefer its voice: short, general, friendly replies that do not end with a question."""

from __future__ import annotations

import numpy as np
import pytest

from generation import Candidate, SamplingConfig
from generation.concierge import (PERSONA_REPLIES, concierge_problems, is_question,
                                  persona_similarity, persona_vectors)
from generation.errors import GenerationConfigError
from generation.rerank import rank
from tests.fakes import FakeEmbedder


@pytest.mark.parametrize(("reply", "user", "problem"), [
    ("i finished this semester haha", "how are you", "life story"),
    ("my mom makes the best pie", "do you like pie", "life story"),
    ("i have to work early", "are you tired", "life story"),
    ("i went hiking last week", "do you like hiking", "life story"),
    ("no worries i will make it not spicy", "i don't like spicy food", "promise"),
    ("let me get you a blanket", "i'm cold", "promise"),
    ("what instrument do you play?", "i love music", "prying"),
    ("do you like the cookies you baked?", "i baked today", "prying"),
    ("im watching a show right now", "do you watch tv", "life story"),
    ("she was so sad when it ended", "do you like movies", "life story"),
    ("haha that is awesome", "my flight got delayed", "tone"),
])
def test_concierge_problems_name_what_a_concierge_would_not_say(reply: str, user: str,
                                                                 problem: str) -> None:
    assert problem in concierge_problems(reply, user)


@pytest.mark.parametrize(("reply", "user"), [
    ("i love rainy days with a good book", "do you like rainy days"),
    ("my favourite is the ocean", "beach or mountains?"),
    ("good for you, that takes patience", "i'm learning to knit"),
    ("do you like it?", "i bought a new guitar"),
    ("what kind of music do you like?", "do you listen to music"),
    ("school can be tough", "i hate school"),
    ("she will come around", "my cat hates anything new"),
    ("ha, that is the best", "my kids keep fighting lol"),
])
def test_concierge_problems_keep_tastes_and_feelings(reply: str, user: str) -> None:
    assert concierge_problems(reply, user) == []


def test_is_question() -> None:
    assert is_question("what about the sea? ")
    assert not is_question("the sea, i think.")


def test_persona_similarity_is_the_mean_of_the_nearest() -> None:
    persona = np.eye(3, dtype=np.float32)
    vectors = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]], dtype=np.float32)
    assert persona_similarity(vectors, persona, nearest=2) == pytest.approx([0.5, 0.7])
    assert persona_similarity(np.zeros((0, 3)), persona) == []


def test_persona_vectors_are_unit_rows() -> None:
    vectors = persona_vectors(FakeEmbedder())
    assert vectors.shape == (len(PERSONA_REPLIES), 32)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(len(PERSONA_REPLIES)))


def test_rank_counts_persona_questions_and_length() -> None:
    config = SamplingConfig(persona_weight=1.0, question_penalty=0.3, word_penalty=0.01)
    asking = Candidate("do you like it there?", True, relevance=0.5, persona=0.5)
    plain = Candidate("the sea is lovely", True, relevance=0.5, persona=0.5)
    long = Candidate("the sea is lovely when the sun comes up over it", True, relevance=0.5,
                     persona=0.5)
    voiced = Candidate("oh that sounds lovely", True, relevance=0.4, persona=0.9)
    ranked = rank([asking, plain, long, voiced], config)
    assert [c.text for c in ranked] == [voiced.text, plain.text, long.text, asking.text]
    assert plain.score == pytest.approx(0.5 + 0.5 - 0.04)


def test_negative_weights_are_refused() -> None:
    with pytest.raises(GenerationConfigError, match="persona_weight"):
        SamplingConfig(persona_weight=-1.0)
