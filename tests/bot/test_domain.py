"""bot.project.domain: Rasa 3.x domain files, one file or a folder of them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from bot.project.domain import (
    DEFAULT_ACTIONS,
    DEFAULT_INTENTS,
    MAPPING_TYPES,
    REQUESTED_SLOT,
    SLOT_TYPES,
    Domain,
    load_domain,
)
from bot.errors import ConfigError, YamlError

REPO = Path(__file__).resolve().parents[2]

ALL_TYPES = """\
version: "3.1"
intents:
  - greet
  - inform:
      use_entities:
        - city
  - chitchat:
      use_entities: []
  - change:
      ignore_entities:
        - city
entities:
  - city
  - date:
      roles:
        - checkin
        - checkout
      groups:
        - first
        - second
  - number
slots:
  a_text:
    type: text
    initial_value: hello
    mappings:
      - type: from_entity
        entity: city
        role: null
        not_intent: [chitchat]
  a_bool:
    type: bool
    initial_value: false
    mappings:
      - type: from_intent
        intent: greet
        value: true
  a_category:
    type: categorical
    values: [low, medium, high]
    mappings:
      - type: from_trigger_intent
        intent: inform
        value: high
  a_float:
    type: float
    min_value: 1
    max_value: 8
    initial_value: 2.5
    mappings:
      - type: from_text
        conditions:
          - active_loop: a_form
            requested_slot: a_float
  a_list:
    type: list
    mappings:
      - type: custom
        action: action_fill_list
  an_any:
    type: any
    mappings:
      - type: custom
  custom_typed:
    type: my_package.MySlot
    mappings: []
forms:
  a_form:
    required_slots:
      - a_float
      - a_text
    ignored_intents:
      - chitchat
responses:
  utter_greet:
    - text: "Hello {a_text}!"
      buttons:
        - title: "Yes"
          payload: /affirm
    - text: "Hi."
      channel: cmdline
  utter_ask_a_float:
    - text: "How many?"
actions:
  - action_fill_list
  - validate_a_form
session_config:
  session_expiration_time: 0
  carry_over_slots_to_new_session: false
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def full_domain(tmp_path: Path) -> Domain:
    return load_domain(write(tmp_path / "domain.yml", ALL_TYPES))


def load_text(tmp_path: Path, text: str) -> Domain:
    return load_domain(write(tmp_path / "domain.yml", text))


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value)


# ------------------------------------------------------------------------ loading


def test_every_slot_type_loads(full_domain: Domain) -> None:
    types = {name: spec.type for name, spec in full_domain.slots.items()}
    assert set(SLOT_TYPES) <= set(types.values())
    assert types["a_text"] == "text" and types["a_list"] == "list"
    assert types["custom_typed"] == "any"  # a custom slot class is treated as `any`


def test_every_mapping_type_loads(full_domain: Domain) -> None:
    found = {m["type"] for spec in full_domain.slots.values() for m in spec.mappings}
    assert found == set(MAPPING_TYPES)
    assert full_domain.slots["a_bool"].mappings[0] == {"type": "from_intent", "intent": "greet",
                                                         "value": True}
    assert full_domain.slots["a_float"].mappings[0]["conditions"] == [
        {"active_loop": "a_form", "requested_slot": "a_float"}]


def test_slot_properties(full_domain: Domain) -> None:
    slots = full_domain.slots
    assert slots["a_text"].initial_value == "hello"
    assert slots["a_bool"].initial_value is False
    assert slots["a_category"].values == ("low", "medium", "high")
    assert (slots["a_float"].min_value, slots["a_float"].max_value) == (1.0, 8.0)
    assert slots["a_float"].initial_value == 2.5
    assert slots["a_text"].influence_conversation is True
    assert slots["an_any"].influence_conversation is False
    assert full_domain.slot_defaults()["a_text"] == "hello"


