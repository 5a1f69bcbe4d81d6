"""Pure rendering helpers: Rasa's bot messages and trackers in, chat messages, highlighted
segments and Markdown out. No gradio here; the app module feeds these values to components.

A turn's inspection (TurnView) is read from the tracker after the turn: the latest "user"
event (kept even when a fallback rewound it), then every action event after it with the
policy that chose it. Entities without a position in the text (from "/intent{...}" payloads)
are listed but not highlighted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

Segments = list[tuple[str, str | None]]

ANSWER_LABEL = "answer"
GENERATED_BADGE = "`generated`"
WRITTEN_BADGE = "`written small talk`"


@dataclass(frozen=True, slots=True)
class TurnView:
    """Everything the inspector shows for one bot turn."""

    index: int
    user_text: str
    sent_text: str
    intent: str | None = None
    confidence: float | None = None
    uncertainty: dict[str, float] = field(default_factory=dict)
    ranking: dict[str, float] = field(default_factory=dict)
    entities: list[dict[str, Any]] = field(default_factory=list)
    entity_segments: Segments = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    active_loop: str | None = None
    requested_slot: str | None = None
    actions: list[tuple[str, str | None, float | None]] = field(default_factory=list)
    knowledge: list[dict[str, Any]] = field(default_factory=list)
    generated: int = 0
    note: str = ""

    @property
    def label(self) -> str:
        shown = self.user_text if len(self.user_text) <= 40 else self.user_text[:39] + "…"
        return f"Turn {self.index}: {shown}"


# chat ---------------------------------------------------------------------------------------
def bot_chat_message(message: dict[str, Any]) -> dict[str, Any]:
    """One Rasa bot message as a gr.Chatbot message: Markdown text (knowledge span in bold,
    its source, a "generated" badge), the image, a custom payload, buttons as options."""
    parts: list[str] = []
    text = message.get("text")
    if isinstance(text, str) and text:
        knowledge = knowledge_of(message)
        parts.append(_bold_span(text, knowledge.get("span")) if knowledge else text)
        if knowledge and knowledge.get("source"):
            parts.append(f"<sub>Source: {_inline(str(knowledge['source']))}</sub>")
    image = message.get("image")
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:image/")):
        parts.append(f"![image]({image.replace(' ', '%20').replace(')', '%29')})")
    custom = message.get("custom")
    if custom:  # rasa_sdk sends an empty {} with every message
        parts.append("```json\n" + json.dumps(custom, indent=2, ensure_ascii=False)[:2000]
                     + "\n```")
    if is_generated(message):
        parts.append(generated_badge(message))
    chat: dict[str, Any] = {"role": "assistant", "content": "\n\n".join(parts) or "…"}
    options = button_options(message)
    if options:
        chat["options"] = options
    return chat


def button_options(message: dict[str, Any]) -> list[dict[str, str]]:
    """Rasa buttons as Chatbot options: the title is shown, the payload is the value."""
    options = []
    for button in message.get("buttons") or []:
        if not isinstance(button, dict):
            continue
        payload = button.get("payload")
        title = button.get("title") or payload
        if isinstance(payload, str) and payload and isinstance(title, str):
            options.append({"value": payload, "label": title})
    return options


def stream_steps(content: str, words_per_step: int = 6) -> list[str]:
    """Growing prefixes of ``content`` (whole words) for a typing effect; the last is whole.
    Markdown blocks (images, code) are not split: only the first paragraph streams."""
    head, sep, _ = content.partition("\n\n")
    words = head.split(" ")
    steps = [" ".join(words[:n]) for n in range(words_per_step, len(words), words_per_step)]
    return [*steps, content] if sep or steps else [content]


def knowledge_of(message: dict[str, Any]) -> dict[str, Any]:
    metadata = message.get("metadata")
    knowledge = metadata.get("knowledge") if isinstance(metadata, dict) else None
    return knowledge if isinstance(knowledge, dict) else {}


def is_generated(message: dict[str, Any]) -> bool:
    metadata = message.get("metadata")
    return isinstance(metadata, dict) and metadata.get("generated") is True


# the inspector ------------------------------------------------------------------------------
def inspect_turn(index: int, user_text: str, sent_text: str,
                 bot_messages: list[dict[str, Any]], tracker: dict[str, Any] | None,
                 note: str = "") -> TurnView:
    """The TurnView of one turn. ``user_text`` is what the chat shows (a button's title),
    ``sent_text`` what was sent (its payload); ``tracker`` is None when it could not be read."""
    knowledge = [k for k in (knowledge_of(m) for m in bot_messages) if k]
    generated = sum(1 for m in bot_messages if is_generated(m))
    if tracker is None:
        return TurnView(index, user_text, sent_text, knowledge=knowledge, generated=generated,
                        note=note)
    events = [e for e in tracker.get("events") or [] if isinstance(e, dict)]
    start = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    if start >= 0:
        parse = events[start].get("parse_data") or {}
        parsed_text = events[start].get("text") or ""
    else:
        parse = tracker.get("latest_message") or {}
        parsed_text = parse.get("text") or ""
    if parsed_text and parsed_text != sent_text and not note:
        note = "The tracker's latest user message is not the one sent in this turn."
    intent = parse.get("intent") if isinstance(parse.get("intent"), dict) else {}
    entities = [e for e in parse.get("entities") or [] if isinstance(e, dict)]
    slots = {k: v for k, v in (tracker.get("slots") or {}).items()
             if v is not None and k != "requested_slot"}
    loop = tracker.get("active_loop") if isinstance(tracker.get("active_loop"), dict) else {}
    return TurnView(
        index, user_text, sent_text,
        intent=intent.get("name"), confidence=_number(intent.get("confidence")),
        uncertainty={k: float(v) for k, v in (parse.get("uncertainty") or {}).items()
                     if _number(v) is not None},
        ranking=_ranking(parse), entities=entities,
        entity_segments=entity_segments(parsed_text or sent_text, entities),
        slots=slots, active_loop=loop.get("name") or None,
        requested_slot=(tracker.get("slots") or {}).get("requested_slot"),
        actions=turn_actions(events[start + 1:] if start >= 0 else []),
        knowledge=knowledge, generated=generated, note=note)


def turn_actions(events: list[dict[str, Any]]) -> list[tuple[str, str | None, float | None]]:
    """(action, policy, confidence) for each action the policies chose; a rejected action
    (a form that could not handle the message) is marked "(rejected)"."""
    rows = []
    for event in events:
        kind = event.get("event")
        if kind == "action" and event.get("name"):
            rows.append((str(event["name"]), event.get("policy"),
                         _number(event.get("confidence"))))
        elif kind == "action_execution_rejected" and event.get("name"):
            rows.append((f"{event['name']} (rejected)", event.get("policy"),
                         _number(event.get("confidence"))))
    return rows


def entity_label(entity: dict[str, Any]) -> str:
    """"date#checkin": the entity type with its role (and group) as Rasa writes them."""
    label = str(entity.get("entity") or "entity")
    if entity.get("role"):
        label += f"#{entity['role']}"
    if entity.get("group"):
        label += f"@{entity['group']}"
    return label


def entity_segments(text: str, entities: list[dict[str, Any]]) -> Segments:
    """``text`` cut into (piece, label) for gr.HighlightedText; spans that overlap an earlier
    one, fall outside the text or have no position are left out."""
    spans = []
    for entity in entities:
        start, end = entity.get("start"), entity.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            spans.append((start, end, entity_label(entity)))
    return _cut(text, sorted(spans, key=lambda s: (s[0], -s[1])))


def knowledge_segments(knowledge: list[dict[str, Any]]) -> Segments:
    """Each knowledge passage with its answer span labelled "answer" (passages separated by
    a blank line)."""
    segments: Segments = []
    for i, item in enumerate(knowledge):
        passage = item.get("passage")
        if not isinstance(passage, str) or not passage:
            continue
        if i and segments:
            segments.append(("\n\n", None))
        span = _span(item.get("passage_span"), len(passage))
        segments += _cut(passage, [(*span, ANSWER_LABEL)] if span else [])
    return segments


# Markdown for the inspector ----------------------------------------------------------------
def intent_markdown(view: TurnView) -> str:
    if view.intent is None:
        return "**Intent:** none (the message was not parsed)" if not view.note else \
            f"**Intent:** unavailable. {view.note}"
    line = f"**Intent:** `{view.intent}` · confidence {_fmt(view.confidence)}"
    if view.sent_text.startswith("/"):
        line += " · from a payload"
    uncertainty = view.uncertainty
    if uncertainty:
        shown = [f"{name} {_fmt(uncertainty[name], 3)}"
                 for name in ("entropy", "std", "mutual_information") if name in uncertainty]
        if "samples" in uncertainty:
            shown.append(f"{int(uncertainty['samples'])} MC samples")
        line += "\n\n**Uncertainty:** " + " · ".join(shown)
    return line + (f"\n\n_{view.note}_" if view.note else "")


def entities_markdown(view: TurnView) -> str:
    if not view.entities:
        return "_No entities._"
    rows = [[entity_label(e), _value(e.get("value")), _fmt(_number(e.get("confidence_entity"))),
             str(e.get("extractor") or "—"),
             "yes" if isinstance(e.get("start"), int) else "no (payload)"]
            for e in view.entities]
    return markdown_table(["entity", "value", "confidence", "extractor", "in text"], rows)


def slots_markdown(view: TurnView) -> str:
    form = f"**Active form:** `{view.active_loop}`" if view.active_loop else \
        "**Active form:** none"
    if view.active_loop and view.requested_slot:
        form += f" · asking for `{view.requested_slot}`"
    if not view.slots:
        return form + "\n\n_No slots set._"
    rows = [[name, _value(value)] for name, value in view.slots.items()]
    return form + "\n\n" + markdown_table(["slot", "value"], rows)


def policies_markdown(view: TurnView) -> str:
    if not view.actions:
        return "_No actions recorded for this turn._"
    rows = [[name, policy or "—", _fmt(confidence)] for name, policy, confidence in view.actions]
    return markdown_table(["action", "policy", "confidence"], rows)


def knowledge_markdown(view: TurnView) -> str:
    if not view.knowledge:
        return "_No knowledge answer in this turn._"
    lines = []
    for item in view.knowledge:
        answer = _inline(str(item.get("answer") or ""))
        source = _inline(str(item.get("source") or "unknown"))
        doc = f" (`{_inline(str(item['doc_id']))}`)" if item.get("doc_id") else ""
        lines.append(f"**Answer:** {answer}  \n**Source:** {source}{doc} · confidence "
                     f"{_fmt(_number(item.get('confidence')))}")
    return "\n\n".join(lines)


def generated_badge(message: dict[str, Any]) -> str:
    """The badge of a generated message: the model that wrote it ("`SmolLM2-135M-Instruct ·
    generated`", from metadata.generation.model), or a written small-talk reply's."""
    details = (message.get("metadata") or {}).get("generation")
    details = details if isinstance(details, dict) else {}
    if details.get("written"):
        return WRITTEN_BADGE
    model = _inline(str(details.get("model") or "")).rsplit("/", 1)[-1]
    return f"`{model} · generated`" if model else GENERATED_BADGE


def generated_markdown(view: TurnView) -> str:
    if not view.generated:
        return ""
    return f"{GENERATED_BADGE} {view.generated} repl{'y' if view.generated == 1 else 'ies'} " \
           "in this turn from the small-talk generator (not a template)."


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(value: str) -> str:
        return _inline(value).replace("|", "\\|") or " "

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# helpers ------------------------------------------------------------------------------------
def _cut(text: str, spans: list[tuple[int, int, str]]) -> Segments:
    segments: Segments = []
    position = 0
    for start, end, label in spans:
        if start < position:
            continue  # overlaps the previous span
        if start > position:
            segments.append((text[position:start], None))
        segments.append((text[start:end], label))
        position = end
    if position < len(text):
        segments.append((text[position:], None))
    return segments


def _span(raw: Any, length: int) -> tuple[int, int] | None:
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(isinstance(x, int) for x in raw):
        start, end = raw
        if 0 <= start < end <= length:
            return start, end
    return None


def _bold_span(text: str, raw_span: Any) -> str:
    span = _span(raw_span, len(text))
    if span is None:
        return text
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start == end or "**" in text[start:end]:
        return text
    return f"{text[:start]}**{text[start:end]}**{text[end:]}"


def _ranking(parse: dict[str, Any]) -> dict[str, float]:
    ranking = {}
    for item in parse.get("intent_ranking") or []:
        if isinstance(item, dict) and item.get("name") and _number(item.get("confidence")) \
                is not None:
            ranking[str(item["name"])] = float(item["confidence"])
    return ranking


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _inline(text: str) -> str:
    """Text for a Markdown line or cell: no newlines, no raw HTML."""
    return " ".join(text.split()).replace("<", "&lt;").replace(">", "&gt;")
