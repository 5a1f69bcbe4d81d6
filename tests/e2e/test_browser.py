"""The web UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright).

Two assistant servers are used:
  - the real demo assistant (`python -m bot run --enable-api --auth-token ...`) with its
    trained models, or, in a fresh clone, with models trained for the test from the demo's
    data with few epochs (a few minutes): a booking request, a city button, the restart
    control, entity marks, and a knowledge answer with its span highlighted;
  - a stub speaking Rasa's HTTP API with canned entities, a knowledge answer and a generated
    reply, so the inspector's highlighting is checked in the browser whatever is trained; it
    is then stopped to see the down-server message.
Screenshots go to tests/artifacts/. Install the browser with tests/e2e/browser_setup.sh.
XINGKONG_E2E_PROJECT=/path serves another project folder's models/ (default: this repo's).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TOKEN = "e2e-secret"
PROJECT = Path(os.environ.get("XINGKONG_E2E_PROJECT") or REPO)  # whose models/ to serve
NLU_MODEL = PROJECT / "models" / "nlu" / "pipeline.json"
KNOWLEDGE_DIR = REPO / os.environ.get("XINGKONG_KNOWLEDGE_DIR", "models/knowledge")
TIMEOUT_MS = 20_000


def _browser_ready() -> bool:
    return CHROMIUM.exists() and importlib.util.find_spec("playwright") is not None


def _ensure_browser() -> None:
    if _browser_ready():
        return
    setup = subprocess.run(["bash", str(REPO / "tests/e2e/browser_setup.sh")], cwd=REPO,
                           env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                           text=True, timeout=900, check=False)
    if setup.returncode != 0 or not _browser_ready():
        pytest.skip("Chromium or the playwright package could not be installed "
                    f"(tests/e2e/browser_setup.sh exited {setup.returncode}): "
                    f"{setup.stderr.strip()[-300:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(cmd: list[str], ready_url: str, log: Path, timeout_s: float,
           env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{cmd[2]} exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    pytest.fail(f"{cmd[2]} not ready after {timeout_s}s:\n{log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _ui(server_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = _start([sys.executable, "-m", "ui", "--server", server_url, "--token", TOKEN,
                   "--port", str(port), "--stream-delay", "0.005", "--timeout", "20"],
                  f"http://127.0.0.1:{port}/", log, timeout_s=45)
    return proc, f"http://127.0.0.1:{port}/"


# a stub assistant with canned NLU and knowledge output ---------------------------------------
BOOKING = "Book a room in Lisbon from May 3 to May 6"
QUESTION = "Is breakfast included?"
IMAGE = "https://example.com/starlight/lisbon.jpg"  # not loaded: the browser is offline
PASSAGE = "Rooms at Starlight Lisbon include a buffet breakfast from 7 to 10 am."


def _stub_turn(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    def ent(entity: str, value: str, role: str | None = None) -> dict[str, Any]:
        start = text.index(value)
        return {"entity": entity, "start": start, "end": start + len(value), "value": value,
                "role": role, "confidence_entity": 0.97, "extractor": "LukeSpanExtractor"}

    if text == BOOKING:
        answer = "Which hotel in Lisbon would you like?"
        messages = [{"recipient_id": "x", "text": answer, "image": IMAGE, "buttons": [
            {"title": "Starlight Lisbon", "payload": '/inform{"hotel": "Starlight Lisbon"}'}]}]
        parse = {"intent": {"name": "book_room", "confidence": 0.91},
                 "intent_ranking": [{"name": "book_room", "confidence": 0.91},
                                    {"name": "inform", "confidence": 0.06}],
                 "entities": [ent("city", "Lisbon"), ent("date", "May 3", "checkin"),
                              ent("date", "May 6", "checkout")],
                 "uncertainty": {"entropy": 0.35, "std": 0.04, "samples": 8}}
        actions = [("booking_form", "RulePolicy", 1.0), ("action_listen", "RulePolicy", 1.0)]
        return messages, {"parse": parse, "actions": actions, "slots": {"city": "Lisbon"},
                          "loop": "booking_form"}
    reply = "Yes: breakfast is included from 7 to 10 am."
    span = [reply.index("breakfast is included"), reply.index(" from")]
    knowledge = {"answer": "breakfast is included", "span": span, "passage": PASSAGE,
                 "passage_span": [PASSAGE.index("a buffet"), PASSAGE.index(" from")],
                 "source": "kb/hotels/starlight-lisbon.md", "doc_id": "lisbon-3",
                 "confidence": 0.88}
    messages = [{"recipient_id": "x", "text": reply, "metadata": {"knowledge": knowledge}},
                {"recipient_id": "x", "text": "Enjoy your stay in Lisbon!",
                 "metadata": {"generated": True}}]
    parse = {"intent": {"name": "ask_question", "confidence": 0.83}, "entities": [],
             "intent_ranking": [{"name": "ask_question", "confidence": 0.83}]}
    return messages, {"parse": parse, "actions": [("action_answer_question", "RulePolicy", 1.0)],
                      "slots": {}, "loop": None}


class _StubServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.trackers: dict[str, dict[str, Any]] = {}


class _StubHandler(BaseHTTPRequestHandler):
    server: _StubServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _json(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith("/version"):
            return self._json({"version": "stub"})
        if f"token={TOKEN}" not in self.path:
            return self._json({"message": "User is not authenticated."}, 401)
        match = re.match(r"/conversations/([^/?]+)/tracker", self.path)
        if match:
            return self._json(self.server.trackers.get(match.group(1), {"events": []}))
        return self._json({})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages, turn = _stub_turn(body["message"])
        events = [{"event": "user", "text": body["message"], "parse_data": turn["parse"]}]
        events += [{"event": "action", "name": n, "policy": p, "confidence": c}
                   for n, p, c in turn["actions"]]
        self.server.trackers[body["sender"]] = {"events": events, "slots": turn["slots"],
                                         "active_loop": {"name": turn["loop"]}}
        self._json(messages)


# fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _ensure_browser()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # as the pages wait: a busy machine is slow to draw
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real demo assistant with its HTTP API and an auth token, serving the project's
    trained models, or, when NLU or knowledge models are missing (a fresh clone), models
    trained for this test from the demo's own data with few epochs (QUICK)."""
    logs = tmp_path_factory.mktemp("assistant")
    project = PROJECT
    if not (NLU_MODEL.exists() and (KNOWLEDGE_DIR / "knowledge.json").exists()):
        project = _quick_demo(tmp_path_factory.mktemp("demo"), logs / "train.log")
    elif not (PROJECT / "models" / "core").is_dir():
        subprocess.run([sys.executable, "-m", "bot", "train", "core", "--project", str(PROJECT)],
                       cwd=REPO, check=True, timeout=300, capture_output=True)
    port = _free_port()
    knowledge = KNOWLEDGE_DIR if project == PROJECT else project / "models" / "knowledge"
    env = {"XINGKONG_KNOWLEDGE_DIR": str(knowledge)}
    proc = _start([sys.executable, "-m", "bot", "run", "--project", str(project),
                   "--enable-api", "--auth-token", TOKEN, "--port", str(port)],
                  f"http://127.0.0.1:{port}/version", logs / "server.log", timeout_s=90,
                  env=env)
    yield f"http://127.0.0.1:{port}"
    _stop(proc)


