"""The retrieve arm alone on the tiny random GPT-2: a retrieve-only index (which pairs it
keeps, capped), training that builds it without exemplars in the prompts, the Generator
offering the retrieved human replies as candidates after the plain prompt, and the reranker
weighing the similarity of the turn each one answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation import (Generator, ModelConfig, SamplingConfig, TrainingConfig, read_manifest,
                        train_generator)
from generation.corpus import Conversation
from generation.exemplars import ExemplarIndex, retrieval_pairs
from generation.generator import write_manifest
from generation.rerank import Candidate, rank
from tests.fakes import FakeEmbedder, liking_conversations, write_tiny_gpt2

PAIRS = [Conversation("a/1", ("do you like music", "i like music a lot")),  # on topic
         Conversation("b/1", ("what about rock", "sounds great to me")),  # answers, off words
         Conversation("c/1", ("how are you", "me too")),  # generic
         Conversation("d/1", ("how old are you", "i am twenty years old")),  # a number
         Conversation("e/1", ("do you like rainy days", "i love rainy days with a")),  # cut off
         Conversation("f/1", ("do you like tea", "tea is lovely in the morning")),  # on topic
         Conversation("g/1", ("do you like tea", "yes it warms me up")),  # same turn
         Conversation("h/1", ("any plans", "nothing much, just resting")),
         Conversation("i/1", ("any plans", "my mom is visiting"))]  # a life story


def test_retrieval_pairs_keep_fit_replies_answering_ones_first() -> None:
    kept = retrieval_pairs(PAIRS, generic=["me too"])
    assert [p.id for p in kept][:2] == ["a/1", "f/1"]  # they take up their turn's words
    assert {p.id for p in kept} == {"a/1", "b/1", "f/1", "g/1", "h/1"}
    again = retrieval_pairs(PAIRS, generic=["me too"])
    assert kept == again  # the seeded order
    capped = retrieval_pairs(PAIRS, generic=["me too"], limit=2)
    assert [p.id for p in capped][:2] == ["a/1", "f/1"]
    assert len({p.turns[0] for p in capped}) == 2  # at most `limit` turns to embed ...
    assert "g/1" in {p.id for p in capped}  # ... with every reply to them


def test_an_index_embeds_each_turn_once_and_keeps_it(tmp_path: Path) -> None:
    encoder = FakeEmbedder()
    kept = retrieval_pairs(PAIRS, generic=["me too"])
    index = ExemplarIndex.of_pairs(encoder, kept)
    assert encoder.encoded == len({p.turns[0] for p in kept}) == len(kept) - 1
    assert index.contexts == tuple(p.turns[0] for p in kept)
    index.save(tmp_path)
    again = ExemplarIndex.load(tmp_path)
    assert again is not None and again.contexts == index.contexts


def _retrieve_only(tmp_path: Path, **sampling: object) -> Generator:
    config = SamplingConfig(n_candidates=3, max_new_tokens=4, exemplars=2,
                            exemplar_candidates=True, min_relevance=-1, min_words=1,
                            **sampling)  # type: ignore[arg-type]
    model_dir = write_tiny_gpt2(tmp_path)
    write_manifest(model_dir, model=".", sampling=config, report={"exemplar_prompts": False})
    encoder = FakeEmbedder()
    ExemplarIndex.of_pairs(encoder, retrieval_pairs(PAIRS, generic=["me too"])).save(model_dir)
    return Generator(model_dir, encoder=encoder)


def test_retrieved_replies_join_candidates_sampled_without_exemplars(tmp_path: Path) -> None:
    generator = _retrieve_only(tmp_path)
    found = generator.retrieve("do you like tea")
    assert [r for r, _ in found] == ["tea is lovely in the morning", "yes it warms me up"]
    assert found[0][1] == pytest.approx(1.0, abs=1e-3)  # the very same turn (float16)
    reply = generator.reply("do you like tea", seed=0)
    sampled = [c for c in reply.candidates if not c.retrieved]
    retrieved = [c for c in reply.candidates if c.retrieved]
    assert len(sampled) == 3 and all(c.exemplar == "" for c in sampled)  # plain prompts
    assert [c.text for c in retrieved] == [r for r, _ in found]
    assert [c.context_similarity for c in retrieved] == [s for _, s in found]
    again = generator.reply("do you like tea", seed=0)
    assert [c.to_dict() for c in again.candidates] == [c.to_dict() for c in reply.candidates]


def test_a_far_turn_gives_no_candidate(tmp_path: Path) -> None:
    generator = _retrieve_only(tmp_path, min_context_similarity=0.9)
    assert [r for r, _ in generator.retrieve("do you like tea")] == [
        "tea is lovely in the morning", "yes it warms me up"]
    assert generator.retrieve("what a lovely sunny morning") == []
    reply = generator.reply("what a lovely sunny morning", seed=0)
    assert not any(c.retrieved for c in reply.candidates)


def test_the_turns_similarity_counts_and_people_pass_the_fluency_gate() -> None:
    def candidates() -> list[Candidate]:
        return [Candidate("sampled", True, relevance=0.6, likelihood=-3.0),
                Candidate("human", True, relevance=0.5, likelihood=-5.0, retrieved=True,
                          context_similarity=0.8)]

    plain = rank(candidates(), SamplingConfig(likelihood_weight=0), min_logprob=-4.0)
    assert [c.text for c in plain] == ["sampled", "human"]  # the gate spares the human one
    weighed = rank(candidates(), SamplingConfig(likelihood_weight=0, context_weight=0.5),
                   min_logprob=-4.0)
    assert [c.text for c in weighed] == ["human", "sampled"]
    assert weighed[0].score == pytest.approx(0.5 + 0.4)
    gated = candidates()
    gated[0].likelihood = -4.5
    assert [c.text for c in rank(gated, SamplingConfig(), min_logprob=-4.0)] == ["human"]
    assert gated[0].problems == ["not fluent"]


def test_training_with_a_retrieval_index_keeps_prompts_plain(tmp_path: Path) -> None:
    report = train_generator(liking_conversations(), tmp_path,
                             model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64,
                                               vocab_size=300),
                             training=TrainingConfig(max_steps=2, batch_size=4,
                                                     heldout_fraction=0.2, eval_blocks=4,
                                                     retrieval_index=True, index_limit=30),
                             encoder=FakeEmbedder(), progress=False)
    index = ExemplarIndex.load(tmp_path)
    assert index is not None and len(index) == report.corpus["exemplars"] > 0
    assert len(set(index.contexts)) <= 30
    assert read_manifest(tmp_path)["report"]["exemplar_prompts"] is False
    generator = Generator(tmp_path, encoder=FakeEmbedder(), sampling=SamplingConfig(
        n_candidates=2, max_new_tokens=6, exemplar_candidates=True))
    reply = generator.reply("do you like warm tea?", seed=0)
    assert all(c.exemplar == "" for c in reply.candidates if not c.retrieved)
    assert any(c.retrieved for c in reply.candidates)


def test_retrieval_settings_are_checked() -> None:
    with pytest.raises(Exception, match="index_limit"):
        TrainingConfig(index_limit=0)
    with pytest.raises(Exception, match="context_weight"):
        SamplingConfig(context_weight=-1)


def test_a_score_floor_leaves_the_turn_to_the_canned_response() -> None:
    def candidates() -> list[Candidate]:
        return [Candidate("odd", True, relevance=0.15), Candidate("fine", True, relevance=0.4)]

    config = SamplingConfig(likelihood_weight=0, mmi_weight=0, min_score=0.2)
    ranked = rank(candidates(), config)
    assert [c.text for c in ranked] == ["fine"]
    low = candidates()[:1]
    assert rank(low, config) == [] and low[0].problems == ["low score"]
    assert [c.text for c in rank(candidates(), SamplingConfig(likelihood_weight=0,
                                                              mmi_weight=0))] == ["fine", "odd"]
