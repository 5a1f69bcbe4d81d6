"""Rasa's formbot example, trained and served by Xingkong: the side-by-side of issue 13.

    python benchmarks/formbot.py [--formbot ../shared/data/rasa-examples/formbot]
                                 [--iterations 200] [--concurrency 8,32]
    python benchmarks/formbot.py --trained DIR    # serve a copy trained before, no training

Copies the example (its files unchanged) to a temporary folder, times `xingkong train` there
(wall clock, a fresh process, as a user runs it), starts `xingkong run --enable-api`, and
measures: seconds from process start to GET /status 200, server RSS after start and after the
load, POST /model/parse p50/p95 (one client), REST webhook turn p50/p99 (one client), and
requests/s at each concurrency. Rasa 3.6.21's figures on the same machine and method (issue 13)
are printed beside ours. One JSON line, appended to benchmarks/results/formbot.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment, percentile  # noqa: E402
from benchmarks.turn_latency import _rss_mb, _run, running_server  # noqa: E402

RASA_3_6 = {"train_s": 182, "startup_s": 32, "rss_start_mb": 1268, "rss_after_load_mb": 1275,
            "rest_p50_ms": 48, "rest_p99_ms": 84, "parse_p50_ms": 8.7, "rps_c8": 20.7,
            "rps_c32": 22.0}
MESSAGES = [
    "hi", "I'd like to book a table for 4 people", "can I get a restaurant with mexican food",
    "outdoor please", "no additional preferences", "I want to eat italian food tonight",
    "we are two", "thanks, bye",
]


def train(project: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot", "train", "--project", str(project)],
                          cwd=project, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"xingkong train failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


async def parse_latency(base: str, iterations: int) -> dict[str, float]:
    import httpx

    async with httpx.AsyncClient(timeout=60) as client:
        for text in MESSAGES:  # warm-up
            (await client.post(f"{base}/model/parse", json={"text": text})).raise_for_status()
        latencies = []
        for i in range(iterations):
            started = time.perf_counter()
            response = await client.post(f"{base}/model/parse",
                                         json={"text": MESSAGES[i % len(MESSAGES)]})
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return {"parse_p50_ms": round(statistics.median(latencies), 2),
            "parse_p95_ms": round(percentile(latencies, 95), 2)}


def serve_and_measure(project: Path, env: dict[str, str], iterations: int,
                      levels: list[int]) -> dict[str, Any]:
    log_path = ROOT / "benchmarks" / "results" / "formbot_server.log"
    with running_server(project, env, log_path) as (base, server, startup_s):
        out: dict[str, Any] = {"startup_s": round(startup_s, 2),
                               "rss_start_mb": round(_rss_mb(server.pid), 1)}
        out |= asyncio.run(parse_latency(base, iterations))
        rest = asyncio.run(_run(base, MESSAGES, iterations, levels))
        out |= {"rest_p50_ms": rest["p50_ms"], "rest_p99_ms": rest["p99_ms"],
                **{k: v for k, v in rest.items() if k.startswith("rps_")},
                "rss_after_load_mb": round(_rss_mb(server.pid), 1)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formbot", type=Path,
                        default=ROOT.parent / "shared" / "data" / "rasa-examples" / "formbot")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--trained", type=Path, default=None,
                        help="a formbot copy already trained (its models/ folder): serve and "
                             "measure it, without training (train_s is then not reported)")
    args = parser.parse_args(argv)
    if args.trained is None and not (args.formbot / "domain.yml").is_file():
        print(f"No Rasa project at {args.formbot} (no domain.yml). Pass --formbot DIR.",
              file=sys.stderr)
        raise SystemExit(2)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.trained is not None:
        if not (args.trained / "models" / "nlu" / "pipeline.json").is_file():
            print(f"No trained model in {args.trained / 'models'}. Train it first with "
                  "`xingkong train` in that folder.", file=sys.stderr)
            raise SystemExit(2)
        figures = serve_and_measure(args.trained, env, args.iterations, levels)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp) / "formbot"
            shutil.copytree(args.formbot, project,
                            ignore=shutil.ignore_patterns("models", ".rasa"))
            figures = {"train_s": round(train(project, env), 1)}
            figures |= serve_and_measure(project, env, args.iterations, levels)
    ratio = {k: round(figures[k] / v, 2) for k, v in RASA_3_6.items() if k in figures}
    report = {"benchmark": "formbot", "xingkong": figures, "rasa_3_6_21": RASA_3_6,
              "ratio": ratio, "iterations": args.iterations, **environment()}
    emit(report, ROOT / "benchmarks" / "results" / "formbot.jsonl")
    return report


if __name__ == "__main__":
    main()
