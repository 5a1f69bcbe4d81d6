"""DucklingEntityExtractor: dates, numbers, emails, ... normalised by Duckling, as Rasa does.

Rasa's config keys and output. With `url` it POSTs the message to a Duckling server's
`/parse` (form fields text, locale, tz, dims, reftime in ms), exactly like Rasa's component;
`RASA_DUCKLING_HTTP_URL` overrides `url` as in Rasa. Without a `url` it runs Duckling's Haskell
core in-process through the `pyduckling-native-phihos` wheel, so no server is needed.

Three keys of Xingkong's own, all off by default (nlu/duckling_spans.py): `guard_times: true`
drops or shortens `time` mentions that are counts or ages ("kids aged 4 to 11"),
`align_entities: [date]` lets a learned entity over a `time` mention take its whole extent and
value object instead of standing next to it, and `requested_entities: {checkin_date: date}`
makes a message that is only a date the entity of the slot the form just asked for, and
with `{guests: number}` the one number Duckling reads in the answer to that question the
count, tagged by the model or not (the interpreter applies the last two; the last one reads
the dialogue context).

An unreachable server logs one warning and the in-process Duckling answers instead; the
server is tried again after `RETRY_SERVER_S`.

Each match becomes an entity in Rasa's shape: entity = the dimension ("time", "number",
"email"), value (an ISO string, a number, or {"from", "to"} for an interval), start/end/text,
confidence 1.0, additional_info = Duckling's own value object (grain, from/to, values: the
next occurrences of a date said without a year), extractor "DucklingEntityExtractor".
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from nlu.duckling_spans import Reread, guard_times
from nlu.errors import NLUModelError
from nlu.types import Entity

logger = logging.getLogger(__name__)

EXTRACTOR = "DucklingEntityExtractor"
URL_ENV = "RASA_DUCKLING_HTTP_URL"
RETRY_SERVER_S = 60.0
CONFIG_KEYS = ("url", "dimensions", "locale", "timezone", "timeout",
               "guard_times", "align_entities", "requested_entities")  # the last 3: Xingkong's
# Dimensions the in-process core knows (Duckling's own names, as the server takes them).
DIMENSIONS = ("amount-of-money", "credit-card-number", "distance", "duration", "email",
              "number", "ordinal", "phone-number", "quantity", "temperature", "time", "time-grain",
              "url", "volume")


@dataclass(frozen=True, slots=True)
class DucklingConfig:
    """config.yml keys of Rasa's DucklingEntityExtractor. `dimensions` None: all of them;
    `locale` None: "<language>_<LANGUAGE>" as Rasa builds it; `timezone` None: UTC
    (Duckling's server default); `timeout` in seconds for the HTTP call. `guard_times`,
    `align_entities` and `requested_entities` ({slot the form asks for: the entity a
    whole-message date becomes}): nlu/duckling_spans.py (off by default: Rasa's output)."""

    url: str | None = None
    dimensions: tuple[str, ...] | None = None
    locale: str | None = None
    timezone: str | None = None
    timeout: float = 3.0
    language: str = "en"
    guard_times: bool = False
    align_entities: tuple[str, ...] = ()
    requested_entities: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pairs = self.requested_entities
        if not isinstance(pairs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in pairs.items()):
            raise NLUModelError("DucklingEntityExtractor: requested_entities must map slot "
                                "names to entity names, like {checkin_date: date} (config.yml), "
                                f"got {pairs!r}.")
        if self.dimensions is not None:
            unknown = [d for d in self.dimensions if d not in DIMENSIONS]
            if unknown:
                raise NLUModelError(
                    f"DucklingEntityExtractor: unknown dimension(s) {', '.join(unknown)} "
                    f"(config.yml, key dimensions). Valid: {', '.join(DIMENSIONS)}.")
        if not self.timeout > 0:
            raise NLUModelError(f"DucklingEntityExtractor: timeout must be > 0 seconds "
                                f"(config.yml, key timeout), got {self.timeout!r}.")

    @classmethod
    def from_params(cls, params: dict[str, Any], language: str = "en") -> DucklingConfig:
        """The component's config.yml entry (without `name`); unknown keys are an error."""
        unknown = sorted(set(params) - set(CONFIG_KEYS))
        if unknown:
            raise NLUModelError(f"DucklingEntityExtractor has no key(s) {', '.join(unknown)} "
                                f"(config.yml). Valid: {', '.join(CONFIG_KEYS)}.")
        dims = params.get("dimensions")
        if dims is not None and (not isinstance(dims, (list, tuple))
                                 or not all(isinstance(d, str) for d in dims)):
            raise NLUModelError("DucklingEntityExtractor: dimensions must be a list of names "
                                f"like [time, number] (config.yml), got {dims!r}.")
        timeout = params.get("timeout", 3)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise NLUModelError("DucklingEntityExtractor: timeout must be a number of seconds "
                                f"(config.yml), got {timeout!r}.")
        guard = params.get("guard_times", False)
        if not isinstance(guard, bool):
            raise NLUModelError("DucklingEntityExtractor: guard_times must be true or false "
                                f"(config.yml), got {guard!r}.")
        align = params.get("align_entities") or []
        if not isinstance(align, (list, tuple)) or not all(isinstance(a, str) for a in align):
            raise NLUModelError("DucklingEntityExtractor: align_entities must be a list of "
                                f"entity names like [date] (config.yml), got {align!r}.")
        return cls(url=params.get("url"), dimensions=tuple(dims) if dims else None,
                   locale=params.get("locale"), timezone=params.get("timezone"),
                   timeout=float(timeout), language=language or "en", guard_times=guard,
                   align_entities=tuple(align),
                   requested_entities=params.get("requested_entities") or {})

    @property
    def resolved_locale(self) -> str:
        return self.locale or f"{self.language}_{self.language.upper()}"


class DucklingEntityExtractor:
    """Not trainable: it is built from its config. `extract(text, reference_time)`."""

    def __init__(self, config: DucklingConfig | None = None) -> None:
        self.config = config or DucklingConfig()
        self._local: _LocalDuckling | None = None
        self._server_down_until = 0.0
        self._lock = threading.Lock()

    @property
    def url(self) -> str | None:
        return os.environ.get(URL_ENV) or self.config.url

    def extract(self, text: str, reference_time: float | None = None) -> list[Entity]:
        """Entities for `text`; `reference_time` in seconds since the epoch (None: now)."""
        found = self._read(text, reference_time)
        if self.config.guard_times and found:
            found = guard_times(text, found, self.reread(text, reference_time))
        return found

    def reread(self, text: str, reference_time: float | None) -> Reread:
        """Duckling over a stretch of `text` (same reference time), offsets in all of `text`."""
        def read(start: int, end: int) -> list[Entity]:
            return [dataclasses.replace(e, start=e.start + start, end=e.end + start)
                    for e in self._read(text[start:end], reference_time)]
        return read

    def _read(self, text: str, reference_time: float | None) -> list[Entity]:
        if not text.strip():
            return []
        matches = None
        url = self.url
        if url and time.monotonic() >= self._server_down_until:
            matches = self._ask_server(url, text, reference_time)
        if matches is None:
            matches = self._local_duckling().parse(text, reference_time)
        return to_entities(matches, self.config.dimensions)

    def extract_batch(self, texts: list[str],
                      reference_times: list[float | None] | None = None) -> list[list[Entity]]:
        times = reference_times or [None] * len(texts)
        return [self.extract(t, r) for t, r in zip(texts, times)]

    def _ask_server(self, url: str, text: str, reference_time: float | None) -> list[Any] | None:
        payload = {"text": text, "locale": self.config.resolved_locale,
                   "tz": self.config.timezone or "UTC",
                   "reftime": int((reference_time if reference_time is not None
                                   else time.time()) * 1000)}
        if self.config.dimensions:
            payload["dims"] = json.dumps(list(self.config.dimensions))
        request = urllib.request.Request(
            url.rstrip("/") + "/parse", data=urllib.parse.urlencode(payload).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
                matches = json.loads(response.read().decode("utf-8"))
            if not isinstance(matches, list):
                raise ValueError(f"expected a JSON list, got {type(matches).__name__}")
            return matches
        except (OSError, ValueError) as exc:  # URLError, timeouts and bad JSON alike
            with self._lock:
                self._server_down_until = time.monotonic() + RETRY_SERVER_S
            logger.warning("duckling.server_unreachable url=%s error=%s effect=in-process "
                           "Duckling for %.0fs, then the server is tried again. Fix: start the "
                           "server (docker run -p 8000:8000 rasa/duckling) or remove `url`.",
                           url, exc, RETRY_SERVER_S)
            return None

    def _local_duckling(self) -> _LocalDuckling:
        with self._lock:
            if self._local is None:
                self._local = _LocalDuckling(self.config)
            return self._local


class _LocalDuckling:
    """Duckling's core in this process (pyduckling-native-phihos)."""

    def __init__(self, config: DucklingConfig) -> None:
        try:
            import duckling
        except ImportError as exc:
            raise NLUModelError(
                "DucklingEntityExtractor without a `url` runs Duckling in-process and needs "
                "the pyduckling-native-phihos wheel: pip install pyduckling-native-phihos. "
                "Or set `url` to a Duckling server.") from exc
        self._duckling = duckling
        self._zones = duckling.load_time_zones("/usr/share/zoneinfo")
        self._timezone = config.timezone or "UTC"
        language, _, country = config.resolved_locale.partition("_")
        lang = duckling.parse_lang(language.upper())
        try:
            self._locale = duckling.parse_locale(config.resolved_locale.upper(),
                                                 duckling.default_locale_lang(lang))
        except Exception:  # noqa: BLE001 - the wheel raises its own types; Rasa's "en_EN" too
            self._locale = duckling.default_locale_lang(lang)
        dims = list(config.dimensions or DIMENSIONS)
        self._dims = duckling.parse_dimensions(dims)

    def parse(self, text: str, reference_time: float | None) -> list[Any]:
        seconds = int(reference_time if reference_time is not None
                      else datetime.now(timezone.utc).timestamp())
        ref = self._duckling.parse_ref_time(self._zones, self._timezone, seconds)
        context = self._duckling.Context(ref, self._locale)
        return list(self._duckling.parse(text, context, self._dims, False))


def to_entities(matches: list[Any], dimensions: tuple[str, ...] | None) -> list[Entity]:
    """Duckling's matches in Rasa's entity shape, only the configured dimensions."""
    out = []
    for match in matches:
        dim = match.get("dim")
        if dimensions and dim not in dimensions:
            continue
        info = match.get("value") or {}
        if info.get("type") == "interval":
            value: Any = {"to": (info.get("to") or {}).get("value"),
                          "from": (info.get("from") or {}).get("value")}
        else:
            value = info.get("value")
        out.append(Entity(int(match["start"]), int(match["end"]), value, dim, confidence=1.0,
                          extractor=EXTRACTOR, text=match.get("body", match.get("text")),
                          additional_info=info))
    return out
