"""REST round trip of one user turn, end to end, on loopback.

    python benchmarks/turn_latency.py [--project .] [--iterations 200] [--concurrency 1,8,32]

Starts `xingkong run` as a separate process on a free port (the trained model in
`<project>/models`; run `xingkong train` first), measures the time from process start to
GET /status answering, then sends REST webhook messages: text messages through the NLU when an
NLU model exists, `/intent` payloads otherwise (--payloads forces them). Reports p50/p95/p99 at
concurrency 1, requests/s at each concurrency, and the server's RSS. Prints one JSON line and
appends it to benchmarks/results/turn_latency.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, git_commit, percentile  # noqa: E402

TEXTS = [
    "hi there", "what can you do?", "is breakfast included at Starlight Rome?",
    "thanks a lot", "are you a bot?", "how are you today?", "bye",
]
PAYLOADS = ["/greet", "/help", "/ask_question", "/thank", "/bot_challenge", "/chitchat", "/goodbye"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _run(base: str, messages: list[str], iterations: int, concurrency: list[int]) -> dict:
    import httpx

    results: dict = {}
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(5):  # warm-up
            await client.post(f"{base}/webhooks/rest/webhook",
                              json={"sender": f"warm{i}", "message": messages[i % len(messages)]})
        latencies: list[float] = []
        for i in range(iterations):
            started = time.perf_counter()
            response = await client.post(f"{base}/webhooks/rest/webhook",
                                         json={"sender": f"c1-{i % 20}",
                                               "message": messages[i % len(messages)]})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
        results["p50_ms"] = round(statistics.median(latencies), 2)
        results["p95_ms"] = round(percentile(latencies, 95), 2)
        results["p99_ms"] = round(percentile(latencies, 99), 2)
        for level in concurrency:
            sent = 0
            started = time.perf_counter()

            async def worker(w: int) -> None:
                nonlocal sent
                for j in range(max(1, iterations // level)):
                    r = await client.post(f"{base}/webhooks/rest/webhook",
                                          json={"sender": f"c{level}-{w}",
                                                "message": messages[j % len(messages)]})
                    r.raise_for_status()
                    sent += 1

            await asyncio.gather(*(worker(w) for w in range(level)))
            results[f"rps_c{level}"] = round(sent / (time.perf_counter() - started), 1)
    return results


@contextmanager
def running_server(project: Path, env: Mapping[str, str],
                   log_path: Path) -> Iterator[tuple[str, subprocess.Popen, float]]:
    """`xingkong run --enable-api` for ``project`` on a free port: yields (base URL, process,
    seconds until /status answered), and stops the server afterwards. Its log goes to a file:
    an undrained pipe would block it once full."""
    import httpx

    port = _free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        server = subprocess.Popen([sys.executable, "-m", "bot", "run", "--project", str(project),
                                   "--port", str(port), "--enable-api"], cwd=project,
                                  env=dict(env), stdout=log, stderr=log, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"server exited; see {log_path}")
                try:
                    if httpx.get(f"{base}/status", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            yield base, server, time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--payloads", action="store_true", help="send /intent payloads only")
    parser.add_argument("--synthetic", action="store_true", help="same as --payloads")
    parser.add_argument("--device", default="cpu", help="recorded only; the server runs on CPU")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    has_nlu = (project / "models" / "nlu" / "pipeline.json").exists()
    use_payloads = args.payloads or args.synthetic or not has_nlu
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path = ROOT / "benchmarks" / "results" / "turn_latency_server.log"
    with running_server(project, env, log_path) as (base, server, startup_s):
        levels = [int(c) for c in args.concurrency.split(",") if c]
        figures = asyncio.run(_run(base, PAYLOADS if use_payloads else TEXTS, args.iterations,
                                   levels))
        rss = _rss_mb(server.pid)
    report = {"benchmark": "turn_latency", "nlu": not use_payloads,
              "startup_s": round(startup_s, 2), "server_rss_mb": round(rss, 1),
              "iterations": args.iterations, **figures, "device": args.device,
              "python": sys.version.split()[0], "commit": git_commit()}
    emit(report, ROOT / "benchmarks" / "results" / "turn_latency.jsonl")


if __name__ == "__main__":
    main()
