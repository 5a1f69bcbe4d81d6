"""Retrieve and refine on the tiny random GPT-2: the exemplar index (what it keeps, how it
searches, saved and loaded), prompts with an exemplar, sampling and scoring prompts of
different lengths in one batch (left padding changes nothing), the Generator spreading its
candidates over the exemplars, and training with exemplars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from generation import (Generator, ModelConfig, ModelLoadError, SamplingConfig, TrainingConfig,
                        read_manifest, render, train_generator)
from generation.corpus import Conversation
from generation.exemplars import TEXTS_FILE, VECTORS_FILE, ExemplarIndex, exemplar_pairs
from generation.model import load_causal_lm
from generation.sampler import (build_prompt, reply_logprobs, reply_logprobs_each, sample,
                                sample_prompts)
from generation.tokenizer import turn_end_ids
from tests.fakes import FakeEmbedder, liking_conversations, write_tiny_gpt2

PAIRS = [Conversation("a/1", ("do you like music", "yes i love music a lot")),
         Conversation("b/1", ("do you like rock music", "rock music is the best")),
         Conversation("c/1", ("how are you", "me too")),
         Conversation("d/1", ("how old are you", "i am twenty years old")),
         Conversation("e/1", ("do you like rainy days", "i love rainy days with a good book"))]


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> tuple[object, object]:
    return load_causal_lm(str(tiny_dir))


def test_render_puts_the_exemplar_first() -> None:
    assert render(["do you like tea"], reply_next=True, exemplar="i love  tea") == \
        "Hint: i love tea\nUser: do you like tea\nBot:"
    assert render(["hi", "hello"], exemplar="hey") == "Hint: hey\nUser: hi\nBot: hello\n"


def test_exemplar_pairs_keep_replies_fit_to_say() -> None:
    kept = exemplar_pairs([*PAIRS, PAIRS[0]], generic=["me too"])
    # "me too" is generic, "twenty years old" a number (and a life story): never primed
    assert [p.id for p in kept] == ["a/1", "b/1", "e/1"]


def test_index_finds_the_nearest_context_of_another_conversation(tmp_path: Path) -> None:
    encoder = FakeEmbedder()
    index = ExemplarIndex.build(encoder, PAIRS, generic=["me too"])
    assert len(index) == 3 and index.encoder == "fake-hash"
    query = np.asarray(encoder.encode(["do you like music"]))
    hits = index.search(query, 2)[0]
    assert [index.replies[r] for r, _ in hits][0] == "yes i love music a lot"
    assert hits[0][1] >= hits[1][1] and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    other = index.search(query, 2, exclude=["a"])[0]
    assert "a" not in [index.sources[r] for r, _ in other]
    assert index.search(query, 0) == [[]]
    index.save(tmp_path)
    again = ExemplarIndex.load(tmp_path)
    assert again is not None and again.replies == index.replies
    assert again.sources == index.sources
    assert np.allclose(again.vectors, index.vectors, atol=1e-3)  # saved as float16


def test_a_broken_index_names_the_fix(tmp_path: Path) -> None:
    assert ExemplarIndex.load(tmp_path) is None  # a model trained without exemplars
    np.save(tmp_path / VECTORS_FILE, np.zeros((2, 4), dtype=np.float16))
    (tmp_path / TEXTS_FILE).write_text(json.dumps({"replies": ["a"], "sources": ["x"]}))
    with pytest.raises(ModelLoadError, match="inconsistent.*--force"):
        ExemplarIndex.load(tmp_path)
    (tmp_path / TEXTS_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="Unreadable exemplar index"):
        ExemplarIndex.load(tmp_path)


def test_prompt_with_an_exemplar_keeps_it_and_the_messages_end(loaded: tuple) -> None:
    _, tokenizer = loaded
    full = build_prompt(tokenizer, "do you like music", ["hi", "hello"], 200, exemplar="yes")
    assert tokenizer.decode(full) == ("Hint: yes\nUser: hi\nBot: hello\n"
                                      "User: do you like music\nBot:")
    short = build_prompt(tokenizer, "well " * 30 + "do you like music", ["hi", "hello"], 24,
                         exemplar="yes")
    text = tokenizer.decode(short)
    assert len(short) <= 24 and text.startswith("Hint: yes\nUser:")
    assert text.endswith("do you like music\nBot:") and "hello" not in text


def test_left_padded_prompts_sample_as_they_would_alone(loaded: tuple) -> None:
    lm, tokenizer = loaded
    stops = turn_end_ids(tokenizer)
    short = build_prompt(tokenizer, "hi", [], 60)
    long = build_prompt(tokenizer, "do you like rainy days", ["hi there", "hello"], 60,
                        exemplar="i love rainy days")
    assert len(short) < len(long)
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    both = sample_prompts(lm, tokenizer, [short, long], greedy, stops)
    alone = [sample(lm, tokenizer, p, greedy, stops)[0] for p in (short, long)]
    assert both == alone


def test_replies_are_scored_after_their_own_prefix(loaded: tuple) -> None:
    lm, tokenizer = loaded
    prefixes = [tokenizer("User: hi\nBot:", add_special_tokens=False)["input_ids"],
                tokenizer("Hint: music\nUser: do you like music\nBot:",
                          add_special_tokens=False)["input_ids"]]
    replies = [tokenizer(" hello\n", add_special_tokens=False)["input_ids"],
               tokenizer(" yes i love music a lot\n", add_special_tokens=False)["input_ids"]]
    each = reply_logprobs_each(lm, prefixes, replies, 0)
    alone = [reply_logprobs(lm, p, [r], 0)[0] for p, r in zip(prefixes, replies)]
    assert each == pytest.approx(alone, abs=1e-4)


def test_generator_spreads_its_candidates_over_safe_exemplars(tmp_path: Path) -> None:
    model_dir = write_tiny_gpt2(tmp_path, sampling=SamplingConfig(
        n_candidates=6, max_new_tokens=6, exemplars=2, min_relevance=-1))
    encoder = FakeEmbedder()
    pairs = [*PAIRS, Conversation("f/1", ("do you like jazz music", "jazz in paris is music"))]
    ExemplarIndex.build(encoder, pairs).save(model_dir)
    generator = Generator(model_dir, encoder=encoder, protected_terms=["Paris"])
    exemplars = generator.exemplars("do you like music")
    # the nearest replies, but never one naming a protected place the guest did not name
    assert exemplars == ["yes i love music a lot", "rock music is the best"]
    assert generator.exemplars("is jazz music big in paris")[0] == "jazz in paris is music"
    reply = generator.reply("do you like music", seed=0)
    assert [c.exemplar for c in reply.candidates] == exemplars * 3
    again = generator.reply("do you like music", seed=0)
    assert [c.to_dict() for c in again.candidates] == [c.to_dict() for c in reply.candidates]


def test_training_with_exemplars_saves_the_index_and_scores_with_it(tmp_path: Path) -> None:
    conversations = liking_conversations()
    report = train_generator(conversations, tmp_path,
                             model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=64,
                                               vocab_size=300),
                             training=TrainingConfig(max_steps=2, batch_size=4,
                                                     heldout_fraction=0.2, eval_blocks=4,
                                                     exemplars=True,
                                                     exemplar_gold_rate=0.5),
                             encoder=FakeEmbedder(), progress=False)
    index = ExemplarIndex.load(tmp_path)
    assert index is not None and len(index) == report.corpus["exemplars"] > 0
    assert set(index.sources) <= {c.id for c in conversations}
    floors = read_manifest(tmp_path)["report"]["reply_logprob_quantiles"]
    assert floors["10"] <= floors["25"] <= floors["50"] < 0
    generator = Generator(tmp_path, encoder=FakeEmbedder(),
                          sampling=SamplingConfig(n_candidates=4, max_new_tokens=8))
    assert generator.exemplars("do you like warm tea?")[0] == "yes i love warm tea"


def test_exemplar_settings_are_checked() -> None:
    with pytest.raises(Exception, match="exemplar_gold_rate"):
        TrainingConfig(exemplar_gold_rate=1.5)
    with pytest.raises(Exception, match="exemplars"):
        SamplingConfig(exemplars=-1)
    assert torch.get_num_threads() == 1  # the module's one-thread fixture holds


def test_packed_blocks_keep_texts_whole_and_can_leave_the_exemplar_unlearnt(
        loaded: tuple) -> None:
    from generation.training import pack_blocks

    _, tokenizer = loaded
    texts = [render(["hi there"], exemplar="hello"), render(["do you like music", "yes"]),
             render(["music " * 30, "no"])]  # the last is longer than a block: left out
    ids, labels = pack_blocks(tokenizer, texts, 24)
    first = tokenizer(texts[0] + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    second = tokenizer(texts[1] + "<|endoftext|>", add_special_tokens=False)["input_ids"]
    assert ids.shape[1] == 24 and len(first) + len(second) > 24  # one text per block
    assert ids[0, :len(first)].tolist() == first and ids[1, :len(second)].tolist() == second
    assert (labels[0, len(first):] == -100).all() and labels[0, :len(first)].tolist() == first
    _, unlearnt = pack_blocks(tokenizer, texts, 24, learn_exemplar=False)
    hint = len(tokenizer("Hint: hello\n", add_special_tokens=False)["input_ids"])
    assert (unlearnt[0, :hint] == -100).all()
    assert unlearnt[0, hint:len(first)].tolist() == first[hint:]
    assert unlearnt[1].tolist() == labels[1].tolist()  # no exemplar, nothing left out


def test_exemplars_can_join_the_candidates_and_are_marked_when_chosen(tmp_path: Path) -> None:
    model_dir = write_tiny_gpt2(tmp_path, sampling=SamplingConfig(
        n_candidates=3, max_new_tokens=4, exemplars=2, exemplar_candidates=True,
        min_relevance=-1, min_words=1))
    encoder = FakeEmbedder()
    ExemplarIndex.build(encoder, PAIRS).save(model_dir)
    generator = Generator(model_dir, encoder=encoder)
    reply = generator.reply("do you like music", seed=0)
    retrieved = [c for c in reply.candidates if c.retrieved]
    assert [c.text for c in retrieved] == generator.exemplars("do you like music")
    assert [c.exemplar for c in retrieved] == [c.text for c in retrieved]  # scored after itself
    assert all(c.finished and "unfinished" not in c.problems for c in retrieved)
    assert "misspelt" in retrieved[1].problems  # filtered as a sample is: "rock" is unknown
    assert len(reply.candidates) == 3 + 2
    best = max((c for c in reply.candidates if c.kept), key=lambda c: c.score)
    assert reply.metadata()["generation"]["retrieved"] is best.retrieved
