"""The Gradio app: a chat with the assistant and an inspector of each bot turn.

    build_app(send) -> gr.Blocks     send: an AssistantClient (RestClient talks HTTP)
    main(argv)                       `python -m ui --server URL --token T --port 7860`

Bot messages stream into the chat one by one (each growing word by word); buttons are the
chat's clickable options (the title is shown, the payload is sent). After each turn the
tracker is read and the turn's TurnView is kept, so any earlier turn can be inspected again.
Server problems are shown as readable messages in the chat, the status line and the
inspector, never as tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ui.client import DEFAULT_TIMEOUT_S, AssistantClient, ClientError, RestClient, ServerStatus
from ui.render import (
    ANSWER_LABEL,
    TurnView,
    bot_chat_message,
    entities_markdown,
    generated_markdown,
    inspect_turn,
    intent_markdown,
    knowledge_markdown,
    knowledge_segments,
    policies_markdown,
    slots_markdown,
    stream_steps,
)

logger = logging.getLogger(__name__)

TITLE = "Xingkong · Starlight Hotels concierge"
APP_CSS = """
#status { font-size: 0.9em; }
#inspector .prose table { font-size: 0.85em; table-layout: auto; }
#inspector .prose th, #inspector .prose td { word-break: normal; overflow-wrap: normal;
  padding: 4px 8px; }
