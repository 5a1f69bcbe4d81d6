"""Read slot values the way guests write them: guest counts, room types, names, emails."""

from __future__ import annotations

import difflib
import re
from datetime import date
from typing import Any

from actions.catalog import Catalog, normalize

_NUMBERS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
_NUMBER = re.compile(r"\b(\d+(?:[.,]\d+)?|" + "|".join(_NUMBERS) + r")\b")
_ALONE = re.compile(
    r"\b(?:just|only)\s+(?:me|myself|one|1)\b|\b(?:myself|alone|solo|on my own)\b|^(?:me|i)$"
)
_PAIR = re.compile(
    r"\b(?:a\s+)?couple\b|\bpair\b|\bboth of us\b|\bthe two of us\b"
    r"|\b(?:me|myself|i)\s+(?:and|\+|&)\s+(?:my\s+)?"
    r"(?:wife|husband|partner|girlfriend|boyfriend|fiance|fiancee|friend|mum|mom|dad"
    r"|mother|father|son|daughter|colleague|sister|brother|kid|child)\b"
)
_WITH_ME = re.compile(r"\b(?:me|myself|i)\s+(?:and|\+|&|plus)\s+(?:\S+\s+)?\S+")
_PARTY_WORDS = re.compile(r"\b(?:adults?|children|child|kids?|babies|baby|infants?|teens?)\b")

ROOM_SYNONYMS = {
    "double": (
        "king",
        "king size",
        "kingsize",
        "queen",
        "queen size",
        "double bed",
        "big bed",
        "one big bed",
        "matrimonial",
        "standard double",
    ),
    "twin": ("two beds", "2 beds", "twin beds", "two single beds", "2 single beds", "twins"),
    "single": ("single bed", "one bed", "1 bed", "just a bed", "solo"),
    "family": ("family room", "family suite", "room for a family", "for a family"),
    "suite": ("junior suite", "presidential", "presidential suite", "apartment"),
}
_ROOM_FILLER = frozenset({"a", "an", "the", "room", "rooms", "please", "one", "i", "want", "like"})

_EMAIL = re.compile(
    r"(?<![\w.+-])([A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*)"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,})(?![\w-])"
)
_NAME_PREFIX = re.compile(
    r"^(?:(?:my|the|his|her|our)\s+(?:full\s+)?name\s+is|name\s*[:=]?|i\s+am|i'm|im|"
    r"it's|it\s+is|its|this\s+is|call\s+me|book\s+it\s+under|under\s+the\s+name(?:\s+of)?|"
    r"under|for)(?:\s+|$)",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"[\s,.!]*(?:thanks|thank you|please)?[\s,.!]*$", re.IGNORECASE)
MAX_NAME_WORDS = 5
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def as_text(value: Any) -> str:
    """A slot value as text: the first item of a list, integers without ".0"."""
    if isinstance(value, list | tuple):
        value = next((item for item in value if item not in (None, "")), None)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_guests(value: Any) -> int | None:
    """How many guests: 2, 2.0, "2", "two of us", "a couple", "just me", "2 adults and a kid"."""
    if isinstance(value, list | tuple):
        value = as_text(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if float(value).is_integer() else None
    text = " ".join(str(value).lower().split())
    numbers = [_to_number(match) for match in _NUMBER.findall(text)]
    if any(number is None for number in numbers):
        return None  # "2.5 guests"
    counts = [number for number in numbers if number is not None]
    if counts:
        if _PARTY_WORDS.search(text):
            # "2 adults and 1 child", "2 adults and a kid"
            extra = re.findall(r"\ban?\s+(?:kid|child|baby|infant|teen)\b", text)
            return sum(counts) + len(extra)
        if _WITH_ME.search(text) and not re.search(r"\b(?:of us|in total|total)\b", text):
            return counts[0] + 1  # "me and 2 friends"
        return counts[0]
    if _ALONE.search(text):
        return 1
    if _PAIR.search(text):
        return 2
    return None


def _to_number(text: str) -> int | None:
    if text in _NUMBERS:
        return _NUMBERS[text]
    number = float(text.replace(",", "."))
    return int(number) if number.is_integer() else None


def parse_room_type(value: Any, catalog: Catalog) -> str | None:
    """The catalogue room type meant by ``value``: "Double", "king", "two beds", "suit"."""
    text = normalize(as_text(value))
    if not text:
        return None
    known = list(catalog.room_types)
    if text in known:
        return text
    for room, synonyms in ROOM_SYNONYMS.items():
        if room in known and any(re.search(rf"\b{re.escape(s)}\b", text) for s in synonyms):
            return room
    words = [word for word in text.split() if word not in _ROOM_FILLER]
    named = [word for word in words if word in known]
    if len(set(named)) == 1:
        return named[0]
    core = " ".join(words)
    close = difflib.get_close_matches(core, known, n=1, cutoff=0.75)
    return close[0] if close else None


def clean_guest_name(value: Any) -> str | None:
    """The guest's name from "my name is ana ruiz" -> "Ana Ruiz"; None if not a name."""
    text = " ".join(as_text(value).split())
    text = _NAME_PREFIX.sub("", text, count=1)
    text = _NAME_SUFFIX.sub("", text).strip(" ,.!'\"")
    if not text or not re.search(r"[^\W\d_]", text):
        return None
    if re.search(r"[\d@/\\<>{}\[\]#$%^*=|~]", text):
        return None
    if len(text.split()) > MAX_NAME_WORDS or len(text) > 80:
        return None
    if text == text.lower():
        text = " ".join(word[:1].upper() + word[1:] for word in text.split())
    return text


def find_email(value: Any) -> str | None:
    """The single email address in ``value`` (domain in lower case), else None."""
    matches = _EMAIL.findall(as_text(value))
    if len(matches) != 1:
        return None
    local, domain = matches[0]
    return f"{local}@{domain.lower()}"


def join_words(items: list[str], last: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    items = [str(item) for item in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {last} {items[-1]}"


def format_date(day: date) -> str:
    """2027-03-03 -> "Wed 3 March 2027" (English whatever the locale)."""
    return f"{WEEKDAY_NAMES[day.weekday()]} {day.day} {MONTH_NAMES[day.month - 1]} {day.year}"


def format_price(amount: float, currency: str) -> str:
    if float(amount).is_integer():
        return f"{int(amount)} {currency}"
    return f"{amount:.2f} {currency}"
