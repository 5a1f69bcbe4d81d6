"""`xingkong init`: a new, small, working Rasa 3 project to start from.

The starter assistant greets, says goodbye, tells the time with a custom action and admits
it is a bot; it has NLU data, rules, a story, test stories and an actions package.
"""

from __future__ import annotations

from pathlib import Path

from bot.errors import ConfigError

FILES: dict[str, str] = {
    "config.yml": """\
recipe: default.v1
language: en
assistant_id: starter-assistant
# No pipeline: Xingkong's default Transformer NLU (intent classifier, entity spans,
# synonyms, regexes, fallback). A Rasa pipeline works here too.
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
""",
    "domain.yml": """\
version: "3.1"
intents:
  - greet
  - goodbye
  - ask_time
  - bot_challenge
responses:
  utter_greet:
    - text: "Hi! Ask me what time it is."
  utter_goodbye:
    - text: "See you soon."
  utter_iamabot:
    - text: "I am a bot, built with Xingkong."
  utter_default:
    - text: "Sorry, I did not get that. I can tell you the time."
actions:
  - action_tell_time
session_config:
  session_expiration_time: 60
  carry_over_slots_to_new_session: true
""",
    "endpoints.yml": """\
# Custom actions run in-process from actions/ by default. To use a separate action server
# (`xingkong run actions`), uncomment:
# action_endpoint:
#   url: "http://localhost:5055/webhook"
""",
    "credentials.yml": """\
rest:
""",
    "data/nlu.yml": """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - hello there
    - good morning
    - good evening
    - hey
    - hi bot
- intent: goodbye
  examples: |
    - bye
    - goodbye
    - see you later
    - good night
    - talk to you soon
    - that is all, bye
- intent: ask_time
  examples: |
    - what time is it
    - what's the time
    - tell me the time
    - do you know the time
    - time please
    - what is the time now
- intent: bot_challenge
  examples: |
    - are you a bot
    - am I talking to a human
    - are you a real person
    - is this a robot
    - are you human
""",
    "data/rules.yml": """\
version: "3.1"
rules:
- rule: answer a greeting
  steps:
  - intent: greet
  - action: utter_greet
- rule: say goodbye
  steps:
  - intent: goodbye
  - action: utter_goodbye
- rule: say it is a bot
  steps:
  - intent: bot_challenge
  - action: utter_iamabot
""",
    "data/stories.yml": """\
version: "3.1"
stories:
- story: greet, ask the time, leave
  steps:
  - intent: greet
  - action: utter_greet
  - intent: ask_time
  - action: action_tell_time
  - intent: goodbye
  - action: utter_goodbye
""",
    "tests/test_stories.yml": """\
version: "3.1"
stories:
- story: the time, then goodbye
  steps:
  - user: |
      hello
    intent: greet
  - action: utter_greet
  - user: |
      what time is it
    intent: ask_time
  - action: action_tell_time
  - user: |
      bye
    intent: goodbye
  - action: utter_goodbye
""",
    "actions/__init__.py": "",
    "actions/actions.py": '''\
"""The starter's custom actions (rasa_sdk); they run unchanged on a rasa-sdk action server."""

from datetime import datetime

from rasa_sdk import Action


class ActionTellTime(Action):
    def name(self):
        return "action_tell_time"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(text=f"It is {datetime.now():%H:%M}.")
        return []
''',
}


def create_project(target: Path, *, force: bool = False) -> list[Path]:
    """Write the starter project into `target` (which must be empty unless `force`)."""
    if target.exists() and any(target.iterdir()) and not force:
        raise ConfigError(f"{target} is not empty. Choose an empty folder, or pass --force to "
                          "write the starter files over what is there.")
    written = []
    for name, content in FILES.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written
