"""Train the NLU pipeline from Rasa-style data and a Rasa-style component list.

Rasa pipelines run unchanged: tokenizers and featurizers are served by the Transformer's own
tokenizer, DIETClassifier by JointIntentEntity (intent and entities in one encoder pass), the
other intent classifiers by IntentClassifier, CRF's entity extraction by LukeSpanExtractor.
Only our own components' parameters are passed on: DIET's `epochs: 100` means something else
to a fine-tuned Transformer.

models/nlu/
  pipeline.json   components, fallback thresholds, synonyms, regexes, lookups, report
  intent/         IntentClassifier.save
  entities/       LukeSpanExtractor.save (or BioTagger)
  joint/          JointIntentEntity.save (intent and entities in one pass; then no intent/,
                  entities/)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nlu.components import (
    ENTITY_COMPONENTS,
    INTENT_COMPONENTS,
    JOINT_COMPONENT,
    BioTaggerConfig,
    DIETClassifierParams,
    FallbackClassifierParams,
    IntentClassifierConfig,
    JointConfig,
    LukeSpanConfig,
    RegexEntityExtractorParams,
)
from nlu.context import DialogueContext
from nlu.duckling import DucklingConfig
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.types import Example

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(slots=True)
class TrainingSet:
    examples: list[Example]
    synonyms: dict[str, str] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    # {intent: contexts it follows in the stories} (nlu/context.py mine_contexts), read by an
    # IntentClassifier with use_context
    contexts: dict[str, list[DialogueContext]] = field(default_factory=dict)
    # {text: [(context, intent), ...]}: examples that mean another intent in some contexts
    # ("ya just cancel it" after "anything else?"; nlu/context.py restated_tasks), read by
    # JointIntentEntity with use_context
    retargets: dict[str, list[tuple[DialogueContext, str]]] = field(default_factory=dict)
    # {text: [context, ...]}: examples that name what a form asks for, also trained where it
    # asks for it (nlu/context.py answer_contexts); read by JointIntentEntity with use_context
    answers: dict[str, list[DialogueContext]] = field(default_factory=dict)
    language: str = "en"


@dataclass(frozen=True, slots=True)
class Plan:
    """Which of our components serve a Rasa pipeline, each with its typed params; saved in
    pipeline.json as `steps` (to_dict), which nlu/interpreter.py reads."""

    joint: JointConfig | None = None
    intent: IntentClassifierConfig | None = None
    entity: LukeSpanConfig | BioTaggerConfig | None = None
    synonyms: bool = False
    duckling: dict[str, Any] | None = None  # as written: not trained, built when loaded
    regex: RegexEntityExtractorParams | None = None
    fallback: FallbackClassifierParams | None = None
    single_intent: str | None = None  # the data's only intent: no classifier to train

    @property
    def entity_name(self) -> str | None:
        if self.entity is None:
            return None
        return "BioTagger" if isinstance(self.entity, BioTaggerConfig) else "LukeSpanExtractor"

    def to_dict(self) -> dict[str, Any]:
        def params(config: Any) -> dict[str, Any] | None:
            return None if config is None else asdict(config)

        return {"joint": params(self.joint),
                "intent": "IntentClassifier" if self.intent is not None else None,
                "intent_params": params(self.intent) or {},
                "entity": self.entity_name, "entity_params": params(self.entity) or {},
                "synonyms": self.synonyms, "duckling": self.duckling,
                "regex": params(self.regex), "fallback": params(self.fallback),
                "single_intent": self.single_intent}


def plan(components: list[dict[str, Any]]) -> Plan:
    """Which of our components serve a Rasa pipeline, with their parameters. DIETClassifier,
    itself a joint intent and entity model, is served by JointIntentEntity (one encoder pass)
    unless the pipeline lists our separate components or turns DIET's entities off."""
    names = [c["name"] for c in components]
    params = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in components}
    separate = {"IntentClassifier", "LukeSpanExtractor", "BioTagger"} & set(names)
    diet_entities = _rasa_params(DIETClassifierParams, params.get("DIETClassifier", {})) \
        .entity_recognition
    joint = JOINT_COMPONENT in names or ("DIETClassifier" in names and not separate
                                         and diet_entities)
    intent = not joint and any(n in INTENT_COMPONENTS for n in names)
    entity: type | None = None
    if joint:
        pass  # the joint model serves DIET's and the extractors' roles
    elif "BioTagger" in names:
        entity = BioTaggerConfig
    elif any(n in ENTITY_COMPONENTS for n in names):
        if "DIETClassifier" not in names or diet_entities or \
                any(n in ENTITY_COMPONENTS and n != "DIETClassifier" for n in names):
            entity = LukeSpanConfig
    fallback = params.get("FallbackClassifier")
    regex = params.get("RegexEntityExtractor")
    return Plan(
        joint=_config(JointConfig, params.get(JOINT_COMPONENT, {})) if joint else None,
        intent=_config(IntentClassifierConfig, params.get("IntentClassifier", {}))
        if intent else None,
        entity=None if entity is None else _config(entity, params.get(
            "BioTagger" if entity is BioTaggerConfig else "LukeSpanExtractor", {})),
        synonyms="EntitySynonymMapper" in names,
        # not trained: its config.yml keys, checked now (nlu/duckling.py)
        duckling=params.get("DucklingEntityExtractor"),
        regex=None if regex is None else _rasa_params(RegexEntityExtractorParams, regex),
        fallback=None if fallback is None else _rasa_params(FallbackClassifierParams, fallback),
    )


