"""Project configuration: config.yml, endpoints.yml, credentials.yml, and where things live.

The only module that reads the environment. Everything is validated once at startup into
frozen objects; components get their own section, never the whole dict.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bot.errors import ConfigError
from bot.project.params import (
    DEFAULT_MAX_PREDICTIONS,
    check_keys,
    component_params,
    did_you_mean,
    max_predictions,
    unknown_keys,
)
from bot.project.yaml_reader import plain, read_yaml, where
from nlu.components import PIPELINE_COMPONENTS

logger = logging.getLogger(__name__)

POLICIES = (
    "RulePolicy", "MemoizationPolicy", "AugmentedMemoizationPolicy", "TEDPolicy",
    "UnexpecTEDIntentPolicy",
)
DEFAULT_PIPELINE = (
    {"name": "IntentClassifier"},
    {"name": "LukeSpanExtractor"},
    {"name": "EntitySynonymMapper"},
    {"name": "RegexEntityExtractor"},
    {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.1},
)
# Rasa components whose work nothing here does: each is named in a warning at `train`,
# `data validate` and startup, so a project never loses it silently.
SKIPPED_COMPONENTS = {
    "SpacyNLP": "spaCy's language model is not loaded; the Transformer encoder replaces its "
                "word vectors",
    "SpacyTokenizer": "the Transformer's own tokenizer is used instead",
    "SpacyFeaturizer": "the Transformer encoder's features are used instead of spaCy's vectors",
    "SpacyEntityExtractor": "spaCy's pretrained entity types (PERSON, GPE, DATE...) are not "
                            "extracted; only entities annotated in the NLU data are learned",
    "MitieNLP": "MITIE's language model is not loaded; the Transformer encoder replaces it",
    "MitieFeaturizer": "the Transformer encoder's features are used instead of MITIE's",
    "MitieTokenizer": "the Transformer's own tokenizer is used instead",
    "RegexFeaturizer": "regexes and lookup tables are not features of the Transformer "
                       "classifier; add RegexEntityExtractor to extract entities with them",
    "ConveRTFeaturizer": "ConveRT is not loaded; the Transformer encoder replaces it",
}
DEFAULT_POLICIES = ({"name": "MemoizationPolicy"}, {"name": "RulePolicy"})
DEFAULT_KB = "data/kb"  # the knowledge base sits next to the NLU data in a Rasa project
KNOWLEDGE_KEYS = ("kb", "embedder", "top_k", "read_k", "hybrid", "reader", "encoder",
                  "reranker", "runtime", "follow")
GENERATION_KEYS = ("model", "budget_s", "pairs", "train", "sampling")
_ENV_REF = re.compile(r"\$\{([^}]+)\}")


class Secret:
    """A value read from an environment variable; never shown in repr, logs or JSON."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, ***)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ComponentConfig:
    """One pipeline or policy entry. `written` is the entry as config.yml writes it (model
    fingerprints; what nlu.training takes); `params` its typed, checked params
    (bot/project/params.py), None for a component whose keys nothing here reads."""

    name: str
    written: Mapping[str, Any]
    at: str
    params: Any = None
    unknown_keys: tuple[str, ...] = ()  # warnings: keys Rasa accepts and nothing here reads


@dataclass(frozen=True, slots=True)
class KnowledgeConfig:
    """config.yml `knowledge:`, how `xingkong train knowledge` builds models/knowledge.
    None keeps retrieval's own default, so the reader's tuned epochs and lr live in one place
    (retrieval/reader_training.py). `reader` holds train_reader options as written, with
    `extra_qa` for extra_qa_paths and `pretrain_qa` (public QA the reader learns first);
    their names are checked when training."""

    kb: str | None = None  # None: DEFAULT_KB, and a project without it has no knowledge step
    embedder: str | None = None  # None: retrieval.embedder.DEFAULT_MODEL
    top_k: int = 5  # passages retrieved per question, build_knowledge's default
    read_k: int | None = None  # None: the reader reads all top_k passages
    hybrid: bool | None = None  # None: IndexConfig's default (BM25 fused with the dense search)
    reader: Mapping[str, Any] = field(default_factory=dict)
    encoder: Mapping[str, Any] = field(default_factory=dict)  # SentenceEncoderConfig fields
    reranker: Mapping[str, Any] | None = None  # RerankerConfig fields (and pretrain_qa,
    # pretrain_limit); None: no reranker (absent or `reranker: false`)
    runtime: str = "auto"  # what runs the models at answer time: retrieval.answerer.RUNTIMES
    follow: bool = True  # an answer goes on with the next sentence the reranker rates as high
    at: str = "config.yml"

    @property
    def kb_path(self) -> str:
        return self.kb if self.kb is not None else DEFAULT_KB


