"""A Rasa project loaded: its paths, config.yml, domain and training data."""

from __future__ import annotations

from dataclasses import dataclass

from bot.project.config import ProjectConfig, ProjectPaths, load_config
from bot.project.domain import Domain, load_domain
from bot.project.training_data import TrainingData, load_training_data


@dataclass(slots=True)
class Project:
    """What every command starts from: the paths it was given and the files read from them
    (config.yml, the domain with the responses of data/, and the training data)."""

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
