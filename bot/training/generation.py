"""The small-talk generator (models/generation), built by generation.training when
config.yml has a generation: section.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, TrainingError
from bot.project.config import GenerationConfig
from bot.project.project import Project

logger = logging.getLogger(__name__)


def generation_options(settings: GenerationConfig, budget_s: float | None = None) -> Any:
    """(ModelConfig, TrainingConfig, SamplingConfig) of config.yml's generation section; a
    ConfigError names the section when an option is unknown or out of range."""
    from generation.config import (ModelConfig, SamplingConfig, TrainingConfig, check_keys,
                                   config_keys, from_mapping)
    from generation.errors import GenerationConfigError

    model_keys = set(config_keys(ModelConfig))
    train = dict(settings.train)
    budget = budget_s if budget_s is not None else settings.budget_s
    if budget is not None:
        train["budget_s"] = budget
    where = f"generation.train ({settings.at})"
    try:
        check_keys(train, config_keys(ModelConfig) + config_keys(TrainingConfig), where)
        model = from_mapping(ModelConfig, {k: v for k, v in train.items() if k in model_keys},
                             where)
        training = from_mapping(TrainingConfig, {k: v for k, v in train.items()
                                                 if k not in model_keys}, where)
        sampling = from_mapping(SamplingConfig, settings.sampling,
                                f"generation.sampling ({settings.at})")
    except GenerationConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return model, training, sampling


def assistant_texts(project: Project) -> tuple[list[list[str]], list[str]]:
    """The assistant's own texts for the generator: (user example, reply) pairs wherever an
    intent has a response of the same name (chitchat -> utter_chitchat), and, for the
    tokenizer's vocabulary only, every response text and knowledge base document."""
    responses = {name: [str(v["text"]) for v in variations if v.get("text")]
                 for name, variations in project.domain.responses.items()}
    pairs = []
    for i, example in enumerate(project.data.examples):
        replies = responses.get(f"utter_{example.intent}") or []
        if replies:
            pairs.append([example.text, replies[i % len(replies)]])
    vocabulary = [t for texts in responses.values() for t in texts]
    kb = project.paths.root / project.config.knowledge.kb_path
    if kb.is_dir():
        vocabulary += [p.read_text(encoding="utf-8", errors="replace")
                       for p in sorted(kb.rglob("*.md")) + sorted(kb.rglob("*.txt"))]
    return pairs, vocabulary


def written_pairs(project: Project, settings: GenerationConfig) -> list[tuple[str, str]]:
    """config.yml generation.pairs read (generation/pairs.py), file after file; [] without
    one. A missing or malformed file is a ConfigError naming it."""
    from generation.errors import CorpusError
    from generation.pairs import read_pairs

    pairs: list[tuple[str, str]] = []
    for name in settings.pairs or ():
        path = project.paths.root / name
        if not path.is_file():
            raise ConfigError(f"{settings.at}: generation.pairs names {path}, which is not a "
                              "file.")
        try:
            pairs += read_pairs(path)
        except CorpusError as exc:
            raise ConfigError(str(exc)) from exc
    return pairs


def refresh_generation(settings: GenerationConfig, out: Path) -> None:
    """Write config.yml's sampling settings into an up-to-date generator's manifest."""
    from generation.generator import read_manifest, write_manifest

    _, _, sampling = generation_options(settings)
    manifest = read_manifest(out)
    if manifest.get("sampling") != asdict(sampling):
        write_manifest(out, model=manifest.get("model"), sampling=sampling,
                       report=manifest.get("report"), lowercase=bool(manifest.get("lowercase")),
                       decoder=manifest.get("decoder"))
        logger.info("train.generation.sampling_updated out=%s", out)


def exported_decoder(model: str, out: Path) -> dict[str, Any] | None:
    """A named model of the Llama layout exported into `out` for ONNX Runtime
    (generation/onnx_decoder.py: 8-bit weights, several times torch's speed on a CPU) with its
    tokenizer; the manifest's "decoder" entry, or None for another layout or a model not
    found here (it is loaded by name when the server starts, which says where it looked)."""
    from generation.errors import GenerationError
    from generation.model import load_causal_lm, model_type
    from generation.onnx_decoder import LAYOUTS, can_export, save_decoder

    if model_type(model) not in LAYOUTS:  # unknown (not here yet) or another layout
        return None
    try:
        lm, tokenizer = load_causal_lm(model)
        if not can_export(lm):
            return None
        return save_decoder(lm, tokenizer, out)
    except (GenerationError, OSError, RuntimeError) as exc:
        raise TrainingError(f"Preparing the generation model '{model}' failed: {exc}") from exc


def train_generation(project: Project, settings: GenerationConfig, out: Path, *,
                     budget_s: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Build models/generation: the named pretrained model's manifest (and its ONNX decoder,
    exported_decoder), or a GPT-2 trained from scratch on chitchat-dataset plus the
    assistant's own small talk; with generation.pairs also their index (with
    `language_model: false` only that)."""
    from generation.corpus import chitchat_conversations, pair_conversations
    from generation.errors import GenerationError
    from generation.generator import write_manifest
    from generation.model import model_type
    from generation.pairs import save_pairs
    from generation.training import train_generator

    model, training, sampling = generation_options(settings, budget_s)
    written = written_pairs(project, settings)
    if settings.model is not None:
        decoder = exported_decoder(settings.model, out)
        write_manifest(out, model="." if decoder else settings.model, sampling=sampling,
                       report={"pretrained": settings.model}, decoder=decoder)
        if written:
            save_pairs(written, out)
        logger.info("train.generation.pretrained model=%s onnx=%s", settings.model,
                    decoder is not None)
        return {"pretrained": settings.model, "out_dir": str(out),
                **({"decoder_seconds": decoder["seconds"]} if decoder
                   else {"found": model_type(settings.model) is not None})}
    pairs, vocabulary = assistant_texts(project)
    try:
        conversations = (chitchat_conversations(training.max_conversations)
                         if training.language_model else [])
        report = train_generator(conversations, out, model=model, training=training,
                                 sampling=sampling, vocabulary_texts=vocabulary,
                                 own_pairs=pair_conversations(pairs, "assistant"),
                                 written_pairs=written, progress=progress)
    except GenerationError as exc:
        raise TrainingError(f"Training the generator failed: {exc}") from exc
    return report.to_dict()