# A cut-down training run: enough for the demo's NLU to tell a booking from a question and to
# mark a city, and for the reader to answer a question it was trained on, in a few minutes on
# two cores. The full settings and their figures are in the benchmarks and `xingkong test`.
QUICK = {"JointIntentEntity": {"epochs": 3, "min_steps": 0},
         "IntentClassifier": {"epochs": 3, "min_steps": 0},
         "LukeSpanExtractor": {"epochs": 3, "negative_ratio": 4.0, "min_steps": 0},
         "reader": {"epochs": 1, "progress": False, "pretrain_qa": []},  # no 4-minute pretraining
         "encoder": {"epochs": 0.25},
         "reranker": {"pretrain_limit": 40, "epochs": 0.25},  # and its twin
         "TEDPolicy": {"epochs": 20}}
QUICK_PER_INTENT = 30  # NLU examples kept per intent
QUICK_QA_EVERY = 5  # every 5th KB question kept, plus the one the test asks
KB_QUESTION = "How much do kids aged 4 to 11 pay for breakfast?"


def _quick_demo(folder: Path, log: Path) -> Path:
    """A copy of the demo project, its data cut down and its epochs few, trained."""
    import yaml

    for name in ("domain.yml", "data", "actions"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / name)
    _cut_nlu(folder / "data" / "nlu.yml")
    _cut_qa(folder / "data" / "kb" / "qa.json")
    config = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    for component in config["pipeline"] + config["policies"]:
        component.update(QUICK.get(component["name"], {}))
    knowledge = config.get("knowledge") or {}
    for part in ("reader", "encoder"):
        knowledge[part] = {**(knowledge.get(part) or {}), **QUICK[part]}
    if knowledge.get("reranker"):  # a few house questions, not 9,624 (13 minutes)
        knowledge["reranker"] = {**knowledge["reranker"], **QUICK["reranker"]}
    config["knowledge"] = knowledge
    (folder / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    with log.open("w") as out:
        done = subprocess.run([sys.executable, "-m", "bot", "train", "--project", str(folder)],
                              cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=1200,
                              check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        pytest.fail(f"training the demo failed ({done.returncode}):\n{log.read_text()[-3000:]}")
    return folder


def _cut_nlu(path: Path) -> None:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for item in data["nlu"]:
        if "intent" in item:
            lines = [line for line in item["examples"].splitlines() if line.strip()]
            item["examples"] = "\n".join(lines[:QUICK_PER_INTENT]) + "\n"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _cut_qa(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    n = 0
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            kept = []
            for qa in paragraph["qas"]:
                n += 1
                if n % QUICK_QA_EVERY == 0 or qa["question"] == KB_QUESTION:
                    kept.append(qa)
            paragraph["qas"] = kept
        article["paragraphs"] = [p for p in article["paragraphs"] if p["qas"]]
    data["data"] = [a for a in data["data"] if a["paragraphs"]]
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def ui_url(assistant: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = _ui(assistant, tmp_path_factory.mktemp("ui") / "ui.log")
    yield url
    _stop(proc)


@pytest.fixture
def page(browser: Any, ui_url: str) -> Iterator[Any]:
    """A fresh page: each page load starts a new conversation (a new sender id)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(ui_url)
    yield tab
    context.close()


def _turn(page: Any) -> int:
    """The inspected turn's number (the newest after a reply), 0 before the first."""
    match = re.match(r"Turn (\d+):", page.locator("#turn input").input_value())
    return int(match.group(1)) if match else 0


def _say(page: Any, text: str) -> None:
    turn = _turn(page)
    page.locator("#msg textarea").fill(text)
    page.locator("#msg textarea").press("Enter")
    _wait_reply(page, turn)


def _wait_reply(page: Any, turn_before: int) -> None:
    """Waits until the turn after ``turn_before`` is inspected (the UI's last step)."""
    page.wait_for_function(
        "n => (document.querySelector('#turn input')?.value || '').startsWith(`Turn ${n}:`)",
        arg=turn_before + 1)


# the real assistant --------------------------------------------------------------------------
def test_booking_request_city_button_and_restart(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_contain_text("HTTP API on")
    page.locator("#send").click()  # empty input: a message, nothing sent
    expect(page.locator("#status")).to_contain_text("Type a message first")
    _say(page, "I'd like to book a room")
    page.screenshot(path=ARTIFACTS / "e2e_1_booking_request.png", full_page=True)
    if page.locator("#chat button.option", has_text="Paris").count() == 0:
        _say(page, "/book_room")  # the NLU is not trained: the payload starts the form
    expect(page.locator("#inspector-slots")).to_contain_text("booking_form")
    turn = _turn(page)
    page.locator("#chat button.option", has_text="Paris").click()
    _wait_reply(page, turn)
    expect(page.locator("#chat .message-row.user-row").last).to_have_text("Paris")
    expect(page.locator("#inspector-slots")).to_contain_text("Paris")
    expect(page.locator("#inspector-policies")).to_contain_text("Policy")
    expect(page.locator("#chat .message-row.bot-row").last).to_contain_text("Paris")
    page.screenshot(path=ARTIFACTS / "e2e_2_city_button.png", full_page=True)
    page.locator("#restart").click()
    expect(page.locator("#chat")).to_contain_text("conversation restarted")
    expect(page.locator("#status")).to_contain_text("Restarted")


def test_entities_marked_in_inspector(page: Any) -> None:
    from playwright.sync_api import expect

    _say(page, "I want a room in Berlin")
    marked = page.locator("#inspector-entities .token", has_text="Berlin")
    expect(marked).to_contain_text("city")
    page.screenshot(path=ARTIFACTS / "e2e_3_entities.png", full_page=True)


def test_knowledge_answer_span_highlighted(page: Any) -> None:
    from playwright.sync_api import expect

    _say(page, KB_QUESTION)
    page.screenshot(path=ARTIFACTS / "e2e_4_knowledge.png", full_page=True)
    expect(page.locator("#inspector-intent")).to_contain_text("ask_question")
    # Some span of the chosen passage is marked as the answer (which words the cut-down reader
    # of a fresh clone picks varies: "half the adult breakfast price" or "4 to 11").
    expect(page.locator("#inspector-passage .token", has_text="answer").first).to_be_visible()
    expect(page.locator("#inspector-passage")).to_contain_text("breakfast")
    expect(page.locator("#inspector-knowledge")).to_contain_text("Source")


# the stub assistant --------------------------------------------------------------------------
def test_inspector_highlights_and_down_server(browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    stub = _StubServer()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    proc, url = _ui(f"http://127.0.0.1:{stub.server_address[1]}", tmp_path / "ui.log")
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        expect(page.locator("#status")).to_contain_text("HTTP API on")
        _say(page, BOOKING)
        entities = page.locator("#inspector-entities")
        expect(entities.locator(".token", has_text="Lisbon")).to_contain_text("city")
        expect(entities.locator(".token", has_text="May 3")).to_contain_text("date#checkin")
        expect(entities.locator(".token", has_text="May 6")).to_contain_text("date#checkout")
        expect(page.locator("#inspector-intent")).to_contain_text("entropy 0.350")
        expect(page.locator("#chat button.option")).to_have_text(["Starlight Lisbon"])
        expect(page.locator(f'#chat img[src="{IMAGE}"]')).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "e2e_5_stub_entities.png", full_page=True)
        _say(page, QUESTION)
        passage = page.locator("#inspector-passage")
        expect(passage.locator(".token", has_text="a buffet breakfast")).to_contain_text(
            "answer")
        expect(page.locator("#inspector-knowledge")).to_contain_text(
            "kb/hotels/starlight-lisbon.md")
        expect(page.locator("#inspector-generated")).to_contain_text("generated")
        expect(page.locator("#chat strong", has_text="breakfast is included")).to_have_count(1)
        page.screenshot(path=ARTIFACTS / "e2e_6_stub_knowledge.png", full_page=True)
        stub.shutdown()
        stub.server_close()
        _say(page, "hello?")
        expect(page.locator("#chat .message-row.bot-row").last).to_contain_text(
            "Cannot reach the assistant server")
        expect(page.locator("body")).not_to_contain_text("Traceback")
        page.screenshot(path=ARTIFACTS / "e2e_7_server_down.png", full_page=True)
    finally:
        context.close()
        _stop(proc)
        stub.server_close()
