"""The NLU pipeline's component names (the one list), what each does here, and the typed
parameters of the Rasa components whose work is our own code, not a trained model.

Rasa pipelines run unchanged: tokenizers and featurizers are served by the Transformer's own
tokenizer, DIETClassifier by JointIntentEntity, the other intent classifiers by
IntentClassifier, CRF's entity extraction by LukeSpanExtractor. Our model components' params
are their config dataclasses (`model_config`); this module imports no torch, so config.yml is
checked before any model code loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Ours: a fine-tuned Transformer each. Unknown keys are an error (no Rasa project writes them).
OUR_COMPONENTS = ("IntentClassifier", "LukeSpanExtractor", "BioTagger", "JointIntentEntity")
# Rasa's names, accepted as they are (bot/project/config.py warns about the skipped ones).
RASA_COMPONENTS = (
    "WhitespaceTokenizer", "JiebaTokenizer", "MitieTokenizer", "SpacyTokenizer",
    "LanguageModelTokenizer", "LanguageModelFeaturizer", "RegexFeaturizer",
    "LexicalSyntacticFeaturizer", "CountVectorsFeaturizer", "ConveRTFeaturizer",
    "SpacyNLP", "MitieNLP", "SpacyFeaturizer", "MitieFeaturizer", "DIETClassifier",
    "SklearnIntentClassifier", "KeywordIntentClassifier", "MitieIntentClassifier",
    "LogisticRegressionClassifier", "CRFEntityExtractor", "MitieEntityExtractor",
    "SpacyEntityExtractor", "DucklingEntityExtractor", "EntitySynonymMapper",
    "RegexEntityExtractor", "ResponseSelector", "FallbackClassifier",
)
PIPELINE_COMPONENTS = OUR_COMPONENTS + RASA_COMPONENTS
# Roles: which of our models serves a listed component (nlu/training.py plan).
INTENT_COMPONENTS = ("IntentClassifier", "DIETClassifier", "SklearnIntentClassifier",
                     "LogisticRegressionClassifier", "KeywordIntentClassifier",
                     "MitieIntentClassifier")
JOINT_COMPONENT = "JointIntentEntity"
ENTITY_COMPONENTS = ("LukeSpanExtractor", "BioTagger", "DIETClassifier", "CRFEntityExtractor",
                     "MitieEntityExtractor", "SpacyEntityExtractor")


@dataclass(frozen=True, slots=True)
class FallbackClassifierParams:
    """Rasa's FallbackClassifier: nlu_fallback below `threshold`, or when the top two intents
    are closer than `ambiguity_threshold`."""

    threshold: float = 0.3  # Rasa's default
    ambiguity_threshold: float = 0.1  # Rasa's default


@dataclass(frozen=True, slots=True)
class RegexEntityExtractorParams:
    """Rasa's RegexEntityExtractor: entities from the NLU data's regexes and lookup tables."""

    use_regexes: bool = True  # Rasa's default
    use_lookup_tables: bool = True  # Rasa's default
    case_sensitive: bool = False  # Rasa's default: guests do not type capitals reliably


@dataclass(frozen=True, slots=True)
class DIETClassifierParams:
    """The one DIET key read here; DIET's training options (epochs, ...) mean something else
    to a fine-tuned Transformer and are accepted and left unused."""

    entity_recognition: bool = True  # false: DIET is an intent classifier only (Rasa's key)


# Rasa components whose params are our own dataclasses (unknown keys warn: Rasa accepts them).
RASA_PARAMS: dict[str, type] = {
    "FallbackClassifier": FallbackClassifierParams,
    "RegexEntityExtractor": RegexEntityExtractorParams,
    "DIETClassifier": DIETClassifierParams,
}


def model_config(name: str) -> Any:
    """The config dataclass of our model component `name` (its config.yml keys). Imported only
    for a component the pipeline lists: the model modules import torch."""
    if name == "JointIntentEntity":
        from nlu.joint import JointConfig

        return JointConfig
    if name == "IntentClassifier":
        from nlu.intent import IntentClassifierConfig

        return IntentClassifierConfig
    if name == "LukeSpanExtractor":
        from nlu.luke_spans import LukeSpanConfig

        return LukeSpanConfig
    if name == "BioTagger":
        from nlu.bio_tagger import BioTaggerConfig

        return BioTaggerConfig
    raise KeyError(f"{name} is not one of our model components: {', '.join(OUR_COMPONENTS)}.")
