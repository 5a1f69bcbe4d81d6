"""Before each test story of `xingkong test --execute-actions`: a fresh bookings store.

The test runner calls `prepare_test_story` with the entities the story's user steps mention.
Every booking number among them becomes an active booking (Ana Ruiz, Starlight Lisbon, 1-4
June 2030) in a new empty database, so stories that check, change or cancel a booking find
it and no story sees another's bookings.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from actions.bookings import BOOKINGS_DB_ENV, open_store
_folder: Path | None = None


def prepare_test_story(story_entities: list[dict[str, Any]]) -> list[str]:
    """Point the actions at a new bookings database holding the story's booking numbers;
    returns them."""
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="xingkong-stories-"))
        atexit.register(shutil.rmtree, _folder, True)  # the test run leaves nothing behind
    path = _folder / "bookings.sqlite"
    path.unlink(missing_ok=True)  # one database, emptied before each story
    os.environ[BOOKINGS_DB_ENV] = str(path)
    wanted = sorted({str(e.get("value")) for e in story_entities
                     if e.get("entity") == "booking_id" and e.get("value")})
    store = open_store()
    for booking_id in wanted:
        made = store.create(hotel="Starlight Lisbon", checkin=date(2030, 6, 1),
                            checkout=date(2030, 6, 4), guests=2, room_type="double",
                            guest_name="Ana Ruiz", email="ana.ruiz@example.com")
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE bookings SET booking_id = ? WHERE booking_id = ?",
                         [booking_id, made.booking_id])
    return wanted
