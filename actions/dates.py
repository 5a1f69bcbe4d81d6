"""Turn what a guest writes about a date into a ``datetime.date``.

Understood shapes (case-insensitive, anywhere in the text, first match wins):
ISO "2027-01-15" (a time part is ignored), day-first "15/01/2027" or "15.01.27",
"March 3", "3rd of March", "Mar 3rd 2027", "Dec 24th", "today", "tomorrow",
"the day after tomorrow", "Friday", "this Friday", "next Friday", "in 3 days",
"in two weeks", "this weekend" (Saturday) and "next weekend".

Dates without a year, and bare weekdays, mean the first such day on or after
``not_before`` (by default ``today``): "March 3" said in April means next year.

`said_dates` reads the dates the NLU's DucklingEntityExtractor already normalised; the
hand parsing above is the fallback for values without Duckling.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

TODAY_ENV = "XINGKONG_TODAY"

_MONTH_NAMES = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
_WEEKDAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_ORDINALS = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
]

MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
MONTHS |= {name[:3]: number for name, number in list(MONTHS.items())} | {"sept": 9}
WEEKDAYS = {name: number for number, name in enumerate(_WEEKDAY_NAMES)}
WEEKDAYS |= {name[:3]: number for name, number in list(WEEKDAYS.items())}
WEEKDAYS |= {"tues": 1, "thur": 3, "thurs": 3}
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "a couple of": 2, "a few": 3,
}  # fmt: skip
ORDINAL_WORDS = {name: number for number, name in enumerate(_ORDINALS, 1)}
ORDINAL_WORDS |= {f"twenty {name}": 20 + n for n, name in enumerate(_ORDINALS[:9], 1)}
ORDINAL_WORDS |= {"thirtieth": 30, "thirty first": 31}

_MONTH = "(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORD = "|".join(sorted(ORDINAL_WORDS, key=len, reverse=True))
_DAY = rf"(?P<day>\d{{1,2}}(?:st|nd|rd|th)?|{_ORD})"
_YEAR = r"(?:,?\s*(?P<year>\d{4}))?"
_WEEKDAY = "(?P<weekday>" + "|".join(sorted(WEEKDAYS, key=len, reverse=True)) + ")"
_AMOUNT = "(?P<amount>\\d+|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"

_ISO = re.compile(r"\b(?P<year>\d{4})[-/.](?P<month>\d{1,2})[-/.](?P<day>\d{1,2})(?![\d])")
_NUMERIC = re.compile(
    r"\b(?P<day>\d{1,2})[/.-](?P<month>\d{1,2})(?:[/.-](?P<year>\d{4}|\d{2}))?(?![\d/.-]*\d)"
)
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}\b{_YEAR}")
_DAY_MONTH = re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH}{_YEAR}")
_RELATIVE = re.compile(rf"\bin\s+{_AMOUNT}\s+(?P<unit>days?|weeks?)\b")
_WEEKDAY_PHRASE = re.compile(rf"\b(?:(?P<which>this|next|coming|on)\s+)?{_WEEKDAY}\b")
_WEEKEND = re.compile(r"\b(?P<which>this|next|the)?\s*weekend\b")


def current_date() -> date:
    """Today, or the ISO date in XINGKONG_TODAY (for demos and tests)."""
    fixed = os.environ.get(TODAY_ENV, "").strip()
    if fixed:
        try:
            return date.fromisoformat(fixed)
        except ValueError:
            raise ValueError(f"{TODAY_ENV} must be an ISO date, not {fixed!r}") from None
    return date.today()


def parse_date(text: str, today: date, not_before: date | None = None) -> date | None:
    """The date meant by ``text`` as seen on ``today``; None when it is not a date."""
    if not isinstance(text, str):
        return None
    clean = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text.lower())
    clean = " ".join(clean.replace(",", " , ").split()).replace(" , ", ", ")
    if not clean:
        return None
    floor = not_before or today
    found, day = _parse_absolute(clean, floor)
    return day if found else _parse_relative(clean, today, floor)


def _parse_absolute(text: str, floor: date) -> tuple[bool, date | None]:
    """(whether text holds a calendar date shape, that date or None if it is invalid)."""
    match = _ISO.search(text)
    if match:
        return True, _make(int(match["year"]), int(match["month"]), int(match["day"]))
    match = _NUMERIC.search(text)
    if match:
        day, month, year = int(match["day"]), int(match["month"]), match["year"]
        if year:
            return True, _make(int(year) + (2000 if len(year) == 2 else 0), month, day)
        return True, _next_yearless(month, day, floor)
    found = [m for m in (_MONTH_DAY.search(text), _DAY_MONTH.search(text)) if m]
    if found:
        match = min(found, key=lambda m: m.start())
        month, day = MONTHS[match["month"]], _day_number(match["day"])
        if match["year"]:
            return True, _make(int(match["year"]), month, day)
        return True, _next_yearless(month, day, floor)
    return False, None


def _parse_relative(text: str, today: date, floor: date) -> date | None:
    if re.search(r"\bday after tomorrow\b", text):
        return today + timedelta(days=2)
    if re.search(r"\b(?:tomorrow|tmrw|tmr)\b", text):
        return today + timedelta(days=1)
    if re.search(r"\b(?:today|tonight)\b", text):
        return today
    match = _RELATIVE.search(text)
    if match:
        amount = match["amount"]
        count = int(amount) if amount.isdigit() else NUMBER_WORDS[amount]
        days = count * 7 if match["unit"].startswith("week") else count
        return today + timedelta(days=days)
    match = _WEEKEND.search(text)
    if match:
        saturday = today + timedelta(days=(5 - today.weekday()) % 7)
        return saturday + timedelta(days=7) if match["which"] == "next" else saturday
    match = _WEEKDAY_PHRASE.search(text)
    if match:
        target = WEEKDAYS[match["weekday"]]
        if match["which"] == "this":
            # "this Friday" can be today
            return floor + timedelta(days=(target - floor.weekday()) % 7)
        # "Friday" / "next Friday": the first one after today (or on/after floor)
        start = floor if floor > today else today + timedelta(days=1)
        return start + timedelta(days=(target - start.weekday()) % 7)
    return None


def _day_number(text: str) -> int:
    if text in ORDINAL_WORDS:
        return ORDINAL_WORDS[text]
    return int(re.sub(r"\D", "", text))


def _make(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_yearless(month: int, day: int, floor: date) -> date | None:
    # the first such day on or after floor; Feb 29 may be a few years away
    for year in range(floor.year, floor.year + 9):
        found = _make(year, month, day)
        if found and found >= floor:
            return found
    return None


# ------------------------------------------------------------------ dates Duckling read
# The NLU's DucklingEntityExtractor (Rasa's entity shape) has already turned what the guest
# wrote into dates: entity "time", additional_info with grain, from/to for a stay, and
# `values`, the next occurrences of a date said without a year; with `align_entities` a
# learned `date` entity carries that reading itself. The forms read those from the
# tracker's latest message (plain dicts, so this works on a rasa-sdk action server too) and
# parse text by hand only when no Duckling date is there.

DUCKLING = "DucklingEntityExtractor"
# "tomorrow at 3pm" is a day; minutes and seconds are "in 4" from "checking in 4th of August"
_DAY_GRAINS = ("day", "hour")
_NIGHTS = re.compile(rf"\b{_AMOUNT}\s+nights?\b")


@dataclass(frozen=True)
class SaidDate:
    """One date or stay in the message: `options` are (first day, check-out day or None)
    pairs, the first one Duckling's reading, the others later occurrences of the same words."""

    start: int
    end: int
    options: tuple[tuple[date, date | None], ...]

    @property
    def is_stay(self) -> bool:
        return self.options[0][1] is not None

    def first_on_or_after(self, floor: date) -> tuple[date, date | None]:
        return next((o for o in self.options if o[0] >= floor), self.options[0])


