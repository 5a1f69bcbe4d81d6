"""`validate_project` and `xingkong data validate`: every problem names its file and line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.project.config import ProjectPaths
from bot.validate import Finding, validate_project

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- helpers


def copy_demo(dst: Path) -> Path:
    """The demo project (domain.yml, config.yml, data/) copied to `dst`."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "domain.yml", dst / "domain.yml")
    shutil.copy2(REPO / "config.yml", dst / "config.yml")
    shutil.copytree(REPO / "data", dst / "data")
    return dst


def line_number(path: Path, exact_line: str, start: int = 1) -> int:
    """1-based number of the first line equal to `exact_line` at or after line `start`."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if number >= start and line == exact_line:
            return number
    raise AssertionError(f"{exact_line!r} not found in {path}")


def insert_after(path: Path, number: int, new_line: str) -> int:
    """Insert `new_line` after line `number`; return the new line's number."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(number, new_line + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return number + 1


def errors(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.level == "error"]


def messages(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings]


# Validating the demo parses ~1 MB of YAML. The broken copies are never modified after
# their fixture made them, so each distinct ProjectPaths is validated once for real and the
# CLI tests reuse that result; a CLI that built different paths would miss the cache and be
# validated afresh.
_VALIDATED: dict[tuple[ProjectPaths, int], list[Finding]] = {}


def cached_validate_project(paths: ProjectPaths, max_history: int = 5) -> list[Finding]:
    key = (paths, max_history)
    if key not in _VALIDATED:
        _VALIDATED[key] = validate_project(paths, max_history=max_history)
    return list(_VALIDATED[key])


def findings_at(root: Path) -> list[Finding]:
    """The (cached) findings of the project at `root`."""
    return cached_validate_project(ProjectPaths.at(root))


def validate(root: Path) -> list[Finding]:
    return validate_project(ProjectPaths.at(root))


def run_cli(root: Path, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["data", "validate", "--project", str(root), *options])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


@pytest.fixture
def shared_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI (which imports validate_project when it runs) uses the cached results."""
    monkeypatch.setattr("bot.validate.validate_project", cached_validate_project)


def one_error_naming(findings: list[Finding], *parts: str) -> str:
    matching = [m for m in errors(findings) if all(p in m for p in parts)]
    assert matching, f"no error naming {parts}; errors: {errors(findings)}"
    return matching[0]


# ------------------------------------------------------------------------------ the demo


def test_demo_validates_without_errors() -> None:
    assert errors(findings_at(REPO)) == []


def test_demo_validates_with_the_cli(shared_validation: None) -> None:
    code, output = run_cli(REPO)
    assert code == 0, output
    assert "0 error(s)" in output


# ---------------------------------------------------- three broken copies of the demo


@pytest.fixture(scope="module")
def broken_yaml(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """data/nlu.yml with a wrongly indented `examples:` key (a YAML syntax error)."""
    root = copy_demo(tmp_path_factory.mktemp("broken_yaml"))
    nlu = root / "data" / "nlu.yml"
    intent_line = line_number(nlu, "- intent: goodbye")
    assert line_number(nlu, "  examples: |", intent_line) == intent_line + 1
    lines = nlu.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[intent_line] = "   examples: |\n"  # three spaces: not a key of the intent's mapping
    nlu.write_text("".join(lines), encoding="utf-8")
    return root, intent_line + 1


@pytest.fixture(scope="module")
def broken_story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """data/stories.yml with a misspelt intent in the first story."""
    root = copy_demo(tmp_path_factory.mktemp("broken_story"))
    stories = root / "data" / "stories.yml"
    number = line_number(stories, "  - intent: book_room")
    lines = stories.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[number - 1] = "  - intent: book_rom\n"
    stories.write_text("".join(lines), encoding="utf-8")
    return root, number


def _write_extra_json(root: Path) -> tuple[int, int]:
    """data/extra.json whose second example has an entity span past the text's end.
    Returns the first and last line of that example's object."""
    content = {
        "rasa_nlu_data": {
            "common_examples": [
                {"text": "a room in Lisbon please", "intent": "book_room",
                 "entities": [{"start": 10, "end": 16, "value": "Lisbon", "entity": "city"}]},
                {"text": "a room in Paris", "intent": "book_room",
                 "entities": [{"start": 10, "end": 40, "value": "Paris", "entity": "city"}]},
            ]
        }
    }
    text = json.dumps(content, indent=2)
    (root / "data" / "extra.json").write_text(text, encoding="utf-8")
    lines = text.splitlines()
    text_line = next(i for i, line in enumerate(lines, 1) if '"a room in Paris"' in line)
    first = text_line - 1  # the example's opening brace
    last = next(i for i, line in enumerate(lines, 1) if i > text_line and line == "      }")
    return first, last


