"""The bookings store: one SQLite file holding every booking the concierge makes.

The file is ``.xingkong/bookings.sqlite`` by default, or the path in the
``XINGKONG_BOOKINGS_DB`` environment variable. Each call opens its own connection, so
one store can be shared by the threads and tasks of an action server.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

from actions.catalog import Catalog, CatalogError, get_catalog

logger = logging.getLogger(__name__)

BOOKINGS_DB_ENV = "XINGKONG_BOOKINGS_DB"
DEFAULT_BOOKINGS_DB = Path(".xingkong") / "bookings.sqlite"

MAX_NIGHTS = 30
MAX_GUESTS = 8
ACTIVE = "active"
CANCELLED = "cancelled"
BOOKING_ID_PATTERN = re.compile(r"\bSL-?(\d{6})\b", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    booking_id TEXT PRIMARY KEY,
    hotel TEXT NOT NULL,
    city TEXT NOT NULL,
    checkin DATE NOT NULL,
    checkout DATE NOT NULL,
    guests INT NOT NULL,
    room_type TEXT NOT NULL,
    guest_name TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'cancelled')),
    price_total REAL NOT NULL,
    created_at TEXT NOT NULL
)
"""
_COLUMNS = (
    "booking_id, hotel, city, checkin, checkout, guests, room_type, "
    "guest_name, email, status, price_total, created_at"
)
_ID_ATTEMPTS = 50


class BookingError(Exception):
    """A booking cannot be made or changed (bad values, store failure)."""


class BookingStoreError(BookingError):
    """The SQLite file cannot be opened, read or written."""


class BookingNotFoundError(BookingError):
    """No booking has this id."""


class BookingCancelledError(BookingError):
    """The booking was already cancelled."""


@dataclass(frozen=True, slots=True)
class Booking:
    booking_id: str
    hotel: str
    city: str
    checkin: date
    checkout: date
    guests: int
    room_type: str
    guest_name: str
    email: str
    status: str
    price_total: float
    created_at: str

    @property
    def nights(self) -> int:
        return (self.checkout - self.checkin).days

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def normalize_booking_id(text: str) -> str | None:
    """ "sl-482913", "SL482913" or "it's SL-482913" -> "SL-482913"; None if absent."""
    match = BOOKING_ID_PATTERN.search(text or "")
    return f"SL-{match[1]}" if match else None


def bookings_db_path() -> Path:
    return Path(os.environ.get(BOOKINGS_DB_ENV) or DEFAULT_BOOKINGS_DB)


def open_store() -> BookingStore:
    """The store at the path the environment names."""
    return BookingStore(bookings_db_path())


