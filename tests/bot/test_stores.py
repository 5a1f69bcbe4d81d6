"""Tracker stores. ``TrackerStoreContract`` is the behaviour every store must have: a new
store (Redis, ...) gets the whole suite by subclassing it and overriding the ``store``
fixture (built with ``slot_defaults=SLOTS``)."""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.errors import BotError, StaleWriteError, StoreError
from bot.state.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    DefinePrevUserUtteredFeaturization,
    EntitiesAdded,
    FollowupAction,
    LoopInterrupted,
    ReminderCancelled,
    ReminderScheduled,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
    UserUtteranceReverted,
)
from bot.storage.sql_store import SQLTrackerStore, create_tracker_store, redact_url
from bot.storage.stores import (
    InMemoryTrackerStore,
    TrackerStore,
    plan_save,
)
from bot.state.tracker import DialogueStateTracker

SLOTS = {"city": None, "guests": 1.0, "requested_slot": None}


def user(text: str, intent: str, **kwargs) -> UserUttered:
    return UserUttered(text, {"intent": {"name": intent, "confidence": 0.9}, "entities": []},
                       **kwargs)


def conversation(sender_id: str = "ana") -> DialogueStateTracker:
    return DialogueStateTracker(sender_id, SLOTS, [
        ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
        user("book a room in Lisbon", "book_room", input_channel="rest"),
        ActionExecuted("booking_form", "RulePolicy", 1.0), ActiveLoop("booking_form"),
        SlotSet("city", "Lisbon"), SlotSet("requested_slot", "guests"),
        BotUttered("How many guests?", metadata={"utter_action": "utter_ask_guests"}),
        ActionExecuted("action_listen"),
    ])


def assert_same(retrieved: DialogueStateTracker | None, saved: DialogueStateTracker) -> None:
    assert retrieved is not None
    assert retrieved.sender_id == saved.sender_id
    assert retrieved.events == saved.events
    assert retrieved.current_state() == saved.current_state()