@pytest.fixture(scope="module")
def broken_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[int, int]]:
    root = copy_demo(tmp_path_factory.mktemp("broken_json"))
    return root, _write_extra_json(root)


def _with_inform_example(root: Path, example: str) -> tuple[Path, int]:
    """The demo copied to `root` with `example` added first to the inform intent; returns the
    root and the example's line."""
    nlu = copy_demo(root) / "data" / "nlu.yml"
    after = line_number(nlu, "  examples: |", line_number(nlu, "- intent: inform"))
    return root, insert_after(nlu, after, example)


@pytest.fixture(scope="module")
def broken_span(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An NLU example whose annotation cuts through a word: `Lis[bon](city)`."""
    return _with_inform_example(tmp_path_factory.mktemp("broken_span"),
                                "    - I am going to Lis[bon](city) next week")


@pytest.fixture(scope="module")
def broken_annotation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An NLU example with an unclosed annotation: `[Lisbon](city`."""
    return _with_inform_example(tmp_path_factory.mktemp("broken_annotation"),
                                "    - I am going to [Lisbon](city next week")


def test_yaml_syntax_error_names_file_and_line(broken_yaml: tuple[Path, int]) -> None:
    root, number = broken_yaml
    message = one_error_naming(findings_at(root), "nlu.yml")
    assert f"{root / 'data' / 'nlu.yml'}:{number}:" in message
    assert "YAML" in message


def test_unknown_story_intent_names_file_line_and_suggests(
    broken_story: tuple[Path, int]
) -> None:
    root, number = broken_story
    message = one_error_naming(findings_at(root), "book_rom")
    assert f"{root / 'data' / 'stories.yml'}:{number}:" in message
    assert "unknown intent 'book_rom'" in message
    assert "Did you mean 'book_room'?" in message


def test_json_entity_span_outside_the_text_names_the_file(
    broken_json: tuple[Path, tuple[int, int]]
) -> None:
    root, _ = broken_json
    message = one_error_naming(findings_at(root), "extra.json")
    assert str(root / "data" / "extra.json") in message
    assert "common_examples[1]" in message
    assert "'city'" in message
    assert "[10, 40)" in message


def test_json_entity_span_outside_the_text_names_the_line(
    broken_json: tuple[Path, tuple[int, int]]
) -> None:
    root, (first, last) = broken_json
    message = one_error_naming(findings_at(root), "extra.json")
    found = re.search(re.escape(str(root / "data" / "extra.json")) + r":(\d+)", message)
    assert found is not None, message
    assert first <= int(found.group(1)) <= last


def test_annotation_cutting_through_a_word_names_file_and_line(
    broken_span: tuple[Path, int]
) -> None:
    root, number = broken_span
    message = one_error_naming(findings_at(root), "cuts through a word")
    assert f"{root / 'data' / 'nlu.yml'}:{number}:" in message
    assert "'bon'" in message
    assert "'city'" in message


def test_malformed_annotation_names_file_and_line(broken_annotation: tuple[Path, int]) -> None:
    root, number = broken_annotation
    message = one_error_naming(findings_at(root), "malformed entity annotation")
    assert f"{root / 'data' / 'nlu.yml'}:{number}:" in message
    assert "[Lisbon](city" in message


@pytest.mark.parametrize("fixture, needle", [
    ("broken_yaml", "nlu.yml"),
    ("broken_story", "book_rom"),
    ("broken_json", "extra.json"),
    ("broken_span", "cuts through a word"),
    ("broken_annotation", "malformed entity annotation"),
])
def test_cli_exits_1_and_prints_the_problem(fixture: str, needle: str,
                                            request: pytest.FixtureRequest,
                                            shared_validation: None) -> None:
    root = request.getfixturevalue(fixture)[0]
    code, output = run_cli(root)
    assert code == 1, output
    assert needle in output
    assert str(root / "data") in output
    assert "Traceback" not in output
    assert re.search(r"[1-9]\d* error\(s\)", output)


# ---------------------------------------------- a small project for the other checks

MINI_DOMAIN = """\
version: "3.1"
intents:
  - greet
  - goodbye
  - inform
  - book
entities:
  - city
  - date:
      roles:
        - checkin
        - checkout
slots:
  city:
    type: text
    mappings:
      - type: from_entity
        entity: city
forms:
  book_form:
    required_slots:
      - city
responses:
  utter_greet:
    - text: "Hello!"
  utter_goodbye:
    - text: "Bye!"
  utter_ask_city:
    - text: "Which city?"
actions:
  - action_book
"""

MINI_CONFIG = """\
language: en
pipeline:
  - name: IntentClassifier
policies:
  - name: MemoizationPolicy
    max_history: 5
  - name: RulePolicy
"""

MINI_NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
- intent: goodbye
  examples: |
    - bye
    - see you
- intent: inform
  examples: |
    - [Lisbon](city)
    - arriving [tomorrow]{"entity": "date", "role": "checkin"}
- intent: book
  examples: |
    - book a room
    - I need a room
"""

MINI_RULES = """\
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: goodbye
  steps:
  - intent: goodbye
  - action: utter_goodbye
- rule: activate the form
  steps:
  - intent: book
  - action: book_form
  - active_loop: book_form
- rule: submit the form
  condition:
  - active_loop: book_form
  steps:
  - action: book_form
  - active_loop: null
  - slot_was_set:
    - requested_slot: null
  - action: action_book
"""

MINI_STORIES = """\
version: "3.1"
stories:
- story: greet and book
  steps:
  - intent: greet
  - action: utter_greet
  - intent: book
  - action: book_form
  - active_loop: book_form
  - slot_was_set:
    - requested_slot: city
  - intent: inform
    entities:
    - city: Lisbon
  - slot_was_set:
    - city: Lisbon
  - action: book_form
  - active_loop: null
  - slot_was_set:
    - requested_slot: null
  - action: action_book
"""


def make_mini(root: Path, domain: str = MINI_DOMAIN, **extra: str) -> Path:
    """A small valid project; `extra` adds data files (name=content, name without .yml)."""
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text(domain, encoding="utf-8")
    (root / "config.yml").write_text(MINI_CONFIG, encoding="utf-8")
    (root / "data" / "nlu.yml").write_text(MINI_NLU, encoding="utf-8")
    (root / "data" / "rules.yml").write_text(MINI_RULES, encoding="utf-8")
    (root / "data" / "stories.yml").write_text(MINI_STORIES, encoding="utf-8")
    for name, content in extra.items():
        (root / "data" / f"{name}.yml").write_text(content, encoding="utf-8")
    return root


def test_small_project_is_valid(tmp_path: Path) -> None:
    findings = validate(make_mini(tmp_path))
    assert errors(findings) == []
    assert [f for f in findings if f.level == "warning"] == []


def test_unknown_action_in_a_rule(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
rules:
- rule: say bye politely
  steps:
  - intent: goodbye
  - action: utter_goodbey
""")
    message = one_error_naming(validate(root), "unknown action 'utter_goodbey'")
    assert f"{root / 'data' / 'broken.yml'}:6:" in message
    assert "rule 'say bye politely'" in message
    assert "Did you mean 'utter_goodbye'?" in message


