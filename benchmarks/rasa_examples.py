"""Which of Rasa's example bots load, validate, train and answer with Xingkong.

    python benchmarks/rasa_examples.py ../shared/data/rasa-examples [--nlu] [--json-out F]

Per bot: load (domain, config, data), `data validate` errors/warnings, core training time,
optional NLU training time (--nlu: a few epochs on the real backbone), and "answers": each
story replayed through the dialogue manager with `/intent{entities}` messages, counting the
story's action steps the bot predicts. Custom actions are not shipped with the examples: they
run nowhere and are listed. Prints one JSON line; appends it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, git_commit  # noqa: E402


def replay_story(manager: Any, story: Any, sender: str) -> tuple[int, int]:
    """(story action steps matched, total) replaying user steps as /intent payloads."""
    from bot.state.events import ActionExecuted

    matched = total = 0
    expected: list[str] = []

    async def run() -> None:
        nonlocal matched, total
        pending: list[str] = []
        for step in story.steps:
            if step.kind == "user":
                if pending:
                    matched_now, total_now = _compare(actions_done, pending)
                    matched += matched_now
                    total += total_now
                pending = []
                payload = f"/{step.intent}" if step.intent else (step.text or "")
                ents = {e["entity"]: e.get("value") for e in step.entities if e.get("value")}
                if ents and step.intent:
                    payload += json.dumps(ents)
                before = len(manager.retrieve(sender).events)
                from bot.manager import UserMessage

                result = await manager.handle_message(UserMessage(payload, sender))
                new = result.tracker.events[before:]
                actions_done[:] = [e.name for e in new if isinstance(e, ActionExecuted)
                                   and e.name not in ("action_listen", "action_session_start")]
            elif step.kind == "action" and step.name:
                pending.append(step.name)
        if pending:
            m, t = _compare(actions_done, pending)
            matched += m
            total += t

    actions_done: list[str] = []
    asyncio.run(run())
    del expected
    return matched, total


def _compare(done: list[str], wanted: list[str]) -> tuple[int, int]:
    hits = sum(1 for a, b in zip(done, wanted) if a == b)
    return hits, len(wanted)


def check_bot(path: Path, train_nlu: bool) -> dict[str, Any]:
    from bot.assistant import Project, train
    from bot.project.config import ProjectPaths
    from bot.manager import DialogueManager
    from bot.assistant import load_policies
    from bot.validate import validate_project

    row: dict[str, Any] = {"bot": path.name}
    with tempfile.TemporaryDirectory() as models:
        paths = ProjectPaths.at(path, models=Path(models))
        try:
            started = time.perf_counter()
            project = Project.load(paths)
            row["load_s"] = round(time.perf_counter() - started, 3)
            row["loads"] = True
        except Exception as exc:  # noqa: BLE001 - reported per bot
            row.update(loads=False, error=str(exc)[:300])
            return row
        findings = validate_project(paths)
        row["validate_errors"] = sum(1 for f in findings if f.level == "error")
        row["validate_warnings"] = sum(1 for f in findings if f.level == "warning")
        started = time.perf_counter()
        report = train(project, force=True, progress=False, nlu=False)
        row["core_train_s"] = round(time.perf_counter() - started, 3)
        row["core_conflicts"] = len(report.warnings)
        if train_nlu:
            started = time.perf_counter()
            try:
                train(project, force=True, progress=False, core=False)
                row["nlu_train_s"] = round(time.perf_counter() - started, 1)
                row["nlu_trains"] = True
            except Exception as exc:  # noqa: BLE001
                row.update(nlu_trains=False, nlu_error=str(exc)[:300])
        manager = DialogueManager(project.domain, load_policies(project))
        matched = total = 0
        for i, story in enumerate(project.data.stories + project.data.rules):
            m, t = replay_story(manager, story, f"story-{i}")
            matched += m
            total += t
        row["story_actions_matched"] = matched
        row["story_actions_total"] = total
        row["custom_actions_missing"] = [a for a in project.domain.custom_actions
                                         if a not in project.domain.responses]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="folder with one Rasa project per subfolder")
    parser.add_argument("--nlu", action="store_true", help="also train the NLU (slow)")
    parser.add_argument("--synthetic", action="store_true", help="use the repo's own demo only")
    parser.add_argument("--iterations", type=int, default=1, help="unused; kept for the smoke test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.path and not args.synthetic:
        bots = sorted(p for p in Path(args.path).iterdir() if (p / "domain.yml").exists())
    else:
        bots = [ROOT]
    rows = [check_bot(b, args.nlu) for b in bots]
    summary = {
        "benchmark": "rasa_examples",
        "bots": rows,
        "loaded": sum(1 for r in rows if r.get("loads")),
        "validated": sum(1 for r in rows if r.get("validate_errors") == 0),
        "commit": git_commit(),
    }
    emit(summary, ROOT / "benchmarks" / "results" / "rasa_examples.jsonl")


if __name__ == "__main__":
    main()