@dataclass(frozen=True, slots=True)
class GenerationConfig:
    """config.yml `generation:`, the small-talk generator `xingkong train` builds in
    models/generation. `model` names a pretrained causal LM (used as it is); without it a GPT-2
    is trained from scratch for `budget_s` seconds. `train` and `sampling` hold the options of
    generation's ModelConfig/TrainingConfig and SamplingConfig as written; their names and
    values are checked when training. `pairs` names the files of small talk written in the
    concierge's voice (generation/pairs.py), relative to the project folder: one path or a
    list of them, read in that order."""

    model: str | None = None
    budget_s: float | None = None  # None: generation's TrainingConfig default
    pairs: tuple[str, ...] | None = None  # e.g. (data/smalltalk/concierge_pairs.yml,)
    train: Mapping[str, Any] = field(default_factory=dict)
    sampling: Mapping[str, Any] = field(default_factory=dict)
    at: str = "config.yml"


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    language: str
    assistant_id: str
    pipeline: tuple[ComponentConfig, ...]
    policies: tuple[ComponentConfig, ...]
    sections: Mapping[str, Any] = field(default_factory=dict)  # our own: retrieval, generation
    source: str = "config.yml"
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    generation: GenerationConfig | None = None  # None: no generation: section, no generator
    max_number_of_predictions: int = DEFAULT_MAX_PREDICTIONS  # a policy's key, as in Rasa

    def component(self, name: str) -> ComponentConfig | None:
        return next((c for c in (*self.pipeline, *self.policies) if c.name == name), None)

    def pipeline_dicts(self) -> list[dict[str, Any]]:
        """The pipeline as written, `{name, **keys}` each: what nlu.training takes."""
        return [{"name": c.name, **c.written} for c in self.pipeline]


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    url: str | None
    token: Secret | str | None = None
    type: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Endpoints:
    action_endpoint: EndpointConfig | None = None
    tracker_store: EndpointConfig | None = None
    lock_store: EndpointConfig | None = None
    nlu: EndpointConfig | None = None
    models: EndpointConfig | None = None
    event_broker: EndpointConfig | None = None


@dataclass(frozen=True, slots=True)
class ProjectPaths:
    root: Path
    config: Path
    domain: Path
    data: tuple[Path, ...]
    endpoints: Path
    credentials: Path
    models: Path

    @classmethod
    def at(cls, root: Path, *, domain: Path | None = None, config: Path | None = None,
           data: tuple[Path, ...] | None = None, endpoints: Path | None = None,
           credentials: Path | None = None, models: Path | None = None) -> ProjectPaths:
        root = root.resolve()
        default_domain = root / "domain.yml" if (root / "domain.yml").exists() else root / "domain"
        return cls(
            root=root,
            config=config if config is not None else root / "config.yml",
            domain=domain if domain is not None else default_domain,
            data=data if data is not None else (root / "data",),
            endpoints=endpoints if endpoints is not None else root / "endpoints.yml",
            credentials=credentials if credentials is not None else root / "credentials.yml",
            models=models if models is not None else root / "models",
        )


def load_config(path: Path) -> ProjectConfig:
    if not path.exists():
        logger.warning("config.missing path=%s using=defaults", path)
        return _build_config({}, path)
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where(path, data)}: config.yml must be a mapping.")
    return _build_config(data, path)


