from __future__ import annotations

from datetime import date

import pytest

from actions.dates import current_date, parse_date

MONDAY = date(2027, 2, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-15", date(2027, 1, 15)),
        ("2027-03-03T00:00:00.000+01:00", date(2027, 3, 3)),
        ("15/01/2027", date(2027, 1, 15)),
        ("03/04/2027", date(2027, 4, 3)),  # day first
        ("15.01.27", date(2027, 1, 15)),
        ("15/03", date(2027, 3, 15)),
        ("March 3", date(2027, 3, 3)),
        ("march 3rd", date(2027, 3, 3)),
        ("3rd of March", date(2027, 3, 3)),
        ("the 3rd of May", date(2027, 5, 3)),
        ("3 May", date(2027, 5, 3)),
        ("Mar 3rd 2027", date(2027, 3, 3)),
        ("Mar. 3rd, 2028", date(2028, 3, 3)),
        ("March 3, 2027", date(2027, 3, 3)),
        ("Dec 24th", date(2027, 12, 24)),
        ("the twenty-first of June", date(2027, 6, 21)),
        ("first of april", date(2027, 4, 1)),
        ("on the 3rd of March please", date(2027, 3, 3)),
        ("today", MONDAY),
        ("tomorrow", date(2027, 2, 2)),
        ("the day after tomorrow", date(2027, 2, 3)),
        ("day after tomorrow", date(2027, 2, 3)),
        ("Friday", date(2027, 2, 5)),
        ("this Friday", date(2027, 2, 5)),
        ("next Friday", date(2027, 2, 5)),
        ("on friday", date(2027, 2, 5)),
        ("Monday", date(2027, 2, 8)),  # a bare weekday is never today
        ("this monday", MONDAY),
        ("in 3 days", date(2027, 2, 4)),
        ("in two weeks", date(2027, 2, 15)),
        ("in a week", date(2027, 2, 8)),
        ("in a couple of days", date(2027, 2, 3)),
        ("this weekend", date(2027, 2, 6)),
        ("the weekend", date(2027, 2, 6)),
        ("next weekend", date(2027, 2, 13)),
    ],
)
def test_shapes(text: str, expected: date) -> None:
    assert parse_date(text, MONDAY) == expected


def test_date_without_year_already_past_means_next_year() -> None:
    assert parse_date("January 15", MONDAY) == date(2028, 1, 15)
    assert parse_date("Jan 31st", MONDAY) == date(2028, 1, 31)
    assert parse_date("February 1", MONDAY) == MONDAY  # today is not past
    assert parse_date("Feb 29", MONDAY) == date(2028, 2, 29)


def test_explicit_past_year_is_kept() -> None:
    # the caller decides whether a past date is acceptable
    assert parse_date("2026-12-24", MONDAY) == date(2026, 12, 24)


def test_relative_dates_cross_the_year() -> None:
    new_years_eve = date(2026, 12, 31)
    assert parse_date("tomorrow", new_years_eve) == date(2027, 1, 1)
    assert parse_date("in 3 days", new_years_eve) == date(2027, 1, 3)
    assert parse_date("this weekend", date(2027, 2, 7)) == date(2027, 2, 13)  # said on Sunday


def test_not_before_moves_yearless_dates_and_weekdays() -> None:
    checkin = date(2027, 12, 29)
    assert parse_date("Jan 3", MONDAY, not_before=checkin) == date(2028, 1, 3)
    assert parse_date("Friday", MONDAY, not_before=date(2027, 2, 10)) == date(2027, 2, 12)
    # relative words still count from today
    assert parse_date("tomorrow", MONDAY, not_before=checkin) == date(2027, 2, 2)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello",
        "soon",
        "March",
        "March 2027",
        "31/02/2027",
        "2027-13-01",
        "Feb 30",
        "SL-482913",
        "two guests",
    ],
)
def test_not_a_date(text: str) -> None:
    assert parse_date(text, MONDAY) is None


def test_non_text_is_not_a_date() -> None:
    assert parse_date(None, MONDAY) is None  # type: ignore[arg-type]
    assert parse_date(20270303, MONDAY) is None  # type: ignore[arg-type]


def test_current_date_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current_date() == MONDAY  # conftest sets XINGKONG_TODAY
    monkeypatch.setenv("XINGKONG_TODAY", "not a date")
    with pytest.raises(ValueError, match="XINGKONG_TODAY"):
        current_date()
    monkeypatch.delenv("XINGKONG_TODAY")
    assert current_date() == date.today()
