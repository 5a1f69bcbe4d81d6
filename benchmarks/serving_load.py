"""Several server processes on one Redis: no message lost or doubled, and how fast.

    python benchmarks/serving_load.py [--conversations 50] [--turns 20] [--processes 3]
        [--concurrency 8,32,128] [--throughput-processes 1,3] [--requests 1500] [--out FILE]

Everything is real and on loopback: a redis-server of its own (a free port, no persistence),
and `xingkong run` processes serving a small project written and trained here (rules: a
`/inform{"city": ...}` payload is answered "Noted: <city>."; payloads need no NLU), all with
endpoints.yml's redis tracker and lock stores.

1. Correctness: --conversations conversations of --turns turns each, all at once, every
   request to a random live server; one server is SIGKILLed halfway. A request that fails
   (its server died) is resolved as a careful client would: read the conversation from a live
   server, and send the message again only when it is not stored. At the end every tracker
   must hold exactly its messages, in order, each once, each followed by its own answer, and
   every acknowledged answer must have been right ("lost", "duplicated", "out_of_order",
   "wrong_answers" are all 0, else the exit code is 1).
2. Throughput: for each process count in --throughput-processes, fresh servers; for each
   concurrency C, C conversations send turns back to back (about --requests in all, spread
   over the servers at random). Reports requests/s and p50/p99 latency.

Prints one JSON line and appends it to benchmarks/results/serving_load.jsonl (--out changes
the file). The client runs on the same machine as the servers and takes CPU from them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment, percentile  # noqa: E402

TOKEN = "load-test-token"
DOMAIN = """
version: "3.1"
intents: [greet, inform, goodbye]
entities: [city]
slots:
  city:
    type: text
    influence_conversation: false
    mappings: [{type: from_entity, entity: city}]
responses:
  utter_greet: [{text: "Hello!"}]
  utter_city: [{text: "Noted: {city}."}]
  utter_goodbye: [{text: "Bye!"}]
session_config: {session_expiration_time: 60, carry_over_slots_to_new_session: true}
"""
CONFIG = """
recipe: default.v1
language: en
pipeline: []
policies: [{name: MemoizationPolicy}, {name: RulePolicy}]
"""
RULES = """
version: "3.1"
rules:
  - rule: greet
    steps: [{intent: greet}, {action: utter_greet}]
  - rule: city
    steps: [{intent: inform}, {action: utter_city}]
  - rule: bye
    steps: [{intent: goodbye}, {action: utter_goodbye}]
