"""`xingkong export`: the events of the tracker store of endpoints.yml as JSON lines, each
event with its `sender_id` (Rasa's `rasa export` sends the same events to an event broker;
here they go to stdout or a file, for any broker or analytics tool to read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bot.storage.stores import TrackerStore


def exported_events(store: TrackerStore, sender_ids: list[str] | None = None,
                    minimum_timestamp: float | None = None,
                    maximum_timestamp: float | None = None) -> Iterator[dict[str, Any]]:
    """Every stored event (of the given conversations) in the Rasa wire format, oldest first
    per conversation, inside the time window when one is given."""
    for sender_id in sender_ids if sender_ids else sorted(store.keys()):
        tracker = store.retrieve(sender_id)
        if tracker is None:
            continue
        for event in tracker.events:
            data = event.to_dict()
            stamp = data.get("timestamp")
            if minimum_timestamp is not None and stamp is not None and stamp < minimum_timestamp:
                continue
            if maximum_timestamp is not None and stamp is not None and stamp > maximum_timestamp:
                continue
            yield {"sender_id": sender_id, **data}
