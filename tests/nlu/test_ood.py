"""The out-of-domain report: caught share, kept share, AUROC."""

from __future__ import annotations

import pytest

from nlu.ood import auroc, domain_score, ood_report
from nlu.types import Example, IntentScore, ParseResult


def _parse(text: str, *ranking: tuple[str, float], fallback: float | None = None) -> ParseResult:
    scores = tuple(IntentScore(n, c) for n, c in ranking)
    top = scores[0] if fallback is None or scores[0].confidence >= fallback else \
        IntentScore("nlu_fallback", fallback)
    return ParseResult(text, top, scores if top is scores[0] else (top, *scores))


def test_auroc_counts_pairs_and_ties() -> None:
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5], [0.5]) == 0.5
    assert auroc([], [0.3]) is None


def test_domain_score_ignores_out_of_scope_and_fallback() -> None:
    parse = _parse("x", ("out_of_scope", 0.7), ("greet", 0.2), ("book_room", 0.1))
    assert domain_score(parse, ("out_of_scope", "nlu_fallback")) == pytest.approx(0.2)


def test_report_shares() -> None:
    gold = [Example("hi", "greet"), Example("book", "book_room"), Example("meh", "out_of_scope")]
    parses_in = [_parse("hi", ("greet", 0.9), ("book_room", 0.1)),
                 _parse("book", ("book_room", 0.3), ("greet", 0.2), fallback=0.4),
                 _parse("meh", ("out_of_scope", 0.8), ("greet", 0.2))]
    parses_out = [_parse("sky", ("out_of_scope", 0.6), ("greet", 0.3)),
                  _parse("egg", ("greet", 0.35), ("book_room", 0.3), fallback=0.4),
                  _parse("tax", ("book_room", 0.5), ("greet", 0.4))]
    report = ood_report(gold, parses_in, parses_out)
    assert report["in_domain_messages"] == 2  # the out_of_scope example is not in-domain
    assert report["in_domain_kept"] == 0.5  # "book" fell below the threshold
    assert report["ood_caught"] == pytest.approx(2 / 3, abs=1e-4)
    assert report["ood_as_out_of_scope"] == pytest.approx(1 / 3, abs=1e-4)
    assert report["ood_below_threshold"] == pytest.approx(1 / 3, abs=1e-4)
    assert [m["text"] for m in report["ood_missed"]] == ["tax"]
    # in-domain scores 0.9, 0.3 vs OOD 0.3, 0.35, 0.5: 3 + 0.5 + 0 wins of 6
    assert report["auroc"] == pytest.approx(3.5 / 6, abs=1e-4)
