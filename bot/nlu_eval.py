"""`xingkong test nlu`: evaluate the trained NLU on held-out data, or cross-validate."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import tempfile
from pathlib import Path
from typing import Any

from bot.project.project import Project
from bot.errors import TrainingError
from bot.project.training_data import NluExample, load_training_data
from bot.project.yaml_reader import read_yaml

logger = logging.getLogger(__name__)


def to_examples(items: list[NluExample]) -> list[Any]:
    from nlu.types import Entity, Example

    return [Example(e.text, e.intent, tuple(Entity(a.start, a.end, a.value, a.entity, a.role,
                                                    a.group) for a in e.entities))
            for e in items]


def evaluate_saved(project: Project, test_path: Path, out: Path,
                   ood_path: Path | None = None) -> dict[str, Any]:
    """Score the saved NLU on `test_path`; with `ood_path` (YAML `ood:` list of messages no
    intent covers) also the out-of-domain report (nlu/ood.py), written to ood_report.json."""
    from nlu.evaluation import parse_all, score
    from nlu.interpreter import load_interpreter
    from nlu.ood import ood_report

    model_dir = project.paths.models / "nlu"
    if not (model_dir / "pipeline.json").exists():
        raise TrainingError(f"No NLU model at {model_dir}. Run `xingkong train nlu` first.")
    if not test_path.exists():
        raise TrainingError(f"No test data at {test_path}. Pass --nlu PATH.")
    examples = to_examples(load_training_data([test_path]).examples)
    pipeline = project.config.pipeline_dicts()
    interpreter = load_interpreter(model_dir, pipeline, project.config.language)
    parses = parse_all(interpreter.parse_batch, [e.text for e in examples])
    # Entities the training data never annotates (Duckling's "time", which normalises the
    # annotated "date" spans) have no gold here; they are scored by benchmarks/nlu_dates.py.
    annotated = {a.entity for e in project.data.examples for a in e.entities}
    ignored = sorted({x.entity for p in parses for x in p.entities} - annotated)
    scored = [dataclasses.replace(p, entities=tuple(x for x in p.entities
                                                    if x.entity in annotated)) for p in parses]
    summary = _summary(score(examples, scored, out), out)
    summary["entities_not_scored"] = ignored
    if ood_path is not None:
        ood = ood_report(examples, parses,
                         parse_all(interpreter.parse_batch, load_ood_messages(ood_path)))
        out.mkdir(parents=True, exist_ok=True)
        (out / "ood_report.json").write_text(json.dumps(ood, indent=1))
        summary["ood"] = {k: v for k, v in ood.items() if k != "ood_missed"}
    return summary


def load_ood_messages(path: Path) -> list[str]:
    """The messages of an OOD file: YAML with a top-level `ood:` list of strings."""
    if not path.exists():
        raise TrainingError(f"No out-of-domain messages at {path}. Pass --ood PATH.")
    data = read_yaml(path)
    items = data.get("ood") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items) or not items:
        raise TrainingError(f"{path}: expected a top-level 'ood:' list of messages, e.g.\n"
                            "ood:\n  - what's the capital of Peru")
    return [str(x).strip() for x in items if str(x).strip()]


def cross_validate(project: Project, folds: int, out: Path) -> dict[str, Any]:
    from nlu.evaluation import evaluate
    from nlu.interpreter import load_interpreter
    from nlu.training import TrainingSet, train_pipeline

    if folds < 2:
        raise TrainingError("--folds must be at least 2.")
    examples = to_examples(project.data.examples)
    random.Random(42).shuffle(examples)
    components = project.config.pipeline_dicts()
    data = project.data
    rows = []
    for fold in range(folds):
        test = examples[fold::folds]
        train = [e for i, e in enumerate(examples) if i % folds != fold]
        with tempfile.TemporaryDirectory() as tmp:
            train_pipeline(TrainingSet(train, dict(data.synonyms), dict(data.regexes),
                                       dict(data.lookups)), components, Path(tmp), progress=False)
            report = evaluate(load_interpreter(Path(tmp)).parse_batch, test,
                              out / f"fold_{fold}")
        rows.append(_summary(report, out / f"fold_{fold}"))
        logger.info("nlu.cv.fold fold=%d accuracy=%.3f", fold, rows[-1]["intent_accuracy"])
    keys = ("intent_accuracy", "intent_macro_f1", "intent_ece", "entity_f1")
    summary = {k: sum(r[k] for r in rows) / folds for k in keys}
    summary["folds"] = folds
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_validation.json").write_text(json.dumps({"mean": summary, "folds": rows},
                                                          indent=1))
    return summary


def _summary(report: dict[str, Any], out: Path) -> dict[str, Any]:
    return {
        "intent_accuracy": report["intent"]["accuracy"],
        "intent_macro_f1": report["intent"]["macro_f1"],
        "intent_ece": report["intent"]["ece"],
        "entity_precision": report["entities"]["precision"],
        "entity_recall": report["entities"]["recall"],
        "entity_f1": report["entities"]["f1"],
        "entity_f1_per_type": {name: round(scores["f1"], 4)
                               for name, scores in report["entities"]["per_type"].items()},
        # how whole the date mentions came out, role aside (nlu/evaluation.py span_report)
        "entity_spans": report["entities"].get("spans", {}),
        "n": report["intent"]["n"],
        "reports": str(out),
    }
