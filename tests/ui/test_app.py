"""The web UI without a server: rendering helpers, the HTTP client on httpx.MockTransport, and
build_app's handlers driven directly with a fake client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from ui import render
from ui.app import build_app, parse_args, status_line
from ui.client import ClientError, RestClient, ServerStatus
from ui.render import TurnView, bot_chat_message, inspect_turn

TEXT = "Book Lisbon from May 3 to May 6"
ENTITIES = [
    {"entity": "city", "start": 5, "end": 11, "value": "Lisbon", "confidence_entity": 0.9,
     "extractor": "LukeSpanExtractor"},
    {"entity": "date", "role": "checkin", "start": 17, "end": 22, "value": "May 3"},
    {"entity": "date", "role": "checkout", "start": 26, "end": 31, "value": "May 6"},
]
KNOWLEDGE = {"answer": "from 7 am", "span": [10, 19], "passage": "Breakfast is served from 7 am.",
             "passage_span": [20, 29], "source": "kb/policies/breakfast.md", "doc_id": "b-1",
             "confidence": 0.8}


def tracker(text: str = TEXT, *, rewind: bool = False) -> dict[str, Any]:
    parse = {"text": text, "intent": {"name": "book_room", "confidence": 0.9},
             "intent_ranking": [{"name": "book_room", "confidence": 0.9},
                                {"name": "inform", "confidence": 0.1}],
             "entities": ENTITIES, "uncertainty": {"entropy": 0.3, "std": 0.05, "samples": 8}}
    events: list[dict[str, Any]] = [
        {"event": "user", "text": "earlier", "parse_data": {"intent": {"name": "greet"}}},
        {"event": "action", "name": "utter_greet", "policy": "RulePolicy", "confidence": 1.0},
        {"event": "user", "text": text, "parse_data": parse},
        {"event": "action_execution_rejected", "name": "booking_form", "policy": "RulePolicy",
         "confidence": 1.0},
        {"event": "action", "name": "booking_form", "policy": "MemoizationPolicy",
         "confidence": 0.7},
        {"event": "bot", "text": "Which hotel?"},
    ]
    if rewind:
        events.append({"event": "rewind"})
    events.append({"event": "action", "name": "action_listen", "policy": None,
                   "confidence": None})
    return {"events": events, "latest_message": {"text": "earlier"},
            "slots": {"city": "Lisbon", "hotel": None, "guests": 2.0, "requested_slot": "hotel"},
            "active_loop": {"name": "booking_form"}}


# rendering ----------------------------------------------------------------------------------
def test_bot_message_buttons_image_custom_and_badges() -> None:
    chat = bot_chat_message({"text": "Where to?", "image": "https://x.test/a b.png",
                             "buttons": [{"title": "Lisbon", "payload": "/inform"},
                                         {"payload": "/only_payload"}, {"title": "no payload"},
                                         "junk"],
                             "custom": {"k": 1}, "metadata": {"generated": True}})
    assert chat["role"] == "assistant"
    assert chat["options"] == [{"value": "/inform", "label": "Lisbon"},
                               {"value": "/only_payload", "label": "/only_payload"}]
    assert chat["content"].startswith("Where to?")
    assert "![image](https://x.test/a%20b.png)" in chat["content"]
    assert '"k": 1' in chat["content"] and "`generated`" in chat["content"]
    smol = {"text": "Rain is soothing.", "metadata": {"generated": True, "generation": {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct", "written": False}}}
    assert "`SmolLM2-135M-Instruct · generated`" in bot_chat_message(smol)["content"]
    written = {"text": "I love the rain.", "metadata": {"generated": True,
                                                        "generation": {"written": True}}}
    assert "`written small talk`" in bot_chat_message(written)["content"]
    assert "options" not in bot_chat_message({"text": "hi"})
    assert bot_chat_message({"image": "javascript:alert(1)"})["content"] == "…"
    assert render.button_options({"buttons": None}) == []


def test_knowledge_span_is_bold_in_chat_and_highlighted_in_passage() -> None:
    text = "Breakfast from 7 am daily."
    chat = bot_chat_message({"text": text, "metadata": {"knowledge": {**KNOWLEDGE,
                                                                       "span": [9, 20]}}})
    assert chat["content"].startswith("Breakfast **from 7 am** daily.")  # spaces kept outside
    assert "Source: kb/policies/breakfast.md" in chat["content"]
    broken = bot_chat_message({"text": text, "metadata": {"knowledge": {"span": [5, 99]}}})
    assert broken["content"] == text
    assert render.knowledge_segments([KNOWLEDGE]) == [
        ("Breakfast is served ", None), ("from 7 am", "answer"), (".", None)]
    two = render.knowledge_segments([KNOWLEDGE, {"passage": "Pets", "passage_span": "bad"}])
    assert two[-2:] == [("\n\n", None), ("Pets", None)]


def test_entity_segments_with_roles_overlaps_and_bad_spans() -> None:
    assert render.entity_segments(TEXT, ENTITIES) == [
        ("Book ", None), ("Lisbon", "city"), (" from ", None), ("May 3", "date#checkin"),
        (" to ", None), ("May 6", "date#checkout")]
    odd = [{"entity": "a", "start": 0, "end": 4}, {"entity": "b", "start": 2, "end": 6},
           {"entity": "c", "start": 5, "end": 99}, {"entity": "d", "value": "x"},
           {"entity": "e", "start": 6, "end": 7, "group": "1"}]
    assert render.entity_segments("abcdefgh", odd) == [("abcd", "a"), ("ef", None), ("g", "e@1"),
                                                ("h", None)]
    assert render.entity_segments("", ENTITIES) == []


def test_stream_steps_grow_to_the_whole_message() -> None:
    text = " ".join(f"w{i}" for i in range(14)) + "\n\n![image](https://x.test/i.png)"
    steps = render.stream_steps(text, words_per_step=6)
    assert steps[-1] == text and steps[0] == "w0 w1 w2 w3 w4 w5"
    assert all(text.startswith(s) for s in steps) and len(steps) == 3
    assert render.stream_steps("short") == ["short"]


def test_inspect_turn_reads_the_turn_from_the_tracker() -> None:
    view = inspect_turn(2, "Lisbon", TEXT, [{"text": "x", "metadata": {"knowledge": KNOWLEDGE}},
                                            {"text": "y", "metadata": {"generated": True}}],
                        tracker(rewind=True))
    assert (view.intent, view.confidence) == ("book_room", 0.9)
    assert view.ranking == {"book_room": 0.9, "inform": 0.1}
    assert view.uncertainty == {"entropy": 0.3, "std": 0.05, "samples": 8.0}
    assert view.actions == [("booking_form (rejected)", "RulePolicy", 1.0),
                            ("booking_form", "MemoizationPolicy", 0.7),
                            ("action_listen", None, None)]
    assert view.slots == {"city": "Lisbon", "guests": 2.0}
    assert (view.active_loop, view.requested_slot) == ("booking_form", "hotel")
    assert ("Lisbon", "city") in view.entity_segments
    assert view.knowledge == [KNOWLEDGE] and view.generated == 1 and view.note == ""
    assert view.label == "Turn 2: Lisbon"
    assert inspect_turn(3, "x" * 50, "x", [], None).label == "Turn 3: " + "x" * 39 + "…"


def test_inspect_turn_without_tracker_or_with_another_message() -> None:
    down = inspect_turn(1, "hi", "hi", [], None, note="Cannot reach the server.")
    assert down.intent is None and "Cannot reach the server." in render.intent_markdown(down)
    other = inspect_turn(1, "hi", "hi", [], tracker("something else"))
    assert "not the one sent" in other.note
    empty = inspect_turn(1, "hi", "hi", [], {"events": [], "latest_message": {
        "text": "hi", "intent": {"name": "greet", "confidence": 1.0}}})
    assert empty.intent == "greet" and empty.actions == []


def test_inspector_markdown() -> None:
    view = inspect_turn(1, TEXT, TEXT, [{"text": "x", "metadata": {"knowledge": KNOWLEDGE,
                                                                   "generated": True}}],
                        tracker())
    intent = render.intent_markdown(view)
    assert "`book_room` · confidence 0.90" in intent and "entropy 0.300" in intent
    assert "8 MC samples" in intent and "payload" not in intent
    assert "from a payload" in render.intent_markdown(TurnView(1, "x", "/greet", intent="greet"))
    assert "| date#checkin | May 3 | — | — | yes |" in render.entities_markdown(view)
    assert render.entities_markdown(TurnView(1, "", "")) == "_No entities._"
    slots = render.slots_markdown(view)
    assert "`booking_form` · asking for `hotel`" in slots and "| guests | 2.0 |" in slots
    assert "| booking_form | MemoizationPolicy | 0.70 |" in render.policies_markdown(view)
    assert "| action_listen | — | — |" in render.policies_markdown(view)
    knowledge = render.knowledge_markdown(view)
    assert "kb/policies/breakfast.md" in knowledge and "`b-1`" in knowledge and "0.80" in knowledge
    assert "1 reply" in render.generated_markdown(view)
    assert render.generated_markdown(TurnView(1, "", "")) == ""
    assert render.markdown_table(["a"], [["x|y<script>\nz"]]).splitlines()[-1] == \
        "| x\\|y&lt;script&gt; z |"


# the client ---------------------------------------------------------------------------------
def client(handler: Any, token: str | None = "T") -> RestClient:
    return RestClient("http://bot.test:5005/", token, timeout_s=1.5,
                      transport=httpx.MockTransport(handler))


def test_client_sends_messages_and_reads_the_tracker_with_the_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/webhooks/rest/webhook":
            return httpx.Response(200, json=[{"recipient_id": "u 1", "text": "hi"}])
        return httpx.Response(200, json={"events": []})

    rest = client(handler)
    assert rest.send_message("u 1", "/greet") == [{"recipient_id": "u 1", "text": "hi"}]
    assert rest.tracker("u 1") == {"events": []}
    assert json.loads(seen[0].content) == {"sender": "u 1", "message": "/greet"}
    assert "token" not in seen[0].url.params  # the webhook is public
    assert seen[1].url.raw_path.startswith(b"/conversations/u%201/tracker?")
    assert seen[1].url.params["token"] == "T"
    assert seen[1].url.params["include_events"] == "AFTER_RESTART"


@pytest.mark.parametrize(("error", "kind", "words"), [
    (httpx.ConnectError, "down", "Cannot reach the assistant server at http://bot.test:5005"),
    (httpx.ReadTimeout, "timeout", "did not answer within 1.5 s"),
])
def test_client_down_server_and_timeout_are_readable_errors(error: type, kind: str,
                                                            words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("failed", request=request)

    for call in (lambda c: c.send_message("u", "hi"), lambda c: c.tracker("u")):
        with pytest.raises(ClientError) as info:
            call(client(handler))
        assert info.value.kind == kind and words in info.value.message
    status = client(handler).server_status()
    assert not status.reachable and words in status.detail


@pytest.mark.parametrize(("status", "kind", "words"), [
    (401, "auth", "--token"), (403, "auth", "rejected the auth token"),
    (404, "api_off", "--enable-api"), (500, "http", "error (500): Boom happened"),
])
def test_client_error_statuses(status: int, kind: str, words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"status": "failure", "message": "Boom happened"})

    with pytest.raises(ClientError) as info:
        client(handler).tracker("u")
    assert (info.value.kind, info.value.status) == (kind, status)
    assert words in info.value.message


@pytest.mark.parametrize(("response", "words"), [
    (httpx.Response(200, text="<html>proxy</html>"), "not JSON"),
    (httpx.Response(200, json={"text": "hi"}), "not a list of bot messages"),
])
def test_client_rejects_bodies_rasa_would_not_send(response: httpx.Response, words: str) -> None:
    with pytest.raises(ClientError, match=words):
        client(lambda request: response).send_message("u", "hi")
    with pytest.raises(ValueError, match="http"):
        RestClient("bot.test:5005")


@pytest.mark.parametrize("api", [True, False])
def test_restart_posts_the_event_or_falls_back_to_the_restart_message(api: bool) -> None:
    calls: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.path, json.loads(request.content)))
        if not api and request.url.path.startswith("/conversations"):
            return httpx.Response(404, json={"message": "Not Found."})
        return httpx.Response(200, json=[])

    client(handler).restart("u")
    assert calls[0] == ("/conversations/u/tracker/events", {"event": "restart"})
    assert calls[1:] == ([] if api else [("/webhooks/rest/webhook",
                                          {"sender": "u", "message": "/restart"})])


def test_server_status_and_its_line() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.1.0"})
        return httpx.Response(401, json={})

    status = client(handler, token=None).server_status()
    assert (status.reachable, status.version, status.api) == (True, "0.1.0", False)
    assert "--token" in status_line(status, "ui-1")
    ok = status_line(ServerStatus("http://s", True, "0.1.0", True), "ui-1")
    assert "HTTP API on" in ok and "`ui-1`" in ok
    assert "Server down" in status_line(ServerStatus("http://s", False, detail="x"), "ui-1")


# the app ------------------------------------------------------------------------------------
class FakeClient:
    def __init__(self, fail: Exception | None = None, tracker_fail: bool = False) -> None:
        self.fail, self.tracker_fail = fail, tracker_fail
        self.sent: list[tuple[str, str]] = []
        self.restarts: list[str] = []

    def send_message(self, sender_id: str, text: str) -> list[dict[str, Any]]:
        self.sent.append((sender_id, text))
        if self.fail:
            raise self.fail
        return [{"text": "Which hotel in Lisbon would you like? It is a fine city.",
                 "buttons": [{"title": "Starlight", "payload": '/inform{"hotel": "S"}'}]},
                {"text": "Breakfast from 7 am.",
                 "metadata": {"knowledge": KNOWLEDGE, "generated": True}}]

    def tracker(self, sender_id: str) -> dict[str, Any]:
        if self.tracker_fail:
            raise ClientError("The server's HTTP API is off (404).", "api_off", 404)
        return tracker()

    def restart(self, sender_id: str) -> None:
        self.restarts.append(sender_id)

    def server_status(self) -> ServerStatus:
        return ServerStatus("http://fake", True, "0.1.0", True)


def make_app(client: Any, **kwargs: Any) -> Any:
    """build_app inside a running event loop: gradio's Blocks otherwise creates event loops
    it never closes (utils.safe_get_lock), which warn as unclosed later in the run."""
    async def build() -> Any:
        return build_app(client, **kwargs)

    return asyncio.run(build())


def handler_of(demo: Any, name: str) -> Any:  # the event handler, called directly
    return next(f.fn for f in demo.fns.values() if f.name == name)


def by_id(demo: Any) -> dict[str, Any]:  # components by elem_id: keys of the handlers' output
    return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}


def state_of(update: dict[Any, Any]) -> dict[str, Any]:
    return next(v for k, v in update.items() if type(k).__name__ == "State")


def test_build_app_constructs_without_a_server_and_import_has_no_gradio() -> None:
    import gradio as gr

    fake = FakeClient()
    demo = make_app(fake)
    assert isinstance(demo, gr.Blocks)
    assert fake.sent == [] and fake.restarts == []
    assert {"chat", "msg", "restart", "new-conversation", "inspector-entities",
            "inspector-passage", "inspector-policies"} <= set(by_id(demo))
    assert isinstance(make_app(RestClient("http://127.0.0.1:9")), gr.Blocks)  # nothing sent
    code = "import sys, ui, ui.app, ui.render, ui.client; assert 'gradio' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_turn_streams_replies_and_fills_the_inspector() -> None:
    fake = FakeClient()
    demo = make_app(fake, stream_delay_s=0)
    ids = by_id(demo)
    updates = list(handler_of(demo, "on_submit")("Book Lisbon", None))
    chats = [u[ids["chat"]] for u in updates if ids["chat"] in u]
    assert len(chats) > 3  # the user message, then the replies growing
    final = updates[-1]
    history = final[ids["chat"]]
    assert history[0] == {"role": "user", "content": "Book Lisbon"}
    assert history[1]["options"] == [{"value": '/inform{"hotel": "S"}', "label": "Starlight"}]
    assert "**from 7 am**" in history[2]["content"]
    assert ("Lisbon", "city") in final[ids["inspector-entities"]]
    assert "MemoizationPolicy" in final[ids["inspector-policies"]]
    assert final[ids["inspector-passage"]]["visible"] is True
    assert "generated" in final[ids["inspector-generated"]]
    assert "HTTP API on" in final[ids["status"]]
    state = state_of(final)
    assert [t.index for t in state["turns"]] == [1]

    # a button click: the title is shown, the payload sent; older buttons are dropped
    import gradio as gr

    click = gr.SelectData(None, {"value": '/inform{"hotel": "S"}', "index": 0})
    updates = list(handler_of(demo, "on_select")(state, click))
    history = updates[-1][ids["chat"]]
    assert history[3] == {"role": "user", "content": "Starlight"}
    assert fake.sent[-1][1] == '/inform{"hotel": "S"}'
    assert "options" not in history[1] and "options" in history[4]
    example = gr.SelectData(None, {"value": {"text": "Hi!"}, "index": 0})
    history = list(handler_of(demo, "on_select")(state, example))[-1][ids["chat"]]
    assert history[-3] == {"role": "user", "content": "Hi!"} and fake.sent[-1][1] == "Hi!"
    picked = handler_of(demo, "on_pick")(1, state)
    assert "book_room" in picked[ids["inspector-intent"]]


def submit(fake: FakeClient, text: str = "hi") -> tuple[dict[str, Any], list[dict]]:
    demo = make_app(fake, stream_delay_s=0)
    return by_id(demo), list(handler_of(demo, "on_submit")(text, None))


def test_empty_input_is_not_sent() -> None:
    fake = FakeClient()
    ids, (only,) = submit(fake, "   ")
    assert "Type a message first" in only[ids["status"]] and ids["chat"] not in only
    assert fake.sent == []


@pytest.mark.parametrize(("fake", "in_chat", "in_inspector"), [
    (FakeClient(fail=ClientError("Cannot reach the assistant server at http://x.", "down")),
     "The assistant is unavailable.** Cannot reach the assistant server", "Cannot reach"),
    (FakeClient(fail=RuntimeError("secret internals")), "went wrong in the UI (RuntimeError)",
     None),
    (FakeClient(tracker_fail=True), "Breakfast", "Inspector unavailable: The server's HTTP API"),
])
def test_errors_are_readable_messages(fake: FakeClient, in_chat: str,
                                      in_inspector: str | None) -> None:
    ids, updates = submit(fake)
    shown = updates[-1][ids["chat"]][-1]["content"]
    assert in_chat in shown and "secret internals" not in shown and "Traceback" not in shown
    if in_inspector:
        assert in_inspector in updates[-1][ids["inspector-intent"]]


def test_new_conversation_and_restart() -> None:
    fake = FakeClient()
    demo = make_app(fake, stream_delay_s=0)
    ids = by_id(demo)
    state = state_of(list(handler_of(demo, "on_submit")("hi", None))[-1])
    old_sender = state["sender_id"]
    restarted = handler_of(demo, "on_restart")(state)
    assert fake.restarts == [old_sender]
    assert "restarted" in restarted[ids["chat"]][-1]["content"]
    fresh = handler_of(demo, "on_new")(state)
    assert state_of(fresh)["sender_id"] != old_sender and fresh[ids["chat"]] == []


def test_cli_arguments() -> None:
    args = parse_args(["--server", "http://h:1", "--token", "T", "--port", "7999"])
    assert (args.server, args.token, args.port) == ("http://h:1", "T", 7999)
    with pytest.raises(SystemExit):
        parse_args(["--timeout", "0"])
