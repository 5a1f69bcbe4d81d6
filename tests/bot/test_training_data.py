"""bot.project.training_data: Rasa 3.x NLU data, stories, rules and test stories."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.project.training_data import (
    EntityAnnotation,
    Source,
    TrainingData,
    load_training_data,
    parse_annotated,
)

REPO = Path(__file__).resolve().parents[2]
AT = Source("nlu.yml", 7)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, name: str = "data.yml") -> TrainingData:
    return load_training_data([write(tmp_path / name, text)])


@pytest.fixture(scope="module")
def demo() -> TrainingData:
    return load_training_data([REPO / "data"])


@pytest.fixture(scope="module")
def demo_test_stories() -> TrainingData:
    return load_training_data([REPO / "tests" / "test_stories.yml"])


# ------------------------------------------------------------------ inline annotations


def test_plain_text_has_no_entities() -> None:
    assert parse_annotated("I need a room", AT) == ("I need a room", ())


def test_entity_annotation() -> None:
    text, entities = parse_annotated("a room in [Lisbon](city) please", AT)
    assert text == "a room in Lisbon please"
    assert entities == (EntityAnnotation(10, 16, "Lisbon", "city"),)
    assert text[10:16] == "Lisbon"


def test_entity_annotation_with_value() -> None:
    text, entities = parse_annotated("a [king](room_type:double) bed", AT)
    assert text == "a king bed"
    assert entities == (EntityAnnotation(2, 6, "double", "room_type"),)


def test_json_annotation_with_role_group_and_value() -> None:
    text, entities = parse_annotated(
        'from [May 3]{"entity": "date", "role": "checkin"} to '
        '[May 5]{"entity": "date", "role": "checkout", "group": "1", "value": "2030-05-05"}', AT)
    assert text == "from May 3 to May 5"
    first, second = entities
    assert first == EntityAnnotation(5, 10, "May 3", "date", "checkin", None)
    assert second == EntityAnnotation(14, 19, "2030-05-05", "date", "checkout", "1")
    assert first.to_dict() == {"start": 5, "end": 10, "value": "May 3", "entity": "date",
                               "role": "checkin"}


def test_several_annotations_keep_offsets_right() -> None:
    text, entities = parse_annotated("[Ana Ruiz](person), [2](number) guests, [suite](room_type)",
                                     AT)
    assert text == "Ana Ruiz, 2 guests, suite"
    assert [text[e.start:e.end] for e in entities] == ["Ana Ruiz", "2", "suite"]
    assert [e.entity for e in entities] == ["person", "number", "room_type"]


def test_brackets_without_annotation_stay_text() -> None:
    assert parse_annotated("option [a] (b) or [c]", AT) == ("option [a] (b) or [c]", ())


@pytest.mark.parametrize("bad", [
    "going to [Lisbon](city",
    "going to [Lisbon](city:)",
    "going to [Lisbon]{\"entity\": \"city\"",
])
def test_malformed_annotation_names_the_place(bad: str) -> None:
    with pytest.raises(ConfigError, match="malformed entity annotation") as info:
        parse_annotated(bad, AT)
    assert str(info.value).startswith("nlu.yml:7:")


@pytest.mark.parametrize("bad, needle", [
    ('[x]{"entity": city}', "not valid JSON"),
    ('[x]{"role": "checkin"}', "has no 'entity'"),
])
def test_bad_json_annotation(bad: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_annotated(bad, AT)


# ---------------------------------------------------------------------- YAML NLU


NLU = """\
version: "3.1"
nlu:
- intent: book_room
  examples: |
    - book a room in [Lisbon](city)
    - a [king](room_type:double) room
    - arriving [today]{"entity": "date", "role": "checkin"}
- intent: greet
  examples:
  - text: hi there
    metadata:
      sentiment: neutral
  - hello
- synonym: double
  examples: |
    - king
    - Queen Size
- regex: booking_id
  examples: |
    - SL-[0-9]{6}
- lookup: city
  examples: |
    - Lisbon
    - Paris
- intent: faq/opening_hours
  examples: |
    - when do you open?
