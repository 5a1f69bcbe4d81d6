from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import closing
from datetime import date
from pathlib import Path

import pytest

from actions import bookings
from actions.bookings import (
    Booking,
    BookingCancelledError,
    BookingError,
    BookingNotFoundError,
    BookingStore,
    BookingStoreError,
    normalize_booking_id,
    open_store,
)

STAY = {
    "hotel": "Starlight Lisbon",
    "checkin": date(2027, 3, 3),
    "checkout": date(2027, 3, 7),
    "guests": 2,
    "room_type": "double",
    "guest_name": "Ana Ruiz",
    "email": "ana@example.com",
}


@pytest.fixture
def store(action_env: Path) -> BookingStore:
    return open_store()


def test_round_trip(store: BookingStore, action_env: Path) -> None:
    booking = store.create(**STAY)
    assert re.fullmatch(r"SL-\d{6}", booking.booking_id)
    assert booking.city == "Lisbon"
    assert booking.status == "active" and booking.active
    assert booking.nights == 4
    assert booking.price_total == 4 * 140.0
    assert action_env.exists()  # parent folder made on first use
    assert store.get(booking.booking_id) == booking

    moved = store.change_dates(booking.booking_id, date(2027, 4, 10), date(2027, 4, 12))
    assert (moved.checkin, moved.checkout, moved.price_total) == (
        date(2027, 4, 10),
        date(2027, 4, 12),
        280.0,
    )
    assert store.get(booking.booking_id) == moved

    cancelled = store.cancel(booking.booking_id)
    assert cancelled.status == "cancelled" and not cancelled.active
    assert store.get(booking.booking_id) == cancelled


def test_a_second_store_on_the_same_file_sees_the_bookings(store: BookingStore) -> None:
    booking = store.create(**STAY)
    assert open_store().get(booking.booking_id) == booking


def test_table_layout(store: BookingStore, action_env: Path) -> None:
    booking = store.create(**STAY)
    with closing(sqlite3.connect(action_env)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(bookings)")]
        row = conn.execute(
            "SELECT checkin, checkout, guests, status FROM bookings WHERE booking_id = ?",
            [booking.booking_id],
        ).fetchone()
    assert columns == [
        "booking_id",
        "hotel",
        "city",
        "checkin",
        "checkout",
        "guests",
        "room_type",
        "guest_name",
        "email",
        "status",
        "price_total",
        "created_at",
    ]
    assert row == ("2027-03-03", "2027-03-07", 2, "active")


def test_unknown_id(store: BookingStore) -> None:
    assert store.get("SL-000000") is None
    with pytest.raises(BookingNotFoundError):
        store.cancel("SL-000000")
    with pytest.raises(BookingNotFoundError):
        store.change_dates("SL-000000", date(2027, 3, 3), date(2027, 3, 4))


def test_a_cancelled_booking_stays_cancelled(store: BookingStore) -> None:
    booking = store.create(**STAY)
    store.cancel(booking.booking_id)
    with pytest.raises(BookingCancelledError):
        store.cancel(booking.booking_id)
    with pytest.raises(BookingCancelledError):
        store.change_dates(booking.booking_id, date(2027, 5, 1), date(2027, 5, 2))
    assert store.get(booking.booking_id).checkin == STAY["checkin"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hotel": "Hilton Lisbon"}, "unknown hotel"),
        ({"hotel": "The Comet Inn", "room_type": "suite"}, "no suite rooms"),
        ({"guests": 3}, "at most 2"),
        ({"guests": 0}, "1 to 8"),
        ({"checkout": date(2027, 3, 3)}, "after check-in"),
        ({"checkout": date(2027, 4, 3)}, "at most 30 nights"),
        ({"guest_name": "  "}, "guest name"),
    ],
)
def test_create_refuses_bad_values(
    store: BookingStore, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(BookingError, match=message):
        store.create(**(STAY | changes))
    assert not _count_rows(store)


def test_change_refuses_bad_stays(store: BookingStore) -> None:
    booking = store.create(**STAY)
    with pytest.raises(BookingError, match="after check-in"):
        store.change_dates(booking.booking_id, date(2027, 5, 2), date(2027, 5, 1))
    with pytest.raises(BookingError, match="30 nights"):
        store.change_dates(booking.booking_id, date(2027, 5, 1), date(2027, 6, 1))


def test_thirty_nights_is_allowed(store: BookingStore) -> None:
    booking = store.create(**(STAY | {"checkout": date(2027, 4, 2)}))
    assert booking.nights == 30 and booking.price_total == 30 * 140.0


def test_ids_are_unique_even_when_the_draw_repeats(
    store: BookingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter([482913, 482913, 482913, 7])
    monkeypatch.setattr(bookings.secrets, "randbelow", lambda _: next(draws))
    first = store.create(**STAY)
    second = store.create(**STAY)
    assert (first.booking_id, second.booking_id) == ("SL-482913", "SL-000007")


def test_concurrent_creates(action_env: Path) -> None:
    made: list[Booking] = []
    errors: list[BookingError] = []

    def book() -> None:
        store = open_store()  # each thread its own store, same file
        try:
            for _ in range(10):
                made.append(store.create(**STAY))
        except BookingError as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=book) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    ids = {booking.booking_id for booking in made}
    assert len(ids) == 80
    assert _count_rows(open_store()) == 80


def test_default_path_is_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XINGKONG_BOOKINGS_DB")
    monkeypatch.chdir(tmp_path)
    booking = open_store().create(**STAY)
    assert (tmp_path / ".xingkong" / "bookings.sqlite").is_file()
    assert open_store().get(booking.booking_id) == booking


def test_a_broken_store_raises_a_store_error(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(BookingStoreError, match="a-folder"):
        BookingStore(folder).create(**STAY)
    with pytest.raises(BookingStoreError):
        BookingStore(folder).get("SL-123456")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SL-482913", "SL-482913"),
        ("sl-482913", "SL-482913"),
        ("SL482913", "SL-482913"),
        ("my booking is SL-482913, thanks", "SL-482913"),
        ("SL-48291", None),
        ("SL-4829133", None),
        ("482913", None),
        ("", None),
    ],
)
def test_normalize_booking_id(text: str, expected: str | None) -> None:
    assert normalize_booking_id(text) == expected


def _count_rows(store: BookingStore) -> int:
    if not store.path.exists():
        return 0
    with closing(sqlite3.connect(store.path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE name = 'bookings'").fetchall()
        if not tables:
            return 0
        return conn.execute("SELECT COUNT(*) FROM bookings").fetchone()[0]
