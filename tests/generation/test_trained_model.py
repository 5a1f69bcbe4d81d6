"""The demo's trained generator (models/generation, built by `xingkong train`), when present:
replies to small talk it never saw come out, safe, within bounds and on time. Slow (it loads
MiniLM and the model); skipped when the model has not been trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation import Generator, SafetyFilter, read_manifest

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "generation"
MESSAGES = ("do you like walking in the rain?", "what's your favourite season?",
            "i had a great weekend with friends", "do you ever get bored?",
            "what's the best thing about summer?", "i think i'll bake a cake tonight")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (MODEL_DIR / "generation.json").is_file(),
                                 reason="no trained models/generation (run `xingkong train`)")]


def test_the_trained_model_answers_small_talk_safely() -> None:
    report = read_manifest(MODEL_DIR)["report"]
    if "pretrained" not in report:  # trained here from scratch
        assert report["heldout_perplexity"] < 200  # an untrained model of 8k words: ~8000
    generator = Generator(MODEL_DIR, protected_terms=["Starlight", "Lisbon", "Paris"])
    safety = SafetyFilter.with_terms(["Starlight", "Lisbon", "Paris"])
    replies = [generator.reply(m, seed=i) for i, m in enumerate(MESSAGES)]
    said = [(m, r.text) for m, r in zip(MESSAGES, replies) if r.text is not None]
    assert len(said) >= len(MESSAGES) // 2, [r.candidates for r in replies]
    for message, text in said:
        assert safety.problems(text, message) == []
        assert 2 <= len(text.split()) <= generator.sampling.max_words and "\n" not in text
    assert sorted(r.seconds for r in replies)[len(replies) // 2] < 2.0  # generous: shared CPU
