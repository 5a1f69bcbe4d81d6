"""Fault-injection harness shared by the fault tests and benchmarks/fault_load.py.

    RedisServer     a private redis-server on a free port (no persistence), stopped at exit
    TcpProxy        forwards a port to another; ``hang()`` keeps every connection open but
                    stops passing bytes (a Redis that accepts and never answers)
    ServerProcess   ``python -m bot run`` as a real process: freeze (SIGSTOP), thaw, kill
    write_fault_project   a small Rasa project (no NLU: `/intent` payloads) whose custom
                    action ``action_slow`` sleeps ``seconds``, so a test can stop a server in
                    the middle of a turn

Everything started here is stopped by the object that started it, by its own process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """A redis-server of our own on a free port; ``stop()`` ends it."""

    def __init__(self) -> None:
        if not redis_available():
            raise RuntimeError("redis-server is not installed (apt-get install redis-server).")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not _redis_answers(self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}.")
            time.sleep(0.05)

    def stop(self) -> None:
        _terminate(self.process)


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class TcpProxy:
    """A TCP forwarder on a free port to ``target_port``. While hung it accepts connections
    and reads what clients send but passes nothing on either way, as a stalled server does."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def hang(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()  # a hung server accepts, then says nothing
        try:
            upstream = socket.create_connection((HOST, self.target_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            self._flowing.wait()
            if self._closed:
                return
            try:
                dst.sendall(data)
            except OSError:
                return


class ServerProcess:
    """``python -m bot run`` on a free port for ``project``, with ``endpoints``."""

    def __init__(self, project: Path, endpoints: Path, log: Path, *,
                 env: dict[str, str] | None = None, start_timeout_s: float = 120) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                       "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                       "OMP_NUM_THREADS": "1", **(env or {})}
        self._log: IO[Any] = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--project", str(project), "--enable-api",
             "--port", str(self.port), "--endpoints", str(endpoints)],
            cwd=str(project), env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {log}")
            try:
                if httpx.get(self.url + "/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not answer within {start_timeout_s} s; see {log}")
            time.sleep(0.1)

    def freeze(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
        _terminate(self.process)
        self._log.close()


# the fault project -----------------------------------------------------------------------------
_DOMAIN = """
version: "3.1"
intents: [greet, slow, inform]
entities: [seconds, number]
slots:
  number:
    type: any
    influence_conversation: false
    mappings:
      - type: from_entity
        entity: number
responses:
  utter_greet:
    - text: "Hello!"
  utter_noted:
    - text: "Noted."
actions: [action_slow]
session_config:
  session_expiration_time: 0
  carry_over_slots_to_new_session: true
"""
_CONFIG = """
recipe: default.v1
language: en
pipeline: []
policies:
  - name: RulePolicy
"""
_RULES = """
version: "3.1"
rules:
  - rule: greet
    steps: [{intent: greet}, {action: utter_greet}]
  - rule: slow
    steps: [{intent: slow}, {action: action_slow}]
  - rule: inform
    steps: [{intent: inform}, {action: utter_noted}]
"""
_ACTION = '''
"""A custom action that takes `seconds` (an entity of the message) to answer."""
import asyncio

from rasa_sdk import Action


class ActionSlow(Action):
    def name(self):
        return "action_slow"

    async def run(self, dispatcher, tracker, domain):
        seconds = next((e.get("value") for e in tracker.latest_message.get("entities", [])
                        if e.get("entity") == "seconds"), 0)
        await asyncio.sleep(float(seconds or 0))
        dispatcher.utter_message(text="Done slowly.")
        return []
'''


def write_fault_project(root: Path) -> Path:
    """The fault project's files under ``root``, with its policies trained; returns ``root``."""
    from bot.project.config import ProjectPaths
    from bot.project.project import Project
    from bot.training.core import train_core

    root.mkdir(parents=True, exist_ok=True)
    (root / "domain.yml").write_text(textwrap.dedent(_DOMAIN))
    (root / "config.yml").write_text(textwrap.dedent(_CONFIG))
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "rules.yml").write_text(textwrap.dedent(_RULES))
    (root / "actions").mkdir(exist_ok=True)
    (root / "actions" / "__init__.py").write_text(_ACTION)
    project = Project.load(ProjectPaths.at(root))
    train_core(project, project.paths.models / "core")
    return root


def redis_endpoints(path: Path, port: int, prefix: str, lock_port: int | None = None,
                    **lock: Any) -> Path:
    """An endpoints.yml with both stores in the Redis at ``port`` (the lock store at
    ``lock_port`` when given); ``lock`` adds lock_store keys (lock_lifetime, ...)."""
    extra = "".join(f"  {key}: {value}\n" for key, value in lock.items())
    path.write_text(f"tracker_store:\n  type: redis\n  url: {HOST}\n  port: {port}\n"
                    f"  key_prefix: {prefix}\n  socket_timeout: 2\n"
                    f"lock_store:\n  type: redis\n  url: {HOST}\n  port: {lock_port or port}\n"
                    f"  key_prefix: {prefix}\n  socket_timeout: 2\n{extra}")
    return path
