"""Small talk written in the concierge's voice (generation/pairs.py): reading the pairs file,
leaving out the pairs the filters drop, an index built without any language model
(`language_model: false`), and the Generator saying a written reply when the guest's message
is near one (with or without a GPT-2 behind it) and declining or sampling otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation import (Generator, ModelConfig, SamplingConfig, TrainingConfig, read_manifest,
                        train_generator)
from generation.errors import CorpusError, GenerationConfigError, ModelLoadError
from generation.exemplars import ExemplarIndex
from generation.generator import write_manifest
from generation.kinds import QUESTION, STATEMENT, Kind
from generation.pairs import (PAIRS_STEM, fit_pairs, nearest_other, pair_kinds, pairs_index,
                              read_pairs, without_offer)
from tests.fakes import FakeEmbedder, liking_conversations, write_tiny_gpt2

WRITTEN = [("do you like rainy days", "I do, the sound of rain is so calming."),
           ("what is your favourite season", "Autumn, for the colours and the crisp air."),
           ("how old are you", "I'm twenty two years young."),  # a number: dropped
           ("can you get me a towel", "Let me get you one right away."),  # a promise: dropped
           ("do you like tea", "A warm cup of tea fixes most things.")]


def test_read_pairs_reads_the_list_and_names_a_bad_item(tmp_path: Path) -> None:
    path = tmp_path / "pairs.yml"
    path.write_text("# written for the test\npairs:\n  - message: do you like tea?\n"
                    "    reply: I do, very much.\n", encoding="utf-8")
    assert read_pairs(path) == [("do you like tea?", "I do, very much.")]
    path.write_text("pairs:\n  - message: hello\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="pair 1"):
        read_pairs(path)
    path.write_text("- message: hello\n  reply: hi\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="under 'pairs:'"):
        read_pairs(path)


def test_a_closing_offer_is_cut_and_a_joke_is_no_prying_question() -> None:
    offer = "Rain is cosy. Let me know if I can help with anything during your stay."
    assert without_offer(offer) == "Rain is cosy."
    assert without_offer("Let me know if you need anything!") == (
        "Let me know if you need anything!")  # one sentence is kept (and then dropped)
    joke = "What do you call a fake noodle? An impasta!"
    assert fit_pairs([("do you like rain", offer), ("tell me a joke", joke)]) == [
        ("do you like rain", "Rain is cosy."), ("tell me a joke", joke)]


def test_the_filters_leave_out_facts_and_promises() -> None:
    assert fit_pairs(WRITTEN) == [WRITTEN[0], WRITTEN[1], WRITTEN[4]]
    index = pairs_index(FakeEmbedder(), WRITTEN)
    assert index.replies == (WRITTEN[0][1], WRITTEN[1][1], WRITTEN[4][1])
    assert index.contexts == (WRITTEN[0][0], WRITTEN[1][0], WRITTEN[4][0])


def _pairs_only(tmp_path: Path, **sampling: object) -> Generator:
    encoder = FakeEmbedder()
    report = train_generator([], tmp_path / "gen", training=TrainingConfig(language_model=False),
                             sampling=SamplingConfig(**sampling),  # type: ignore[arg-type]
                             written_pairs=WRITTEN, encoder=encoder, progress=False)
    assert report.corpus == {"written_pairs": 3} and report.parameters == 0
    return Generator(tmp_path / "gen", encoder=encoder)


def test_without_a_language_model_a_near_message_gets_the_written_reply(tmp_path: Path) -> None:
    generator = _pairs_only(tmp_path, pair_min_score=0.6, pair_relevance_weight=0.0)
    assert read_manifest(tmp_path / "gen")["model"] is None
    assert not (tmp_path / "gen" / "model.safetensors").exists()
    reply = generator.reply("do you like rainy days?")
    assert reply.text == "I do, the sound of rain is so calming."
    assert reply.metadata()["generation"]["written"] is True
    assert reply.candidates[0].context_similarity == pytest.approx(1.0, abs=1e-3)
    far = generator.reply("could you book a taxi to the airport")
    assert far.text is None and far.candidates == ()  # declined: the canned response follows
    filtered = generator.reply("how old are you")  # its pair was left out of the index
    assert filtered.text != "I'm twenty two years young."


def test_the_similarity_floor_and_the_reply_relevance_choose(tmp_path: Path) -> None:
    generator = _pairs_only(tmp_path, pair_min_score=0.99, pair_relevance_weight=0.0)
    assert generator.reply("do you like tea").text == "A warm cup of tea fixes most things."
    assert generator.reply("do you like tea a lot").text is None  # not near enough
    loose = Generator(tmp_path / "gen", encoder=FakeEmbedder(),
                      sampling=SamplingConfig(pair_min_score=-2.0, pair_relevance_weight=1.0,
                                              pair_reciprocal=False, pair_same_kind=False,
                                              pair_grounded=False))  # "rain" isn't "tea"
    ranked = loose.written("tea")
    assert len(ranked) == 3 and ranked[0].text == "A warm cup of tea fixes most things."
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    assert all(c.score == pytest.approx(c.context_similarity + c.relevance) for c in ranked)
    # no message says "autumn colours", a reply does: its relevance puts it first
    assert loose.written("autumn colours")[0].text == "Autumn, for the colours and the crisp air."


def test_reciprocal_pairs_leave_out_a_message_nearer_to_another_pair(tmp_path: Path) -> None:
    # "tea" alone is nearer to "do you like tea" than to anything else of the index, but
    # "do you like" is nearer to "do you like rainy days"'s and "do you like tea"'s messages
    # than to each other's: neither is said to it, without the option both may be
    generator = _pairs_only(tmp_path, pair_min_score=-2.0, pair_relevance_weight=0.0)
    assert generator.load().sampling.pair_reciprocal  # the default
    index = ExemplarIndex.load(tmp_path / "gen", PAIRS_STEM)
    assert index is not None
    nearest = nearest_other(index)
    assert nearest.shape == (3,) and all(-1.0 <= n < 0.999 for n in nearest)
    exact = generator.written("do you like tea")
    assert exact[0].text == "A warm cup of tea fixes most things."
    assert all(c.context_similarity >= nearest[index.replies.index(c.text)] - 1e-5
               for c in generator.written("do you like"))
    every = Generator(tmp_path / "gen", encoder=FakeEmbedder(),
                      sampling=SamplingConfig(pair_min_score=-2.0, pair_relevance_weight=0.0,
                                              pair_reciprocal=False, pair_grounded=False))
    assert len(every.written("do you like")) == 3
    assert len(generator.written("do you like")) < 3


KINDS = [("i feel lonely sometimes", "I'm sorry you feel that way, I'm glad you came to chat."),
         ("do you ever get bored", "Never, there's always someone new to talk to."),
         ("do you like rainy days", "I do, the sound of rain is so calming."),
         ("i love rainy days", "Rainy days are perfect for a book and a warm drink.")]


def _kinds_arm(tmp_path: Path, **sampling: object) -> Generator:
    train_generator([], tmp_path / "kinds", training=TrainingConfig(language_model=False),
                    sampling=SamplingConfig(), written_pairs=KINDS, encoder=FakeEmbedder(),
                    progress=False)
    return Generator(tmp_path / "kinds", encoder=FakeEmbedder(), sampling=SamplingConfig(
        pair_min_score=-2.0, pair_relevance_weight=0.0, **sampling))  # type: ignore[arg-type]


def test_a_reply_to_a_statement_is_not_said_to_a_question(tmp_path: Path) -> None:
    sorry = KINDS[0][1]
    assert SamplingConfig().pair_same_kind  # the default
    for reciprocal in (True, False):
        same = _kinds_arm(tmp_path, pair_reciprocal=reciprocal)
        assert sorry not in [c.text for c in same.written("do you ever feel lonely?")]
        assert same.written("do you like rainy days?")[0].text == KINDS[2][1]
    any_kind = _kinds_arm(tmp_path, pair_same_kind=False)
    assert sorry in [c.text for c in any_kind.written("do you ever feel lonely?")]


def test_the_reciprocal_check_compares_like_with_like(tmp_path: Path) -> None:
    _kinds_arm(tmp_path)
    index = ExemplarIndex.load(tmp_path / "kinds", PAIRS_STEM)
    assert index is not None
    kinds = pair_kinds(index)
    assert kinds == [Kind(STATEMENT, False), Kind(QUESTION, True), Kind(QUESTION, True),
                     Kind(STATEMENT, False)]
    plain, alike = nearest_other(index), nearest_other(index, kinds)
    assert all(a <= p + 1e-6 for a, p in zip(alike, plain))
    # "i love rainy days" is nearest to the question "do you like rainy days"; of its own
    # kind only "i feel lonely sometimes" is another: the guest's statement is nearer to it
    assert alike[3] < plain[3]
    rainy = KINDS[3][1]
    assert rainy in [c.text for c in _kinds_arm(tmp_path).written("rainy days are lovely")]
    blocked = _kinds_arm(tmp_path, pair_same_kind=False).written("rainy days are lovely")
    assert rainy not in [c.text for c in blocked]
    with pytest.raises(ValueError, match="kinds"):
        nearest_other(index, kinds[:2])


def test_an_index_without_its_messages_is_matched_without_kinds(tmp_path: Path) -> None:
    _kinds_arm(tmp_path)
    texts = tmp_path / "kinds" / f"{PAIRS_STEM}.json"
    saved = json.loads(texts.read_text(encoding="utf-8"))
    texts.write_text(json.dumps({**saved, "contexts": []}), encoding="utf-8")  # older index
    index = ExemplarIndex.load(tmp_path / "kinds", PAIRS_STEM)
    assert index is not None and pair_kinds(index) == []
    for reciprocal in (True, False):  # the kinds are not applied (a warning says so)
        generator = Generator(tmp_path / "kinds", encoder=FakeEmbedder(), sampling=SamplingConfig(
            pair_min_score=-2.0, pair_relevance_weight=0.0, pair_reciprocal=reciprocal))
        assert generator.written("do you like rainy days?")[0].text == KINDS[2][1]
    loose = [c.text for c in generator.written("do you ever feel lonely?")]
    assert KINDS[0][1] in loose


def test_pairs_only_needs_pairs(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="generation.pairs"):
        train_generator([], tmp_path, training=TrainingConfig(language_model=False),
                        encoder=FakeEmbedder(), progress=False)
    write_manifest(tmp_path, model=None, sampling=SamplingConfig())
    with pytest.raises(ModelLoadError, match="neither a language model nor written pairs"):
        Generator(tmp_path, encoder=FakeEmbedder()).load()


def test_with_a_gpt2_a_near_message_skips_sampling_a_far_one_samples(tmp_path: Path) -> None:
    model_dir = write_tiny_gpt2(tmp_path, SamplingConfig(n_candidates=3, max_new_tokens=4,
                                                         pair_min_score=0.9,
                                                         pair_relevance_weight=0.0))
    encoder = FakeEmbedder()
    pairs_index(encoder, WRITTEN).save(model_dir, PAIRS_STEM)
    generator = Generator(model_dir, encoder=encoder)
    near = generator.reply("do you like tea", seed=0)
    assert near.text == "A warm cup of tea fixes most things." and len(near.candidates) == 1
    far = generator.reply("the weather is strange today", seed=0)
    assert len(far.candidates) == 3 and not any(c.written for c in far.candidates)


def test_training_with_a_gpt2_also_indexes_the_pairs(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    report = train_generator(liking_conversations(), out,
                             model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64,
                                               vocab_size=300),
                             training=TrainingConfig(max_steps=2, batch_size=4,
                                                     heldout_fraction=0.2, eval_blocks=4),
                             written_pairs=WRITTEN, encoder=FakeEmbedder(), progress=False)
    assert report.corpus["written_pairs"] == 3 and report.parameters > 0
    index = ExemplarIndex.load(out, PAIRS_STEM)
    assert index is not None and len(index) == 3
    assert json.loads((out / "generation.json").read_text())["model"] == "."


def test_pair_settings_are_checked() -> None:
    with pytest.raises(GenerationConfigError, match="pairs"):
        SamplingConfig(pairs=0)
    with pytest.raises(GenerationConfigError, match="pair_relevance_weight"):
        SamplingConfig(pair_relevance_weight=-0.1)


def test_config_yml_names_the_pairs_file(tmp_path: Path) -> None:
    from bot.errors import ConfigError
    from bot.project.config import load_config

    path = tmp_path / "config.yml"
    path.write_text("language: en\ngeneration:\n  pairs: data/smalltalk/pairs.yml\n  train:\n"
                    "    language_model: false\n", encoding="utf-8")
    settings = load_config(path).generation
    assert settings is not None and settings.pairs == ("data/smalltalk/pairs.yml",)
    assert settings.train == {"language_model": False}
    path.write_text("language: en\ngeneration:\n  pairs: [a.yml, b.yml]\n", encoding="utf-8")
    settings = load_config(path).generation
    assert settings is not None and settings.pairs == ("a.yml", "b.yml")
    path.write_text("language: en\ngeneration:\n  pairs: {a: b}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="generation.pairs must be a file path"):
        load_config(path)