"""
# lock_lifetime bounds how long a killed server's lock blocks its conversation; it must stay
# well above the longest turn (issue 16 adds fencing for turns that outlive their lock).
ENDPOINTS = """
tracker_store: {{type: redis, url: 127.0.0.1, port: {port}, db: 0, key_prefix: load}}
lock_store: {{type: redis, url: 127.0.0.1, port: {port}, db: 0, key_prefix: load,
             lock_lifetime: 10, lock_wait_timeout: 60}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_project(folder: Path) -> None:
    """The small project, trained (policies only: payloads need no NLU)."""
    (folder / "data").mkdir(parents=True)
    (folder / "domain.yml").write_text(textwrap.dedent(DOMAIN))
    (folder / "config.yml").write_text(textwrap.dedent(CONFIG))
    (folder / "data" / "rules.yml").write_text(textwrap.dedent(RULES))
    from bot.project.project import Project
    from bot.training.core import train_core
    from bot.project.config import ProjectPaths

    project = Project.load(ProjectPaths.at(folder))
    train_core(project, project.paths.models / "core")


class Cluster:
    """A redis-server and `xingkong run` processes, all stopped by ``stop``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.redis_port = free_port()
        self.redis: subprocess.Popen[bytes] | None = None
        self.servers: dict[str, subprocess.Popen[bytes]] = {}  # base url -> process
        self.logs: list[Any] = []

    def start_redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server).")
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save",
             "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (self.folder / "endpoints.yml").write_text(ENDPOINTS.format(port=self.redis_port))
        wait_for(lambda: _redis_ping(self.redis_port), "redis-server", 15)

    def start_servers(self, count: int) -> list[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
               "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        started: list[str] = []
        for _ in range(count):
            port = free_port()
            log = open(self.folder / f"server-{port}.log", "wb")  # noqa: SIM115 - closed in stop
            self.logs.append(log)
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", "--project", str(self.folder), "--port",
                 str(port), "--enable-api", "--auth-token", TOKEN], cwd=self.folder, env=env,
                stdout=log, stderr=subprocess.STDOUT)
            base = f"http://127.0.0.1:{port}"
            self.servers[base] = process
            started.append(base)
        for base in started:
            process = self.servers[base]
            wait_for(lambda: _answers(base) or process.poll() is not None, base, 60)
            if process.poll() is not None:
                raise SystemExit(f"server {base} exited; see {self.folder}/server-*.log")
        return started

    def kill(self, base: str) -> None:
        self.servers[base].send_signal(signal.SIGKILL)
        self.servers[base].wait(timeout=10)

    def stop_servers(self) -> None:
        for process in self.servers.values():
            if process.poll() is None:
                process.terminate()
        for process in self.servers.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.servers.clear()

    def flush(self) -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=self.redis_port).flushall()

    def stop(self) -> None:
        self.stop_servers()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            self.redis.wait(timeout=15)
        for log in self.logs:
            log.close()


def wait_for(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not come up within {timeout_s:.0f} s")


def _redis_ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.exceptions.RedisError:
        return False


def _answers(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/version", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# correctness --------------------------------------------------------------------------------------
@dataclass
class Tally:
    acknowledged: int = 0
    resolved_stored: int = 0  # failed requests whose message the tracker already held
    resent: int = 0  # failed requests sent again because the message was not stored
    wrong_answers: int = 0
    failures: int = 0
    sent: dict[str, list[str]] = field(default_factory=dict)  # conversation -> messages


async def _tracker_user_texts(client: Any, live: list[str], sender: str) -> list[str] | None:
    for base in random.sample(live, len(live)):
        try:
            r = await client.get(f"{base}/conversations/{sender}/tracker",
                                 params={"include_events": "ALL", "token": TOKEN})
        except Exception:  # noqa: BLE001 - that server may be the dead one; try the next
            continue
        if r.status_code == 200:
            return [e.get("text") for e in r.json()["events"] if e.get("event") == "user"]
    return None


async def _conversation(client: Any, index: int, turns: int, live: list[str], tally: Tally,
                        after_each: Any) -> None:
    sender = f"load-{index}"
    tally.sent[sender] = []
    for turn in range(turns):
        city = f"c{index}t{turn}"
        message = f'/inform{{"city": "{city}"}}'
        tally.sent[sender].append(message)
        while True:
            base = random.choice(live)
            try:
                r = await client.post(f"{base}/webhooks/rest/webhook",
                                      json={"sender": sender, "message": message})
                ok = r.status_code == 200
            except Exception:  # noqa: BLE001 - connection refused or reset by a dead server
                ok = False
            if ok:
                tally.acknowledged += 1
                if [m.get("text") for m in r.json()] != [f"Noted: {city}."]:
                    tally.wrong_answers += 1
                break
            tally.failures += 1
            if base in live and not _answers(base):
                live.remove(base)
            stored = await _tracker_user_texts(client, live, sender)
            if stored and stored[-1] == message:
                tally.resolved_stored += 1  # processed, only the answer was lost
                break
            tally.resent += 1
        await after_each()


async def correctness(cluster: Cluster, conversations: int, turns: int, processes: int,
                      kill: bool) -> dict[str, Any]:
    import httpx

    live = cluster.start_servers(processes)
    tally = Tally()
    total = conversations * turns
    killed: list[str] = []

    async def after_each() -> None:
        if kill and not killed and tally.acknowledged >= total // 2 and len(live) > 1:
            victim = random.choice(live)
            killed.append(victim)
            cluster.kill(victim)  # the clients find out by their failing requests

    started = time.perf_counter()
    limits = httpx.Limits(max_connections=conversations * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(_conversation(client, i, turns, live, tally, after_each)
                               for i in range(conversations)))
        seconds = time.perf_counter() - started
        live[:] = [b for b in live if b not in killed]
        lost = duplicated = out_of_order = unanswered = 0
        for sender, messages in tally.sent.items():
            r = await client.get(f"{live[0]}/conversations/{sender}/tracker",
                                 params={"include_events": "ALL", "token": TOKEN})
            events = r.json()["events"]
            stored = [e.get("text") for e in events if e.get("event") == "user"]
            lost += sum(1 for m in messages if m not in stored)
            duplicated += len(stored) - len(set(stored))
            out_of_order += int(stored != messages and sorted(set(stored)) == sorted(messages))
            unanswered += _unanswered(events)
    return {"conversations": conversations, "turns": turns, "processes": processes,
            "killed": len(killed), "acknowledged": tally.acknowledged,
            "failed_requests": tally.failures, "resolved_as_stored": tally.resolved_stored,
            "resent": tally.resent, "lost": lost, "duplicated": duplicated,
            "out_of_order": out_of_order, "unanswered": unanswered,
            "wrong_answers": tally.wrong_answers, "seconds": round(seconds, 2)}


def _unanswered(events: list[dict[str, Any]]) -> int:
    """User messages not followed by their own answer before the next user message."""
    count, pending = 0, None
    for event in events:
        if event.get("event") == "user":
            count += pending is not None
            pending = _city(event.get("text") or "")
        elif event.get("event") == "bot" and pending is not None \
                and event.get("text") == f"Noted: {pending}.":
            pending = None
    return count + (pending is not None)


def _city(message: str) -> str:
    try:
        return str(json.loads(message[len("/inform"):])["city"])
    except (ValueError, KeyError, TypeError):
        return message


# throughput ---------------------------------------------------------------------------------------
async def throughput(bases: list[str], concurrency: int, requests: int,
                     tag: str) -> dict[str, Any]:
    import httpx

    per_conversation = max(1, requests // concurrency)
    latencies: list[float] = []
    errors = 0

    async def conversation(index: int) -> None:
        nonlocal errors
        for turn in range(per_conversation):
            body = {"sender": f"{tag}-{index}", "message": f'/inform{{"city": "t{turn}"}}'}
            started = time.perf_counter()
            r = await client.post(f"{random.choice(bases)}/webhooks/rest/webhook", json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=concurrency * 2)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for i in range(min(concurrency, 8)):  # warm-up: connections, first-turn code paths
            await client.post(f"{bases[i % len(bases)]}/webhooks/rest/webhook",
                              json={"sender": f"{tag}-warm{i}", "message": "/greet"})
        started = time.perf_counter()
        await asyncio.gather(*(conversation(i) for i in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"processes": len(bases), "concurrency": concurrency, "requests": len(latencies),
            "errors": errors, "req_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(percentile(latencies, 99), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--no-kill", action="store_true", help="kill no server mid-run")
    parser.add_argument("--concurrency", default="8,32,128", help="empty: no throughput run")
    parser.add_argument("--throughput-processes", default="1,3")
    parser.add_argument("--requests", type=int, default=1500, help="per throughput run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"
                                             / "serving_load.jsonl"))
    parser.add_argument("--iterations", type=int, default=None,
                        help="accepted for the benchmark smoke convention; use --turns")
    parser.add_argument("--synthetic", action="store_true", help="always synthetic; ignored")
    parser.add_argument("--device", default="cpu", help="recorded only")
    args = parser.parse_args()
    random.seed(args.seed)
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    counts = [int(c) for c in args.throughput_processes.split(",") if c.strip()]
    folder = Path(tempfile.mkdtemp(prefix="xk-serving-load-"))
    cluster = Cluster(folder)
    try:
        write_project(folder)
        cluster.start_redis()
        check = asyncio.run(correctness(cluster, args.conversations, args.turns,
                                        args.processes, not args.no_kill))
        cluster.stop_servers()
        rows = []
        for count in counts:
            cluster.flush()
            bases = cluster.start_servers(count)
            for level in levels:
                rows.append(asyncio.run(throughput(bases, level, args.requests,
                                                   f"p{count}c{level}")))
            cluster.stop_servers()
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    passed = all(check[k] == 0 for k in ("lost", "duplicated", "out_of_order", "unanswered",
                                         "wrong_answers"))
    report = {"benchmark": "serving_load", "passed": passed, "correctness": check,
              "throughput": rows, "device": args.device, **environment()}
    emit(report, Path(args.out))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