def test_forms_actions_responses_session(full_domain: Domain) -> None:
    form = full_domain.forms["a_form"]
    assert form.required_slots == ("a_float", "a_text")
    assert form.ignored_intents == ("chitchat",)
    assert full_domain.custom_actions == ("action_fill_list", "validate_a_form")
    names = full_domain.action_names
    assert set(DEFAULT_ACTIONS) <= set(names)
    assert {"utter_greet", "utter_ask_a_float", "a_form", "action_fill_list"} <= set(names)
    assert len(names) == len(set(names))
    assert full_domain.responses["utter_greet"][1] == {"text": "Hi.", "channel": "cmdline"}
    assert full_domain.session_config.session_expiration_time_min == 0
    assert full_domain.session_config.carry_over_slots is False


def test_default_intents_are_known(full_domain: Domain) -> None:
    assert set(DEFAULT_INTENTS) <= set(full_domain.intent_names)
    assert "greet" in full_domain.intent_names


def test_demo_domain_loads() -> None:
    domain = load_domain(REPO / "domain.yml")
    assert "book_room" in domain.intents
    assert set(domain.forms) == {"booking_form", "cancel_form", "change_form"}
    assert domain.roles["date"] == ("checkin", "checkout")
    assert domain.slots["room_type"].values == ("single", "double", "twin", "family", "suite")


# -------------------------------------------------------------- use/ignore entities


def test_use_and_ignore_entities(full_domain: Domain) -> None:
    assert full_domain.used_entities("greet") == ("city", "date", "number")
    assert full_domain.used_entities("inform") == ("city",)
    assert full_domain.used_entities("chitchat") == ()
    assert full_domain.used_entities("change") == ("date", "number")
    assert full_domain.used_entities("not_an_intent") == ("city", "date", "number")
    assert full_domain.used_entities(None) == ("city", "date", "number")


def test_demo_use_and_ignore_entities() -> None:
    domain = load_domain(REPO / "domain.yml")
    assert domain.used_entities("greet") == ()
    assert domain.used_entities("check_booking") == ("booking_id",)
    assert "city" in domain.used_entities("book_room")
    changed = domain.used_entities("change_booking")
    assert "date" in changed and "booking_id" in changed and "city" not in changed


# ------------------------------------------------------------------- roles, groups


def test_roles_and_groups(full_domain: Domain) -> None:
    assert full_domain.entities == ("city", "date", "number")
    assert full_domain.roles == {"date": ("checkin", "checkout")}
    assert full_domain.groups == {"date": ("first", "second")}
    entities = full_domain.to_dict()["entities"]
    assert {"date": {"roles": ["checkin", "checkout"], "groups": ["first", "second"]}} in entities
    assert "city" in entities


# ------------------------------------------------------------------ requested_slot


def test_requested_slot_is_added_when_forms_exist(full_domain: Domain) -> None:
    slot = full_domain.slots[REQUESTED_SLOT]
    assert slot.type == "any"
    assert slot.influence_conversation is False


def test_no_requested_slot_without_forms(tmp_path: Path) -> None:
    domain = load_text(tmp_path, "intents: [greet]\nslots:\n  x:\n    type: text\n")
    assert REQUESTED_SLOT not in domain.slots


def test_declared_requested_slot_is_kept(tmp_path: Path) -> None:
    domain = load_text(tmp_path, """\
slots:
  requested_slot:
    type: categorical
    values: [a, b]
forms:
  f:
    required_slots: []
""")
    assert domain.slots[REQUESTED_SLOT].type == "categorical"


def test_rasa2_required_slots_mappings_are_refused_not_dropped(tmp_path: Path) -> None:
    # Mappings inside the form are Rasa 2.x: read as 3.x they would be lost (issue 11)
    with pytest.raises(ConfigError, match="xingkong data migrate"):
        load_text(tmp_path, """\
slots:
  city:
    type: text
forms:
  f:
    required_slots:
      city:
        - type: from_text
""")
    # the dict shape without mappings says nothing more than a list of names
    domain = load_text(tmp_path, """\
slots:
  city:
    type: text
forms:
  f:
    required_slots:
      city: []
""")
    assert domain.forms["f"].required_slots == ("city",)


