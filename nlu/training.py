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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nlu.errors import NLUTrainingError
from nlu.types import Example

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
INTENT_COMPONENTS = ("IntentClassifier", "DIETClassifier", "SklearnIntentClassifier",
                     "LogisticRegressionClassifier", "KeywordIntentClassifier",
                     "MitieIntentClassifier")
JOINT_COMPONENT = "JointIntentEntity"
ENTITY_COMPONENTS = ("LukeSpanExtractor", "BioTagger", "DIETClassifier", "CRFEntityExtractor",
                     "MitieEntityExtractor", "SpacyEntityExtractor")


@dataclass(slots=True)
class TrainingSet:
    examples: list[Example]
    synonyms: dict[str, str] = field(default_factory=dict)
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)


def plan(components: list[dict[str, Any]]) -> dict[str, Any]:
    """Which of our components serve a Rasa pipeline, with their parameters. DIETClassifier,
    itself a joint intent and entity model, is served by JointIntentEntity (one encoder pass)
    unless the pipeline lists our separate components or turns DIET's entities off."""
    names = [c["name"] for c in components]
    params = {c["name"]: {k: v for k, v in c.items() if k != "name"} for c in components}
    separate = {"IntentClassifier", "LukeSpanExtractor", "BioTagger"} & set(names)
    diet_joint = "DIETClassifier" in names and not separate and \
        params["DIETClassifier"].get("entity_recognition", True)
    joint = JOINT_COMPONENT in names or bool(diet_joint)
    intent = "IntentClassifier" if not joint and any(n in INTENT_COMPONENTS for n in names) \
        else None
    entity = None
    if joint:
        pass  # the joint model serves DIET's and the extractors' roles
    elif "BioTagger" in names:
        entity = "BioTagger"
    elif any(n in ENTITY_COMPONENTS for n in names):
        diet = params.get("DIETClassifier", {})
        if "DIETClassifier" not in names or diet.get("entity_recognition", True) or \
                any(n in ENTITY_COMPONENTS and n != "DIETClassifier" for n in names):
            entity = "LukeSpanExtractor"
    fallback = params.get("FallbackClassifier")
    regex = params.get("RegexEntityExtractor")
    return {
        "joint": params.get(JOINT_COMPONENT, {}) if joint else None,
        "intent": intent,
        "intent_params": params.get("IntentClassifier", {}),
        "entity": entity,
        "entity_params": params.get(entity or "", {}) if entity in ("LukeSpanExtractor", "BioTagger") else {},
        "synonyms": "EntitySynonymMapper" in names,
        "regex": None if regex is None else {
            "use_regexes": bool(regex.get("use_regexes", True)),
            "use_lookup_tables": bool(regex.get("use_lookup_tables", True)),
            "case_sensitive": bool(regex.get("case_sensitive", False)),
        },
        "fallback": None if fallback is None else {
            "threshold": float(fallback.get("threshold", 0.3)),
            "ambiguity_threshold": float(fallback.get("ambiguity_threshold", 0.1)),
        },
    }


def train_pipeline(data: TrainingSet, components: list[dict[str, Any]], out: Path,
                   progress: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    steps = plan(components)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"examples": len(data.examples)}
    intents = sorted({e.intent for e in data.examples if e.intent})
    if steps["joint"] is not None and len(intents) >= 2:
        from nlu.joint import JointConfig, JointIntentEntity

        joint = JointIntentEntity(JointConfig(**_known(JointConfig, steps["joint"])))
        logger.info("nlu.train.joint examples=%d intents=%d", len(data.examples), len(intents))
        # {intent: contexts} mined from the stories, once TrainingSet carries them (the
        # dialogue-context work adds the field); read only with use_context
        report["joint"] = joint.train(data.examples, progress=progress,
                                      contexts=getattr(data, "contexts", None))
        joint.save(out / "joint")
    elif steps["joint"] is not None:
        steps["joint"], steps["single_intent"] = None, intents[0] if intents else None
    if steps["intent"] and len(intents) >= 2:
        from nlu.intent import IntentClassifier, IntentClassifierConfig

        config = IntentClassifierConfig(**_known(IntentClassifierConfig, steps["intent_params"]))
        classifier = IntentClassifier(config)
        logger.info("nlu.train.intent examples=%d intents=%d", len(data.examples), len(intents))
        report["intent"] = classifier.train(data.examples, progress=progress)
        classifier.save(out / "intent")
    elif steps["intent"]:
        steps["single_intent"] = intents[0] if intents else None
    has_entities = any(e.entities for e in data.examples)
    if steps["entity"] and has_entities:
        extractor = _entity_component(steps["entity"], steps["entity_params"])
        logger.info("nlu.train.entities component=%s", steps["entity"])
        report["entities"] = extractor.train(data.examples, progress=progress)
        extractor.save(out / "entities")
    else:
        steps["entity"] = None
    report["seconds"] = time.perf_counter() - started
    manifest = {
        "format_version": FORMAT_VERSION,
        "steps": steps,
        "synonyms": data.synonyms,
        "regexes": data.regexes,
        "lookups": data.lookups,
        "report": report,
    }
    (out / "pipeline.json").write_text(json.dumps(manifest, indent=1, default=str))
    return report


def _entity_component(name: str, params: dict[str, Any]) -> Any:
    if name == "BioTagger":
        from nlu.bio_tagger import BioTagger, BioTaggerConfig

        return BioTagger(BioTaggerConfig(**_known(BioTaggerConfig, params)))
    from nlu.luke_spans import LukeSpanConfig, LukeSpanExtractor

    return LukeSpanExtractor(LukeSpanConfig(**_known(LukeSpanConfig, params)))


def _known(config_cls: Any, params: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(config_cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise NLUTrainingError(f"{config_cls.__name__} has no parameter(s) {', '.join(unknown)} "
                               f"(config.yml). Valid: {', '.join(sorted(names))}.")
    return dict(params)