#inspector-generated code { background: #ede9fe; color: #5b21b6; }
"""
EXAMPLES = [
    {"text": "Hi!"},
    {"text": "I'd like to book a room in Lisbon from May 3 to May 6"},
    {"text": "Is breakfast included?"},
    {"text": "/book_room", "display_text": "/book_room (a payload)"},
]
PLACEHOLDER = ("**Starlight Hotels concierge**  \nBook a room, look up, change or cancel a "
               "booking, or ask about our hotels. Payloads such as `/greet` work too.")


def new_session() -> dict[str, Any]:
    """A conversation: its sender id, the chat messages and the inspected turns."""
    return {"sender_id": f"ui-{uuid.uuid4().hex[:12]}", "history": [], "turns": [],
            "status_line": None}


def status_line(status: ServerStatus, sender_id: str) -> str:
    conversation = f"conversation `{sender_id}`"
    if not status.reachable:
        return f"⚠ **Server down.** {status.detail} · {conversation}"
    server = f"Server {status.url or ''} · Xingkong {status.version or '?'}".replace("  ", " ")
    if not status.api:
        return f"{server} · ⚠ inspector limited: {status.detail} · {conversation}"
    return f"✓ {server} · HTTP API on · {conversation}"


def build_app(send: AssistantClient | None = None, *, stream_delay_s: float = 0.03,
              title: str = TITLE) -> Any:
    """The Blocks app talking to the assistant only through ``send`` (default: a RestClient
    for http://127.0.0.1:5005). Nothing is requested while building: it builds without a
    server."""
    import gradio as gr

    if send is None:
        send = RestClient()

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        session = gr.State(None)
        gr.Markdown(f"## ★ {title}")
        status = gr.Markdown("Connecting to the assistant server…", elem_id="status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chat", height=600, placeholder=PLACEHOLDER,
                                     examples=EXAMPLES, feedback_options=None,
                                     buttons=["copy"], label="Chat",
                                     group_consecutive_messages=False)
                with gr.Row():
                    msg = gr.Textbox(placeholder="Type a message (or a /intent payload) and "
                                     "press Enter", show_label=False, elem_id="msg", scale=6,
                                     max_lines=4)
                    send_btn = gr.Button("Send", variant="primary", elem_id="send", scale=1)
                with gr.Row():
                    new_btn = gr.Button("New conversation", elem_id="new-conversation",
                                        size="sm")
                    restart_btn = gr.Button("Restart", elem_id="restart", size="sm")
            with gr.Column(scale=2, elem_id="inspector"):
                gr.Markdown("### Inspector")
                turn_pick = gr.Dropdown(label="Bot turn", choices=[], value=None,
                                        elem_id="turn", interactive=True)
                generated_md = gr.Markdown(elem_id="inspector-generated")
                with gr.Accordion("Understanding (NLU)", open=True):
                    intent_md = gr.Markdown(elem_id="inspector-intent")
                    ranking = gr.Label(label="Intent ranking", num_top_classes=5,
                                       elem_id="inspector-ranking", show_heading=False)
                    entity_hl = gr.HighlightedText(label="Entities in the message",
                                                   elem_id="inspector-entities",
                                                   show_legend=False)
                    entity_md = gr.Markdown(elem_id="inspector-entity-table")
                with gr.Accordion("Dialogue state and policies", open=True):
                    slots_md = gr.Markdown(elem_id="inspector-slots")
                    policies_md = gr.Markdown(elem_id="inspector-policies")
                with gr.Accordion("Knowledge", open=True):
                    knowledge_md = gr.Markdown(elem_id="inspector-knowledge")
                    passage_hl = gr.HighlightedText(label="Passage (answer highlighted)",
                                                    elem_id="inspector-passage",
                                                    color_map={ANSWER_LABEL: "#facc15"},
                                                    show_legend=False, visible=False)

        def inspector(view: TurnView | None) -> dict[Any, Any]:
            if view is None:
                empty = "_Send a message to inspect the bot's turn._"
                return {generated_md: "", intent_md: empty, ranking: None, entity_hl: [],
                        entity_md: "", slots_md: "", policies_md: "", knowledge_md: "",
                        passage_hl: gr.update(value=[], visible=False)}
            passage = knowledge_segments(view.knowledge)
            return {generated_md: generated_markdown(view), intent_md: intent_markdown(view),
                    ranking: view.ranking or None, entity_hl: view.entity_segments,
                    entity_md: entities_markdown(view), slots_md: slots_markdown(view),
                    policies_md: policies_markdown(view),
                    knowledge_md: knowledge_markdown(view),
                    passage_hl: gr.update(value=passage, visible=bool(passage))}

        def turn_choices(state: dict[str, Any]) -> Any:
            turns = state["turns"]
            return gr.update(choices=[(t.label, t.index) for t in turns],
                             value=turns[-1].index if turns else None)

        def run_turn(state: dict[str, Any], shown: str, payload: str) -> Iterator[dict]:
            """One user message -> streamed bot messages -> the turn's inspection."""
            history = state["history"]
            for message in history:
                message.pop("options", None)  # only the newest buttons stay clickable
            history.append({"role": "user", "content": shown})
            yield {chatbot: history, msg: "", session: state}
            sender = state["sender_id"]
            try:
                bot_messages = send.send_message(sender, payload)
            except ClientError as exc:
                state["status_line"] = None  # re-read the server's status once it answers
                history.append({"role": "assistant", "content": "⚠ **The assistant is "
                                f"unavailable.** {exc.message}"})
                view = inspect_turn(len(state["turns"]) + 1, shown, payload, [], None,
                                    note=exc.message)
                state["turns"].append(view)
                yield {chatbot: history, session: state, status: f"⚠ {exc.message}",
                       turn_pick: turn_choices(state), **inspector(view)}
                return
            if not bot_messages:
                history.append({"role": "assistant", "content": "_(no reply)_"})
            for message in bot_messages:
                chat = bot_chat_message(message)
                steps = stream_steps(chat["content"])
                history.append({"role": "assistant", "content": steps[0]})
                for step in steps:
                    history[-1]["content"] = step
                    yield {chatbot: history}
                    time.sleep(stream_delay_s)
                history[-1] = chat
                yield {chatbot: history}
            note, tracker = "", None
            try:
                tracker = send.tracker(sender)
            except ClientError as exc:
                note = f"Inspector unavailable: {exc.message}"
            view = inspect_turn(len(state["turns"]) + 1, shown, payload, bot_messages, tracker,
                                note=note)
            state["turns"].append(view)
            if not state.get("status_line"):
                state["status_line"] = status_line(send.server_status(), sender)
            yield {chatbot: history, session: state, turn_pick: turn_choices(state),
                   status: state["status_line"], **inspector(view)}

        def guarded(state: dict[str, Any] | None, shown: str, payload: str) -> Iterator[dict]:
            state = state or new_session()
            if not payload.strip():
                yield {session: state, status: "⚠ Type a message first: empty messages are "
                       "not sent."}
                return
            try:
                yield from run_turn(state, shown.strip(), payload.strip())
            except Exception as exc:  # the page shows a sentence, the log the traceback
                logger.exception("ui.turn_failed")
                text = (f"⚠ Something went wrong in the UI ({type(exc).__name__}); the "
                        "details are in the UI's log.")
                state["history"].append({"role": "assistant", "content": text})
                yield {chatbot: state["history"], session: state, status: text}

        def on_submit(text: str, state: dict[str, Any] | None) -> Iterator[dict]:
            yield from guarded(state, text or "", text or "")

        def on_select(state, evt):  # annotations set below: gradio injects the SelectData
            value = evt.value
            if isinstance(value, dict):  # an example: {"text", ...}
                payload = str(value.get("text") or "")
                yield from guarded(state, payload, payload)
                return
            payload = str(value or "")
            yield from guarded(state, _option_title(state, payload), payload)

        on_select.__annotations__ = {"evt": gr.SelectData}

        def on_load(state: dict[str, Any] | None) -> dict:
            state = state or new_session()
            state["status_line"] = status_line(send.server_status(), state["sender_id"])
            return {session: state, status: state["status_line"]}

        def on_new(state: dict[str, Any] | None) -> dict:
            state = new_session()
            state["status_line"] = status_line(send.server_status(), state["sender_id"])
            return {session: state, chatbot: [], msg: "", turn_pick: turn_choices(state),
                    status: state["status_line"], **inspector(None)}

        def on_restart(state: dict[str, Any] | None) -> dict:
            state = state or new_session()
            try:
                send.restart(state["sender_id"])
            except ClientError as exc:
                return {session: state, status: f"⚠ Restart failed: {exc.message}"}
            for message in state["history"]:
                message.pop("options", None)
            state["history"].append({"role": "assistant",
                                     "content": "_— conversation restarted: slots and form "
                                                "cleared —_"})
            return {session: state, chatbot: state["history"],
                    status: f"Restarted conversation `{state['sender_id']}`.",
                    **inspector(None)}

        def on_pick(index: int | None, state: dict[str, Any] | None) -> dict:
            turns = (state or {}).get("turns") or []
            view = next((t for t in turns if t.index == index), None)
            return inspector(view)

        inspector_parts = [generated_md, intent_md, ranking, entity_hl, entity_md, slots_md,
                           policies_md, knowledge_md, passage_hl]
        turn_outputs = [chatbot, msg, session, status, turn_pick, *inspector_parts]
        msg.submit(on_submit, [msg, session], turn_outputs)
        send_btn.click(on_submit, [msg, session], turn_outputs)
        chatbot.option_select(on_select, [session], turn_outputs)
        chatbot.example_select(on_select, [session], turn_outputs)
        new_btn.click(on_new, [session], turn_outputs)
        restart_btn.click(on_restart, [session], turn_outputs)
        turn_pick.input(on_pick, [turn_pick, session], inspector_parts)
        chatbot.clear(on_new, [session], turn_outputs)
        demo.load(on_load, [session], [session, status])
    return demo


def _option_title(state: dict[str, Any] | None, payload: str) -> str:
    """The title of the newest button with this payload (what the chat shows for a click)."""
    for message in reversed((state or {}).get("history") or []):
        for option in message.get("options") or []:
            if option.get("value") == payload:
                return str(option.get("label") or payload)
    return payload


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ui", description="The Xingkong web UI: "
                                     "chat with an assistant server and inspect each turn.")
    parser.add_argument("--server", default=os.environ.get("XINGKONG_SERVER",
                                                           "http://127.0.0.1:5005"),
                        help="Assistant server URL (default: %(default)s).")
    parser.add_argument("--token", default=os.environ.get("XINGKONG_TOKEN"),
                        help="The server's --auth-token, for the inspector's API calls "
                        "(default: $XINGKONG_TOKEN).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve the UI on.")
    parser.add_argument("--port", type=int, default=7860, help="UI port (default: 7860).")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="Seconds to wait for the server (default: %(default)s).")
    parser.add_argument("--stream-delay", type=float, default=0.03,
                        help="Seconds between streamed chunks (0: no typing effect).")
    parser.add_argument("-v", "--verbose", action="store_true", help="Info logs.")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.stream_delay < 0:
        parser.error("--timeout must be positive and --stream-delay not negative.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry ?token=
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        client = RestClient(args.server, args.token, args.timeout)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    app = build_app(client, stream_delay_s=args.stream_delay)
    logger.info("ui.start server=%s port=%d", args.server, args.port)
    app.queue(default_concurrency_limit=16)  # turns of different users run side by side
    app.launch(server_name=args.host, server_port=args.port, css=APP_CSS, ssr_mode=False,
               show_error=False, footer_links=[])