# ------------------------------------------------------------------------ wrong types


@pytest.mark.parametrize("text, line, needle", [
    ('version: "3.1"\nintents:\n  - greet\nslots: [a, b]\n', 4, "'slots' must be a mapping"),
    ("version: '3.1'\nslots:\n  name:\n    type: txt\n", 3, "'txt'"),
    ("slots:\n  name:\n    type: text\n  other: text\n", 4, "slot 'other'"),
    ("slots:\n  name:\n    mappings: []\n", 2, "type None"),
    ("slots:\n  s:\n    type: text\n    mappings:\n      - type: from_entiti\n", 2, "from_entiti"),
    ("slots:\n  s:\n    type: text\n    mappings:\n      type: from_text\n", 2, "must be a list"),
    ("responses:\n  utter_hi:\n    text: hi\n", 2, "non-empty list"),
    ("responses:\n  utter_hi: []\n", 2, "non-empty list"),
    ("responses:\n  utter_a:\n    - text: a\n  utter_b:\n    - just text\n", 4, "mapping"),
    ("version: '3.1'\nintents: greet\n", 2, "'intents' must be a list"),
    ("intents:\n  - greet\n  - [a, b]\n", 3, "intents"),
    ("forms:\n  f:\n    required_slots: city\n", 2, "required_slots"),
    ("version: '3.1'\n\nresponses: [utter_hi]\n", 3, "'responses' must be a mapping"),
])
def test_wrong_types_fail_with_file_and_line(tmp_path: Path, text: str, line: int,
                                             needle: str) -> None:
    message = error_of(tmp_path, text)
    assert f"{tmp_path / 'domain.yml'}:{line}:" in message
    assert needle in message


def test_wrong_type_message_uses_yaml_words(tmp_path: Path) -> None:
    message = error_of(tmp_path, "slots: [a, b]\n")
    assert "Commented" not in message
    assert "got list" in message or "got a list" in message


def test_bad_entity_entry_fails(tmp_path: Path) -> None:
    message = error_of(tmp_path, "entities:\n  - city\n  - [bad]\n")
    assert str(tmp_path / "domain.yml") in message
    assert "bad entity entry" in message


def test_domain_must_be_a_mapping(tmp_path: Path) -> None:
    message = error_of(tmp_path, "- greet\n- goodbye\n")
    assert str(tmp_path / "domain.yml") in message


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as info:
        load_text(tmp_path, "intents:\n  - greet\n  - goodbye\nslots:\n  a: {type: text\n")
    assert f"{tmp_path / 'domain.yml'}:" in str(info.value)


def test_missing_domain_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "domain").mkdir()
    with pytest.raises(ConfigError, match="No domain found"):
        load_domain(tmp_path / "domain")


def test_empty_domain_file_loads(tmp_path: Path) -> None:
    domain = load_text(tmp_path, "# nothing yet\n")
    assert domain.intents == {} and domain.slots == {}


# ------------------------------------------------------------------- unknown keys


def test_unknown_top_level_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project.domain"):
        domain = load_text(tmp_path, "intents:\n  - greet\nintnets:\n  - bye\n")
    assert list(domain.intents) == ["greet"]
    assert any("intnets" in r.getMessage() and f"{tmp_path / 'domain.yml'}:3" in r.getMessage()
               for r in caplog.records)


def test_known_keys_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project.domain"):
        load_text(tmp_path, ALL_TYPES.replace("    type: my_package.MySlot\n",
                                              "    type: any\n"))
    assert caplog.records == []


# ------------------------------------------------------------------ folder of files


