"""The NLU pipeline's component names (the one list), what each does here, and each
component's typed parameters: our models' config dataclasses and the Rasa components' params.

Rasa pipelines run unchanged: tokenizers and featurizers are served by the Transformer's own
tokenizer, DIETClassifier by JointIntentEntity, the other intent classifiers by
IntentClassifier, CRF's entity extraction by LukeSpanExtractor. Our model components' params
are their config dataclasses, defined here rather than next to the models: this module
imports no torch, so config.yml is checked when it loads, before any model code.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlu.errors import NLUTrainingError

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
    case_sensitive: bool = False  # Rasa's default


@dataclass(frozen=True, slots=True)
class DIETClassifierParams:
    """The one DIET key read here; DIET's training options (epochs, ...) mean something else
    to a fine-tuned Transformer and are accepted and left unused."""

    entity_recognition: bool = True  # false: DIET is an intent classifier only (Rasa's key)


# The config dataclasses of our model components: here, away from the torch code, so that
# config.yml is checked when it loads. Each model module imports its own.
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The fewest optimizer steps a model trains for: a small project runs more epochs than
# `epochs` (Rasa's starter project: 4 steps an epoch, 20 in 5 epochs, and "yes" fell back).
# The demo takes about 190 steps an epoch, so it never gets here.
MIN_STEPS = 200
JOINT_RUNTIMES = ("onnx", "torch")
MC_PRECISIONS = ("auto", "float32", "bfloat16")  # nlu/mc_sampler.py PRECISIONS


@dataclass(frozen=True, slots=True)
class JointConfig:
    """Hyper-parameters. Defaults were chosen on the demo's validation slice (README, NLU)."""

    model: str = DEFAULT_MODEL
    epochs: int = 6
    # optimizer steps at least: a small dataset runs more epochs (nlu/fitting.py raised_epochs)
    min_steps: int = MIN_STEPS
    batch_size: int = 16
    learning_rate: float = 1e-4  # the copied encoder
    head_learning_rate: float = 1e-3  # intent head, span head, entity embeddings: new weights
    max_length: int = 96  # word pieces of context + message with [CLS]/[SEP]
    max_context_length: int = 32  # word pieces kept of the context (its end)
    max_span_length: int = 8  # upper bound; the training data's longest entity sets the rest
    prune_spans: bool = True  # nlu/span_pruning.py; False: every span up to the length
    dropout: float = 0.1
    # 4, not 8: on tests/nlu_test.yml the same intent accuracy (0.958) and calibration (ECE
    # 0.028 vs 0.031), half the sampling cost (README, NLU)
    n_samples: int = 4
    mc_layers: int = 1
    label_smoothing: float = 0.1
    noise_fraction: float = 0.1  # word-salad negatives with a uniform intent target
    # misspelt copies of this share of the examples (nlu/typos.py), intent and entities; 0: none
    # (each copy adds training time, and a project without typos in its traffic needs none)
    typo_fraction: float = 0.0
    negative_weight: float = 0.25  # loss weight of "O" spans
    entity_loss_weight: float = 1.0
    freeze_layers: int = 0  # lower encoder layers (with the word embeddings) not trained
    freeze_word_embeddings: bool = True
    val_fraction: float = 0.1  # per intent; early stopping and temperature calibration
    early_stopping_patience: int = 2  # epochs without a better validation score (0: never)
    use_context: bool = False  # intent input is (dialogue context, message)
    context_fraction: float = 0.5  # examples also trained with a context their intent follows
    # True: words attend to the entity tokens too (LUKE's way); the intent then depends on the
    # candidate spans and MC dropout samples the entity tokens as well (slower)
    words_see_entities: bool = False
    entity_layers: int = 0  # entity tokens join the top N layers only (0: all, as in LUKE)
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    temperature_prior_std: float = 0.5
    seed: int = 42
    device: str = "cpu"
    quantize: bool = False  # int8 Linear layers when loaded on CPU (then runtime torch)
    # CPU inference: "onnx" runs the deterministic pass in ONNX Runtime (nlu/onnx_encoder.py,
    # ~1.5x faster, same outputs), MC samples stay in PyTorch; "torch": all in PyTorch
    runtime: str = "onnx"
    # the MC-dropout samples' matrix products beside ONNX (nlu/mc_sampler.py): "auto" is
    # bfloat16 on a CPU with bfloat16 instructions (a 15-word parse about 1.1 ms faster, the
    # same held-out and blind NLU figures; rows padded and blocked so that oneDNN meets few
    # matrix shapes: it keeps about 0.9 MB for each), float32 elsewhere
    mc_precision: str = "auto"

    def __post_init__(self) -> None:
        checks = {
            "epochs, batch_size, max_span_length >= 1":
                min(self.epochs, self.batch_size, self.max_span_length) >= 1,
            "max_length >= 8": self.max_length >= 8,
            "learning rates > 0": min(self.learning_rate, self.head_learning_rate) > 0,
            f"runtime one of {JOINT_RUNTIMES} (got {self.runtime!r})":
                self.runtime in JOINT_RUNTIMES,
            f"mc_precision one of {MC_PRECISIONS} (got {self.mc_precision!r})":
                self.mc_precision in MC_PRECISIONS,
            "context_fraction, typo_fraction in [0, 1]":
                0.0 <= min(self.context_fraction, self.typo_fraction) and
                max(self.context_fraction, self.typo_fraction) <= 1.0,
            "dropout, label_smoothing, val_fraction, warmup_fraction in [0, 1)": all(
                0.0 <= v < 1.0 for v in (self.dropout, self.label_smoothing, self.val_fraction,
                                         self.warmup_fraction)),
            "n_samples, mc_layers, freeze_layers, entity_layers, max_context_length, "
            "early_stopping_patience, noise_fraction, negative_weight, entity_loss_weight, "
            "temperature_prior_std, min_steps >= 0":
                min(self.n_samples, self.mc_layers, self.freeze_layers, self.entity_layers,
                    self.max_context_length, self.min_steps,
                    self.early_stopping_patience, self.noise_fraction, self.negative_weight,
                    self.entity_loss_weight, self.temperature_prior_std) >= 0,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise NLUTrainingError(f"Invalid JointIntentEntity config; need: {'; '.join(failed)}.")


@dataclass(frozen=True, slots=True)
class IntentClassifierConfig:
    """Hyper-parameters. `dropout` sets the head's and the encoder's dropout rates (the source
    of MC-dropout variance); `noise_fraction`: noise negatives per training example (0: none);
    `early_stopping_patience` 0: no early stopping; `temperature_prior_std` 0: plain NLL fit."""

    model: str = DEFAULT_MODEL
    epochs: int = 5
    # optimizer steps at least: a small dataset runs more epochs (nlu/fitting.py raised_epochs)
    min_steps: int = MIN_STEPS
    batch_size: int = 16
    learning_rate: float = 1e-4
    head_learning_rate: float = 2e-3
    max_length: int = 64
    dropout: float = 0.1
    n_samples: int = 8
    mc_layers: int = 1  # top encoder layers sampled by MC dropout; 0: all (8x the cost)
    quantize: bool = False  # int8 Linear layers when loaded on CPU (nlu/quantize.py)
    label_smoothing: float = 0.1
    val_fraction: float = 0.15
    early_stopping_patience: int = 2
    seed: int = 42
    device: str = "cpu"
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    pooling: str = "mean"
    noise_fraction: float = 0.1
    temperature_prior_std: float = 0.5
    # Read the dialogue context (nlu/context.py) as the first sentence of a pair. Trained on
    # every example with an empty context plus, for `context_fraction` of them, a copy paired
    # with a context its intent follows in the stories.
    use_context: bool = False
    context_fraction: float = 0.5

    def __post_init__(self) -> None:
        checks = {
            "epochs, batch_size >= 1 and max_length >= 4":
                min(self.epochs, self.batch_size) >= 1 and self.max_length >= 4,
            "learning rates > 0": min(self.learning_rate, self.head_learning_rate) > 0,
            "dropout, label_smoothing, val_fraction, warmup_fraction in [0, 1)": all(
                0.0 <= v < 1.0 for v in (self.dropout, self.label_smoothing, self.val_fraction,
                                         self.warmup_fraction)),
            "context_fraction in [0, 1]": 0.0 <= self.context_fraction <= 1.0,
            "n_samples, mc_layers, early_stopping_patience, noise_fraction, "
            "temperature_prior_std, min_steps >= 0":
                min(self.n_samples, self.mc_layers, self.early_stopping_patience,
                    self.noise_fraction, self.temperature_prior_std, self.min_steps) >= 0,
            f"pooling 'mean' or 'cls' (got {self.pooling!r})": self.pooling in ("mean", "cls"),
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise NLUTrainingError(f"Invalid IntentClassifierConfig; need: {'; '.join(failed)}.")


@dataclass(frozen=True, slots=True)
class LukeSpanConfig:
    model: str = "sentence-transformers/all-MiniLM-L6-v2"  # BERT encoder LUKE is built from
    luke_model: str | None = None  # a pretrained LUKE (studio-ousia/luke-base) wins over `model`
    max_span_length: int = 8  # words per candidate span; Rasa entities are short
    epochs: int = 10
    # optimizer steps at least: a small dataset runs more epochs (nlu/fitting.py raised_epochs)
    min_steps: int = MIN_STEPS
    batch_size: int = 16
    learning_rate: float = 1e-4  # the copied encoder (MiniLM is small and tolerates 1e-4)
    entity_learning_rate: float = 1e-3  # entity embeddings, entity positions and head are new
    negative_ratio: float = 0.0  # "O" spans kept per gold span and epoch; <= 0 keeps them all
    negative_weight: float = 0.25  # loss weight of "O" spans
    freeze_word_embeddings: bool = True  # half of MiniLM's weights; unseen words stay in place
    max_length: int = 96  # word pieces per window, [CLS]/[SEP] included
    max_entities: int = 128  # candidate spans per forward
    val_fraction: float = 0.1  # held out for early stopping; none when it leaves < 1 example
    early_stopping_patience: int = 3  # epochs without a better validation F1 (0: never stop)
    warmup_ratio: float = 0.1
    seed: int = 42
    device: str = "cpu"
    quantize: bool = False  # int8 Linear layers when loaded on CPU (nlu/quantize.py)

    def __post_init__(self) -> None:
        _check_extractor(self, ("max_span_length", "epochs", "batch_size", "max_entities"),
                         self.max_length, self.val_fraction)


@dataclass(frozen=True, slots=True)
class BioTaggerConfig:
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    epochs: int = 10  # as LukeSpanExtractor, for a fair comparison
    # optimizer steps at least: a small dataset runs more epochs (nlu/fitting.py raised_epochs)
    min_steps: int = MIN_STEPS
    batch_size: int = 16
    learning_rate: float = 1e-4  # pretrained encoder
    head_learning_rate: float = 1e-3  # the new tag classifier
    max_length: int = 96  # word pieces per window, [CLS]/[SEP] included
    val_fraction: float = 0.1
    early_stopping_patience: int = 3  # epochs without a better validation F1 (0: never stop)
    warmup_ratio: float = 0.1
    seed: int = 42
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_extractor(self, ("epochs", "batch_size"), self.max_length, self.val_fraction)


def _check_extractor(config: object, counts: tuple[str, ...], max_length: int,
                     val_fraction: float) -> None:
    """The range checks the entity extractors' configs share (NLUTrainingError, like the
    intent configs': a ValueError too)."""
    cls = type(config).__name__
    for name in counts:
        if getattr(config, name) < 1:
            raise NLUTrainingError(f"{cls}.{name} must be >= 1, got {getattr(config, name)}.")
    if max_length < 4:
        raise NLUTrainingError(f"{cls}.max_length must be >= 4, got {max_length}.")
    if not 0.0 <= val_fraction < 1.0:
        raise NLUTrainingError(f"{cls}.val_fraction must be in [0, 1), got {val_fraction}.")
    min_steps = getattr(config, "min_steps")
    if min_steps < 0:
        raise NLUTrainingError(f"{cls}.min_steps must be >= 0, got {min_steps}.")


# Rasa components whose params are our own dataclasses (unknown keys warn: Rasa accepts them).
RASA_PARAMS: dict[str, type] = {
    "FallbackClassifier": FallbackClassifierParams,
    "RegexEntityExtractor": RegexEntityExtractorParams,
    "DIETClassifier": DIETClassifierParams,
}


# Our model components' params: their config dataclasses (unknown keys are an error).
MODEL_CONFIGS: dict[str, type] = {
    "JointIntentEntity": JointConfig,
    "IntentClassifier": IntentClassifierConfig,
    "LukeSpanExtractor": LukeSpanConfig,
    "BioTagger": BioTaggerConfig,
}
