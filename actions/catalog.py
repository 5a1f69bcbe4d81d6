"""The Starlight Hotels catalogue: hotels, cities, room types and prices.

The catalogue lives in a YAML file (``data/hotels.yml`` by default, or the path in the
``XINGKONG_HOTELS`` environment variable). It is read lazily and cached until the file
changes on disk.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)

HOTELS_ENV = "XINGKONG_HOTELS"
DEFAULT_HOTELS_PATH = Path("data") / "hotels.yml"

# words that say nothing about which hotel is meant
_FILLER_WORDS = frozenset({"the", "hotel", "in", "at", "a", "an"})
_FUZZY_CUTOFF = 0.75


class CatalogError(Exception):
    """The catalogue file is missing or malformed."""


@dataclass(frozen=True, slots=True)
class RoomType:
    name: str
    max_guests: int
    description: str


@dataclass(frozen=True, slots=True)
class Hotel:
    name: str
    city: str
    country: str
    address: str
    phone: str
    stars: int
    # room type -> nightly price
    rooms: dict[str, float] = field(hash=False)

    def offers(self, room_type: str) -> bool:
        return room_type in self.rooms

    def price(self, room_type: str) -> float:
        try:
            return self.rooms[room_type]
        except KeyError:
            raise CatalogError(f"{self.name} has no {room_type} rooms") from None


@dataclass(frozen=True, slots=True)
class Catalog:
    currency: str
    room_types: dict[str, RoomType] = field(hash=False)
    hotels: tuple[Hotel, ...]

    def cities(self) -> list[str]:
        """Cities with at least one hotel, sorted."""
        return sorted({hotel.city for hotel in self.hotels})

    def hotels_in(self, city: str) -> list[Hotel]:
        key = normalize(city)
        return [hotel for hotel in self.hotels if normalize(hotel.city) == key]

    def hotel(self, name: str) -> Hotel | None:
        """The hotel with exactly this name (case-insensitive)."""
        key = normalize(name)
        for hotel in self.hotels:
            if normalize(hotel.name) == key:
                return hotel
        return None

    def room_type(self, name: str) -> RoomType | None:
        return self.room_types.get(name.strip().lower())

    def find_city(self, text: str) -> str | None:
        """The catalogue city meant by ``text``, allowing case and small typos."""
        query = normalize(text)
        if not query:
            return None
        by_key = {normalize(city): city for city in self.cities()}
        if query in by_key:
            return by_key[query]
        # "Lisbon, Portugal" or "lisbon portugal"
        for part in query.split():
            if part in by_key:
                return by_key[part]
        close = difflib.get_close_matches(query, list(by_key), n=1, cutoff=_FUZZY_CUTOFF)
        return by_key[close[0]] if close else None

    def hotels_like(self, text: str) -> list[Hotel]:
        """Hotels whose names hold every word of ``text`` ("starlight": all Starlight ones)."""
        words = set(_hotel_key(text).split())
        if not words:
            return []
        return [hotel for hotel in self.hotels if words <= set(_hotel_key(hotel.name).split())]

    def find_hotel(self, text: str, city: str | None = None) -> Hotel | None:
        """The hotel meant by ``text``, allowing case, typos and partial names.

        ``city`` only breaks ties between partial matches ("Starlight" in Paris); it
        never turns a hotel of another city into a match.
        """
        query = _hotel_key(text)
        if not query:
            return None
        keys = {_hotel_key(hotel.name): hotel for hotel in self.hotels}
        if query in keys:
            return keys[query]
        # a bare city name is not a hotel name
        if query in {normalize(c) for c in self.cities()}:
            return None
        partial = self.hotels_like(text)
        if len(partial) > 1 and city:
            partial = [hotel for hotel in partial if normalize(hotel.city) == normalize(city)]
        if len(partial) == 1:
            return partial[0]
        if partial:
            return None
        close = difflib.get_close_matches(query, list(keys), n=2, cutoff=_FUZZY_CUTOFF)
        if not close:
            return None
        if len(close) == 2:
            first = difflib.SequenceMatcher(None, query, close[0]).ratio()
            second = difflib.SequenceMatcher(None, query, close[1]).ratio()
            if first - second < 0.05:
                return None
        return keys[close[0]]


def normalize(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    plain = re.sub(r"[^\w\s]", " ", plain.lower()).replace("_", " ")
    return " ".join(plain.split())


def _hotel_key(text: str) -> str:
    words = normalize(text).split()
    return " ".join(word for word in words if word not in _FILLER_WORDS)


def catalog_path() -> Path:
    return Path(os.environ.get(HOTELS_ENV) or DEFAULT_HOTELS_PATH)


_cache_lock = threading.Lock()
_cache: dict[Path, tuple[int, Catalog]] = {}


def get_catalog(path: str | Path | None = None) -> Catalog:
    """The catalogue at ``path`` (default: ``catalog_path()``), cached by file mtime."""
    resolved = Path(path) if path is not None else catalog_path()
    try:
        stamp = resolved.stat().st_mtime_ns
    except OSError as exc:
        raise CatalogError(
            f"hotel catalogue not found at {resolved} (set {HOTELS_ENV} to its path)"
        ) from exc
    key = resolved.resolve()
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
    catalog = load_catalog(resolved)
    with _cache_lock:
        _cache[key] = (stamp, catalog)
    return catalog


def load_catalog(path: str | Path) -> Catalog:
    """Read and check a catalogue file; raise CatalogError on any problem."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read hotel catalogue {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"hotel catalogue {path} is not valid YAML: {exc}") from exc
    try:
        catalog = _parse(raw)
    except CatalogError as exc:
        raise CatalogError(f"hotel catalogue {path}: {exc}") from exc
    logger.debug("loaded %d hotels from %s", len(catalog.hotels), path)
    return catalog


