from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from actions.catalog import CatalogError, get_catalog, load_catalog

ONE_HOTEL = """
currency: EUR
room_types:
  double: {max_guests: 2, description: one double bed}
hotels:
  - name: Starlight Oslo
    city: Oslo
    country: Norway
    address: Karl Johans gate 1
    phone: "+47 0000"
    stars: 4
    rooms: {double: 199}
"""


def test_loads_the_real_catalogue() -> None:
    catalog = get_catalog()
    assert catalog.currency == "EUR"
    assert len(catalog.hotels) == 11
    assert catalog.cities() == [
        "Amsterdam",
        "Barcelona",
        "Berlin",
        "Lisbon",
        "Paris",
        "Prague",
        "Rome",
        "Vienna",
    ]
    lisbon = catalog.hotel("starlight lisbon")
    assert lisbon is not None
    assert (lisbon.city, lisbon.country, lisbon.stars) == ("Lisbon", "Portugal", 4)
    assert lisbon.phone == "+351 21 000 4821"
    assert lisbon.rooms["double"] == 140.0
    assert lisbon.price("suite") == 320.0
    assert catalog.room_types["family"].max_guests == 4
    assert [h.name for h in catalog.hotels_in("paris")] == ["Starlight Paris", "Nova Grand Hotel"]


def test_values_are_frozen() -> None:
    hotel = get_catalog().hotels[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        hotel.name = "Other"  # type: ignore[misc]
    assert hash(hotel) == hash(get_catalog().hotels[0])


def test_price_of_a_room_the_hotel_lacks() -> None:
    comet = get_catalog().hotel("The Comet Inn")
    assert comet is not None and not comet.offers("suite")
    with pytest.raises(CatalogError, match="no suite"):
        comet.price("suite")


@pytest.mark.parametrize(
    ("text", "city"),
    [
        ("Lisbon", "Lisbon"),
        ("lisbon", "Lisbon"),
        ("LISBON ", "Lisbon"),
        ("lisbn", "Lisbon"),
        ("Lisboa", "Lisbon"),
        ("Amsterdm", "Amsterdam"),
        ("Lisbon, Portugal", "Lisbon"),
        ("prague!", "Prague"),
        ("new york", None),
        ("London", None),
        ("", None),
    ],
)
def test_find_city(text: str, city: str | None) -> None:
    assert get_catalog().find_city(text) == city


@pytest.mark.parametrize(
    ("text", "city", "hotel"),
    [
        ("Starlight Lisbon", None, "Starlight Lisbon"),
        ("starlight lisboa", None, "Starlight Lisbon"),
        ("STARLIGHT PARIS", None, "Starlight Paris"),
        ("starlite paris", None, "Starlight Paris"),
        ("the comet inn", None, "The Comet Inn"),
        ("comet inn", None, "The Comet Inn"),
        ("Aurora", None, "Aurora Riverside"),
        ("aurora riversde", None, "Aurora Riverside"),
        ("nova grand", None, "Nova Grand Hotel"),
        ("Starlight", "Paris", "Starlight Paris"),
        # another city never narrows a full name away
        ("Starlight Rome", "Lisbon", "Starlight Rome"),
        ("Starlight", None, None),
        ("Lisbon", None, None),
        ("Hilton", None, None),
        ("", None, None),
    ],
)
def test_find_hotel(text: str, city: str | None, hotel: str | None) -> None:
    found = get_catalog().find_hotel(text, city)
    assert (found.name if found else None) == hotel


def test_hotels_like_lists_partial_matches() -> None:
    names = [h.name for h in get_catalog().hotels_like("starlight")]
    assert len(names) == 8 and all(name.startswith("Starlight ") for name in names)


def test_path_from_env_and_reload_on_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hotels.yml"
    path.write_text(ONE_HOTEL, encoding="utf-8")
    monkeypatch.setenv("XINGKONG_HOTELS", str(path))
    assert [h.name for h in get_catalog().hotels] == ["Starlight Oslo"]
    path.write_text(ONE_HOTEL.replace("199", "250"), encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert get_catalog().hotels[0].rooms == {"double": 250.0}


def test_default_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XINGKONG_HOTELS")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CatalogError, match="not found"):
        get_catalog()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hotels.yml").write_text(ONE_HOTEL, encoding="utf-8")
    assert get_catalog().cities() == ["Oslo"]


def test_missing_file_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere.yml"
    monkeypatch.setenv("XINGKONG_HOTELS", str(missing))
    with pytest.raises(CatalogError, match=r"nowhere\.yml"):
        get_catalog()
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(missing)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hotels: [unclosed", "not valid YAML"),
        ("- just a list", "top level"),
        ("room_types: {double: {max_guests: 2}}", "'hotels'"),
        ("room_types: {double: {max_guests: 2}}\nhotels: []", "empty"),
        (ONE_HOTEL.replace("max_guests: 2", "max_guests: two"), "max_guests"),
        (ONE_HOTEL.replace("{double: 199}", "{penthouse: 199}"), "unknown room type"),
        (ONE_HOTEL.replace("{double: 199}", "{double: -5}"), "positive number"),
        (ONE_HOTEL.replace("{double: 199}", "{}"), "no rooms"),
        (ONE_HOTEL.replace("    city: Oslo\n", ""), "'city'"),
        (ONE_HOTEL.replace("stars: 4", "stars: four"), "'stars'"),
        (ONE_HOTEL + ONE_HOTEL.split("hotels:\n")[1], "unique"),
    ],
)
def test_malformed_catalogue(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=message) as caught:
        load_catalog(path)
    assert "bad.yml" in str(caught.value)
