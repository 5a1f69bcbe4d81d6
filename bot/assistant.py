"""Train a project into a model directory, and load it back.

models/
  fingerprint.json   what each part was trained from (skip what has not changed)
  domain.json        the domain as trained
  core/policies.json the policy ensemble's learned tables
  nlu/               the NLU pipeline (when the config has Transformer components)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import ProjectConfig, ProjectPaths, load_config
from bot.domain import Domain, load_domain
from bot.errors import TrainingError
from bot.policies import PolicyEnsemble, build_policies
from bot.training_data import TrainingData, load_training_data

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(slots=True)
class Project:
    paths: ProjectPaths
    config: ProjectConfig
    domain: Domain
    data: TrainingData

    @classmethod
    def load(cls, paths: ProjectPaths) -> Project:
        config = load_config(paths.config)
        data = load_training_data(list(paths.data))
        domain = load_domain(paths.domain, extra_responses=data.responses)
        return cls(paths, config, domain, data)


@dataclass(slots=True)
class TrainReport:
    core_trained: bool = False
    nlu_trained: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    nlu_report: dict[str, Any] = field(default_factory=dict)


def fingerprints(project: Project) -> dict[str, str]:
    def digest(*parts: Any) -> str:
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    data = project.data
    core = digest(FORMAT_VERSION, project.domain.to_dict(),
                  [[c.name, dict(c.params)] for c in project.config.policies],
                  [_story_repr(s) for s in data.stories], [_story_repr(r) for r in data.rules])
    nlu = digest(FORMAT_VERSION, [[c.name, dict(c.params)] for c in project.config.pipeline],
                 [[e.text, e.intent, [a.to_dict() for a in e.entities]] for e in data.examples],
                 data.synonyms, data.regexes, data.lookups, sorted(project.domain.intents))
    return {"core": core, "nlu": nlu}


def train(project: Project, *, force: bool = False, progress: bool = True,
          nlu: bool = True, core: bool = True) -> TrainReport:
    started = time.perf_counter()
    out = project.paths.models
    out.mkdir(parents=True, exist_ok=True)
    wanted = fingerprints(project)
    old = _read_json(out / "fingerprint.json")
    report = TrainReport()
    if core and (force or old.get("core") != wanted["core"] or not (out / "core").exists()):
        report.warnings += train_core(project, out / "core")
        (out / "domain.json").write_text(json.dumps(project.domain.to_dict(), indent=1))
        report.core_trained = True
    if nlu and (force or old.get("nlu") != wanted["nlu"] or not (out / "nlu").exists()):
        report.nlu_report = train_nlu(project, out / "nlu", progress=progress)
        report.nlu_trained = bool(report.nlu_report)
    fresh = {**old, **{k: v for k, v in wanted.items()
                       if (k == "core" and core) or (k == "nlu" and nlu)}}
    (out / "fingerprint.json").write_text(json.dumps(fresh, indent=1))
    report.seconds = time.perf_counter() - started
    return report


def train_core(project: Project, out: Path) -> list[str]:
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    problems = ensemble.train(project.domain, project.data)
    for problem in problems:
        logger.warning("train.core.conflict %s", problem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies.json").write_text(json.dumps(ensemble.to_dict()))
    return problems


def train_nlu(project: Project, out: Path, progress: bool = True) -> dict[str, Any]:
    """Train the Transformer NLU pipeline; {} when the project has nothing to train."""
    if not project.data.examples:
        logger.info("train.nlu.skipped reason=no_examples")
        return {}
    try:
        from nlu.training import TrainingSet, train_pipeline
        from nlu.types import Entity, Example
    except ImportError as exc:  # the NLU dependencies are missing
        raise TrainingError(f"The NLU package cannot be imported ({exc}). "
                            "Reinstall with `make install`.") from exc
    data = project.data
    examples = [
        Example(e.text, e.intent, tuple(Entity(a.start, a.end, a.value, a.entity, a.role, a.group)
                                        for a in e.entities))
        for e in data.examples
    ]
    components = [{"name": c.name, **dict(c.params)} for c in project.config.pipeline]
    training_set = TrainingSet(examples, dict(data.synonyms), dict(data.regexes), dict(data.lookups))
    return train_pipeline(training_set, components, out, progress=progress)


def load_policies(project: Project) -> PolicyEnsemble:
    path = project.paths.models / "core" / "policies.json"
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    if not path.exists():
        raise TrainingError(f"No trained model at {project.paths.models}. Run `xingkong train`.")
    ensemble.load_dict(json.loads(path.read_text()))
    return ensemble


def _story_repr(story: Any) -> Any:
    return [story.name, story.conversation_start, story.wait_for_user_input,
            [[s.kind, s.intent, s.text, list(s.entities), s.name, [list(p) for p in s.slots],
              [[a.kind, a.intent, a.text, list(a.entities)] for a in s.alternatives]]
             for s in (*story.condition, *story.steps)]]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
