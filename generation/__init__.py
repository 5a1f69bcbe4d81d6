"""Small-talk generation: replies written in a concierge's voice, said as written when the
user's message is near one of their messages (pairs.py); otherwise a GPT-2 trained from
scratch on open-domain conversations (or any causal LM), sampled several times per turn after
retrieved human replies to turns like the user's (exemplars: retrieve and refine), filtered
for safety and reranked.

    report = train_generator(conversations, Path("models/generation"))   # tokenizer + GPT-2
    reply = Generator("models/generation").reply("do you like rainy days?", seed=0)

It never states hotel facts (safety.py) and imports nothing from bot/, actions/ or ui/.
"""

from generation.config import ModelConfig, SamplingConfig, TrainingConfig, from_mapping
from generation.corpus import Conversation, chitchat_conversations, pair_conversations, render
from generation.errors import CorpusError, GenerationConfigError, GenerationError, ModelLoadError
from generation.exemplars import ExemplarIndex
from generation.generator import (MANIFEST, GeneratedReply, Generator, read_manifest,
                                  write_manifest)
from generation.rerank import Candidate
from generation.safety import SafetyFilter
from generation.training import GenerationReport, train_generator

__all__ = [
    "MANIFEST",
    "Candidate",
    "Conversation",
    "CorpusError",
    "ExemplarIndex",
    "GeneratedReply",
    "GenerationConfigError",
    "GenerationError",
    "GenerationReport",
    "Generator",
    "ModelConfig",
    "ModelLoadError",
    "SafetyFilter",
    "SamplingConfig",
    "TrainingConfig",
    "chitchat_conversations",
    "from_mapping",
    "pair_conversations",
    "read_manifest",
    "render",
    "train_generator",
    "write_manifest",
]