def said_dates(message: Mapping[str, Any] | None) -> list[SaidDate]:
    """Dates (day grain or finer) and stays Duckling found in the message, in text order."""
    out = []
    for entity in (message or {}).get("entities") or []:
        if not _read_by_duckling(entity):
            continue
        info = entity.get("additional_info") or {}
        options = [o for o in map(_option, info.get("values") or [info]) if o is not None]
        if options:
            out.append(SaidDate(int(entity.get("start", 0)), int(entity.get("end", 0)),
                                tuple(options)))
    return sorted(out, key=lambda d: d.start)


_FILLER_WORDS = {"on", "from", "the", "for", "hmm", "um", "uh", "erm", "say", "maybe", "please",
                 "pls", "ok", "okay", "i", "think"}


def only_a_date(message: Mapping[str, Any] | None) -> bool:
    """The message is one date (not a stay) and filler words: "the 14th of may",
    "hmm may 14th i think"."""
    dates = said_dates(message)
    if len(dates) != 1 or dates[0].is_stay:
        return False
    text = str((message or {}).get("text") or "")
    rest = (text[:dates[0].start] + " " + text[dates[0].end:]).lower()
    return all(w in _FILLER_WORDS for w in re.findall(r"[a-z']+", rest))


def _read_by_duckling(entity: Mapping[str, Any]) -> bool:
    """Duckling's own `time` entity, or one that took a Duckling reading over
    (DucklingEntityExtractor's `align_entities` and `requested_entities`:
    "DucklingEntityExtractor" in processors)."""
    if DUCKLING in (entity.get("processors") or ()):
        return bool(entity.get("additional_info"))
    return entity.get("extractor") == DUCKLING and entity.get("entity") == "time"


def nights_said(text: str) -> int | None:
    """"for 3 nights" -> 3."""
    match = _NIGHTS.search(text.lower())
    if not match:
        return None
    amount = match["amount"]
    return int(amount) if amount.isdigit() else NUMBER_WORDS[amount]


def _option(value: Mapping[str, Any]) -> tuple[date, date | None] | None:
    if value.get("type") == "interval" or "from" in value:
        start = (value.get("from") or {})
        if start.get("grain") not in _DAY_GRAINS and start.get("grain") != "week":
            return None
        first = _day(start.get("value"))
        if first is None:
            return None
        # Duckling's "to" is exclusive (the 11th said -> the 12th at 00:00): the day before
        # the end instant is the last day named, the check-out day.
        end = _instant((value.get("to") or {}).get("value"))
        return first, (end - timedelta(seconds=1)).date() if end else None
    if value.get("grain") not in _DAY_GRAINS:
        return None
    first = _day(value.get("value"))
    return (first, None) if first else None


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _instant(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