"""


@pytest.fixture
def nlu(tmp_path: Path) -> TrainingData:
    return load_text(tmp_path, NLU, "nlu.yml")


def test_yaml_nlu_examples(nlu: TrainingData, tmp_path: Path) -> None:
    texts = [(e.intent, e.text) for e in nlu.examples]
    assert texts == [
        ("book_room", "book a room in Lisbon"),
        ("book_room", "a king room"),
        ("book_room", "arriving today"),
        ("greet", "hi there"),
        ("greet", "hello"),
        ("faq/opening_hours", "when do you open?"),
    ]
    assert nlu.intents == {"book_room", "greet", "faq/opening_hours"}
    assert nlu.entity_names == {"city", "room_type", "date"}
    roles = [a.role for e in nlu.examples for a in e.entities]
    assert roles == [None, None, "checkin"]


def test_yaml_nlu_example_lines(nlu: TrainingData, tmp_path: Path) -> None:
    sources = {e.text: e.source for e in nlu.examples}
    assert sources["book a room in Lisbon"] == Source(str(tmp_path / "nlu.yml"), 5)
    assert sources["a king room"].line == 6
    assert sources["arriving today"].line == 7
    assert sources["when do you open?"].line == 27


def test_synonyms_regexes_lookups(nlu: TrainingData) -> None:
    assert nlu.synonyms == {"king": "double", "queen size": "double"}
    assert nlu.regexes == {"booking_id": ["SL-[0-9]{6}"]}
    assert nlu.lookups == {"city": ["Lisbon", "Paris"]}


def test_list_form_example_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "nlu.yml", """\
version: "3.1"
nlu:
- intent: greet
  examples:
  - text: |
      hi there
    metadata:
      sentiment: neutral
  - text: |
      hey [you](person
""")
    with pytest.raises(ConfigError) as info:
        load_training_data([path])
    assert f"{path}:9:" in str(info.value)


def test_example_lines_must_start_with_a_dash(tmp_path: Path) -> None:
    path = write(tmp_path / "nlu.yml", """\
nlu:
- intent: greet
  examples: |
    - hi
    hello
""")
    with pytest.raises(ConfigError, match="start with '- '") as info:
        load_training_data([path])
    assert f"{path}:5:" in str(info.value)


@pytest.mark.parametrize("text, needle", [
    ("nlu:\n- intent: greet\n", "no 'examples'"),
    ("nlu:\n- examples: |\n    - hi\n", "needs one of intent"),
    ("nlu:\n- just a string\n", "mapping"),
    ("nlu:\n  intent: greet\n", "'nlu' must be a list"),
    ("- nlu\n", "must be a mapping"),
])
def test_bad_nlu_structure(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        load_text(tmp_path, text)
    assert str(tmp_path / "data.yml") in str(info.value)


def test_unknown_nlu_item_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project.training_data"):
        data = load_text(tmp_path, "nlu:\n- intent: greet\n  exmaples: x\n  examples: |\n"
                                   "    - hi\n")
    assert [e.text for e in data.examples] == ["hi"]
    assert "exmaples" in caplog.text


# ----------------------------------------------------------------------- JSON NLU


def test_rasa_json_nlu(tmp_path: Path) -> None:
    path = write(tmp_path / "nlu.json", json.dumps({"rasa_nlu_data": {
        "common_examples": [
            {"text": "a room in Lisbon", "intent": "book_room",
             "entities": [{"start": 10, "end": 16, "value": "Lisbon", "entity": "city"}]},
            {"text": "from today", "intent": "inform",
             "entities": [{"start": 5, "end": 10, "entity": "date", "role": "checkin"}]},
            {"text": "hello", "intent": "greet"},
        ],
        "entity_synonyms": [{"value": "double", "synonyms": ["king", "Queen"]}],
        "regex_features": [{"name": "booking_id", "pattern": "SL-[0-9]{6}"}],
        "lookup_tables": [{"name": "city", "elements": ["Lisbon", "Paris"]}],
    }}, indent=2))
    data = load_training_data([path])
    assert [(e.text, e.intent) for e in data.examples] == [
        ("a room in Lisbon", "book_room"), ("from today", "inform"), ("hello", "greet")]
    assert data.examples[0].entities == (EntityAnnotation(10, 16, "Lisbon", "city"),)
    assert data.examples[1].entities == (EntityAnnotation(5, 10, "today", "date", "checkin"),)
    assert str(path) in str(data.examples[2].source)
    assert data.synonyms == {"king": "double", "queen": "double"}
    assert data.regexes == {"booking_id": ["SL-[0-9]{6}"]}
    assert data.lookups == {"city": ["Lisbon", "Paris"]}


@pytest.mark.parametrize("entity", [
    {"start": 10, "end": 40, "entity": "city"},
    {"start": -1, "end": 3, "entity": "city"},
    {"start": 5, "end": 5, "entity": "city"},
    {"start": "10", "end": 16, "entity": "city"},
])
def test_json_entity_span_must_lie_in_the_text(tmp_path: Path, entity: dict) -> None:
    path = write(tmp_path / "nlu.json", json.dumps({"rasa_nlu_data": {"common_examples": [
        {"text": "a room in Lisbon", "intent": "book_room", "entities": [entity]}]}}))
    with pytest.raises(ConfigError, match="outside the text") as info:
        load_training_data([path])
    assert str(path) in str(info.value)
    assert "common_examples[0]" in str(info.value)


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "nlu.json", '{\n  "rasa_nlu_data": {\n    "common_examples": [,]\n}\n')
    with pytest.raises(ConfigError, match="invalid JSON") as info:
        load_training_data([path])
    assert f"{path}:3:" in str(info.value)


def test_json_without_rasa_nlu_data_is_skipped(tmp_path: Path) -> None:
    data = load_training_data([write(tmp_path / "other.json", '{"whatever": 1}')])
    assert data.examples == []


# ------------------------------------------------------------------------ stories


STORIES = """\
version: "3.1"
stories:
- story: book with roles
  steps:
  - intent: greet
  - action: utter_greet
  - or:
    - intent: book_room
    - intent: inform
      entities:
      - city: Lisbon
  - action: booking_form
  - active_loop: booking_form
  - slot_was_set:
    - requested_slot: city
  - intent: inform
    entities:
    - date: "2030-05-03"
      role: checkin
    - date: "2030-05-05"
      role: checkout
    - city
  - slot_was_set:
    - checkin_date: "2030-05-03"
    - city
  - action: booking_form
  - active_loop: null
  - bot: "Done!"
  - checkpoint: booked
- story: after booking
  steps:
  - checkpoint: booked
  - intent: goodbye
  - action: utter_goodbye
"""


@pytest.fixture
def stories(tmp_path: Path) -> TrainingData:
    return load_text(tmp_path, STORIES, "stories.yml")


def test_story_steps(stories: TrainingData, tmp_path: Path) -> None:
    first, second = stories.stories
    assert first.name == "book with roles" and not first.is_rule
    assert first.source == Source(str(tmp_path / "stories.yml"), 3)
    kinds = [s.kind for s in first.steps]
    assert kinds == ["user", "action", "or", "action", "active_loop", "slot", "user", "slot",
                     "action", "active_loop", "bot", "checkpoint"]
    assert first.steps[0].intent == "greet"
    assert first.steps[0].source.line == 5
    assert first.steps[1].name == "utter_greet"
    assert first.steps[4].name == "booking_form"
    assert first.steps[9].name is None  # active_loop: null
    assert first.steps[10].text == "Done!"
    assert first.steps[11].name == "booked"
    assert second.steps[0].kind == "checkpoint" and second.steps[0].name == "booked"


def test_or_step(stories: TrainingData) -> None:
    alternatives = stories.stories[0].steps[2].alternatives
    assert [a.intent for a in alternatives] == ["book_room", "inform"]
    assert alternatives[1].entities == ({"entity": "city", "value": "Lisbon"},)
    assert alternatives[1].source.line == 9


def test_story_entities_with_roles(stories: TrainingData) -> None:
    step = stories.stories[0].steps[6]
    assert step.entities == (
        {"entity": "date", "value": "2030-05-03", "role": "checkin"},
        {"entity": "date", "value": "2030-05-05", "role": "checkout"},
        {"entity": "city"},
    )


def test_slot_was_set(stories: TrainingData) -> None:
    steps = stories.stories[0].steps
    assert steps[5].slots == (("requested_slot", "city"),)
    assert steps[7].slots == (("checkin_date", "2030-05-03"), ("city", ...))


@pytest.mark.parametrize("text, needle", [
    ("stories:\n- story: s\n  steps:\n  - intent: greet\n  - utter: hi\n", "unknown step"),
    ("stories:\n- story: s\n", "needs a list of 'steps'"),
    ("stories:\n- name: s\n  steps: []\n", "needs a 'story' name"),
    ("stories:\n- story: s\n  steps:\n  - greet\n", "a step is a mapping"),
    ("stories:\n- story: s\n  steps:\n  - or: greet\n", "'or' takes a list"),
    ("stories:\n- story: s\n  steps:\n  - slot_was_set:\n    - [a]\n", "bad slot_was_set"),
])
def test_bad_story_structure(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        load_text(tmp_path, text)
    assert str(tmp_path / "data.yml") in str(info.value)


def test_bad_step_names_its_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "stories:\n- story: s\n  steps:\n  - intent: greet\n  - utter: hi\n")
    assert f"{tmp_path / 'data.yml'}:5:" in str(info.value)


# -------------------------------------------------------------------------- rules


RULES = """\
version: "3.1"
rules:
- rule: greet at the start
  conversation_start: true
  steps:
  - intent: greet
  - action: utter_greet
- rule: submit the form
  condition:
  - active_loop: booking_form
  - slot_was_set:
    - city: Lisbon
  steps:
  - action: booking_form
  - active_loop: null
  - action: action_submit_booking
  wait_for_user_input: false
- rule: plain
  steps:
  - intent: goodbye
  - action: utter_goodbye
"""


def test_rules(tmp_path: Path) -> None:
    data = load_text(tmp_path, RULES, "rules.yml")
    assert data.stories == []
    start, submit, plain = data.rules
    assert all(r.is_rule for r in data.rules)
    assert start.conversation_start is True and start.wait_for_user_input is True
    assert submit.conversation_start is False and submit.wait_for_user_input is False
    assert [s.kind for s in submit.condition] == ["active_loop", "slot"]
    assert submit.condition[0].name == "booking_form"
    assert submit.condition[1].slots == (("city", "Lisbon"),)
    assert submit.condition[0].source.line == 10
    assert [s.kind for s in submit.steps] == ["action", "active_loop", "action"]
    assert plain.condition == () and plain.conversation_start is False


# -------------------------------------------------------------------- test stories


def test_test_story_user_text_with_annotations(tmp_path: Path) -> None:
    data = load_text(tmp_path, """\
stories:
- story: test
  steps:
  - user: |
      a room in [Lisbon](city) from [today]{"entity": "date", "role": "checkin"}
    intent: book_room
  - action: booking_form
  - user: |
      just text
  - user: hi
    intent: greet
    entities:
    - city: Paris
""", "test_stories.yml")
    first, _, plain, explicit = data.stories[0].steps
    assert first.kind == "user" and first.intent == "book_room"
    assert first.text == "a room in Lisbon from today"
    assert first.entities == (
        {"start": 10, "end": 16, "value": "Lisbon", "entity": "city"},
        {"start": 22, "end": 27, "value": "today", "entity": "date", "role": "checkin"},
    )
    assert plain.text == "just text" and plain.intent is None and plain.entities == ()
    assert explicit.entities == ({"entity": "city", "value": "Paris"},)  # explicit list wins


def test_demo_test_stories_parse_annotations(demo_test_stories: TrainingData) -> None:
    user_steps = [s for story in demo_test_stories.stories for s in story.steps if s.kind == "user"]
    assert all(s.text for s in user_steps)
    annotated = [s for s in user_steps if s.entities]
    assert annotated
    for step in annotated:
        assert "](" not in step.text and "]{" not in step.text
        for ent in step.entities:
            if "start" in ent:
                assert step.text[ent["start"]:ent["end"]]


# ------------------------------------------------------------------- files, skipping


def test_files_without_training_keys_are_skipped(tmp_path: Path) -> None:
    data = load_training_data([REPO / "data" / "hotels.yml"])
    assert data.examples == [] and data.stories == [] and data.rules == []
    assert data.files == [str(REPO / "data" / "hotels.yml")]


def test_folder_reads_yml_yaml_json_and_skips_others(tmp_path: Path) -> None:
    write(tmp_path / "a.yml", "nlu:\n- intent: greet\n  examples: |\n    - hi\n")
    write(tmp_path / "sub" / "b.yaml", "nlu:\n- intent: bye\n  examples: |\n    - bye\n")
    write(tmp_path / "c.json", json.dumps({"rasa_nlu_data": {"common_examples": [
        {"text": "thanks", "intent": "thank"}]}}))
    write(tmp_path / "notes.md", "- intent: nope\n")
    write(tmp_path / "empty.yml", "")
    write(tmp_path / "facts.yml", "hotels:\n  - name: x\n")
    data = load_training_data([tmp_path])
    assert sorted(e.intent for e in data.examples) == ["bye", "greet", "thank"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_training_data([tmp_path / "nowhere"])


def test_responses_in_training_data(tmp_path: Path) -> None:
    data = load_text(tmp_path, "responses:\n  utter_faq/hours:\n    - text: 9 to 5\n")
    assert data.responses == {"utter_faq/hours": [{"text": "9 to 5"}]}


def test_unknown_top_level_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project.training_data"):
        load_text(tmp_path, "nlu: []\nstroies: []\n")
    assert "stroies" in caplog.text


# ------------------------------------------------------------------ the demo's data


def _contract_intents() -> list[str]:
    text = (REPO / "docs" / "demo_assistant.md").read_text(encoding="utf-8")
    section = text.split("## Intents", 1)[1].split("\n\n", 1)[0]
    names = [n.strip().rstrip(".") for n in section.replace("\n", " ").split(",")]
    return [n for n in names if n]


def test_contract_lists_the_intents() -> None:
    intents = _contract_intents()
    assert len(intents) == 17
    assert {"book_room", "inform", "ask_question", "stop"} <= set(intents)


def test_demo_example_counts(demo: TrainingData) -> None:
    counts = Counter(e.intent for e in demo.examples)
    for intent in _contract_intents():
        assert counts[intent] >= 30, f"{intent}: only {counts[intent]} examples"
    for intent in ("book_room", "inform", "ask_question"):
        assert counts[intent] >= 60, f"{intent}: only {counts[intent]} examples"
    assert set(counts) == set(_contract_intents())


def test_demo_story_and_rule_counts(demo: TrainingData) -> None:
    assert len(demo.stories) >= 40
    assert len(demo.rules) >= 15
    kinds = Counter(s.kind for story in demo.stories for s in story.steps)
    assert kinds["checkpoint"] > 0 and kinds["or"] > 0 and kinds["active_loop"] > 0


def test_demo_files(demo: TrainingData) -> None:
    names = {Path(f).name for f in demo.files}
    assert {"nlu.yml", "stories.yml", "rules.yml", "hotels.yml"} <= names


def test_demo_has_no_duplicate_examples(demo: TrainingData) -> None:
    counts = Counter(e.text.strip().lower() for e in demo.examples)
    assert [t for t, n in counts.items() if n > 1] == []


def test_demo_test_stories_count(demo_test_stories: TrainingData) -> None:
    assert len(demo_test_stories.stories) >= 30


def test_held_out_nlu_shares_no_text_with_training(demo: TrainingData) -> None:
    held_out = load_training_data([REPO / "tests" / "nlu_test.yml"])
    assert held_out.examples
    trained = {_normalise(e.text) for e in demo.examples}
    shared = sorted({e.text for e in held_out.examples if _normalise(e.text) in trained})
    assert shared == []


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())
