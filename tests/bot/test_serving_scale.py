"""Several server processes on one conversation store: the scaled-down load test (real
redis-server, three `xingkong run` processes, one killed mid-run; benchmarks/serving_load.py
runs the full one), `xingkong run --workers N` on Redis, and its refusal without shared
stores."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from bot.project.project import Project
from bot.training.core import train_core
from bot.cli import main

REPO = Path(__file__).resolve().parents[2]
needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None,
                                 reason="redis-server is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@needs_redis
def test_three_servers_one_killed_lose_and_double_nothing(tmp_path: Path) -> None:
    out = tmp_path / "serving_load.jsonl"
    child = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "serving_load.py"), "--conversations", "12",
         "--turns", "6", "--processes", "3", "--concurrency", "4",
         "--throughput-processes", "1", "--requests", "24", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-4000:]
    report = json.loads(out.read_text().splitlines()[-1])
    check = report["correctness"]
    assert report["passed"] and check["killed"] == 1 and check["acknowledged"] > 0
    assert {k: check[k] for k in ("lost", "duplicated", "out_of_order", "unanswered",
                                  "wrong_answers")} == dict.fromkeys(
        ("lost", "duplicated", "out_of_order", "unanswered", "wrong_answers"), 0)
    [row] = report["throughput"]
    assert row["errors"] == 0 and row["req_per_s"] > 0


def test_workers_refused_without_shared_stores(tiny_project: Project) -> None:
    result = CliRunner().invoke(main, ["run", "--project", str(tiny_project.paths.root),
                                       "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers 2 needs conversations and locks that every worker shares" in result.output
    assert "tracker_store: in_memory and lock_store: in_memory" in result.output
    assert "lock_store: {type: redis" in result.output and "--workers 1" in result.output
    (tiny_project.paths.root / "endpoints.yml").write_text(
        "tracker_store: {type: sql, dialect: sqlite, db: trackers.db}\n")
    result = CliRunner().invoke(main, ["run", "--project", str(tiny_project.paths.root),
                                       "--workers", "3"])
    assert result.exit_code == 1 and "lock_store: in_memory" in result.output


@needs_redis
def test_workers_share_conversations_on_redis(tiny_project: Project, tmp_path: Path) -> None:
    root = tiny_project.paths.root
    train_core(tiny_project, tiny_project.paths.models / "core")
    redis_port, port = _free_port(), _free_port()
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                              "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (root / "endpoints.yml").write_text(
        f"tracker_store: {{type: redis, url: 127.0.0.1, port: {redis_port}}}\n"
        f"lock_store: {{type: redis, url: 127.0.0.1, port: {redis_port}}}\n")
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--project", str(root), "--port", str(port),
         "--workers", "2", "--enable-api"], cwd=root, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{base}/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) >= 2  # uvicorn's workers (and its resource tracker)
        with httpx.Client(base_url=base, timeout=30) as client:
            for turn in range(4):
                for sender in ("w1", "w2", "w3"):
                    r = client.post("/webhooks/rest/webhook", json={
                        "sender": sender, "message": f'/inform{{"city": "{sender}-{turn}"}}'})
                    assert r.json()[0]["text"] == f"Noted: {sender}-{turn}."
            for sender in ("w1", "w2", "w3"):
                events = client.get(f"/conversations/{sender}/tracker",
                                    params={"include_events": "ALL"}).json()["events"]
                assert [e["text"] for e in events if e["event"] == "user"] == [
                    f'/inform{{"city": "{sender}-{turn}"}}' for turn in range(4)]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        redis.terminate()
        redis.wait(timeout=10)
        log.close()


@pytest.mark.parametrize(("tracker", "lock", "allowed"), [
    ("{type: redis, url: localhost}", "{type: redis, url: localhost}", True),
    ("{type: sql, dialect: postgresql, db: rasa}", "{type: redis}", True),
    ("{type: sql, dialect: sqlite, db: trackers.db}", "{type: redis}", True),
    ("{type: sql, url: 'sqlite://'}", "{type: redis}", False),
    ("{type: sql, dialect: sqlite, db: ':memory:'}", "{type: redis}", False),
    ("{type: redis}", "{type: in_memory}", False),
    ("{type: in_memory}", "{type: redis}", False),
])
def test_shared_store_rule(tmp_path: Path, tracker: str, lock: str, allowed: bool) -> None:
    from bot.errors import ConfigError
    from bot.project.config import load_endpoints
    from bot.wiring import check_shared_stores

    path = tmp_path / "endpoints.yml"
    path.write_text(f"tracker_store: {tracker}\nlock_store: {lock}\n")
    endpoints = load_endpoints(path)
    check_shared_stores(endpoints, 1, str(path))  # one worker: always fine
    if allowed:
        check_shared_stores(endpoints, 3, str(path))
    else:
        with pytest.raises(ConfigError, match="--workers 3 needs"):
            check_shared_stores(endpoints, 3, str(path))
