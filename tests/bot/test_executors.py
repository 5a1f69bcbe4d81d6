"""Custom actions run by a real rasa-sdk action server (HttpExecutor) and in-process.

The action server is `python -m rasa_sdk --actions pizza_actions` on a free port, started
once for the module with the Slice Station fixture package (tests/fixtures/pizzabot) on its
PYTHONPATH. Its oven takes 5 s (action_oven_status) and it has no daily special, so
action_daily_special rejects. Failures must end the turn with utter_error and keep every
event before the failure; a rejection must let another policy choose.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.project.project import Project
from bot.project.config import ProjectPaths
from bot.errors import ActionError, ActionRejected
from bot.state.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    BotUttered,
    SlotSet,
    UserUttered,
)
from bot.runtime.executors import PROTOCOL_VERSION, HttpExecutor, InProcessExecutor
from bot.manager import DialogueManager, TurnResult, UserMessage
from bot.policies import PolicyEnsemble, build_policies
from bot.state.tracker import DialogueStateTracker

PIZZABOT = Path(__file__).resolve().parents[1] / "fixtures" / "pizzabot"
SERVER_OVEN_DELAY_S = "5"
HTTP_TIMEOUT_S = 0.5
IN_PROCESS_TIMEOUT_S = 0.3
ERROR_TEXT = "Our kitchen system hiccupped. Please try again in a moment."
DEFAULT_TEXT = "Sorry, I didn't get that. Could you say it another way?"

BUG_NO_EXCLUSION_AFTER_REJECTION = (
    "engine bug: DialogueManager._prediction_loop calls policies.predict without excluding "
    "the action that was just rejected (Rasa zeroes it), so MemoizationPolicy predicts "
    "action_daily_special again and again until the prediction cap instead of letting the "
    "RulePolicy's core fallback answer"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A rasa-sdk action server for pizza_actions; yields its webhook URL."""
    port = free_port()
    log_file = tmp_path_factory.mktemp("action-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "PIZZA_SPECIAL"}
    env.update({
        "PYTHONPATH": os.pathsep.join(p for p in (str(PIZZABOT), env.get("PYTHONPATH")) if p),
        "PIZZA_OVEN_DELAY_S": SERVER_OVEN_DELAY_S,
        "SANIC_HOST": "127.0.0.1",
    })
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rasa_sdk", "--actions", "pizza_actions", "--port", str(port)],
            cwd=PIZZABOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers go down with it
        )

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the action server exited:\n{log_file.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the action server did not come up:\n{log_file.read_text()[-3000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        stop()


@pytest.fixture(scope="module")
def project() -> Project:
    return Project.load(ProjectPaths.at(PIZZABOT))


@pytest.fixture(scope="module")
def ensemble(project: Project) -> PolicyEnsemble:
    policies = PolicyEnsemble(build_policies(project.config.policies))
    assert policies.train(project.domain, project.data) == []
    return policies


@pytest.fixture
def pizza_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PIZZABOT))
    monkeypatch.delenv("PIZZA_SPECIAL", raising=False)
    monkeypatch.setenv("PIZZA_OVEN_DELAY_S", "2")


@pytest.fixture
async def http_executor(action_server: str) -> AsyncIterator[HttpExecutor]:
    executor = HttpExecutor(action_server, timeout_s=HTTP_TIMEOUT_S)
    yield executor
    await executor.close()


@pytest.fixture(params=["in_process", "http"])
async def executor(request: pytest.FixtureRequest, pizza_package: None,
                   action_server: str) -> AsyncIterator[Any]:
    """Each executor kind, both with a slow oven and no daily special."""
    if request.param == "in_process":
        yield InProcessExecutor("pizza_actions", timeout_s=IN_PROCESS_TIMEOUT_S)
    else:
        http = HttpExecutor(action_server, timeout_s=HTTP_TIMEOUT_S)
        yield http
        await http.close()


def action_call(project: Project, action: str, **slots: Any) -> dict[str, Any]:
    """A Rasa action-server request body for `action` on a tracker with `slots` set."""
    events = [ActionExecuted(name="action_listen"),
              *(SlotSet(name=name, value=value) for name, value in slots.items())]
    tracker = DialogueStateTracker("kitchen", project.domain.slot_defaults(), events)
    return {"next_action": action, "sender_id": "kitchen", "tracker": tracker.current_state(),
            "domain": project.domain.to_dict(), "version": PROTOCOL_VERSION}


def since(result: TurnResult, start: int) -> list[Any]:
    return list(result.tracker.events[start:])


def turn_events(result: TurnResult) -> list[Any]:
    tracker = result.tracker
    return list(tracker.events[tracker.idx_after_latest_user_message():])


def executed(events: list[Any]) -> list[str]:
    return [e.name for e in events if isinstance(e, ActionExecuted) and e.name != "action_listen"]


def texts(result: TurnResult) -> list[str | None]:
    return [m.get("text") for m in result.messages]


# ---------------------------------------------------------------- the HTTP executor


async def test_http_action_call_round_trip(project: Project,
                                           http_executor: HttpExecutor) -> None:
    reply = await http_executor.run(action_call(project, "action_place_order",
                                                pizza_size="large", pizza_type="funghi",
                                                address="1 Elm Row"))
    (event,) = reply["events"]
    assert (event["event"], event["name"]) == ("slot", "order_number")
    assert event["value"].startswith("PZ-")
    (response,) = reply["responses"]
    assert response["response"] == "utter_order_placed"
    assert response["order_number"] == event["value"]


async def test_http_form_validation_in_a_conversation(project: Project,
                                                      ensemble: PolicyEnsemble,
                                                      http_executor: HttpExecutor) -> None:
    manager = DialogueManager(project.domain, ensemble, executor=http_executor)
    result = await manager.handle_message(UserMessage("/order_pizza", "http-fan"))
    assert executed(turn_events(result)) == ["utter_start_order", "pizza_form"]
    assert texts(result)[-1] == "What size would you like?"

    result = await manager.handle_message(UserMessage('/inform{"pizza_size": "XXL"}', "http-fan"))
    assert texts(result) == ["Sorry, we don't bake XXL pizzas. We have small, medium and large.",
                             "What size would you like?"]

    result = await manager.handle_message(
        UserMessage('/inform{"pizza_size": "Medium"}', "http-fan"))
    assert texts(result) == ["Which pizza shall it be?"]
    assert result.tracker.get_slot("pizza_size") == "medium"  # the server's cleaned value


async def test_action_server_down_ends_the_turn_with_utter_error(
        project: Project, ensemble: PolicyEnsemble, caplog: pytest.LogCaptureFixture) -> None:
    down = HttpExecutor(f"http://127.0.0.1:{free_port()}/webhook", timeout_s=2)
    manager = DialogueManager(project.domain, ensemble, executor=down)
    try:
        greeted = await manager.handle_message(UserMessage("/greet", "hungry"))
        assert executed(turn_events(greeted)) == ["utter_greet"]  # responses need no server
        before = len(greeted.tracker.events)

        with caplog.at_level(logging.ERROR, logger="bot.manager"):
            result = await manager.handle_message(
                UserMessage('/order_pizza{"pizza_size": "large"}', "hungry"))
    finally:
        await down.close()

    assert texts(result) == ["Great, let's get your pizza started.", ERROR_TEXT]
    events = since(result, 0)
    assert events[:before] == list(greeted.tracker.events)  # the earlier turn is untouched
    new = events[before:]
    assert isinstance(events[before - 1], ActionExecuted)
    assert events[before - 1].name == "action_listen"  # the bot was listening
    assert isinstance(new[0], UserUttered) and new[0].intent_name == "order_pizza"
    assert [(e.name, e.value) for e in new if isinstance(e, SlotSet)] == [("pizza_size", "large")]
    assert [(e.name, e.policy) for e in new if isinstance(e, ActionExecuted)] == [
        ("utter_start_order", "RulePolicy"), ("utter_error", "error_handler"),
        ("action_listen", "error_handler")]
    assert [e.text for e in new if isinstance(e, BotUttered)] == [
        "Great, let's get your pizza started.", ERROR_TEXT]
    assert not any(isinstance(e, ActiveLoop) for e in new)  # the failed form left no trace
    assert result.tracker.get_slot("pizza_size") == "large"
    assert manager.retrieve("hungry").events == result.tracker.events  # saved as it is

    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("pizza_form" in m and "validate_pizza_form" in m and "cannot reach" in m
               for m in failures), failures
    # one line, no traceback: the error names the server and the fix
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.ERROR)


