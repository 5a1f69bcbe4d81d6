"""The sentence after the answer, when the reranker reads it as at least as good an answer.

Guests frame a question by the first fact and ask about the next ("the canal houses look
steep in the pics, which part should we ask to be in" -> "Canal houses have steep, narrow
stairs, and only the main building has a lift." then "Guests who need step-free access
should ask for a room in the main building when booking."), or ask two things at once. The
selection then often picks the sentence that matches the framing, and the answer is the next
one of the same paragraph.

So an answer given (its confidence at or above the threshold) carries `follow`: the next
sentence on the same line of its document (retrieval.sentences.SentenceTable.following), when
the reranker scores it at least FOLLOW_MARGIN above the chosen sentence. The guest reads both
(Answer.reply); the highlight and the confidence stay the chosen sentence's. Choosing the next
sentence instead lost as many right answers as it won (session 27, the dev sets).

Measured (session 27) on the dev sets with session 26's models, answers given: margin 0 adds
a sentence to 32 of 527 answers, and 10 of those hold the answer only in it (kb_dev3 5 of
147 answerable, kb_dev 1 of 68, kb_dev2 3 of 158, kb_test 1 of 248); margin -0.5 to 81
answers for 15. One more reranker pair per answer.

    texts = follows(reranker, ranker, questions, chosen)    # "" where none follows
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from retrieval.sentence_ranker import CROSS_CLIP, Candidate

if TYPE_CHECKING:
    from retrieval.reranker import Reranker
    from retrieval.sentence_ranker import SentenceRanker

FOLLOW_MARGIN = 0.0  # the next sentence's reranker score minus the chosen one's, at least


def follows(reranker: Reranker, ranker: SentenceRanker, questions: Sequence[str],
            chosen: Sequence[Candidate | None], margin: float = FOLLOW_MARGIN) -> list[str]:
    """Per question, the text of the sentence after its `chosen` candidate when the reranker
    scores it at least `margin` above the chosen one ("" otherwise, or where `chosen` is None
    or has no reranker score: its `cross` feature, the score clipped and scaled)."""
    table = ranker.table
    pairs = [(i, c.features["cross"] * CROSS_CLIP, table.following[c.sentence])
             for i, c in enumerate(chosen)
             if c is not None and "cross" in c.features and c.sentence in table.following]
    out = [""] * len(questions)
    if not pairs:
        return out
    scores = reranker.score([questions[i] for i, _, _ in pairs],
                            [table.sentences[sid].search_text for _, _, sid in pairs])
    for (i, chosen_score, sid), score in zip(pairs, scores):
        if max(-CROSS_CLIP, min(CROSS_CLIP, float(score))) >= chosen_score + margin:
            out[i] = table.sentences[sid].text
    return out
