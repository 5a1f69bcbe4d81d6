"""Where Duckling's `time` mentions meet the learned entities (three DucklingEntityExtractor
options of Xingkong's own; all off by default, so Rasa's output stays Rasa's).

- `guard_times`: counts, ages and "for now" are not times. Duckling reads "kids aged 4 to 11" as 10:56
  ("4 minutes to 11"), "between 2 and 3 people" as 14:00-16:00 and "ages 8-12" as the 8th of
  December. A mention is implausible when it is a clock time read from a bare number (no am,
  pm, 12:30, o'clock, noon, evening, ... in it; "next weekend" has no number), or when it is
  only digits and connectors next to a count or age word (adults, guests, aged, years old,
  ...). Such a mention is re-read without its edge words ("a family of 4 from 20 to 23 July"
  keeps "from 20 to 23 July"); when no shorter reading is plausible, it is dropped.
- `align_spans`: a learned entity named in `align_entities` (the demo's `date`) that overlaps a
  Duckling `time` mention takes the mention's extent ("September 5" of "September 5 2027"
  becomes "September 5 2027"; a leading "on" or "from" is left out, a leading "the" unless
  the model took it), keeps its own name, role, group and extractor, gets Duckling's value object as
  `additional_info` (the normalised date, grain, from/to) and "DucklingEntityExtractor" in its
  `processors`; the mention itself is absorbed, so one date is one entity. Its `value` stays
  the text, as for every learned entity (and as Rasa's test stories annotate it). One mention
  over several learned entities (a stay "from April 2 to April 6") is re-read piece by piece,
  each entity's stretch up to the next one, for its extent and its own reading; the first one
  keeps the stay's reading (from/to), since "from the 2nd to the 5th of January 2028" read
  in pieces would put the 2nd in the coming January. An interval mention that holds more than the one
  learned entity over it ("from the 8th to the 11th" where the model saw only "the 8th") is
  left as it is: the entity and the `time` stay side by side, as without the option.
- `answer_span` (`requested_entities`, read with the dialogue context): when the form has just
  asked for a slot named there ("checkin_date: date") and the guest's whole message is one
  Duckling date ("14th of march 2027", "next friday"; a leading "on" or "from" and
  punctuation aside) in which the learned model found no entity, that mention is the slot's
  entity: `date` over the mention's words, its `value` the text (as for a learned date),
  Duckling's value object as `additional_info` and "DucklingEntityExtractor" in its
  `processors`. A short answer with nothing else in it is the one place where a missed date
  can be told from a time without guessing; anywhere else the mention stays a `time`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from nlu.types import Entity

DUCKLING = "DucklingEntityExtractor"
# Duckling over text[start:end] with the message's reference time; offsets in the whole text.
Reread = Callable[[int, int], list[Entity]]

_FINE_GRAINS = ("hour", "minute", "second")
_CLOCK_WORDS = re.compile(
    r"\d\s*[:.h]\s*\d|\d\s*(?:am|pm|a\.m\.|p\.m\.|h|hrs?)\b|\b(?:am|pm|o'?clock|noon|midday|"
    r"midnight|morning|afternoon|evening|night|tonight|hours?|minutes?|mins?|half|quarter|past|"
    r"now|lunch|dinner|breakfast)\b", re.IGNORECASE)
_NUMBER_WORDS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve"}
# words that may sit between the numbers of a bare reading ("4 to 11", "between 2 and 3")
_CONNECTORS = {"to", "and", "or", "from", "till", "until", "between", "at", "-", "/", ",",
               "the", "of", "by", "around", "about"}
_COUNT_BEFORE = {"aged", "age", "ages", "of", "are", "be", "party", "family", "group",
                 "kids", "children", "child", "sons", "daughters", "son", "daughter", "adults",
                 "we're", "were", "guests"}
_COUNT_AFTER = {"adults", "adult", "kids", "kid", "children", "child", "guests", "guest",
                "people", "persons", "person", "pax", "rooms", "room", "beds", "nights",
                "night", "years", "year", "yrs", "y/o", "yo", "of", "us", "babies", "infants",
                "teens", "teenagers", "travellers", "travelers"}
# leading words Duckling's grammar takes in ("on Friday", "from the 3rd") that a learned span
# usually leaves out
_PREPOSITIONS = frozenset({"on", "in", "from", "at", "until", "till", "til", "to", "between",
                           "by", "starting", "since", "for"})
_LEADING = _PREPOSITIONS | {"the"}
_WORD = re.compile(r"[\w'/]+|-")
# what may lie between two pieces of one date: "May 2, 2030", "the 5th of January 2028"
_GAP = re.compile(r"[\s,.]*(?:(?:of|the)\b[\s,.]*)*", re.IGNORECASE)
_MAX_REREADS = 16


def guard_times(text: str, found: list[Entity], reread: Reread) -> list[Entity]:
    """`found` (one message's Duckling entities) without implausible `time` mentions; each is
    replaced by its longest plausible shorter reading, if any, and what Duckling reads in the
    words that reading leaves out (a number), or else by what it reads in each word alone."""
    out: list[Entity] = []
    for mention in found:
        if mention.entity != "time" or is_plausible(text, mention):
            out.append(mention)
            continue
        out.extend(_shorter_reading(text, mention, reread))
    return sorted(out, key=lambda e: (e.start, e.end))


def is_plausible(text: str, mention: Entity) -> bool:
    """False for a clock time read from a bare number, digits next to a count or age word, or
    the "now" of "for now"."""
    body = text[mention.start:mention.end]
    words = [w.lower() for w in _WORD.findall(body)]
    if (_grain(mention.additional_info) in _FINE_GRAINS and not _CLOCK_WORDS.search(body)
            and any(w.isdigit() or w in _NUMBER_WORDS for w in words)):
        return False
    if words == ["now"] and _WORD.findall(text[:mention.start])[-1:] in (["for"], ["For"]):
        return False  # "keep it for now": an idiom, not the day
    bare = all(w.isdigit() or w in _CONNECTORS for w in words) and any(w.isdigit() for w in words)
    if not bare:
        return True
    before = [w.lower() for w in _WORD.findall(text[:mention.start])][-2:]
    after = [w.lower() for w in _WORD.findall(text[mention.end:])][:1]
    return not (set(before) & _COUNT_BEFORE or set(after) & _COUNT_AFTER)


def align_spans(text: str, learned: list[Entity], found: list[Entity], names: set[str],
                reread: Reread) -> tuple[list[Entity], list[Entity]]:
    """(learned entities, Duckling entities) after the learned entities named in `names` took
    the extent and value object of the `time` mentions over them; absorbed mentions are gone.
    Pieces of one date the model cut apart ("April 6" and "2031" of "April 6, 2031", "the 5th"
    and "January 2028") become one entity, with the role of the longest piece."""
    targets = sorted((e for e in learned if e.entity in names), key=lambda e: e.start)
    if not targets:
        return learned, found
    replaced: dict[int, Entity | None] = {}  # id of a learned entity -> its new self, or gone
    absorbed: set[int] = set()
    for index, mention in enumerate(found):
        if mention.entity != "time":
            continue
        groups = _one_date_each(text, [e for e in targets if _overlap(e, mention)], reread)
        if len(groups) == 1:
            if _is_interval(mention) and not _covers(text, groups[0], mention):
                continue
            replaced.update(_aligned(text, groups[0], mention))
            absorbed.add(index)
        elif len(groups) > 1:  # a stay: Duckling reads each date's stretch on its own
            pieces: dict[int, Entity | None] = {}
            for position, group in enumerate(groups):
                start = (min(group[0].start, _content_start(text, mention)) if position == 0
                         else group[0].start)
                end = groups[position + 1][0].start if position + 1 < len(groups) \
                    else mention.end
                own = [m for m in reread(start, end)
                       if m.entity == "time" and _overlap(m, group[0])
                       and not _is_interval(m) and is_plausible(text, m)]
                if own:
                    pieces.update(_aligned(text, group, own[0],
                                           mention if position == 0 else None))
            if sum(p is not None for p in pieces.values()) == len(groups):  # else as they were
                replaced.update(pieces)
                absorbed.add(index)
    if not replaced:
        return learned, found
    kept = [replaced.get(id(e), e) for e in learned]
    return ([e for e in kept if e is not None],
            [m for i, m in enumerate(found) if i not in absorbed])


def answer_span(text: str, learned: list[Entity], found: list[Entity], entity: str
                ) -> tuple[list[Entity], list[Entity]]:
    """(learned entities, Duckling entities) after a message that is one date as a whole became
    `entity` (the entity of the slot the form asked for); unchanged unless the message is one
    plausible `time` mention of a day or longer grain (not a stay), with no learned entity."""
    times = [m for m in found if m.entity == "time"]
    if learned or len(times) != 1:
        return learned, found
    mention = times[0]
    if (_is_interval(mention) or _grain(mention.additional_info) in _FINE_GRAINS
            or not is_plausible(text, mention)):
        return learned, found
    start = _content_start(text, mention, _PREPOSITIONS)
    before = [w.lower() for w in _WORD.findall(text[:start])]
    if any(w not in _PREPOSITIONS for w in before) or _WORD.search(text[mention.end:]):
        return learned, found
    span = text[start:mention.end]
    answer = Entity(start, mention.end, span, entity, confidence=mention.confidence,
                    extractor=DUCKLING, processors=(DUCKLING,), text=span,
                    additional_info=mention.additional_info)
    return [answer], [m for m in found if m is not mention]


def _one_date_each(text: str, inside: list[Entity], reread: Reread) -> list[list[Entity]]:
    """The learned entities inside one mention, grouped: neighbours with only spaces,
    punctuation, "of" or "the" between them ("the 5th" + "January 2028") that Duckling reads
    as one date together are one group."""
    groups: list[list[Entity]] = []
    for entity in inside:
        if groups and _GAP.fullmatch(text[groups[-1][-1].end:entity.start]):
            together = [m for m in reread(groups[-1][0].start, entity.end)
                        if m.entity == "time" and not _is_interval(m)
                        and m.start <= groups[-1][0].start and m.end >= entity.end]
            if together:
                groups[-1].append(entity)
                continue
        groups.append([entity])
    return groups


def _aligned(text: str, group: list[Entity], mention: Entity,
             stay: Entity | None = None) -> dict[int, Entity | None]:
    """The group's longest entity over the whole mention; the other pieces gone. It starts
    after a leading preposition ("on", "from": left out by most annotations, data/nlu.yml's
    included), at an article ("the 8th") only where the model put its start there. The first
    date of a `stay` keeps the stay's reading (from/to: a year said once holds for both)."""
    base = max(group, key=lambda e: e.end - e.start)
    after_preposition = _content_start(text, mention, _PREPOSITIONS)
    start = (after_preposition if group[0].start < after_preposition
             else min(group[0].start, _content_start(text, mention)))
    end = max(group[-1].end, mention.end)
    span = text[start:end]
    out: dict[int, Entity | None] = {id(e): None for e in group}
    out[id(base)] = dataclasses.replace(base, start=start, end=end, value=span, text=span,
                                        additional_info=(stay or mention).additional_info,
                                        processors=(*base.processors, DUCKLING))
    return out


def _content_start(text: str, mention: Entity, leading: frozenset[str] | None = None) -> int:
    """Where the mention's words start after the leading "on", "from", "the" ..."""
    for match in _WORD.finditer(text, mention.start, mention.end):
        if match.group().lower() not in (leading if leading is not None else _LEADING):
            return match.start()
    return mention.start


def _covers(text: str, group: list[Entity], mention: Entity) -> bool:
    return group[0].start <= _content_start(text, mention) and group[-1].end >= mention.end


def _shorter_reading(text: str, mention: Entity, reread: Reread) -> list[Entity]:
    """The longest plausible `time` reading of the mention without some of its edge words,
    plus Duckling's other entities (numbers) in the words it leaves out."""
    words = [m.span() for m in _WORD.finditer(text, mention.start, mention.end)]
    tries = 0
    for drop in range(1, len(words)):
        for left in range(drop + 1):
            first, last = left, len(words) - (drop - left)
            if first >= last or tries >= _MAX_REREADS:
                continue
            tries += 1
            start, end = words[first][0], words[last - 1][1]
            times = [m for m in reread(start, end)
                     if m.entity == "time" and is_plausible(text, m)]
            if times:
                best = max(times, key=lambda m: m.end - m.start)
                rest = [m for a, b in ((mention.start, best.start), (best.end, mention.end))
                        if text[a:b].strip() for m in reread(a, b) if m.entity != "time"]
                return [best, *rest]
    # no plausible time in it: what Duckling reads in each word alone ("4" and "11")
    return [m for start, end in words for m in reread(start, end) if m.entity != "time"]


def _grain(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("grain"):
        return str(info["grain"])
    for side in ("from", "to"):
        part = info.get(side)
        if isinstance(part, dict) and part.get("grain"):
            return str(part["grain"])
    return None


def _is_interval(mention: Entity) -> bool:
    info = mention.additional_info
    return isinstance(info, dict) and info.get("type") == "interval" \
        and bool((info.get("from") or {}).get("value")) and bool((info.get("to") or {})
                                                                  .get("value"))


def _overlap(a: Entity, b: Entity) -> bool:
    return a.start < b.end and b.start < a.end
