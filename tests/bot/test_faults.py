"""Faults between real server processes sharing a real Redis (issue 16, failures 1, 2, 8).

Each test starts its own redis-server on a free port and ``python -m bot run`` processes on the
fault project (benchmarks/faults.py: payload messages, a custom action that sleeps, so a server
can be frozen or killed in the middle of a turn). Skipped when redis-server is not installed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.faults import (
    RedisServer,
    ServerProcess,
    TcpProxy,
    redis_available,
    redis_endpoints,
    write_fault_project,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not redis_available(), reason="redis-server is not installed; these "
                       "tests need a real Redis (apt-get install redis-server)"),
]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_fault_project(tmp_path / "project")


@pytest.fixture
def start(project: Path, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Starts servers on ``project`` with an endpoints.yml for Redis at ``port``."""
    started: list[ServerProcess] = []

    def run(port: int, prefix: str = "f", lock_port: int | None = None,
            **lock: Any) -> ServerProcess:
        endpoints = redis_endpoints(tmp_path / f"endpoints-{uuid.uuid4().hex}.yml", port,
                                    prefix, lock_port, **lock)
        server = ServerProcess(project, endpoints, tmp_path / "servers.log")
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def say(server: ServerProcess, sender: str, text: str, timeout: float = 30,
        **extra: Any) -> httpx.Response:
    return httpx.post(server.url + "/webhooks/rest/webhook", timeout=timeout,
                      json={"sender": sender, "message": text, **extra})


def user_texts(server: ServerProcess, sender: str) -> list[str]:
    reply = httpx.get(f"{server.url}/conversations/{sender}/tracker?include_events=ALL",
                      timeout=30)
    assert reply.status_code == 200, reply.text
    return [e["text"] for e in reply.json()["events"] if e["event"] == "user"]


class Background:
    """A request sent from a thread; ``result()`` waits for its answer."""

    def __init__(self, send: Callable[[], httpx.Response]) -> None:
        self._reply: httpx.Response | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(send,), daemon=True)
        self._thread.start()

    def _run(self, send: Callable[[], httpx.Response]) -> None:
        try:
            self._reply = send()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self._reply = exc

    def result(self, timeout: float = 60) -> httpx.Response | BaseException | None:
        self._thread.join(timeout)
        return self._reply


# 1 -----------------------------------------------------------------------------------------------
def test_a_frozen_lock_holder_cannot_overwrite_turns_answered_meanwhile(
        redis_server: RedisServer, start: Callable[..., ServerProcess]) -> None:
    frozen, other = start(redis_server.port, lock_lifetime=2), \
        start(redis_server.port, lock_lifetime=2)
    assert say(frozen, "c", "/greet").status_code == 200
    slow = Background(lambda: say(frozen, "c", '/slow{"seconds": 1.5}', timeout=60))
    time.sleep(0.6)  # the frozen server is inside action_slow, holding the lock
    frozen.freeze()
    try:
        time.sleep(2.5)  # past the lock's lifetime
        answered = [say(other, "c", f"/inform{{\"number\": {i}}}") for i in range(3)]
        assert [r.status_code for r in answered] == [200, 200, 200]
    finally:
        frozen.thaw()
    late = slow.result()
    texts = user_texts(other, "c")
    for i in range(3):  # every acknowledged turn is still there
        assert f'/inform{{"number": {i}}}' in texts
    if isinstance(late, httpx.Response) and late.status_code == 200:
        assert '/slow{"seconds": 1.5}' in texts  # acknowledged: stored too
    else:  # refused as stale: not acknowledged, not stored
        assert isinstance(late, httpx.Response) and late.status_code == 503
        assert late.headers.get("Retry-After")
        assert '/slow{"seconds": 1.5}' not in texts
    assert texts.count("/greet") == 1


# 2 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("behind_proxy", [
    "tracker_store", pytest.param("both", marks=pytest.mark.slow)])  # both: the lock store too
def test_a_hung_redis_never_freezes_the_server(behind_proxy: str, redis_server: RedisServer,
                                               start: Callable[..., ServerProcess]) -> None:
    proxy = TcpProxy(redis_server.port)
    try:
        lock_port = proxy.port if behind_proxy == "both" else redis_server.port
        server = start(proxy.port, lock_port=lock_port)
        assert say(server, "h", "/greet").status_code == 200
        proxy.hang()
        stuck = Background(lambda: say(server, "h", "/greet", timeout=60))
        time.sleep(0.3)  # a turn is now waiting on the hung Redis
        for route in ("/version", "/status", "/webhooks/rest/"):
            began = time.monotonic()
            reply = httpx.get(server.url + route, timeout=5)
            assert reply.status_code == 200 and time.monotonic() - began < 1.0, route
        began = time.monotonic()
        answer = stuck.result()
        assert isinstance(answer, httpx.Response), answer
        assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1
        assert "Traceback" not in answer.text
        fresh = say(server, "h2", "/greet", timeout=60)
        assert fresh.status_code == 503 and time.monotonic() - began < 12
        proxy.resume()
        time.sleep(0.5)
        deadline = time.monotonic() + 15  # it comes back once Redis answers again
        while (reply := say(server, "h", "/greet")).status_code != 200:
            assert time.monotonic() < deadline, reply.text
            time.sleep(0.5)
        assert user_texts(server, "h").count("/greet") >= 2
    finally:
        proxy.close()


# 8 -----------------------------------------------------------------------------------------------
def test_a_killed_servers_conversation_answers_again_within_seconds(
        redis_server: RedisServer, start: Callable[..., ServerProcess]) -> None:
    doomed, survivor = start(redis_server.port), start(redis_server.port)  # default lock settings
    assert say(doomed, "k", "/greet").status_code == 200
    Background(lambda: say(doomed, "k", '/slow{"seconds": 30}', timeout=60))
    time.sleep(0.6)  # inside the slow action, holding the lock
    doomed.kill()
    killed = time.monotonic()
    reply = say(survivor, "k", "/greet", timeout=10)
    assert reply.status_code == 200
    assert time.monotonic() - killed < 5.0
    assert user_texts(survivor, "k") == ["/greet", "/greet"]