def test_domain_folder_merges_files(tmp_path: Path) -> None:
    folder = tmp_path / "domain"
    write(folder / "a_core.yml", """\
version: "3.1"
intents:
  - greet
entities:
  - city
responses:
  utter_greet:
    - text: "Hello"
""")
    write(folder / "b_booking.yml", """\
version: "3.1"
intents:
  - book
slots:
  city:
    type: text
    mappings:
      - type: from_entity
        entity: city
forms:
  booking_form:
    required_slots:
      - city
actions:
  - validate_booking_form
""")
    write(folder / "nested" / "c_more.yml", """\
entities:
  - city
  - date
responses:
  utter_greet:
    - text: "Hi from the later file"
""")
    write(folder / "empty.yml", "")
    domain = load_domain(folder)
    assert list(domain.intents) == ["greet", "book"]
    assert domain.entities == ("city", "date")
    assert set(domain.slots) == {"city", REQUESTED_SLOT}
    assert list(domain.forms) == ["booking_form"]
    assert domain.custom_actions == ("validate_booking_form",)
    assert domain.responses["utter_greet"] == ({"text": "Hi from the later file"},)


def test_error_in_a_folder_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "domain"
    write(folder / "a.yml", "intents:\n  - greet\n")
    write(folder / "b.yml", "slots:\n  s:\n    type: txt\n")
    with pytest.raises(ConfigError) as info:
        load_domain(folder)
    assert f"{folder / 'b.yml'}:2:" in str(info.value)


def test_domain_folder_reads_yaml_extension(tmp_path: Path) -> None:
    folder = tmp_path / "domain"
    write(folder / "a.yml", "intents:\n  - greet\n")
    write(folder / "b.yaml", "intents:\n  - goodbye\n")
    assert list(load_domain(folder).intents) == ["greet", "goodbye"]


def test_extra_responses_from_training_data(tmp_path: Path) -> None:
    domain = load_domain(write(tmp_path / "domain.yml", "intents: [faq]\n"),
                         extra_responses={"utter_faq/hours": [{"text": "9 to 5"}]})
    assert domain.responses["utter_faq/hours"] == ({"text": "9 to 5"},)
    assert "utter_faq" in domain.action_names


# ---------------------------------------------------------------------- round trip


def _round_trip(domain: Domain, tmp_path: Path) -> Domain:
    path = tmp_path / "round_trip" / "domain.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(domain.to_dict(), allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return load_domain(path)


@pytest.mark.parametrize("source", ["demo", "all_types"])
def test_to_dict_round_trips_through_load(source: str, tmp_path: Path) -> None:
    if source == "demo":
        domain = load_domain(REPO / "domain.yml")
    else:
        domain = load_text(tmp_path, ALL_TYPES)
    again = _round_trip(domain, tmp_path)
    assert again.to_dict() == domain.to_dict()
    assert again.intents == domain.intents
    assert again.entities == domain.entities
    assert again.roles == domain.roles and again.groups == domain.groups
    assert again.responses == domain.responses
    assert again.forms == domain.forms
    assert again.session_config == domain.session_config


def test_to_dict_is_rasa_shaped(full_domain: Domain) -> None:
    data = full_domain.to_dict()
    assert {"version", "session_config", "intents", "entities", "slots", "responses",
            "actions", "forms"} <= set(data)
    assert data["session_config"] == {"session_expiration_time": 0,
                                      "carry_over_slots_to_new_session": False}
    assert {"greet": {"use_entities": True}} in data["intents"]
    assert {"inform": {"use_entities": ["city"]}} in data["intents"]
    assert data["slots"]["a_category"]["values"] == ["low", "medium", "high"]
    assert data["forms"]["a_form"] == {"required_slots": ["a_float", "a_text"],
                                       "ignored_intents": ["chitchat"]}


def test_to_dict_round_trip_keeps_float_slot_bounds(tmp_path: Path) -> None:
    domain = load_domain(REPO / "domain.yml")
    assert domain.slots["guests"].max_value == 8.0
    again = _round_trip(domain, tmp_path)
    assert again.slots["guests"] == domain.slots["guests"]
    assert again.slots == domain.slots