# ---------------------------------------------------------------- both executors


async def test_a_slow_action_ends_the_turn_with_utter_error(
        project: Project, ensemble: PolicyEnsemble, executor: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    manager = DialogueManager(project.domain, ensemble, executor=executor)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="bot.manager"):
        result = await manager.execute_action("oven-watcher", "action_oven_status")
    assert time.monotonic() - started < 2  # the timeout cut it short
    assert texts(result) == [ERROR_TEXT]
    assert executed(list(result.tracker.events)) == ["action_session_start", "utter_error"]
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("action_oven_status" in m for m in failures), failures


async def test_a_crashing_action_ends_the_turn_with_utter_error(
        project: Project, ensemble: PolicyEnsemble, executor: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    manager = DialogueManager(project.domain, ensemble, executor=executor)
    await manager.handle_message(UserMessage("/greet", "cleaner"))
    with caplog.at_level(logging.ERROR, logger="bot.manager"):
        result = await manager.execute_action("cleaner", "action_clean_oven")
    assert texts(result) == [ERROR_TEXT]
    tracker = result.tracker
    assert "action_clean_oven" not in executed(list(tracker.events))
    assert executed(list(tracker.events))[-2:] == ["utter_greet", "utter_error"]
    assert tracker.latest_message is not None and tracker.latest_message.intent_name == "greet"
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("action_clean_oven" in m for m in failures), failures


async def test_a_rejected_action_is_recorded_and_is_no_error(
        project: Project, ensemble: PolicyEnsemble, executor: Any) -> None:
    manager = DialogueManager(project.domain, ensemble, executor=executor)
    await manager.handle_message(UserMessage("/greet", "special-seeker"))
    result = await manager.handle_message(UserMessage("/affirm", "special-seeker"))
    rejected = [e for e in turn_events(result) if isinstance(e, ActionExecutionRejected)]
    assert rejected and rejected[0].name == "action_daily_special"
    assert rejected[0].policy == "MemoizationPolicy"
    assert ERROR_TEXT not in texts(result)
    assert "utter_error" not in executed(turn_events(result))


async def test_after_a_rejection_another_policy_chooses(
        project: Project, ensemble: PolicyEnsemble, executor: Any) -> None:
    manager = DialogueManager(project.domain, ensemble, executor=executor)
    await manager.handle_message(UserMessage("/greet", "special-seeker"))
    result = await manager.handle_message(UserMessage("/affirm", "special-seeker"))
    events = turn_events(result)
    rejected = [e for e in events if isinstance(e, ActionExecutionRejected)]
    assert [(e.name, e.policy) for e in rejected] == [("action_daily_special",
                                                       "MemoizationPolicy")]
    nxt = events[events.index(rejected[0]) + 1]
    assert isinstance(nxt, ActionExecuted)
    assert (nxt.name, nxt.policy) == ("action_default_fallback", "RulePolicy")
    assert texts(result) == [DEFAULT_TEXT]


# ---------------------------------------------------------------- the in-process executor


def test_in_process_executor_lists_the_package_actions(pizza_package: None) -> None:
    executor = InProcessExecutor("pizza_actions", timeout_s=IN_PROCESS_TIMEOUT_S)
    assert {"validate_pizza_form", "action_place_order", "action_daily_special",
            "action_oven_status", "action_clean_oven"} <= (executor.names() or set())


async def test_in_process_executor_errors_name_the_action(project: Project,
                                                          pizza_package: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    executor = InProcessExecutor("pizza_actions", timeout_s=IN_PROCESS_TIMEOUT_S)

    with pytest.raises(ActionError, match="action_clean_oven.*RuntimeError") as crashed:
        await executor.run(action_call(project, "action_clean_oven"))
    assert not isinstance(crashed.value, ActionRejected)

    with pytest.raises(ActionRejected, match="action_daily_special.*no special today"):
        await executor.run(action_call(project, "action_daily_special"))

    with pytest.raises(ActionError, match="action_oven_status.*timed out"):
        await executor.run(action_call(project, "action_oven_status"))

    with pytest.raises(ActionError, match="action_make_coffee.*not in package"):
        await executor.run(action_call(project, "action_make_coffee"))

    monkeypatch.setenv("PIZZA_SPECIAL", "quattro formaggi")
    monkeypatch.setenv("PIZZA_OVEN_DELAY_S", "0")
    reply = await executor.run(action_call(project, "action_daily_special"))
    assert reply["events"] == []
    assert [(r["response"], r["special"]) for r in reply["responses"]] == [
        ("utter_daily_special", "quattro formaggi")]
    reply = await executor.run(action_call(project, "action_oven_status"))
    assert [r["response"] for r in reply["responses"]] == ["utter_oven_status"]


async def test_http_executor_errors_name_the_action(project: Project,
                                                    http_executor: HttpExecutor) -> None:
    with pytest.raises(ActionError, match="action_clean_oven.*HTTP 500"):
        await http_executor.run(action_call(project, "action_clean_oven"))
    with pytest.raises(ActionRejected, match="action_daily_special.*no special today"):
        await http_executor.run(action_call(project, "action_daily_special"))
    with pytest.raises(ActionError, match="action_oven_status.*did not answer within 0.5s"):
        await http_executor.run(action_call(project, "action_oven_status"))
    with pytest.raises(ActionError, match="action_make_coffee.*not known to the action server"):
        await http_executor.run(action_call(project, "action_make_coffee"))


ACTION_MODULE = '''
from rasa_sdk import Action


class ActionHello(Action):
    def name(self):
        return "action_hello"

    def run(self, dispatcher, tracker, domain):
        return []


WARMED = []


def warm_up():
    {body}
'''


def test_in_process_executor_warms_the_package_up_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    for name, body in (("warm_ok_pkg", "WARMED.append('models')"),
                       ("warm_broken_pkg", "raise RuntimeError('no models here')")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(ACTION_MODULE.format(body=body))
    (tmp_path / "no_warm_pkg").mkdir()
    (tmp_path / "no_warm_pkg" / "__init__.py").write_text(
        ACTION_MODULE.split("WARMED")[0])
    monkeypatch.syspath_prepend(str(tmp_path))

    thread = InProcessExecutor("warm_ok_pkg").warm_up()
    assert thread is not None and thread.daemon
    thread.join(10)
    import warm_ok_pkg  # type: ignore[import-not-found]
    assert warm_ok_pkg.WARMED == ["models"]

    with caplog.at_level("WARNING"):
        broken = InProcessExecutor("warm_broken_pkg").warm_up()
        assert broken is not None
        broken.join(10)
    assert "actions.warm_up.failed package=warm_broken_pkg" in caplog.text
    assert "no models here" in caplog.text
    assert InProcessExecutor("no_warm_pkg").warm_up() is None