class TrackerStoreContract:
    @pytest.fixture
    def store(self) -> Iterator[TrackerStore]:
        raise NotImplementedError("override the store fixture")

    def test_is_a_tracker_store(self, store: TrackerStore) -> None:
        assert isinstance(store, TrackerStore)

    def test_retrieve_unknown_is_none(self, store: TrackerStore) -> None:
        assert store.retrieve("nobody") is None

    def test_round_trip(self, store: TrackerStore) -> None:
        tracker = conversation()
        store.save(tracker)
        retrieved = store.retrieve("ana")
        assert_same(retrieved, tracker)
        assert retrieved.slots == {**SLOTS, "city": "Lisbon", "requested_slot": "guests"}
        assert retrieved.active_loop_name == "booking_form"
        assert retrieved.latest_input_channel == "rest"

    def test_incremental_saves(self, store: TrackerStore) -> None:
        tracker = conversation()
        store.save(tracker)
        tracker.update_many([user("two", "inform"), SlotSet("guests", 2.0)])
        store.save(tracker)
        store.save(tracker)  # nothing new: nothing written twice
        tracker.update(ActionExecuted("action_listen"))
        store.save(tracker)
        assert_same(store.retrieve("ana"), tracker)

    def test_continue_a_retrieved_conversation(self, store: TrackerStore) -> None:
        store.save(conversation())
        tracker = store.retrieve("ana")
        tracker.update_many([user("two", "inform"), SlotSet("guests", 2.0)])
        store.save(tracker)
        retrieved = store.retrieve("ana")
        assert_same(retrieved, tracker)
        assert retrieved.get_slot("guests") == 2.0

    def test_retrieved_trackers_are_independent(self, store: TrackerStore) -> None:
        store.save(conversation())
        first = store.retrieve("ana")
        first.update(SlotSet("city", "Rome"))
        assert store.retrieve("ana").get_slot("city") == "Lisbon"

    def test_slot_defaults_apply_on_rebuild(self, store: TrackerStore) -> None:
        store.save(DialogueStateTracker("bo", None, [SlotSet("city", "Oslo"),
                                                     SlotSet("not_a_slot", 1)]))
        retrieved = store.retrieve("bo")
        assert retrieved.slots == {**SLOTS, "city": "Oslo"}

    def test_keys_and_isolation(self, store: TrackerStore) -> None:
        store.save(conversation("ana"))
        other = DialogueStateTracker("bo", SLOTS, [SlotSet("city", "Oslo")])
        store.save(other)
        assert sorted(store.keys()) == ["ana", "bo"]
        assert store.retrieve("bo").get_slot("city") == "Oslo"
        assert store.retrieve("ana").get_slot("city") == "Lisbon"

    def test_delete(self, store: TrackerStore) -> None:
        store.save(conversation("ana"))
        store.save(conversation("bo"))
        store.delete("ana")
        store.delete("nobody")  # no error
        assert store.retrieve("ana") is None
        assert store.keys() == ["bo"]

    def test_saving_another_history_replaces_the_stored_one(self, store: TrackerStore) -> None:
        store.save(conversation())
        shorter = DialogueStateTracker("ana", SLOTS, [SlotSet("city", "Rome")])
        store.save(shorter)
        assert_same(store.retrieve("ana"), shorter)
        longer = conversation()  # same length pattern, different events
        longer.update(SlotSet("guests", 4.0))
        store.save(longer)
        assert_same(store.retrieve("ana"), longer)

    def test_saving_an_empty_tracker_forgets_the_conversation(self, store: TrackerStore) -> None:
        store.save(conversation())
        store.save(DialogueStateTracker("ana", SLOTS))
        assert store.retrieve("ana") is None
        assert "ana" not in store.keys()

    def test_every_event_type_survives(self, store: TrackerStore) -> None:
        tracker = DialogueStateTracker("all", SLOTS, [
            *conversation().events, user("Ünïcödé 你好 🙂", "inform"),
            EntitiesAdded([{"entity": "number", "value": 2}]),
            DefinePrevUserUtteredFeaturization(True), ActionExecutionRejected("booking_form"),
            LoopInterrupted(True), FollowupAction("utter_greet"),
            ReminderScheduled("EXTERNAL_remind", "2027-01-15T09:00:00+00:00", name="r"),
            ReminderCancelled("r"), ConversationPaused(), UserUtteranceReverted(),
            ActionExecuted(None, action_text="Hi there"), Restarted(),
        ])
        store.save(tracker)
        assert_same(store.retrieve("all"), tracker)

    def test_versions_count_saves_and_a_stale_version_is_refused(
            self, store: TrackerStore) -> None:
        assert store.load("ana").version == 0
        store.save(conversation(), expected_version=0, fence=5)
        first = store.load("ana")
        assert first.version == 1
        second = store.load("ana")
        first.tracker.update(SlotSet("guests", 2.0))
        store.save(first.tracker, expected_version=first.version, fence=6)
        second.tracker.update(SlotSet("guests", 9.0))  # read before the save above
        with pytest.raises(StaleWriteError, match="changed since this turn read it"):
            store.save(second.tracker, expected_version=second.version, fence=7)
        assert store.retrieve("ana").get_slot("guests") == 2.0  # nothing written
        assert store.load("ana").version == 2

    def test_a_lower_fencing_token_is_refused(self, store: TrackerStore) -> None:
        store.save(conversation(), fence=10)
        stale = store.load("ana")
        stale.tracker.update(SlotSet("guests", 3.0))
        with pytest.raises(StaleWriteError, match="newer lock grant"):
            store.save(stale.tracker, expected_version=stale.version, fence=9)
        assert store.retrieve("ana").get_slot("guests") == 1.0
        store.save(stale.tracker, expected_version=stale.version, fence=10)  # same grant: ok
        assert store.retrieve("ana").get_slot("guests") == 3.0

    def test_replace_rewrites_a_history_of_the_same_shape(self, store: TrackerStore) -> None:
        old = conversation()
        store.save(old)
        new = DialogueStateTracker("ana", SLOTS, [*old.events[:-2], BotUttered("Other"),
                                                  old.events[-1]])
        store.save(new, replace=True)
        assert_same(store.retrieve("ana"), new)

    def test_non_finite_values_are_never_stored(self, store: TrackerStore) -> None:
        good = conversation()
        store.save(good)
        bad = DialogueStateTracker("ana", SLOTS, good.events)
        bad.update(SlotSet("guests", float("inf")))
        with pytest.raises(StoreError, match="finite"):
            store.save(bad)
        assert_same(store.retrieve("ana"), good)

    def test_tracker_with_history_limit(self, store: TrackerStore) -> None:
        tracker = DialogueStateTracker("lim", SLOTS, conversation().events, max_event_history=4)
        store.save(tracker)
        tracker.update(SlotSet("guests", 3.0))
        store.save(tracker)
        retrieved = store.retrieve("lim")
        assert retrieved.events[-4:] == tracker.events
        assert retrieved.get_slot("guests") == 3.0


