"""Rasa's `rasa test core` report files for a StoryTestRun.

    failed_test_stories.yml     the failed stories, each wrong step marked `# predicted: ...`
    successful_test_stories.yml the stories that passed (on request)
    story_report.json           per-action precision/recall/F1 (sklearn's classification
                                report), conversation_accuracy, plus per-turn latency and NLU
                                checks of this run
    story_confusion_matrix.png  expected vs predicted actions
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from bot.story_eval import Check, StoryResult, StoryTestRun
from bot.project.training_data import StoryStep

logger = logging.getLogger(__name__)

FAILED_STORIES = "failed_test_stories.yml"
STORY_REPORT = "story_report.json"
CONFUSION_MATRIX = "story_confusion_matrix.png"
SUCCESSFUL_STORIES = "successful_test_stories.yml"


def write_reports(run: StoryTestRun, out: Path, *, successes: bool = False,
                  plot: bool = True) -> dict[str, Any]:
    """Write the files into `out` (successful_test_stories.yml too with `successes`, no
    confusion matrix without `plot`, as Rasa's --successes and --no-plot); returns
    story_report.json's content."""
    out.mkdir(parents=True, exist_ok=True)
    report = story_report(run)
    (out / STORY_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / FAILED_STORIES).write_text(failed_stories_yaml(run.failed), encoding="utf-8")
    if successes:
        passed = [r for r in run.results if r.passed]
        (out / SUCCESSFUL_STORIES).write_text(failed_stories_yaml(passed), encoding="utf-8")
    pairs = [p for r in run.results for p in r.action_pairs]
    if pairs and plot:
        plot_confusion_matrix(pairs, out / CONFUSION_MATRIX)
    return report


def story_report(run: StoryTestRun) -> dict[str, Any]:
    from sklearn.metrics import classification_report

    pairs = [p for r in run.results for p in r.action_pairs]
    report: dict[str, Any] = {}
    if pairs:
        expected, predicted = zip(*pairs)
        report.update(classification_report(list(expected), list(predicted), output_dict=True,
                                             zero_division=0))
    total = len(run.results)
    correct = total - len(run.failed)
    report["conversation_accuracy"] = {"accuracy": correct / total if total else 0.0,
                                       "correct": correct, "with_warnings": 0, "total": total}
    steps = [c for r in run.results for c in r.checks if c.kind == "action"]
    intents = [c for r in run.results for c in r.checks if c.kind == "intent"]
    entities = [c for r in run.results for c in r.checks if c.kind == "entities"]
    latencies = [ms for r in run.results for ms in r.turn_latency_ms]
    report["xingkong"] = {
        "mode": run.mode,
        "nlu": "text" if run.use_text else "intents given",
        "stories": {"passed": correct, "total": total},
        "actions": {"correct": sum(c.ok for c in steps), "total": len(steps)},
        "intents": {"correct": sum(c.ok for c in intents), "total": len(intents)},
        "entities": {"correct": sum(c.ok for c in entities), "total": len(entities)},
        "turn_latency_ms": _latency(latencies),
        "failed": [{"story": r.story.name, "source": str(r.story.source),
                    "error": r.error,
                    "wrong": [_wrong(r, c) for c in r.checks if not c.ok]}
                   for r in run.failed],
    }
    return report


def _latency(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"turns": 0}
    ordered = sorted(values)
    return {"turns": len(values), "p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
            "mean": round(statistics.fmean(ordered), 2)}


def _wrong(result: StoryResult, check: Check) -> dict[str, Any]:
    return {"at": str(result.story.steps[check.step].source), "kind": check.kind,
            "expected": check.expected, "predicted": check.predicted}


# ------------------------------------------------------------------ failed stories YAML

def failed_stories_yaml(results: list[StoryResult]) -> str:
    lines = ['version: "3.1"', "stories:"]
    if not results:
        return 'version: "3.1"\nstories: []\n'
    for result in results:
        story = result.story
        lines.append(f"- story: {_scalar(story.name)}  # {story.source}")
        if result.error:
            lines.append(f"  # not tested: {result.error}")
        lines.append("  steps:")
        by_step: dict[int, list[Check]] = {}
        for check in result.checks:
            by_step.setdefault(check.step, []).append(check)
        for index, step in enumerate(story.steps):
            checks = by_step.get(index, [])
            lines += _step_lines(step, checks)
    return "\n".join(lines) + "\n"


def _step_lines(step: StoryStep, checks: list[Check]) -> list[str]:
    wrong = {c.kind: c for c in checks if not c.ok}
    out: list[str] = []
    if step.kind == "user":
        listen = next((c for c in checks if c.kind == "action" and not c.ok), None)
        if listen is not None:
            out.append(f"  - action: action_listen  # predicted: {listen.predicted}")
        if step.text is not None:
            out.append("  - user: |")
            out.append(f"      {_annotated(step)}")
            note = ""
            if "intent" in wrong:
                note = f"  # predicted: {wrong['intent'].predicted}: {step.text}"
            if "entities" in wrong:
                note += (f"  # predicted entities: "
                         f"{', '.join(wrong['entities'].predicted) or 'none'}")
            out.append(f"    intent: {step.intent}{note}")
        else:
            out.append(f"  - intent: {step.intent}")
            if step.entities:
                out.append("    entities:")
                out += [f"    - {e['entity']}: {_scalar(e.get('value'))}" for e in step.entities]
        return out
    if step.kind == "action":
        actions = [c for c in checks if c.kind == "action"]
        first = actions[0] if actions else None
        note = f"  # predicted: {first.predicted}" if first is not None and not first.ok else ""
        out.append(f"  - action: {step.name}{note}")
        # the bot went on with more actions than the story has (execute mode)
        out += [f"  # then predicted: {c.predicted}" for c in actions[1:] if not c.ok]
        return out
    if step.kind == "slot":
        out.append("  - slot_was_set:")
        notes = [c for c in checks if not c.ok]
        for number, (name, value) in enumerate(step.slots):
            shown = name if value is ... else f"{name}: {_scalar(value)}"
            note = f"  # predicted: {notes[0].predicted}" if notes and number == 0 else ""
            out.append(f"    - {shown}{note}")
        return out
    if step.kind == "active_loop":
        note = f"  # predicted: {wrong['active_loop'].predicted}" if "active_loop" in wrong else ""
        out.append(f"  - active_loop: {step.name if step.name else 'null'}{note}")
    return out


def _annotated(step: StoryStep) -> str:
    """The user text with its entities written back inline, [text](entity:value)."""
    text = step.text or ""
    spans = sorted((e for e in step.entities if "start" in e and "end" in e),
                   key=lambda e: e["start"], reverse=True)
    for e in spans:
        surface = text[e["start"]:e["end"]]
        label = e["entity"] if str(e.get("value")) == surface else f"{e['entity']}:{e['value']}"
        if e.get("role") or e.get("group"):
            body = {"entity": e["entity"], **{k: e[k] for k in ("role", "group") if e.get(k)}}
            text = f"{text[:e['start']]}[{surface}]{json.dumps(body)}{text[e['end']:]}"
        else:
            text = f"{text[:e['start']]}[{surface}]({label}){text[e['end']:]}"
    return text


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, bool) else \
        str(value).lower()


# ------------------------------------------------------------------ confusion matrix

def plot_confusion_matrix(pairs: list[tuple[str, str]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    labels = sorted({a for pair in pairs for a in pair})
    expected, predicted = zip(*pairs)
    matrix = confusion_matrix(list(expected), list(predicted), labels=labels)
    size = max(6.0, 0.35 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted action")
    ax.set_ylabel("story action")
    for i in range(len(labels)):
        for j in range(len(labels)):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=6)
    ax.set_title("Action confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