def _build_config(data: Any, path: Path) -> ProjectConfig:
    known = {"recipe", "language", "pipeline", "policies", "assistant_id", "version",
             "retrieval", "generation", "logging", "importers", "data", "spaces", "knowledge",
             "fallback"}
    for key in data:
        if key not in known:
            logger.warning("config.unknown_key key=%s at=%s", key, where(path, data, key))
    language = str(data.get("language") or "en")
    pipeline = _components(path, data, "pipeline", PIPELINE_COMPONENTS, DEFAULT_PIPELINE,
                           language)
    policies = _components(path, data, "policies", POLICIES, DEFAULT_POLICIES, language)
    limits = [max_predictions(item, path) for item in data.get("policies") or []
              if isinstance(item, dict)]
    sections = {k: plain(data[k]) for k in ("retrieval", "generation", "logging", "fallback")
                if k in data}
    return ProjectConfig(
        language=language,
        assistant_id=str(data.get("assistant_id") or "xingkong"),
        pipeline=pipeline,
        policies=policies,
        sections=sections,
        source=str(path),
        knowledge=_knowledge(path, data),
        generation=_generation(path, data),
        max_number_of_predictions=next((n for n in limits if n is not None),
                                       DEFAULT_MAX_PREDICTIONS),
    )


def _generation(path: Path, data: Any) -> GenerationConfig | None:
    if "generation" not in data:
        return None
    section = data.get("generation") or {}
    at = where(path, data, "generation")
    if not isinstance(section, dict):
        raise ConfigError(f"{at}: 'generation' must be a mapping with keys "
                          f"{', '.join(GENERATION_KEYS)}.")
    check_keys(section, GENERATION_KEYS, path, "generation")
    model = _typed(path, section, "model", (str,), "a model id or path", prefix="generation")
    budget = _typed(path, section, "budget_s", (int, float), "a number of seconds > 0",
                    prefix="generation")
    if budget is not None and budget <= 0:
        raise ConfigError(f"{where(path, section, 'budget_s')}: generation.budget_s must be "
                          f"> 0, got {budget}.")
    pairs = _typed(path, section, "pairs", (str, list), "a file path or a list of them",
                   prefix="generation")
    if isinstance(pairs, list) and (not pairs or not all(isinstance(p, str) for p in pairs)):
        raise ConfigError(f"{where(path, section, 'pairs')}: generation.pairs must be a file "
                          f"path or a non-empty list of them, got {pairs!r}.")
    pairs = (pairs,) if isinstance(pairs, str) else tuple(pairs) if pairs else None
    options = {}
    for key in ("train", "sampling"):
        value = section.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{where(path, section, key)}: generation.{key} must be a "
                              "mapping of options.")
        options[key] = {str(k): plain(v) for k, v in (value or {}).items()}
    return GenerationConfig(model=model, budget_s=budget, pairs=pairs, train=options["train"],
                            sampling=options["sampling"], at=at)