class TestInMemoryTrackerStore(TrackerStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[TrackerStore]:
        yield InMemoryTrackerStore(SLOTS)


class TestSQLiteTrackerStore(TrackerStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[TrackerStore]:
        store = SQLTrackerStore(f"sqlite:///{tmp_path / 'sub' / 'trackers.sqlite'}",
                                slot_defaults=SLOTS)
        yield store
        store.close()


class TestSQLiteMemoryTrackerStore(TrackerStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[TrackerStore]:
        store = SQLTrackerStore("sqlite://", slot_defaults=SLOTS)
        yield store
        store.close()


def _postgres_url() -> str:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("PostgreSQL test needs the psycopg (v3) driver, which is not installed "
                    "(pip install 'psycopg[binary]')")
    for role in ("postgres", "root"):
        url = f"postgresql+psycopg://{role}@127.0.0.1:5432/test"
        try:
            engine = sa.create_engine(url)
            with engine.connect():
                pass
            engine.dispose()
            return url
        except sa.exc.SQLAlchemyError:
            continue
    pytest.skip("no PostgreSQL server with database 'test' at 127.0.0.1:5432")


class TestPostgresTrackerStore(TrackerStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[TrackerStore]:
        table = f"events_test_{uuid.uuid4().hex[:12]}"
        store = SQLTrackerStore(_postgres_url(), slot_defaults=SLOTS, table_name=table)
        yield store
        store._table.drop(store._engine)
        store.close()


def test_sqlite_file_persists_across_store_instances(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'trackers.sqlite'}"
    first = SQLTrackerStore(url, slot_defaults=SLOTS)
    tracker = conversation()
    first.save(tracker)
    first.close()
    second = SQLTrackerStore(url, slot_defaults=SLOTS)
    assert_same(second.retrieve("ana"), tracker)
    tracker.update(SlotSet("guests", 2.0))
    second.save(tracker)
    with sa.create_engine(url).connect() as conn:
        rows = conn.execute(sa.text("SELECT type_name, intent_name, action_name FROM events "
                                    "ORDER BY id")).all()
    assert len(rows) == len(tracker.events)  # appended, never duplicated
    assert rows[3] == ("user", "book_room", None)
    assert rows[4] == ("action", None, "booking_form")
    second.close()


def test_default_url_is_a_sqlite_file_under_dot_xingkong(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = SQLTrackerStore()
    store.save(conversation())
    store.close()
    assert (tmp_path / ".xingkong" / "trackers.sqlite").is_file()


def test_reads_a_database_written_by_rasa(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rasa.db'}"
    engine = sa.create_engine(url)
    rasa_events = [
        {"event": "action", "timestamp": 1700000000.1, "name": "action_session_start",
         "policy": None, "confidence": 1.0},
        {"event": "session_started", "timestamp": 1700000000.2},
        {"event": "action", "timestamp": 1700000000.3, "name": "action_listen"},
        {"event": "user", "timestamp": 1700000001.0, "text": "hi",
         "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []},
         "input_channel": "rest", "message_id": "m1", "metadata": {}},
        {"event": "form", "timestamp": 1700000002.0, "name": "booking_form"},
        {"event": "slot", "timestamp": 1700000003.0, "name": "city", "value": "Lisbon"},
    ]
    with engine.begin() as conn:  # Rasa's own DDL for its `events` table
        conn.execute(sa.text(
            "CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255) NOT "
            "NULL, type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
            "action_name VARCHAR(255), data TEXT)"))
        conn.execute(sa.text("CREATE INDEX ix_events_sender_id ON events (sender_id)"))
        for event in rasa_events:
            conn.execute(sa.text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                 "VALUES ('r1', :t, :ts, :d)"),
                         {"t": event["event"], "ts": event["timestamp"], "d": json.dumps(event)})
    engine.dispose()
    store = SQLTrackerStore(url, slot_defaults=SLOTS)
    tracker = store.retrieve("r1")
    assert tracker is not None and len(tracker.events) == 6
    assert tracker.latest_message.intent_name == "greet"
    assert tracker.active_loop_name == "booking_form"  # legacy "form" event
    assert tracker.get_slot("city") == "Lisbon"
    tracker.update(SlotSet("guests", 2.0))
    store.save(tracker)  # the legacy last-but-one event does not force a rewrite
    assert_same(store.retrieve("r1"), tracker)
    store.close()


def test_unreachable_sqlite_database(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot open tracker database sqlite:///"):
        SQLTrackerStore(f"sqlite:///{blocker / 'db.sqlite'}")
    with pytest.raises(StoreError, match="cannot connect and create the events table") as info:
        SQLTrackerStore(f"sqlite:///{tmp_path}")  # a folder, not a database file
    assert isinstance(info.value, BotError)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://bot:s3cr3t@127.0.0.1:1/nowhere",
    "mysql+pymysql://bot:s3cr3t@127.0.0.1:1/nowhere",
    "nosuchdb://bot:s3cr3t@host/db",
])
def test_errors_name_the_url_without_its_password(url: str) -> None:
    with pytest.raises(StoreError) as info:
        SQLTrackerStore(url)
    message = str(info.value)
    assert "s3cr3t" not in message
    assert "bot:***@" in message


def test_unparsable_url() -> None:
    with pytest.raises(StoreError, match="unparsable database URL"):
        SQLTrackerStore("not a url with s3cr3t")
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"


def test_corrupt_stored_event() -> None:
    store = SQLTrackerStore("sqlite://", slot_defaults=SLOTS)
    store.save(conversation())
    with store._engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET data = '{\"event\": \"nope\"}' WHERE id = 2"))
    with pytest.raises(StoreError, match="Stored event #1 of conversation 'ana' is corrupt"):
        store.retrieve("ana")
    store.close()


def test_values_that_are_not_json_are_refused_and_nothing_is_written() -> None:
    store = SQLTrackerStore("sqlite://", slot_defaults=SLOTS)
    tracker = conversation()
    tracker.update(SlotSet("city", {"a", "set"}))
    with pytest.raises(StoreError, match="JSON-serialisable"):
        store.save(tracker)
    assert store.retrieve("ana") is None
    store.close()


def test_plan_save_appends_only_missing_events() -> None:
    tracker = conversation()
    events = tracker.events
    plan = plan_save(tracker, 4, events[3].to_dict())
    assert plan.events == events[4:] and not plan.rewrite
    assert plan_save(tracker, 0, None).events == events
    assert plan_save(tracker, len(events), events[-1].to_dict()).events == ()
    assert plan_save(tracker, 4, events[2].to_dict()).rewrite  # not a prefix
    assert plan_save(tracker, len(events) + 1, None).rewrite  # stored more than there is


def test_create_tracker_store(tmp_path: Path) -> None:
    assert isinstance(create_tracker_store(), InMemoryTrackerStore)
    assert isinstance(create_tracker_store("memory://"), InMemoryTrackerStore)
    sql = create_tracker_store(f"sqlite:///{tmp_path / 't.db'}", slot_defaults=SLOTS)
    assert isinstance(sql, SQLTrackerStore)
    sql.save(DialogueStateTracker("x", None, [SlotSet("not_a_slot", 1)]))
    assert sql.retrieve("x").slots == SLOTS
    sql.close()




def test_the_memory_store_checks_a_turns_new_events_and_refuses_bad_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Events saved before (the same objects, first in the list) are not serialised again;
    a new event that no other store could store is still refused."""
    import bot.storage.stores as stores

    store = InMemoryTrackerStore(SLOTS)
    store.save(conversation())
    tracker = store.load("ana").tracker
    checked: list[object] = []
    serialise = stores.serialise_event
    monkeypatch.setattr(stores, "serialise_event",
                        lambda event: checked.append(event) or serialise(event))
    tracker.update(SlotSet("city", "Rome"))
    store.save(tracker, expected_version=1)
    assert checked == [tracker.events[-1]]
    tracker.update(SlotSet("city", {"a", "set"}))
    with pytest.raises(StoreError, match="JSON-serialisable"):
        store.save(tracker, expected_version=2)
    assert store.load("ana").tracker.get_slot("city") == "Rome"
