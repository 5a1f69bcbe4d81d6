"""The NLU evaluation's reports: the date-span exactness check (span_report)."""

from __future__ import annotations

from nlu.evaluation import entity_report, span_report
from nlu.types import Entity, Example, IntentScore, ParseResult


def at(text: str, span: str, name: str = "date", role: str | None = None) -> Entity:
    start = text.index(span)
    return Entity(start, start + len(span), span, name, role)


def parse(text: str, *entities: Entity) -> ParseResult:
    return ParseResult(text, IntentScore("book_room", 0.9), (IntentScore("book_room", 0.9),),
                       entities)


def test_span_report_counts_exact_split_partial_missed_and_extra() -> None:
    a = "from sept 30, 2027 until oct 3, 2027"
    b = "arriving the 8th of may please"
    c = "on friday then"
    examples = [Example(a, "book_room", (at(a, "sept 30, 2027", role="checkin"),
                                         at(a, "oct 3, 2027", role="checkout"))),
                Example(b, "inform", (at(b, "the 8th of may"),)),
                Example(c, "inform", (at(c, "friday"),))]
    parses = [parse(a, at(a, "sept 30", role="checkin"), at(a, "2027", role="checkin"),
                    at(a, "oct 3, 2027", role="checkin")),  # split, exact (role aside)
              parse(b, at(b, "8th of may"), at(b, "please")),  # partial, extra
              parse(c, at(c, "then", "city"))]  # missed; another type is no extra
    report = span_report(examples, parses)["date"]
    assert (report["exact"], report["split"], report["partial"], report["missed"],
            report["extra"], report["n"]) == (1, 1, 1, 1, 1, 4)
    assert report["exact_rate"] == 0.25


def test_entity_report_carries_the_span_check_and_skips_absent_types() -> None:
    text = "two nights in rome"
    examples = [Example(text, "inform", (at(text, "rome", "city"),))]
    report = entity_report(examples, [parse(text, at(text, "rome", "city"))])
    assert report["f1"] == 1.0
    assert report["spans"] == {}  # no date in gold or prediction: nothing to report