def _knowledge(path: Path, data: Any) -> KnowledgeConfig:
    section = data.get("knowledge")
    at = where(path, data, "knowledge") if "knowledge" in data else f"{path} (default)"
    if section is None:
        return KnowledgeConfig(at=at)
    if not isinstance(section, dict):
        raise ConfigError(f"{at}: 'knowledge' must be a mapping with keys "
                          f"{', '.join(KNOWLEDGE_KEYS)}.")
    check_keys(section, KNOWLEDGE_KEYS, path, "knowledge")
    reader = section.get("reader")
    if reader is not None and not isinstance(reader, dict):
        raise ConfigError(f"{where(path, section, 'reader')}: knowledge.reader must be a "
                          "mapping (base_model, epochs, lr, extra_qa, ...).")
    reader = reader or {}
    encoder = section.get("encoder")
    if encoder is not None and not isinstance(encoder, dict):
        raise ConfigError(f"{where(path, section, 'encoder')}: knowledge.encoder must be a "
                          "mapping (base_model, epochs, lr, batch_size, ...).")
    reranker = plain(section.get("reranker"))
    if reranker is not None and not isinstance(reranker, (dict, bool)):
        raise ConfigError(f"{where(path, section, 'reranker')}: knowledge.reranker must be "
                          "true, false or a mapping (epochs, lr, top_k, ...), got "
                          f"{reranker!r}.")
    values = {
        "kb": _typed(path, section, "kb", (str,), "a folder path"),
        "embedder": _typed(path, section, "embedder", (str,), "a model id or path"),
        "top_k": _typed(path, section, "top_k", (int,), "an integer >= 1", low=1),
        "read_k": _typed(path, section, "read_k", (int,), "an integer >= 1 or null", low=1),
        "hybrid": _typed(path, section, "hybrid", (bool,), "true or false"),
        "runtime": _typed(path, section, "runtime", (str,), "auto, torch, onnx or onnx-int8"),
        "follow": _typed(path, section, "follow", (bool,), "true or false"),
    }
    if values["runtime"] not in (None, "auto", "torch", "onnx", "onnx-int8"):
        raise ConfigError(f"{where(path, section, 'runtime')}: knowledge.runtime must be auto, "
                          f"torch, onnx or onnx-int8, got {values['runtime']!r}.")
    _typed(path, reader, "base_model", (str,), "a model id or path", prefix="knowledge.reader")
    _typed(path, reader, "epochs", (int, float), "a number >= 0", low=0,
           prefix="knowledge.reader")
    lr = _typed(path, reader, "lr", (int, float), "a number > 0", prefix="knowledge.reader")
    if lr is not None and lr <= 0:
        raise ConfigError(f"{where(path, reader, 'lr')}: knowledge.reader.lr must be a number "
                          f"> 0, got {lr}.")
    encoder_section = encoder if encoder is not None else {}
    reranker_section = section["reranker"] if isinstance(reranker, dict) else {}
    for node, name, key in ((reader, "reader", "extra_qa"), (reader, "reader", "pretrain_qa"),
                            (encoder_section, "encoder", "pretrain_qa"),
                            (reranker_section, "reranker", "pretrain_qa")):
        paths = plain(node.get(key))
        if paths is not None and (not isinstance(paths, list)
                                  or not all(isinstance(p, str) for p in paths)):
            raise ConfigError(f"{where(path, node, key)}: knowledge.{name}.{key} must be a "
                              f"list of SQuAD-format JSON paths, got {paths!r}.")
    _typed(path, reader, "pretrain_epochs", (int, float), "a number >= 0", low=0,
           prefix="knowledge.reader")
    _typed(path, encoder_section, "pretrain_limit", (int,), "an integer >= 1", low=1,
           prefix="knowledge.encoder")
    _typed(path, reranker_section, "pretrain_limit", (int,), "an integer >= 1", low=1,
           prefix="knowledge.reranker")
    contexts = plain(reader.get("pretrain_contexts"))
    if contexts is not None and contexts not in ("sentence", "passage"):
        raise ConfigError(f"{where(path, reader, 'pretrain_contexts')}: "
                          f"knowledge.reader.pretrain_contexts must be sentence or passage, "
                          f"got {contexts!r}.")
    return KnowledgeConfig(**{k: v for k, v in values.items() if v is not None},
                           reader={str(k): plain(v) for k, v in reader.items()},
                           encoder={str(k): plain(v) for k, v in (encoder or {}).items()},
                           reranker={str(k): v for k, v in reranker.items()}
                           if isinstance(reranker, dict) else {} if reranker else None, at=at)


def _typed(path: Path, node: Any, key: str, kinds: tuple[type, ...], what: str, *,
           low: float | None = None, prefix: str = "knowledge") -> Any:
    """node[key] as plain Python (None when absent), or a ConfigError naming file and line."""
    item = plain(node.get(key))
    if item is None:
        return None
    wrong_type = not isinstance(item, kinds) or (isinstance(item, bool) and bool not in kinds)
    if wrong_type or (low is not None and item < low):
        raise ConfigError(f"{where(path, node, key)}: {prefix}.{key} must be {what}, "
                          f"got {item!r}.")
    return item


def _components(path: Path, data: Any, key: str, valid: tuple[str, ...],
                default: tuple[dict[str, Any], ...], language: str) -> tuple[ComponentConfig, ...]:
    items = data.get(key)
    if items is None:
        return tuple(ComponentConfig(d["name"], {k: v for k, v in d.items() if k != "name"},
                                     f"{path} (default)",
                                     component_params(d["name"], d, f"{path} (default)",
                                                      language)) for d in default)
    if not isinstance(items, list):
        raise ConfigError(f"{where(path, data, key)}: '{key}' must be a list of components.")
    out = []
    for i, item in enumerate(items):
        at = f"{path}:{key}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"{at}: each entry needs a 'name'.")
        name = item["name"]
        short = name.rsplit(".", 1)[-1]
        if short not in valid:
            raise ConfigError(f"Unknown {key[:-1] if key != 'policies' else 'policy'} '{name}' in "
                              f"{at}.{did_you_mean(short, valid)} "
                              f"Available: {', '.join(sorted(valid))}.")
        written = {k: plain(v) for k, v in item.items() if k != "name"}
        out.append(ComponentConfig(short, written, where(path, items, i),
                                   component_params(short, item, path, language),
                                   unknown_keys(short, item, path)))
    return tuple(out)