def test_unknown_slot_in_slot_was_set(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
stories:
- story: remembers a town
  steps:
  - intent: inform
  - slot_was_set:
    - citty: Lisbon
  - action: utter_greet
""")
    message = one_error_naming(validate(root), "unknown slot 'citty'")
    assert f"{root / 'data' / 'broken.yml'}:6:" in message
    assert "Did you mean 'city'?" in message


def test_story_entity_not_in_domain_is_an_error(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
stories:
- story: uses an unknown entity
  steps:
  - intent: inform
    entities:
    - town: Lisbon
  - action: utter_greet
""")
    message = one_error_naming(validate(root), "unknown entity 'town'")
    assert f"{root / 'data' / 'broken.yml'}:5:" in message


def test_nlu_entity_not_in_domain_is_reported_with_its_line(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
nlu:
- intent: inform
  examples: |
    - from [Oslo](town)
""")
    found = [m for m in messages(validate(root)) if "'town'" in m]
    assert found, "an NLU entity missing from the domain is not reported"
    assert f"{root / 'data' / 'broken.yml'}:5:" in found[0]


def test_undeclared_role_in_nlu_example(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
nlu:
- intent: inform
  examples: |
    - some other text
    - leaving [Friday]{"entity": "date", "role": "departure"}
""")
    message = one_error_naming(validate(root), "role 'departure'")
    assert f"{root / 'data' / 'broken.yml'}:6:" in message
    assert "entity 'date'" in message