class BookingStore:
    def __init__(self, path: str | Path, catalog: Catalog | None = None) -> None:
        self.path = Path(path)
        self._catalog = catalog
        self._ready = False
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Catalog:
        return self._catalog or get_catalog()

    def create(
        self,
        hotel: str,
        checkin: date,
        checkout: date,
        guests: int,
        room_type: str,
        guest_name: str,
        email: str,
    ) -> Booking:
        """Store a new active booking and return it with its fresh id."""
        try:
            found = self.catalog.hotel(hotel)
        except CatalogError as exc:
            raise BookingError(str(exc)) from exc
        if found is None:
            raise BookingError(f"unknown hotel {hotel!r}")
        if not found.offers(room_type):
            raise BookingError(f"{found.name} has no {room_type} rooms")
        room = self.catalog.room_type(room_type)
        if not isinstance(guests, int) or not 1 <= guests <= MAX_GUESTS:
            raise BookingError(f"guests must be 1 to {MAX_GUESTS}")
        if room is not None and guests > room.max_guests:
            raise BookingError(f"a {room_type} room sleeps at most {room.max_guests}")
        if not guest_name.strip() or not email.strip():
            raise BookingError("a booking needs a guest name and an email")
        nights = _check_stay(checkin, checkout)
        created_at = datetime.now(UTC).isoformat(timespec="seconds")
        values = [
            found.name,
            found.city,
            checkin.isoformat(),
            checkout.isoformat(),
            guests,
            room_type,
            guest_name.strip(),
            email.strip(),
            ACTIVE,
            found.price(room_type) * nights,
            created_at,
        ]
        with self._lock:
            for _ in range(_ID_ATTEMPTS):
                booking_id = f"SL-{secrets.randbelow(1_000_000):06d}"
                try:
                    with self._connect() as conn:
                        conn.execute(
                            f"INSERT INTO bookings ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            [booking_id, *values],
                        )
                except sqlite3.IntegrityError:
                    continue  # id taken: draw another
                logger.info("booking %s created at %s", booking_id, found.name)
                return _row_to_booking([booking_id, *values])
        raise BookingStoreError("could not find a free booking id")

    def get(self, booking_id: str) -> Booking | None:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM bookings WHERE booking_id = ?", [booking_id]
            ).fetchone()
        return _row_to_booking(row) if row else None

    def cancel(self, booking_id: str) -> Booking:
        """Mark an active booking cancelled and return it."""
        with self._lock:
            booking = self._require_active(booking_id)
            with self._connect() as conn:
                conn.execute(
                    "UPDATE bookings SET status = ? WHERE booking_id = ?", [CANCELLED, booking_id]
                )
        logger.info("booking %s cancelled", booking_id)
        return replace(booking, status=CANCELLED)

    def change_dates(self, booking_id: str, checkin: date, checkout: date) -> Booking:
        """Move an active booking to new dates; the price follows the new nights."""
        nights = _check_stay(checkin, checkout)
        with self._lock:
            booking = self._require_active(booking_id)
            hotel = self.catalog.hotel(booking.hotel)
            if hotel is None or not hotel.offers(booking.room_type):
                raise BookingError(f"{booking.hotel} no longer offers {booking.room_type} rooms")
            price_total = hotel.price(booking.room_type) * nights
            with self._connect() as conn:
                conn.execute(
                    "UPDATE bookings SET checkin = ?, checkout = ?, price_total = ? "
                    "WHERE booking_id = ?",
                    [checkin.isoformat(), checkout.isoformat(), price_total, booking_id],
                )
        logger.info("booking %s moved", booking_id)
        return replace(booking, checkin=checkin, checkout=checkout, price_total=price_total)

    def _require_active(self, booking_id: str) -> Booking:
        booking = self.get(booking_id)
        if booking is None:
            raise BookingNotFoundError(f"no booking {booking_id}")
        if not booking.active:
            raise BookingCancelledError(f"booking {booking_id} is cancelled")
        return booking

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # one connection per call; "with conn" commits or rolls back
        try:
            if not self._ready:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(sqlite3.connect(self.path, timeout=10)) as conn, conn:
                if not self._ready:
                    conn.execute(_SCHEMA)
                    self._ready = True
                yield conn
        except sqlite3.IntegrityError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise BookingStoreError(f"bookings store {self.path} failed: {exc}") from exc


def _check_stay(checkin: date, checkout: date) -> int:
    nights = (checkout - checkin).days
    if nights < 1:
        raise BookingError("check-out must be after check-in")
    if nights > MAX_NIGHTS:
        raise BookingError(f"a stay can be at most {MAX_NIGHTS} nights")
    return nights


def _row_to_booking(row: list | tuple) -> Booking:
    (
        booking_id,
        hotel,
        city,
        checkin,
        checkout,
        guests,
        room_type,
        guest_name,
        email,
        status,
        price_total,
        created_at,
    ) = row
    return Booking(
        booking_id=booking_id,
        hotel=hotel,
        city=city,
        checkin=date.fromisoformat(checkin),
        checkout=date.fromisoformat(checkout),
        guests=int(guests),
        room_type=room_type,
        guest_name=guest_name,
        email=email,
        status=status,
        price_total=float(price_total),
        created_at=created_at,
    )