def _parse(raw: Any) -> Catalog:
    if not isinstance(raw, dict):
        raise CatalogError("the top level must be a mapping")
    room_types_raw = _require(raw, "room_types", dict, "catalogue")
    room_types: dict[str, RoomType] = {}
    for name, spec in room_types_raw.items():
        where = f"room type {name!r}"
        if not isinstance(spec, dict):
            raise CatalogError(f"{where} must be a mapping")
        max_guests = _require(spec, "max_guests", int, where)
        if max_guests < 1:
            raise CatalogError(f"{where}: max_guests must be at least 1")
        room_types[str(name)] = RoomType(
            name=str(name), max_guests=max_guests, description=str(spec.get("description", ""))
        )
    hotels_raw = _require(raw, "hotels", list, "catalogue")
    if not hotels_raw:
        raise CatalogError("the hotel list is empty")
    hotels = tuple(_parse_hotel(item, room_types, index) for index, item in enumerate(hotels_raw))
    names = [normalize(hotel.name) for hotel in hotels]
    if len(set(names)) != len(names):
        raise CatalogError("hotel names must be unique")
    return Catalog(currency=str(raw.get("currency", "EUR")), room_types=room_types, hotels=hotels)


def _parse_hotel(item: Any, room_types: dict[str, RoomType], index: int) -> Hotel:
    where = f"hotel #{index + 1}"
    if not isinstance(item, dict):
        raise CatalogError(f"{where} must be a mapping")
    name = _require(item, "name", str, where)
    where = f"hotel {name!r}"
    rooms_raw = _require(item, "rooms", dict, where)
    rooms: dict[str, float] = {}
    for room, price in rooms_raw.items():
        if room not in room_types:
            raise CatalogError(f"{where}: unknown room type {room!r}")
        if isinstance(price, bool) or not isinstance(price, int | float) or price <= 0:
            raise CatalogError(f"{where}: price of {room!r} must be a positive number")
        rooms[str(room)] = float(price)
    if not rooms:
        raise CatalogError(f"{where}: no rooms")
    return Hotel(
        name=name,
        city=_require(item, "city", str, where),
        country=str(item.get("country", "")),
        address=str(item.get("address", "")),
        phone=str(item.get("phone", "")),
        stars=_require(item, "stars", int, where) if "stars" in item else 0,
        rooms=rooms,
    )


def _require(mapping: dict, key: str, kind: type, where: str) -> Any:
    value = mapping.get(key)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CatalogError(f"{where}: {key!r} is missing or not a {kind.__name__}")
    if kind is str and not value.strip():
        raise CatalogError(f"{where}: {key!r} is empty")
    return value