def test_declared_role_in_nlu_example_is_fine(tmp_path: Path) -> None:
    root = make_mini(tmp_path, fine="""\
version: "3.1"
nlu:
- intent: inform
  examples: |
    - leaving [Friday]{"entity": "date", "role": "checkout"}
""")
    assert errors(validate(root)) == []


def test_undeclared_role_in_story_step(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
stories:
- story: leaves on Friday
  steps:
  - intent: inform
    entities:
    - date: Friday
      role: departure
  - action: utter_greet
""")
    message = one_error_naming(validate(root), "departure")
    assert f"{root / 'data' / 'broken.yml'}:5:" in message


def _domain_with_pet_form() -> str:
    return MINI_DOMAIN.replace("forms:\n", "forms:\n  pet_form:\n    required_slots:\n"
                                           "      - pet_name\n", 1)


def test_form_requiring_a_missing_slot(tmp_path: Path) -> None:
    root = make_mini(tmp_path, domain=_domain_with_pet_form())
    message = one_error_naming(validate(root), "pet_form")
    assert "'pet_name'" in message


def test_form_requiring_a_missing_slot_names_domain_file_and_line(tmp_path: Path) -> None:
    root = make_mini(tmp_path, domain=_domain_with_pet_form())
    message = one_error_naming(validate(root), "pet_form")
    assert re.search(re.escape(str(root / "domain.yml")) + r":\d+", message), message


def test_story_conflict(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
stories:
- story: alpha
  steps:
  - intent: inform
  - action: utter_greet
  - intent: inform
  - action: utter_greet
- story: beta
  steps:
  - intent: inform
  - action: utter_greet
  - intent: inform
  - action: utter_goodbye
""")
    findings = validate(root)
    message = one_error_naming(findings, "'alpha'", "'beta'")
    assert f"{root / 'data' / 'broken.yml'}:14:" in message
    assert "utter_goodbye" in message
    assert len(errors(findings)) == 1


def test_identical_stories_do_not_conflict(tmp_path: Path) -> None:
    root = make_mini(tmp_path, twins="""\
version: "3.1"
stories:
- story: alpha
  steps:
  - intent: inform
  - action: utter_greet
  - intent: goodbye
  - action: utter_goodbye
- story: beta
  steps:
  - intent: inform
  - action: utter_greet
  - intent: goodbye
  - action: utter_goodbye
""")
    assert errors(validate(root)) == []


def test_rule_contradicting_a_story(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
stories:
- story: rude greeting
  steps:
  - intent: greet
  - action: utter_goodbye
""")
    message = one_error_naming(validate(root), "rude greeting", "rule 'greet'")
    assert f"{root / 'data' / 'broken.yml'}:6:" in message


def test_unknown_active_loop(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
rules:
- rule: a loop that does not exist
  steps:
  - intent: book
  - action: book_form
  - active_loop: bok_form
""")
    message = one_error_naming(validate(root), "bok_form")
    assert f"{root / 'data' / 'broken.yml'}:7:" in message


def test_slot_mapping_from_unknown_entity(tmp_path: Path) -> None:
    domain = MINI_DOMAIN.replace("        entity: city\n", "        entity: town\n", 1)
    message = one_error_naming(validate(make_mini(tmp_path, domain=domain)), "'town'")
    assert "city" in message


def test_regex_that_does_not_compile(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
nlu:
- regex: booking_id
  examples: |
    - SL-[0-9{6}
""")
    one_error_naming(validate(root), "booking_id", "does not compile")


def test_config_error_is_one_finding_not_an_exception(tmp_path: Path) -> None:
    root = make_mini(tmp_path)
    (root / "config.yml").write_text("policies:\n  - name: RulPolicy\n", encoding="utf-8")
    findings = validate(root)
    assert len(errors(findings)) == 1
    assert "Did you mean 'RulePolicy'?" in errors(findings)[0]


def test_cli_fail_on_warnings(tmp_path: Path) -> None:
    root = make_mini(tmp_path, broken="""\
version: "3.1"
nlu:
- intent: inform
  examples: |
    - from [Oslo](town)
""")
    findings = validate(root)
    assert errors(findings) == []
    assert findings, "expected a warning"
    code, _ = run_cli(root)
    assert code == 0
    code, output = run_cli(root, "--fail-on-warnings")
    assert code == 1
    assert "1 warning(s)" in output
