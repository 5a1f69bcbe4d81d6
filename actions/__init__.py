"""Custom actions of the Starlight Hotels demo assistant (run by a rasa_sdk action server).

Importing this package imports every action module, so ``ActionExecutor.register_package``
finds all actions. `warm_up()` loads the knowledge answerer and the small-talk generator
(`xingkong run` calls it in a background thread at start).
"""

from __future__ import annotations

from actions.booking_actions import (
    ActionCancelBooking,
    ActionChangeBooking,
    ActionCheckBooking,
    ActionSubmitBooking,
    booking_details,
    describe_booking,
)
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
from actions.catalog import (
    Catalog,
    CatalogError,
    Hotel,
    RoomType,
    get_catalog,
    load_catalog,
)
from actions.dates import current_date, parse_date
from actions.forms import (
    ValidateBookingForm,
    ValidateCancelForm,
    ValidateChangeForm,
)
from actions.values import clean_guest_name, find_email, parse_guests, parse_room_type

__all__ = [
    "ActionCancelBooking",
    "ActionChangeBooking",
    "ActionCheckBooking",
    "ActionSubmitBooking",
    "Booking",
    "BookingCancelledError",
    "BookingError",
    "BookingNotFoundError",
    "BookingStore",
    "BookingStoreError",
    "Catalog",
    "CatalogError",
    "Hotel",
    "RoomType",
    "ValidateBookingForm",
    "ValidateCancelForm",
    "ValidateChangeForm",
    "booking_details",
    "clean_guest_name",
    "current_date",
    "describe_booking",
    "find_email",
    "get_catalog",
    "load_catalog",
    "normalize_booking_id",
    "open_store",
    "parse_date",
    "parse_guests",
    "parse_room_type",
    "warm_up",
]


def warm_up() -> None:
    """Load the models of the knowledge and small-talk actions now, so the first guest's
    question does not wait for them (a missing model is warned about, as on first use).
    While the knowledge model is being built in the background (`make run`), wait for it
    here (the server calls this in a background thread) and load it once it is done."""
    import time

    from actions.fallback import get_generator
    from actions.knowledge import get_answerer, still_building

    get_generator()
    while still_building():
        time.sleep(WAIT_S)
    get_answerer()


WAIT_S = 5.0  # how often warm_up looks whether a background knowledge build is done
