"""Which of Rasa's example bots load, validate, train and pass their own test stories.

    python benchmarks/rasa_examples.py ../shared/data/rasa-examples [--nlu] [--bots a,b]

Each bot is copied to a temporary folder (the shared data is never written). Per bot: load
(domain, config, data), `data validate` errors/warnings, the warnings about skipped
components, core training time, and, when the bot has tests/test_*.yml, its test stories
through `xingkong test core` (bot.story_runner):
- `rasa_mode`: Rasa's own mode (custom actions predicted, the story's events applied), the
  intents given or, with --nlu, the text through the bot's NLU trained here (a few minutes
  per bot on the real backbone);
- `execute_mode`: actions run for real. The examples ship no Python actions, so minimal
  stand-ins are written into the copy (each returns no events; form validators accept every
  value): stories that depend on what the real actions do are expected to fail there.
Also "answers": each training story and rule replayed with `/intent{entities}` messages
(stand-in actions running), counting the story's action steps the bot takes; rules are replayed
from a fresh conversation, without their conditions, so this undercounts for rule-heavy bots.
Prints one JSON line; appends it to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, git_commit  # noqa: E402

STAND_IN_HEADER = '''"""Stand-ins by benchmarks/rasa_examples.py: the example ships no actions."""
from rasa_sdk import Action
from rasa_sdk.forms import FormValidationAction
'''


def stand_in_actions(domain: Any) -> str:
    """One rasa_sdk class per custom action of the domain: validators subclass
    FormValidationAction (which accepts every extracted value), the rest return no events."""
    code = [STAND_IN_HEADER]
    for number, name in enumerate(domain.custom_actions):
        base = "FormValidationAction" if name.startswith("validate_") else "Action"
        body = "" if base == "FormValidationAction" else (
            "\n    def run(self, dispatcher, tracker, domain):\n        return []\n")
        code.append(f"\n\nclass StandIn{number}({base}):\n    def name(self):\n"
                    f"        return {name!r}\n{body}")
    return "".join(code)


def replay_story(manager: Any, story: Any, sender: str) -> tuple[int, int]:
    """(story action steps matched, total) replaying user steps as /intent payloads."""
    from bot.manager import UserMessage
    from bot.state.events import ActionExecuted

    matched = total = 0

    async def run() -> None:
        nonlocal matched, total
        pending: list[str] = []
        done: list[str] = []
        for step in [*story.steps, None]:
            if step is None or step.kind == "user":
                matched += sum(1 for a, b in zip(done, pending) if a == b)
                total += len(pending)
                pending = []
            if step is None:
                return
            if step.kind == "user":
                payload = f"/{step.intent}" if step.intent else (step.text or "")
                ents = {e["entity"]: e.get("value") for e in step.entities if e.get("value")}
                if ents and step.intent:
                    payload += json.dumps(ents)
                before = len(manager.retrieve(sender).events)
                result = await manager.handle_message(UserMessage(payload, sender))
                done = [e.name for e in result.tracker.events[before:]
                        if isinstance(e, ActionExecuted)
                        and e.name not in ("action_listen", "action_session_start")]
            elif step.kind == "action" and step.name:
                pending.append(step.name)

    asyncio.run(run())
    return matched, total


def story_tests(project: Any, out: Path, *, use_text: bool, execute: bool) -> dict[str, Any]:
    from bot.story_runner import run_core_tests

    outcome = run_core_tests(project, project.paths.root / "tests", out, use_text=use_text,
                             execute_actions=execute)
    summary = outcome.report["xingkong"]
    return {
        "nlu": summary["nlu"],
        "stories_passed": summary["stories"]["passed"],
        "stories": summary["stories"]["total"],
        "actions_correct": summary["actions"]["correct"],
        "actions": summary["actions"]["total"],
        "intents_correct": summary["intents"]["correct"],
        "intents": summary["intents"]["total"],
        "turn_latency_ms": summary["turn_latency_ms"],
        "failed": [{"story": f["story"], "first_wrong": f["wrong"][0] if f["wrong"]
                    else f["error"]} for f in summary["failed"]],
    }


def check_bot(source: Path, train_nlu: bool) -> dict[str, Any]:
    from bot.project.project import Project
    from bot.training.core import load_policies
    from bot.training.train import train
    from bot.manager import DialogueManager
    from bot.project.config import ProjectPaths, load_endpoints, skipped_components
    from bot.validate import validate_project
    from bot.wiring import make_executor

    row: dict[str, Any] = {"bot": source.name}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / source.name
        shutil.copytree(source, path)
        for part in [path, *path.rglob("*")]:  # the shared copy may be read-only
            part.chmod(part.stat().st_mode | 0o200)
        paths = ProjectPaths.at(path)
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
        row["skipped_components"] = skipped_components(project.config,
                                                       bool(project.data.lookups))
        started = time.perf_counter()
        report = train(project, force=True, progress=False, nlu=False, knowledge=False)
        row["core_train_s"] = round(time.perf_counter() - started, 3)
        row["core_conflicts"] = len([w for w in report.warnings
                                     if w not in row["skipped_components"]])
        if train_nlu and (path / "tests").exists():
            started = time.perf_counter()
            try:
                train(project, force=True, progress=False, core=False, knowledge=False)
                row["nlu_train_s"] = round(time.perf_counter() - started, 1)
            except Exception as exc:  # noqa: BLE001
                row.update(nlu_error=str(exc)[:300])
        if (path / "tests").exists():
            row["rasa_mode"] = story_tests(project, Path(tmp) / "results", use_text=train_nlu,
                                           execute=False)
        actions_dir = path / "actions"
        if project.domain.custom_actions and not actions_dir.exists():
            actions_dir.mkdir()
            (actions_dir / "__init__.py").write_text("")
            (actions_dir / "actions.py").write_text(stand_in_actions(project.domain))
            row["stand_in_actions"] = list(project.domain.custom_actions)
        (path / "endpoints.yml").unlink(missing_ok=True)  # the stand-ins run in-process
        project = Project.load(paths)
        executor = make_executor(load_endpoints(paths.endpoints), project, "actions")
        manager = DialogueManager(project.domain, load_policies(project), executor=executor)
        matched = total = 0
        for i, story in enumerate(project.data.stories + project.data.rules):
            m, t = replay_story(manager, story, f"story-{i}")
            matched += m
            total += t
        row["story_actions_matched"] = matched
        row["story_actions_total"] = total
        if (path / "tests").exists():
            row["execute_mode"] = story_tests(project, Path(tmp) / "results_exec",
                                              use_text=train_nlu, execute=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="folder with one Rasa project per subfolder")
    parser.add_argument("--nlu", action="store_true",
                        help="train each tested bot's NLU and send the test text through it")
    parser.add_argument("--bots", default=None, help="comma-separated subset of the bots")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.path:
        bots = sorted(p for p in Path(args.path).iterdir() if (p / "domain.yml").exists())
    else:
        bots = [ROOT]
    if args.bots:
        wanted = set(args.bots.split(","))
        bots = [b for b in bots if b.name in wanted]
    rows = [check_bot(b, args.nlu) for b in bots]
    tested = [r for r in rows if "rasa_mode" in r]
    summary = {
        "benchmark": "rasa_examples",
        "bots": rows,
        "loaded": sum(1 for r in rows if r.get("loads")),
        "validated": sum(1 for r in rows if r.get("validate_errors") == 0),
        "with_tests": len(tested),
        "tests_pass_rasa_mode": sum(1 for r in tested
                                    if r["rasa_mode"]["stories_passed"]
                                    == r["rasa_mode"]["stories"]),
        "commit": git_commit(),
    }
    emit(summary, ROOT / "benchmarks" / "results" / "rasa_examples.jsonl")


if __name__ == "__main__":
    main()
