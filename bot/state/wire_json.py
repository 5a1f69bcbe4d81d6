"""JSON as the engine accepts it from outside: request bodies and `/intent{...}` payloads.

Plain ``json.loads`` takes documents that later break a conversation: ``1e999`` becomes
infinity (which no JSON encoder writes back, so the stored tracker can never be rendered
again), ``NaN``/``Infinity`` are extensions, and nesting deep enough to exhaust the recursion
limit crashes the parser. ``loads`` refuses all of them with ``PayloadError`` naming the
problem, never the value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from bot.errors import PayloadError

MAX_DEPTH = 64  # far beyond any Rasa payload; far below the interpreter's recursion limit
MAX_INT_DIGITS = 64  # bigger integers are not ids or amounts but attempts to overflow floats
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def loads(text: str | bytes, what: str = "The request body",
          field: str | None = None) -> Any:
    """``text`` parsed as JSON; PayloadError when it is not JSON, nests deeper than
    ``MAX_DEPTH``, or holds a non-finite number or an integer over ``MAX_INT_DIGITS`` digits."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError(f"{what} is not UTF-8 text.", field) from None
    if nesting_depth(text) > MAX_DEPTH:
        raise PayloadError(f"{what} nests deeper than {MAX_DEPTH} levels.", field)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          parse_int=_bounded_int)
    except _Refused as exc:
        raise PayloadError(f"{what} {exc}.", field) from None
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise PayloadError(f"{what} is not valid JSON.", field) from None


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text`` (strings skipped)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def dumps(value: Any) -> str:
    """``value`` as strict JSON (ValueError for non-finite numbers, TypeError for other
    types), so nothing is stored that cannot be read back and sent."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


class _Refused(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Refused(f"holds {name}, which is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("holds a number too large for a float")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"holds an integer with more than {MAX_INT_DIGITS} digits")
    return int(text)
