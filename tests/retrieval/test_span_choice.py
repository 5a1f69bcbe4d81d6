"""The highlighted span: the answer kind the question asks for, a price with its unit, a long
span cut to its typed answer, a number with the word that bounds it."""

from retrieval.answer_types import typed_answers
from retrieval.reader import Span
from retrieval.span_choice import choose_span, whole, with_bound, with_unit

SENTENCE = "The garage is 350 metres away and costs 32 EUR per 24 hours."


def span(text: str, score: float, sentence: str = SENTENCE) -> Span:
    start = sentence.index(text)
    return Span(text, start, start + len(text), score, score / 2, score / 2)


def chosen(question: str, spans: list[Span], sentence: str = SENTENCE) -> str | None:
    at = choose_span(question, sentence, spans)
    return None if at is None else sentence[at[0]:at[1]]


def test_a_price_question_takes_the_best_price_span_over_a_better_scored_other_kind():
    spans = [span("350 metres", 9.0), span("24 hours", 8.0), span("32 EUR", 2.0)]
    assert chosen("how much is parking?", spans) == "32 EUR per 24 hours"


def test_a_question_that_asks_for_no_kind_keeps_the_reader_order():
    spans = [span("350 metres away", 9.0), span("32 EUR", 8.0)]
    assert chosen("where do i park my car", spans) == "350 metres away"


def test_the_reader_best_stays_when_no_span_is_of_the_asked_kind():
    spans = [span("350 metres", 9.0), span("garage", 1.0)]
    assert chosen("what time does the garage open?", spans) == "350 metres"


def test_no_span_no_highlight():
    assert choose_span("how much is parking?", SENTENCE, []) is None


def test_a_price_grows_over_its_unit_and_nothing_else_does():
    sentence = "Bikes cost 15 EUR a day, and a locker costs 2 EUR."
    bike = sentence.index("15 EUR")
    assert sentence[slice(*with_unit(sentence, bike, bike + 6))] == "15 EUR a day"
    locker = sentence.index("2 EUR")
    assert with_unit(sentence, locker, locker + 5) == (locker, locker + 5)
    metres = SENTENCE.index("350 metres")
    assert with_unit(SENTENCE, metres, metres + 10) == (metres, metres + 10)


def test_free_counts_as_a_price():
    kinds = {kind for kind, _, _ in typed_answers("Parking is free for hotel guests.")}
    assert "price" in kinds


def test_a_long_span_of_the_asked_kind_is_cut_to_its_typed_answer():
    sentence = ("Keeping the room until 14:00 costs 30 EUR, and leaving at any time up to 18:00 "
                "costs more.")
    long = span("30 EUR, and leaving at any time up to 18:00", 9.0, sentence)
    assert chosen("whats the fee for a late check-out", [long], sentence) == "30 EUR"
    short = span("costs 30 EUR", 9.0, sentence)  # short enough: kept as the reader marks it
    assert chosen("whats the fee for a late check-out", [short], sentence) == "costs 30 EUR"
    # a question that asks for no kind keeps the long span
    assert chosen("tell me about late check-out", [long], sentence) == long.text


def test_a_number_keeps_the_word_that_bounds_it():
    sentence = "The hall seats up to 250 people, and bags must be collected by 22:00."
    assert chosen("how many people fit", [span("250 people", 5.0, sentence)],
                  sentence) == "up to 250 people"
    assert chosen("when must i collect my bags", [span("22:00", 5.0, sentence)],
                  sentence) == "by 22:00"
    hall = sentence.index("The hall")
    assert with_bound(sentence, hall, hall + 8) == (hall, hall + 8)  # no number: unchanged
    free = "Entry is free from Monday."
    at = free.index("Monday")
    assert with_bound(free, at, at + 6) == (at, at + 6)  # "from" bounds no number here


def test_a_span_covers_whole_words_and_numbers() -> None:
    sentence = "A free night in Rome costs 40,000 points; the bar closes at 22:00 sharp."
    tail = sentence.index("000 points")
    assert chosen("how many points for a free night", [
        Span("000 points", tail, tail + 10, 5.0, 2.5, 2.5)], sentence) == "40,000 points"
    minutes = sentence.index("00 sharp")
    assert chosen("when does the bar close", [
        Span("00", minutes, minutes + 2, 5.0, 2.5, 2.5)], sentence) == "22:00"
    word = sentence.index("ome costs")
    assert whole(sentence, word, word + 3) == (word - 1, word + 3)  # "ome" -> "Rome"
    points = sentence.index("points")
    assert whole(sentence, points, points + 6) == (points, points + 6)  # already whole
    assert whole("a, b", 0, 1) == (0, 1)  # a comma between words joins nothing
