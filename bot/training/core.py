"""The dialogue policies (Rasa's core): trained into models/core, and loaded back."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from bot.errors import TrainingError
from bot.policies import PolicyEnsemble, build_policies
from bot.project.project import Project

logger = logging.getLogger(__name__)


def train_core(project: Project, out: Path, progress: bool = False) -> list[str]:
    """Train the policies into `out` (and the domain beside it); the story conflicts found."""
    ensemble = PolicyEnsemble(build_policies(project.config.policies, progress=progress))
    problems = ensemble.train(project.domain, project.data)
    for problem in problems:
        logger.warning("train.core.conflict %s", problem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies.json").write_text(json.dumps(ensemble.to_dict()))
    (out.parent / "domain.json").write_text(json.dumps(project.domain.to_dict(), indent=1))
    return problems


def load_policies(project: Project) -> PolicyEnsemble:
    """The policies of config.yml with the tables train_core wrote to models/core."""
    path = project.paths.models / "core" / "policies.json"
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    if not path.exists():
        raise TrainingError(f"No trained model at {project.paths.models}. Run `xingkong train`.")
    ensemble.load_dict(json.loads(path.read_text()))
    return ensemble