def component_config(name: str, written: Mapping[str, Any] | None = None, at: str = "code",
                     language: str = "en") -> ComponentConfig:
    """A pipeline or policy entry built in code (tests, benchmarks), checked as config.yml's."""
    entry = {"name": name, **(written or {})}
    return ComponentConfig(name, dict(written or {}), at,
                           component_params(name, entry, at, language))


def load_endpoints(path: Path) -> Endpoints:
    data = _read_optional(path)
    kwargs: dict[str, EndpointConfig | None] = {}
    for key in ("action_endpoint", "tracker_store", "lock_store", "nlu", "models", "event_broker"):
        spec = data.get(key)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise ConfigError(f"{where(path, data, key)}: '{key}' must be a mapping.")
        spec = _interpolate(plain(spec), f"{path}:{key}")
        token = spec.pop("token", None)
        kwargs[key] = EndpointConfig(
            url=spec.pop("url", None), token=token, type=spec.pop("type", None), params=spec
        )
    for key in data:
        if key not in kwargs and key not in ("version",):
            logger.warning("endpoints.unknown_key key=%s at=%s", key, where(path, data, key))
    return Endpoints(**kwargs)


def load_credentials(path: Path) -> dict[str, dict[str, Any]]:
    data = _read_optional(path)
    out: dict[str, dict[str, Any]] = {}
    for channel, spec in data.items():
        if spec is not None and not isinstance(spec, dict):
            raise ConfigError(f"{where(path, data, channel)}: credentials for '{channel}' "
                              "must be a mapping (or empty).")
        out[str(channel)] = _interpolate(plain(spec) or {}, f"{path}:{channel}")
    return out


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def env_value(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _read_optional(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where(path, data)}: {path.name} must be a mapping.")
    return data


def _interpolate(spec: dict[str, Any], at: str) -> dict[str, Any]:
    """Replace ${VAR} references: a whole value becomes a Secret, a part becomes text."""
    return {key: _interpolate_value(value, f"{at}.{key}") for key, value in spec.items()}


def _interpolate_value(value: Any, at: str) -> Any:
    if isinstance(value, dict):
        return _interpolate(value, at)
    if isinstance(value, list):
        return [_interpolate_value(v, f"{at}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or not _ENV_REF.search(value):
        return value
    names = _ENV_REF.findall(value)
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise ConfigError(f"{at}: environment variable {missing[0]} is not set. "
                          "Export it or write the value in the file.")
    resolved = _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)
    if value.strip() == f"${{{names[0]}}}":
        return Secret(resolved, f"${{{names[0]}}}")
    return resolved  # a reference inside a longer text (a URL, a path) reads as text


def reveal(value: Any) -> Any:
    """The plain value of a Secret (for the one place that sends it), else the value."""
    return value.reveal() if isinstance(value, Secret) else value


def skipped_components(config: ProjectConfig, has_lookups: bool = False) -> list[str]:
    """One warning per configured component that does nothing here, naming where it is
    configured and what happens instead, and one per key of a Rasa component that nothing
    here reads (bot/project/params.py unknown_keys)."""
    notes = [note for c in (*config.pipeline, *config.policies) for note in c.unknown_keys]
    for component in config.pipeline:
        reason = SKIPPED_COMPONENTS.get(component.name)
        if reason is None:
            continue
        dimensions = component.written.get("dimensions") or ["all"]
        dimensions = ", ".join(map(str, dimensions)) if isinstance(dimensions, list) \
            else str(dimensions)
        notes.append(f"{component.name} ({component.at}) is skipped: "
                     + reason.format(dimensions=dimensions) + ".")
    regex = next((c for c in config.pipeline if c.name == "RegexEntityExtractor"), None)
    if has_lookups and (regex is None or not regex.params.use_lookup_tables):
        notes.append(f"The lookup tables of the NLU data are not used ({config.source}): add "
                     "RegexEntityExtractor with use_lookup_tables: true to extract entities "
                     "with them.")
    for component in config.policies:
        if component.name == "UnexpecTEDIntentPolicy":
            notes.append(f"UnexpecTEDIntentPolicy ({component.at}) is skipped: "
                         "action_unlikely_intent is never predicted.")
    return notes
