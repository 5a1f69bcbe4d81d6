"""Conversations over three real servers sharing Redis while one freezes and one dies.

    python benchmarks/fault_load.py [--conversations 30] [--turns 40] [--freeze-s 8]
                                    [--project DIR] [--out benchmarks/results/fault_load.jsonl]

Starts a private redis-server and three `xingkong run` processes on the fault project of
benchmarks/faults.py (payload messages, no NLU; --project serves another trained project, whose
domain must have the `inform` intent and `number` entity). Each conversation is a client that
sends its turns one after the other to a random server, each turn with a message id, and
retries the same message (same id) on another server after a refused connection, a timeout
(3 s) or a 503, until it is answered 200 (acknowledged). Meanwhile one server is frozen (SIGSTOP) for --freeze-s seconds,
longer than the lock lifetime, while turns run on it, and another is killed (SIGKILL) while
turns run on it.

At the end every conversation's stored events are read back and checked: acknowledged turns
lost, stored twice, or out of order; plus the recovery time: from the kill (or the freeze) to
the first acknowledged turn of each conversation that had a request in flight on that server
(worst case reported). Prints one JSON line and appends it to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, git_commit  # noqa: E402
from benchmarks.faults import (  # noqa: E402
    RedisServer,
    ServerProcess,
    redis_endpoints,
    write_fault_project,
)

CLIENT_TIMEOUT_S = 3.0  # a client gives up on one attempt after this and retries elsewhere
TURN_DEADLINE_S = 90.0  # a turn not acknowledged by then counts as unanswered
DOWN_S = 5.0  # as a load balancer's passive health check: a server that failed rests this long
DOWN_UNTIL: dict[int, float] = {}  # server index -> monotonic time it may be tried again


@dataclass
class Conversation:
    sender: str
    acked: list[str] = field(default_factory=list)  # message ids answered 200, in order
    unanswered: list[str] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    in_flight: dict[int, float] = field(default_factory=dict)  # server index -> sent at
    ack_times: list[float] = field(default_factory=list)


def text_for(turn: int) -> str:
    if turn % 5 == 4:  # every fifth turn runs a slow custom action: servers are often mid-turn
        return '/slow{"seconds": 0.4}'
    return f'/inform{{"number": {turn}}}'


async def run_conversation(conv: Conversation, turns: int, servers: list[ServerProcess],
                           client: httpx.AsyncClient, rng: random.Random) -> None:
    for turn in range(turns):
        message_id = f"{conv.sender}-{turn}"
        body = {"sender": conv.sender, "message": text_for(turn), "message_id": message_id}
        deadline = time.monotonic() + TURN_DEADLINE_S
        failed: set[int] = set()  # as a load balancer: not the server that just failed
        while True:
            now = time.monotonic()
            choices = [i for i in range(len(servers))
                       if i not in failed and DOWN_UNTIL.get(i, 0.0) < now] or \
                [i for i in range(len(servers)) if i not in failed] or list(range(len(servers)))
            index = rng.choice(choices)
            conv.attempts += 1
            conv.in_flight[index] = time.monotonic()
            status: int | None = None  # None: no answer (refused, reset or timed out)
            try:
                reply = await client.post(servers[index].url + "/webhooks/rest/webhook",
                                          json=body, timeout=CLIENT_TIMEOUT_S)
                status = reply.status_code
            except httpx.HTTPError:
                pass
            finally:
                conv.in_flight.pop(index, None)
            if status == 200:
                conv.acked.append(message_id)
                conv.ack_times.append(time.monotonic())
                break
            conv.retries += 1
            failed = {index} if len(failed) >= len(servers) - 1 else failed | {index}
            if status is None:  # the server did not answer at all: rest it a while
                DOWN_UNTIL[index] = time.monotonic() + DOWN_S
            if time.monotonic() > deadline:
                conv.unanswered.append(message_id)
                break
            await asyncio.sleep(0.1 + rng.random() * 0.2)


async def inject_faults(servers: list[ServerProcess], conversations: list[Conversation],
                        freeze_s: float, marks: dict[str, Any]) -> None:
    await asyncio.sleep(2.0)
    frozen, doomed = servers[0], servers[1]
    marks["killed_busy"] = await _busy(conversations, 1)  # kill it mid-turn
    marks["kill_at"] = time.monotonic()
    doomed.kill()
    await asyncio.sleep(6.0)
    marks["frozen_busy"] = await _busy(conversations, 0)  # freeze it mid-turn
    marks["freeze_at"] = time.monotonic()
    frozen.freeze()
    await asyncio.sleep(freeze_s)
    frozen.thaw()
    marks["thaw_at"] = time.monotonic()


async def _busy(conversations: list[Conversation], index: int) -> list[str]:
    """Wait (up to 10 s) until server ``index`` has had a request in flight for 0.1 s (a slow
    turn: it holds the conversation's lock); the senders of its requests then in flight."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = time.monotonic()
        if not any(now - c.in_flight.get(index, now) > 0.1 for c in conversations):
            await asyncio.sleep(0.005)
            continue
        busy = [c.sender for c in conversations if index in c.in_flight]
        if busy:
            return busy
        await asyncio.sleep(0.005)
    return []


def recovery_s(conversations: list[Conversation], busy: list[str], since: float) -> float | None:
    """Worst time from ``since`` to the next acknowledged turn of the ``busy`` conversations."""
    waits = []
    for conv in conversations:
        if conv.sender in busy:
            later = [t for t in conv.ack_times if t > since]
            waits.append((later[0] - since) if later else float("inf"))
    return round(max(waits), 2) if waits else None


async def stored_ids(server: ServerProcess, sender: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{server.url}/conversations/{sender}/tracker",
                                 params={"include_events": "ALL"}, timeout=30)
    reply.raise_for_status()
    return [e.get("message_id") for e in reply.json()["events"] if e["event"] == "user"]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fault_load_"))
    project = Path(args.project).resolve() if args.project else write_fault_project(work / "p")
    redis_server = RedisServer()
    servers: list[ServerProcess] = []
    try:
        endpoints = redis_endpoints(work / "endpoints.yml", redis_server.port,
                                    f"fl{uuid.uuid4().hex[:6]}")
        servers = [ServerProcess(project, endpoints, work / f"server{i}.log") for i in range(3)]
        rng = random.Random(args.seed)
        conversations = [Conversation(f"c{i:03d}") for i in range(args.conversations)]
        marks: dict[str, Any] = {}
        started = time.monotonic()
        limits = httpx.Limits(max_connections=args.conversations * 2)
        async with httpx.AsyncClient(limits=limits) as client:
            faults = asyncio.create_task(inject_faults(servers, conversations, args.freeze_s,
                                                       marks))
            await asyncio.gather(*(run_conversation(c, args.turns, servers, client,
                                                    random.Random(rng.random()))
                                   for c in conversations))
            await faults
        elapsed = time.monotonic() - started
        survivor = servers[2]
        lost = duplicated = reordered = 0
        for conv in conversations:
            stored = await stored_ids(survivor, conv.sender)
            lost += sum(1 for mid in conv.acked if mid not in stored)
            duplicated += sum(stored.count(mid) - 1 for mid in set(stored) if mid)
            acked_set = set(conv.acked)
            in_store = list(dict.fromkeys(mid for mid in stored if mid in acked_set))
            reordered += int(in_store != [mid for mid in conv.acked if mid in in_store])
        acked = sum(len(c.acked) for c in conversations)
        logs = "".join(path.read_text(errors="replace") for path in work.glob("server*.log"))
        return {
            "benchmark": "fault_load", "servers": 3, "conversations": args.conversations,
            "turns_per_conversation": args.turns, "turns_acknowledged": acked,
            "turns_unanswered": sum(len(c.unanswered) for c in conversations),
            "acknowledged_lost": lost, "duplicated": duplicated,
            "conversations_reordered": reordered,
            "stale_saves_refused": logs.count("store.stale_"),
            "attempts": sum(c.attempts for c in conversations),
            "retries": sum(c.retries for c in conversations),
            "freeze_s": args.freeze_s, "lock_lifetime_s": 3.0,
            "frozen_busy_conversations": len(marks.get("frozen_busy", [])),
            "killed_busy_conversations": len(marks.get("killed_busy", [])),
            "kill_recovery_s": recovery_s(conversations, marks.get("killed_busy", []),
                                          marks.get("kill_at", 0.0)),
            "freeze_recovery_s": recovery_s(conversations, marks.get("frozen_busy", []),
                                            marks.get("freeze_at", 0.0)),
            "wall_s": round(elapsed, 1), "turns_per_s": round(acked / elapsed, 1),
            "project": "fault project" if not args.project else str(args.project),
            "seed": args.seed, "commit": git_commit(), "note": "shared 2-core machine",
        }
    finally:
        for server in servers:
            server.stop()
        redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--freeze-s", type=float, default=8.0,
                        help="how long one server stays frozen (lock lifetime is 3 s)")
    parser.add_argument("--project", default=None, help="a trained project to serve instead "
                        "of the fault project")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/fault_load.jsonl"))
    args = parser.parse_args()
    report = asyncio.run(run(args))
    emit(report, Path(args.out))


if __name__ == "__main__":
    main()
