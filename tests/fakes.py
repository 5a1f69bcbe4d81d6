"""Test doubles shared by several test packages (import them as `from tests.fakes import ...`):
a deterministic embedder, a random tiny reader model, a random tiny BERT and a random tiny
GPT-2 generator directory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

KB_TINY = Path(__file__).resolve().parent / "fixtures" / "kb_tiny"


class FakeEmbedder:
    """Bag of hashed words: each word maps to a fixed random vector (seeded by its hash); a
    text is the normalised sum. Texts sharing words are close. Counts what it encodes."""

    def __init__(self, name: str = "fake-hash", dimension: int = 32) -> None:
        self._name, self._dim = name, dimension
        self.encoded = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._dim

    @property
    def normalize(self) -> bool:
        return True

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self._dim)

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray:
        if not query:
            self.encoded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i] += self._word(word)
            out[i] /= np.linalg.norm(out[i]) or 1.0
        return out


def build_tiny_reader(path: Path) -> Path:
    """A random 2-layer BERT QA model whose word vocabulary covers the tiny KB, saved at `path`."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer

    words = sorted({w for f in KB_TINY.glob("*.md")
                    for w in re.findall(r"\w+|[^\w\s]", f.read_text().lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "?"]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256)
    BertForQuestionAnswering(config).save_pretrained(str(path))
    BertTokenizer(vocab=dict(zip(dict.fromkeys(vocab), range(len(vocab))))).save_pretrained(
        str(path))
    return path


def write_tiny_bert(directory: Path, vocab: Sequence[str], intermediate_size: int = 64) -> Path:
    """A random 2-layer BERT (hidden 32, seed 0) with a WordPiece tokenizer of `vocab`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast.from_pretrained(directory).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=intermediate_size,
                        max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    return directory


TINY_CHAT = (
    ("hi there", "hello how are you"),
    ("how are you doing", "i am good thanks and you"),
    ("do you like music", "yes i love music a lot"),
    ("what do you do for fun", "i like to read and walk outside"),
    ("do you like rainy days", "i love rainy days with a good book"),
)


def write_tiny_gpt2(directory: Path, sampling: Any = None, seed: int = 0) -> Path:
    """A random 1-layer GPT-2 (width 32) with a byte-level BPE tokenizer trained on a few
    chat lines, saved with generation.json and words.txt as training lays them out."""
    from generation.config import ModelConfig, SamplingConfig
    from generation.corpus import render
    from generation.generator import write_manifest
    from generation.model import build_gpt2, save_model
    from generation.tokenizer import train_tokenizer
    from generation.training import write_words

    texts = [render(pair) for pair in TINY_CHAT]
    tokenizer = train_tokenizer(texts * 3, vocab_size=320)
    lm = build_gpt2(ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=320),
                    tokenizer, seed=seed)
    save_model(lm, tokenizer, directory)
    write_words(directory, texts, min_count=1)
    write_manifest(directory, model=".", sampling=sampling if sampling is not None
                   else SamplingConfig(max_new_tokens=12))
    return directory


def liking_conversations(capitalised: bool = False) -> list[Any]:
    """100 toy exchanges, "do you like big cats?" -> "yes i love big cats", enough for a
    two-step generator training run (capitalised: "Big" and "Yes I", to test lower-casing)."""
    from generation.corpus import Conversation

    things = "cats dogs tea rain snow books films songs games walks".split()
    kinds = "big small old new warm cold green quiet loud long".split()
    if capitalised:
        kinds[0] = "Big"
    yes = "Yes I" if capitalised else "yes i"
    return [Conversation(f"c{i}", (f"do you like {k} {t}?", f"{yes} love {k} {t}"))
            for i, (k, t) in enumerate((k, t) for k in kinds for t in things)]
