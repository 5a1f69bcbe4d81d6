"""What each part of a model is built from, as a hash: train() skips a part whose
fingerprint has not changed since models/fingerprint.json was written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.project.config import GenerationConfig
from bot.project.project import Project
from bot.training.generation import assistant_texts, generation_options, written_pairs

FORMAT_VERSION = 1


def fingerprints(project: Project) -> dict[str, str]:
    """The fingerprints of the policies ("core": domain, policy settings, stories and rules)
    and of the NLU ("nlu": its trained components, examples, synonyms, regexes, lookups and
    intents, plus the stories, rules and slot mappings when an intent classifier reads the
    dialogue context)."""
    def digest(*parts: Any) -> str:
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    data = project.data
    core = digest(FORMAT_VERSION, project.domain.to_dict(),
                  [[c.name, dict(c.written)] for c in project.config.policies],
                  [_story_repr(s) for s in data.stories], [_story_repr(r) for r in data.rules])
    # Duckling is not trained (its settings are read when the model loads); stories and slot
    # mappings shape the NLU only through an intent classifier with use_context
    # (nlu/context.py: mine_contexts, answer_contexts)
    trained = [c for c in project.config.pipeline if c.name != "DucklingEntityExtractor"]
    uses_context = any(getattr(c.params, "use_context", False) for c in trained)
    nlu = digest(FORMAT_VERSION, [[c.name, dict(c.written)] for c in trained],
                 [[e.text, e.intent, [a.to_dict() for a in e.entities]] for e in data.examples],
                 data.synonyms, data.regexes, data.lookups, sorted(project.domain.intents),
                 *([[_story_repr(s) for s in [*data.stories, *data.rules]],
                    {name: list(slot.mappings) for name, slot in project.domain.slots.items()}]
                   if uses_context else []))
    return {"core": core, "nlu": nlu}


def knowledge_fingerprint(project: Project, kb: Path) -> str:
    """What the knowledge model is built from: every file of the knowledge base (qa.json
    included), the extra and pretraining QA files, the knowledge settings of config.yml and
    retrieval's own defaults and calibration recipe (so that a new Xingkong version with other
    defaults rebuilds; a new recipe only re-calibrates: the reader and encoder are reused)."""
    from retrieval.answerer import KNOWLEDGE_FORMAT
    from retrieval.knowledge_build import CALIBRATION_RECIPE, RERANKER_RECIPE
    from retrieval.reader_training import TrainConfig
    from retrieval.reranker import RerankerConfig
    from retrieval.sentence_encoder import SentenceEncoderConfig
    from retrieval.types import IndexConfig

    settings = project.config.knowledge
    files = sorted(p for p in (kb.rglob("*") if kb.is_dir() else [kb]) if p.is_file() and not
                   any(part.startswith(".") for part in p.relative_to(kb).parts))
    contents = [[p.relative_to(kb).as_posix(), _file_digest(p)] for p in files]
    reranker = dict(settings.reranker) if settings.reranker is not None else None
    files_of = [settings.reader.get("extra_qa"), settings.reader.get("pretrain_qa"),
                settings.encoder.get("pretrain_qa"), (reranker or {}).get("pretrain_qa")]
    extra = [_file_digest(project.paths.root / p) for paths in files_of
             if isinstance(paths, list) for p in paths]
    knobs = [settings.kb_path, settings.embedder, settings.top_k, settings.read_k,
             settings.hybrid, dict(settings.reader), dict(settings.encoder), reranker,
             settings.runtime, settings.follow]
    defaults = [IndexConfig().to_dict(), asdict(TrainConfig()), SentenceEncoderConfig().to_dict(),
                RerankerConfig().to_dict(), KNOWLEDGE_FORMAT, CALIBRATION_RECIPE,
                RERANKER_RECIPE]
    blob = json.dumps([FORMAT_VERSION, contents, extra, knobs, defaults], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def generation_fingerprint(project: Project, settings: GenerationConfig,
                           budget_s: float | None = None) -> str:
    """What the generator is built from: its model and training settings (with generation's
    defaults filled in), the chitchat-dataset version, the assistant's own texts and the
    written small-talk pairs (generation.pairs). Sampling
    settings are not in it: they change the manifest, not the model (refresh_generation)."""
    from importlib.metadata import PackageNotFoundError, version

    from generation.generator import FORMAT_VERSION as GENERATOR_FORMAT

    model, training, _ = generation_options(settings, budget_s)
    try:
        corpus_version = version("chitchat-dataset")
    except PackageNotFoundError:
        corpus_version = None
    pairs, vocabulary = assistant_texts(project)
    written = written_pairs(project, settings)
    run = {k: v for k, v in asdict(training).items() if k not in ("budget_s", "max_steps")}
    blob = json.dumps([FORMAT_VERSION, GENERATOR_FORMAT, settings.model, asdict(model), run,
                       corpus_version, pairs, vocabulary, *([written] if written else [])],
                      sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _story_repr(story: Any) -> Any:
    return [story.name, story.conversation_start, story.wait_for_user_input,
            [[s.kind, s.intent, s.text, list(s.entities), s.name, [list(p) for p in s.slots],
              [[a.kind, a.intent, a.text, list(a.entities)] for a in s.alternatives]]
             for s in (*story.condition, *story.steps)]]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} for the knowledge model: {exc.strerror}.") from exc
    return digest.hexdigest()