def train_pipeline(data: TrainingSet, components: list[dict[str, Any]], out: Path,
                   progress: bool = True,
                   threads: Callable[[], int] | None = None) -> dict[str, Any]:
    """Train the pipeline's models into `out`; `threads()`, when given, is asked at each
    quarter epoch of the joint model how many torch threads to train with (the caller frees
    cores as its other trainings end)."""
    started = time.perf_counter()
    steps = plan(components)
    if steps.duckling is not None:
        try:
            DucklingConfig.from_params(steps.duckling, data.language)
        except NLUModelError as exc:
            raise NLUTrainingError(str(exc)) from exc
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"examples": len(data.examples)}
    intents = sorted({e.intent for e in data.examples if e.intent})
    if steps.joint is not None and len(intents) >= 2:
        from nlu.joint import JointIntentEntity

        joint = JointIntentEntity(steps.joint)
        logger.info("nlu.train.joint examples=%d intents=%d", len(data.examples), len(intents))
        # {intent: contexts} mined from the stories and the retargeted replies; read only
        # with use_context
        report["joint"] = joint.train(data.examples, progress=progress,
                                      contexts=data.contexts, threads=threads,
                                      retargets=data.retargets, answers=data.answers)
        saving = time.perf_counter()
        joint.save(out / "joint")
        report["joint"]["stage_seconds"]["save"] = round(time.perf_counter() - saving, 2)
    elif steps.joint is not None:
        steps = replace(steps, joint=None, single_intent=intents[0] if intents else None)
    if steps.intent is not None and len(intents) >= 2:
        from nlu.intent import IntentClassifier

        classifier = IntentClassifier(steps.intent)
        logger.info("nlu.train.intent examples=%d intents=%d", len(data.examples), len(intents))
        report["intent"] = classifier.train(data.examples, progress=progress,
                                            contexts=data.contexts)
        classifier.save(out / "intent")
    elif steps.intent is not None:
        steps = replace(steps, single_intent=intents[0] if intents else None)
    has_entities = any(e.entities for e in data.examples)
    if steps.entity is not None and has_entities:
        extractor = _entity_component(steps.entity)
        logger.info("nlu.train.entities component=%s", steps.entity_name)
        report["entities"] = extractor.train(data.examples, progress=progress)
        extractor.save(out / "entities")
    else:
        steps = replace(steps, entity=None)
    report["seconds"] = time.perf_counter() - started
    manifest = {
        "format_version": FORMAT_VERSION,
        "language": data.language,
        "steps": steps.to_dict(),
        "synonyms": data.synonyms,
        "regexes": data.regexes,
        "lookups": data.lookups,
        "report": report,
    }
    (out / "pipeline.json").write_text(json.dumps(manifest, indent=1, default=str))
    return report


def _entity_component(config: LukeSpanConfig | BioTaggerConfig) -> Any:
    if isinstance(config, BioTaggerConfig):
        from nlu.bio_tagger import BioTagger

        return BioTagger(config)
    from nlu.luke_spans import LukeSpanExtractor

    return LukeSpanExtractor(config)


def _rasa_params(config_cls: Any, params: dict[str, Any]) -> Any:
    """A Rasa component's typed params; keys it does not know were warned about when
    config.yml was loaded (bot/project/params.py) and are left out."""
    names = {f.name for f in fields(config_cls)}
    return config_cls(**{k: v for k, v in params.items() if k in names})


def _config(config_cls: Any, params: dict[str, Any]) -> Any:
    """Our model component's config from its config.yml keys (checked with file and line when
    config.yml loads: bot/project/params.py); here for callers of this library."""
    names = {f.name for f in fields(config_cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise NLUTrainingError(f"{config_cls.__name__} has no parameter(s) {', '.join(unknown)} "
                               f"(config.yml). Valid: {', '.join(sorted(names))}.")
    return config_cls(**params)
