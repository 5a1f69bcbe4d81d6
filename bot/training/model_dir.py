"""The trained model folder: its layout, and which one a command reads.

models/
  fingerprint.json   what each part was trained from (skip what has not changed)
  domain.json        the domain as trained
  core/policies.json the policy ensemble's learned tables
  nlu/               the NLU pipeline (when the config has Transformer components)
  knowledge/         the knowledge answers (when the project has a knowledge base, data/kb by
                     default): index/, reader/, knowledge.json, by retrieval's build_knowledge
  generation/        the small-talk generator (when config.yml has a generation: section):
                     generation.json, GPT-2 weights and tokenizer, by generation's training
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KNOWLEDGE_DIR = "knowledge"  # models/knowledge: where actions/knowledge.py looks by default
GENERATION_DIR = "generation"  # models/generation: where actions/fallback.py looks by default



def latest_model(path: Path) -> Path:
    """The trained model a command reads from `path` (Rasa's -m, default models/): the folder
    itself when it holds a model; otherwise, as Rasa takes the newest model of a directory,
    the most recently trained model folder inside it (`train --fixed-model-name NAME` writes
    models/NAME); `path` itself when there is none."""
    if not path.is_dir() or (path / "fingerprint.json").exists():
        return path
    trained = [p for p in path.iterdir()
               if (p / "fingerprint.json").is_file() and (p / "domain.json").is_file()]
    if not trained:
        return path
    return max(trained, key=lambda p: (p / "fingerprint.json").stat().st_mtime)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
