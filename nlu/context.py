"""Dialogue context for the NLU: what the bot just did, so short answers can be read right.

"yes", "the 14th" or "no, keep it" mean different things after different questions. The
dialogue manager builds a `DialogueContext` from the tracker before each parse; NLU components
that want it (IntentClassifier with `use_context: true`) read `render_context(context)`, a short
text the encoder takes as the first sentence of a pair: (context text, message).

The shared contract for every NLU component (names kept plain on purpose):
- `DialogueContext(last_action, requested_slot, active_loop)`: all optional strings.
- `render_context(context) -> str`: "" for no context, so a context-free parse is the
  same as a parse with an empty context.
- `Interpreter.parse(text, context=None)` / `parse_batch(texts, contexts=None)`: contexts is
  None or one `DialogueContext | None` per text.
- `mine_contexts(conversations) -> {intent: [DialogueContext, ...]}`: training contexts from
  stories and rules written as Rasa's step dicts ({"action": ...}, {"intent": ...},
  {"active_loop": ...}, {"slot_was_set": {...}}, {"or": [...]}): each intent is paired with the
  context in which a story has the user say it. A rule whose condition is an active form and
  whose first step is the user's ("stop" inside the cancel form) is said while the form asks:
  after the form's own action, with each slot the stories see that form ask for, and with none
  (a test story or a form that was not run leaves requested_slot unset).
- `add_topic_switches(mined, rules)`: outside a form a guest may change the subject, so an
  intent a rule without a condition opens with (book_room, ask_question, chitchat, ...) is paired
  with every open context (no active form) that such an intent follows. Without it the stories
  teach "after small talk comes small talk or goodbye", and a booking request said after a
  joke is read as chitchat.
- `task_answers(conversations)` and `restated_tasks(examples, answers, contexts)`: a reply
  to a confirmation that names its task ("ya just cancel it" after "shall I cancel it?") is an
  affirm there, but said where the task itself can be asked for ("anything else?") it is the
  task: cancel_booking. Such a reply is trained once in every context: relabelled where its
  task follows, with its own label in its intent's other contexts. Otherwise its copies all
  keep the answer's label and the classifier learns to ignore the context for it.
- `answer_contexts(examples, contexts, mappings)`: an example whose entities fill the
  slot a form asks for ("[Starlight Rome](hotel) sounds good") is also trained in the
  contexts that ask for that slot, beside the one drawn at random from its intent's contexts
  (a hotel named when the form asks for the hotel is the common answer; drawn at random,
  about 1 in 16 of the copies of such examples landed there).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ACTION_LISTEN = "action_listen"
# Actions that say nothing the guest answers to; the one before them is the context.
_SILENT_PREFIXES = ("validate_",)
_SILENT = {ACTION_LISTEN, "action_extract_slots", "action_session_start"}


@dataclass(frozen=True, slots=True)
class DialogueContext:
    """`last_action`: the last action the bot ran before listening (not action_listen);
    `requested_slot`: the slot the active form asked for; `active_loop`: the active form."""

    last_action: str | None = None
    requested_slot: str | None = None
    active_loop: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.last_action or self.requested_slot or self.active_loop)

    def to_dict(self) -> dict[str, str | None]:
        return {"last_action": self.last_action, "requested_slot": self.requested_slot,
                "active_loop": self.active_loop}


def render_context(context: DialogueContext | None) -> str:
    """A short text for the encoder: "ask anything else" or "booking form asks checkin date".
    Names become words (utter_/action_ prefixes and underscores dropped)."""
    if context is None or context.is_empty:
        return ""
    parts = []
    if context.active_loop and context.requested_slot:
        parts.append(f"{_words(context.active_loop)} asks {_words(context.requested_slot)}")
    elif context.active_loop:
        parts.append(_words(context.active_loop))
    if context.last_action and context.last_action != context.active_loop:
        parts.append(_words(context.last_action))
    return "; ".join(parts)


def mine_contexts(conversations: Iterable[list[Mapping[str, Any]]]) -> dict[str, list[DialogueContext]]:
    """{intent: distinct contexts it follows} from stories and rules as Rasa step dicts.
    A user step before any action in its conversation is skipped: a rule's first step can
    happen anywhere, and the context-free case is trained from every example anyway."""
    conversations = [list(steps) for steps in conversations]
    asked = _requested_slots(conversations)
    found: dict[str, dict[DialogueContext, None]] = {}
    for steps in conversations:
        last, requested, loop = None, None, None
        for step in steps:
            if "action" in step:
                name = str(step["action"])
                if name not in _SILENT and not name.startswith(_SILENT_PREFIXES):
                    last = name
            elif "active_loop" in step:
                loop = step["active_loop"] or None
                if loop is None:
                    requested = None
            elif "slot_was_set" in step:
                for name, value in _slot_items(step["slot_was_set"]):
                    if name == "requested_slot":
                        requested = value or None
            elif "intent" in step or "or" in step:
                if last is not None:
                    contexts = [DialogueContext(last, requested if loop else None, loop)]
                elif loop is not None:  # a rule's condition: the form is asking
                    contexts = [DialogueContext(loop, slot, loop)
                                for slot in (None, *asked.get(loop, ()))]
                else:
                    continue
                alternatives = step.get("or") or [step]
                for alt in alternatives:
                    intent = alt.get("intent") if isinstance(alt, Mapping) else None
                    if intent:
                        found.setdefault(str(intent), {}).update(dict.fromkeys(contexts))
    return {intent: list(contexts) for intent, contexts in found.items()}


def _requested_slots(conversations: list[list[Mapping[str, Any]]]) -> dict[str, list[str]]:
    """{form: the slots it is seen asking for (requested_slot set while it is active)}."""
    asked: dict[str, dict[str, None]] = {}
    for steps in conversations:
        loop = None
        for step in steps:
            if "active_loop" in step:
                loop = step["active_loop"] or None
            elif "slot_was_set" in step and loop is not None:
                for name, value in _slot_items(step["slot_was_set"]):
                    if name == "requested_slot" and value:
                        asked.setdefault(loop, {})[str(value)] = None
    return {loop: list(slots) for loop, slots in asked.items()}


def opening_intents(rules: Iterable[list[Mapping[str, Any]]]) -> set[str]:
    """Intents that rules begin with, before any action, form or slot step: what a guest may
    say at any time. Give each rule its `condition` steps first: a conditioned rule then opens
    with no intent. (Stories are left out: one may continue another through a checkpoint.)"""
    found: set[str] = set()
    for steps in rules:
        first = steps[0] if steps else {}
        if "intent" not in first and "or" not in first:
            continue
        alternatives = first.get("or") or [first]
        found.update(str(alt["intent"]) for alt in alternatives
                     if isinstance(alt, Mapping) and alt.get("intent"))
    return found


def add_topic_switches(mined: Mapping[str, list[DialogueContext]],
                       rules: Iterable[list[Mapping[str, Any]]]
                       ) -> dict[str, list[DialogueContext]]:
    """`mined` plus, for every opening intent (`opening_intents(rules)`), every open context:
    one without an active form that some opening intent follows in the stories or rules (a
    greeting, an answer, small talk; not a form's question or a confirmation, which only
    their answers follow)."""
    openers = opening_intents(rules)
    open_contexts = {c: None for intent in sorted(openers) for c in mined.get(intent, [])
                     if c.active_loop is None}
    out = {intent: list(contexts) for intent, contexts in mined.items()}
    for intent in sorted(openers):
        have = dict.fromkeys(out.get(intent, []))
        out[intent] = list(have | {c: None for c in open_contexts if c not in have})
    return out


def task_answers(conversations: Iterable[list[Mapping[str, Any]]]) -> dict[str, dict[str, str]]:
    """{confirmation: {answer intent: task intent}} from the stories. A confirmation is the
    bot's first action after a form completed (the form's own action ends it, not
    action_deactivate_loop): utter_confirm_cancel. An answer to it that a story follows with
    an action_ (affirm -> action_cancel_booking) carries out the task: the intent said just
    before the form was opened (cancel_booking -> cancel_form)."""
    found: dict[str, dict[str, str]] = {}
    for steps in conversations:
        steps = list(steps)
        task, loop, last, completed, confirmation = None, None, None, False, None
        for i, step in enumerate(steps):
            if "action" in step:
                name = str(step["action"])
                if name not in _SILENT and not name.startswith(_SILENT_PREFIXES):
                    if completed and name != last:
                        confirmation, completed = name, False
                    last = name
            elif "active_loop" in step:
                opened = step["active_loop"] or None
                if opened and loop is None and i >= 2 and "intent" in steps[i - 2]:
                    task = str(steps[i - 2]["intent"])  # intent, form action, active_loop
                completed = opened is None and loop is not None and last == loop
                loop = opened
            elif "intent" in step:
                after = steps[i + 1] if i + 1 < len(steps) else {}
                action = str(after.get("action", ""))
                if confirmation and task and last == confirmation and action.startswith("action_"):
                    found.setdefault(confirmation, {})[str(step["intent"])] = task
                confirmation = None
    return found


def restated_tasks(examples: Iterable[tuple[str, str]], answers: Mapping[str, Mapping[str, str]],
                   contexts: Mapping[str, list[DialogueContext]]
                   ) -> dict[str, list[tuple[DialogueContext, str]]]:
    """{text: [(context, intent), ...]} for the (text, intent) examples that answer a
    confirmation (`task_answers`) with a word of their task's name that no other intent's name
    shares, as a word or its stem ("cancel" of cancel_booking, "room" of book_room; not "book",
    which check_booking's "booking" shares): every context the task follows (`contexts`) with
    the task, and every other context of the example's intent with that intent, so that both
    readings are trained about as often. A text naming two tasks, or none, is left out."""
    examples = list(examples)
    names = {intent for _, intent in examples}
    own = {task: {w for w in task.split("_")
                  if not any(_same_word(w, v) for other in names - {task}
                             for v in other.split("_"))}
           for by_intent in answers.values() for task in by_intent.values()}
    out: dict[str, list[tuple[DialogueContext, str]]] = {}
    for text, intent in examples:
        said = text.lower().replace(",", " ").replace(".", " ").split()
        named = {task for by_intent in answers.values() for answer, task in by_intent.items()
                 if answer == intent and any(w in own[task] for w in said)}
        if len(named) == 1 and contexts.get(task := named.pop()):
            there = set(contexts[task])
            out[text] = [(c, task) for c in contexts[task]] + \
                [(c, intent) for c in contexts.get(intent, []) if c not in there]
    return out


def answer_contexts(examples: Iterable[tuple[str, str, Iterable[tuple[str, str | None]]]],
                    contexts: Mapping[str, list[DialogueContext]],
                    mappings: Mapping[str, Iterable[Mapping[str, Any]]]
                    ) -> dict[str, list[DialogueContext]]:
    """{text: [context, ...]} for the (text, intent, [(entity, role), ...]) examples
    with an entity that fills the requested slot of some context of their intent: every such
    context. `mappings`: {slot: its mappings in Rasa's domain shape}; a `from_entity` one
    fills with its entity (and its role, when it names one) unless its `intent` /
    `not_intent` keep the example's intent out. Other examples are left out."""
    out: dict[str, list[DialogueContext]] = {}
    for text, intent, entities in examples:
        said = set(entities)
        fitting = [c for c in contexts.get(intent, []) if c.requested_slot
                   and any(_fills(m, said, intent) for m in mappings.get(c.requested_slot, ()))]
        if fitting:
            out[text] = fitting
    return out


def _fills(mapping: Mapping[str, Any], said: set[tuple[str, str | None]], intent: str) -> bool:
    if mapping.get("type") != "from_entity":
        return False
    allowed, barred = _names(mapping.get("intent")), _names(mapping.get("not_intent"))
    if (allowed and intent not in allowed) or intent in barred:
        return False
    role = mapping.get("role")
    return any(e == mapping.get("entity") and (role is None or r == role) for e, r in said)


def _names(value: Any) -> set[str]:
    if not value:
        return set()
    return {str(value)} if isinstance(value, str) else {str(v) for v in value}


def _same_word(a: str, b: str) -> bool:
    """"book" and "booking": one starts with the other, which has at least 4 letters."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 4 and long.startswith(short)


def _slot_items(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    out: list[tuple[str, Any]] = []
    for item in value or []:
        if isinstance(item, Mapping):
            out.extend(item.items())
        elif isinstance(item, str):
            out.append((item, None))
    return out


def _words(name: str) -> str:
    for prefix in ("utter_", "action_"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace("_", " ").strip()
