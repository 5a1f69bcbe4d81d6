"""The generator's plumbing on a tiny random GPT-2 (tests/fakes.py): prompt building and
cropping, stopping at the turn boundary, the safety filter, the quality checks, reranking,
seeded sampling, and the manifest. Replies of a random model are noise; what is checked is
what happens to them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from generation import (MANIFEST, GenerationConfigError, Generator, ModelLoadError,
                        SafetyFilter, SamplingConfig, TrainingConfig, from_mapping, render)
from generation.corpus import (Conversation, frequent_replies, on_topic, reply_key, reply_pairs,
                               split, truecase)
from generation.errors import CorpusError
from generation.model import load_causal_lm
from generation.rerank import Candidate, quality_problems, rank
from generation.sampler import build_prompt, reply_logprobs, sample, topic_token_ids
from generation.tokenizer import turn_end_ids
from tests.fakes import FakeEmbedder, liking_conversations


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> tuple[object, object]:
    return load_causal_lm(str(tiny_dir))


def _force_token(lm: object, token_id: int) -> None:
    """Make `token_id` the overwhelming next token everywhere (an output bias)."""
    with torch.no_grad():
        lm.lm_head.bias = torch.nn.Parameter(torch.zeros(lm.config.vocab_size))
        lm.lm_head.bias[token_id] = 1e4


# ------------------------------------------------------------------ prompt and corpus

def test_render_labels_speakers_and_ends_with_the_bot() -> None:
    assert render(["hi", "hello"]) == "User: hi\nBot: hello\n"
    assert render(["a", "b", "how\nare  you"], reply_next=True) == \
        "User: a\nBot: b\nUser: how are you\nBot:"
    assert render(["b", "q"], reply_next=True) == "Bot: b\nUser: q\nBot:"


def test_prompt_drops_the_oldest_turns_first(loaded: tuple) -> None:
    _, tokenizer = loaded
    history = ["first old turn " * 5, "an answer " * 5, "hello", "hi"]
    full = build_prompt(tokenizer, "do you like music", history, 200)
    assert tokenizer.decode(full).startswith("User: first old turn")
    short = build_prompt(tokenizer, "do you like music", history, 20)
    text = tokenizer.decode(short)
    assert len(short) <= 20 and text.endswith("User: do you like music\nBot:")
    assert "first old turn" not in text
    alone = build_prompt(tokenizer, "music " * 40, [], 10)
    assert len(alone) == 10 and tokenizer.decode(alone).endswith("Bot:")


def test_split_is_stable_and_keeps_both_sides() -> None:
    conversations = [Conversation(str(i), ("a", "b")) for i in range(200)]
    one, two = split(conversations, 0.1), split(conversations, 0.1)
    assert one == two and 0 < len(one.heldout) < 60
    with pytest.raises(CorpusError, match="too few"):
        split(conversations[:1], 0.1)


def test_reply_pairs_keep_short_common_replies_with_their_context() -> None:
    common = [Conversation(f"c{i}", ("hi how are you", "good thanks and you", "i am fine"))
              for i in range(5)]
    odd = Conversation("odd", ("Do you like Music?", "Yes I love Music a lot",
                               "my zxqv is 42", "i am fine " * 10, "good thanks and you"))
    pairs = reply_pairs([*common, odd], max_reply_words=8, min_word_count=5, max_same_reply=3)
    texts = [c.turns for c in pairs]
    assert ("hi how are you", "good thanks and you") in texts  # deduplicated: once
    assert texts.count(("hi how are you", "good thanks and you")) == 1
    assert all(c.id.split("/")[0] in {"c0", "c1", "c2", "c3", "c4", "odd"} for c in pairs)
    assert not any("zxqv" in r or "42" in r for _, r in texts)  # rare word, digits
    assert not any(r.startswith("i am fine i am") for _, r in texts)  # too long
    assert not any(ctx.startswith("i am fine i am") for ctx, _ in texts)  # context too long
    assert all(r == r.lower() for _, r in texts)
    kept = reply_pairs([*common, odd], min_word_count=1)
    assert ("do you like music?", "yes i love music a lot") in [c.turns for c in kept]
    assert len(reply_pairs(common * 3, max_same_reply=2)) == 2  # one reply text at most twice


def test_frequent_replies_are_the_generic_ones() -> None:
    conversations = [Conversation(f"c{i}", ("do you like rain?", "Me too!", f"i love rain {i}",
                                            "what about you?")) for i in range(4)]
    conversations.append(Conversation("x", ("hi", "me too", "lonely reply here")))
    assert reply_key("  Me  TOO!! ") == "me too"
    assert frequent_replies(conversations, top=2) == ["me too", "what about you"]
    assert "lonely reply here" not in frequent_replies(conversations, top=50)  # seen once
    assert frequent_replies(conversations, top=50, max_words=2) == ["me too"]


@pytest.mark.parametrize(("context", "reply", "related"), [
    ("do you like board games?", "i love board games", True),
    ("i'm travelling to italy", "oh i love travel", True),  # one stem
    ("do you like board games?", "what about you?", False),
    ("how are you doing", "i am doing good thanks", False),  # function words only
])
def test_on_topic_needs_a_shared_content_word(context: str, reply: str, related: bool) -> None:
    assert on_topic(context, reply) is related


def test_emphasise_repeats_related_pairs_and_drops_generic_ones() -> None:
    from generation.training import emphasise

    pairs = [Conversation("a/1", ("do you like tea", "i love tea")),
             Conversation("b/1", ("do you like tea", "me too")),
             Conversation("c/1", ("do you like tea", "not really no"))]
    config = TrainingConfig(related_weight=3, drop_generic_pairs=True)
    assert [p.id for p in emphasise(pairs, config, ["me too"])] == ["a/1"] * 3 + ["c/1"]
    assert emphasise(pairs, TrainingConfig(), ["me too"]) == pairs  # the defaults change nothing


def test_pairs_of_one_conversation_stay_on_one_side_of_the_split() -> None:
    pairs = [Conversation(f"{i}/{t}", ("a", "b")) for i in range(100) for t in range(3)]
    corpus = split(pairs, 0.2)
    held = {c.id.split("/")[0] for c in corpus.heldout}
    assert held and not held & {c.id.split("/")[0] for c in corpus.train}


@pytest.mark.parametrize(("text", "cased"), [
    ("i think so. what about you? i'm fine", "I think so. What about you? I'm fine"),
    ("oh nice! i love it", "Oh nice! I love it"),
    ("italy is nice, isn't it", "Italy is nice, isn't it"),
])
def test_truecase_capitalises_sentences_and_i(text: str, cased: str) -> None:
    assert truecase(text) == cased


# ------------------------------------------------------------------ stopping

def test_turn_end_ids_are_the_newline_tokens_and_eos(loaded: tuple) -> None:
    _, tokenizer = loaded
    ids = turn_end_ids(tokenizer)
    assert tokenizer.eos_token_id in ids
    assert all("\n" in tokenizer.decode([i]) for i in ids if i != tokenizer.eos_token_id)
    assert tokenizer("\n", add_special_tokens=False)["input_ids"][0] in ids


def test_sampling_stops_at_the_turn_boundary(tiny_dir: Path) -> None:
    lm, tokenizer = load_causal_lm(str(tiny_dir))
    stops = turn_end_ids(tokenizer)
    prompt = build_prompt(tokenizer, "hi there", [], 40)
    config = SamplingConfig(n_candidates=4, max_new_tokens=10)
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    _force_token(lm, newline)
    samples = sample(lm, tokenizer, prompt, config, stops, seed=0)
    assert len(samples) == 4
    assert all(s.finished and s.text == "" and s.token_ids == (newline,) for s in samples)
    word = tokenizer(" music", add_special_tokens=False)["input_ids"][0]
    _force_token(lm, word)
    samples = sample(lm, tokenizer, prompt, config, stops, seed=0)
    assert all(not s.finished and len(s.token_ids) == 10 for s in samples)


def test_sampling_stops_once_enough_candidates_have_ended(loaded: tuple) -> None:
    lm, tokenizer = loaded
    prompt = build_prompt(tokenizer, "hi there", [], 40)
    stops = list(range(0, len(tokenizer), 3))  # a third of the vocabulary ends a turn
    every = sample(lm, tokenizer, prompt, SamplingConfig(n_candidates=6, max_new_tokens=12),
                   stops, seed=3)
    first = min(len(s.token_ids) for s in every if s.finished)
    assert sum(s.finished for s in every) >= 2
    some = sample(lm, tokenizer, prompt,
                  SamplingConfig(n_candidates=6, max_new_tokens=12, enough=1), stops, seed=3)
    assert sum(s.finished for s in some) >= 1
    for cut, whole in zip(some, every):  # the same draws, the loop left at the first end
        assert len(cut.token_ids) <= first
        assert whole.token_ids[:len(cut.token_ids)] == cut.token_ids


def test_random_samples_end_at_their_first_stop_token(loaded: tuple) -> None:
    lm, tokenizer = loaded
    stops = set(turn_end_ids(tokenizer))
    prompt = build_prompt(tokenizer, "do you like music", ["hi", "hello"], 40)
    for s in sample(lm, tokenizer, prompt, SamplingConfig(n_candidates=8, max_new_tokens=12),
                    sorted(stops), seed=3):
        assert "\n" not in s.text
        assert not stops & set(s.token_ids[:-1])
        assert s.finished == (s.token_ids[-1] in stops)


def test_greedy_decoding_gives_one_candidate(loaded: tuple) -> None:
    lm, tokenizer = loaded
    prompt = build_prompt(tokenizer, "hi there", [], 40)
    config = SamplingConfig(temperature=0, max_new_tokens=5)
    one = sample(lm, tokenizer, prompt, config, turn_end_ids(tokenizer))
    assert len(one) == 1 and one == sample(lm, tokenizer, prompt, config,
                                           turn_end_ids(tokenizer))


def test_topic_boost_makes_replies_take_up_the_messages_words(loaded: tuple) -> None:
    lm, tokenizer = loaded
    boost = topic_token_ids(tokenizer, "Do you like rainy days?")
    assert tokenizer(" rainy", add_special_tokens=False)["input_ids"][0] in boost
    assert not set(boost) & set(tokenizer(" you like", add_special_tokens=False)["input_ids"])
    prompt = build_prompt(tokenizer, "do you like rainy days?", [], 40)
    config = SamplingConfig(n_candidates=8, max_new_tokens=6, topic_boost=0.0)
    plain = sample(lm, tokenizer, prompt, config, turn_end_ids(tokenizer), seed=1,
                   boost_ids=boost)  # topic_boost 0: the boost ids change nothing
    assert plain == sample(lm, tokenizer, prompt, config, turn_end_ids(tokenizer), seed=1)
    boosted = sample(lm, tokenizer, prompt, SamplingConfig(n_candidates=8, max_new_tokens=6,
                                                           topic_boost=50.0),
                     turn_end_ids(tokenizer), seed=1, boost_ids=boost)
    assert all(s.token_ids[0] in boost for s in boosted)


def test_repetition_penalty_spares_the_message_words(loaded: tuple) -> None:
    lm, tokenizer = loaded
    prompt = build_prompt(tokenizer, "do you like rainy days", [], 40)
    word = tokenizer(" rainy", add_special_tokens=False)["input_ids"][0]
    with torch.inference_mode():
        logits = lm(input_ids=torch.tensor([prompt])).logits[0, -1]
    # a boost that makes " rainy" (a word of the message) the greedy choice by a margin of 1;
    # a penalty of 1000 on it, were the message's tokens penalised, would bury it
    boost = float(logits.max() - logits[word]) + 1.0
    greedy = SamplingConfig(temperature=0, max_new_tokens=1, repetition_penalty=1000.0,
                            topic_boost=boost)
    assert sample(lm, tokenizer, prompt, greedy, [], boost_ids=[word])[0].token_ids == (word,)


def test_reply_logprobs_prefer_the_forced_token(tiny_dir: Path) -> None:
    lm, tokenizer = load_causal_lm(str(tiny_dir))
    word = tokenizer(" music", add_special_tokens=False)["input_ids"][0]
    other = tokenizer(" book", add_special_tokens=False)["input_ids"][0]
    _force_token(lm, word)
    prefix = tokenizer("User: hi\nBot:", add_special_tokens=False)["input_ids"]
    good, bad = reply_logprobs(lm, prefix, [[word, word], [other]], tokenizer.pad_token_id)
    assert good == pytest.approx(0.0, abs=1e-3) and bad < -100


# ------------------------------------------------------------------ safety

@pytest.mark.parametrize(("reply", "user", "problem"), [
    ("the room is 120 a night", "how much is it", "number"),
    ("maybe two of them", "do you like cats", "number"),
    ("it costs a fortune", "is it nice", "price"),
    ("that is worth a few $ i guess", "is it nice", "price"),
    ("see you at noon then", "when do we meet", "time"),
    ("see you at 8pm", "when do we meet", "time"),
    ("let's meet on friday", "when shall we meet", "date"),
    ("write to me at anna@example.com", "how do i reach you", "email"),
    ("look at www.fun.org", "anything to read", "url"),
    ("your code is SL-482913", "what's my code", "booking id"),
    ("starlight lisbon is lovely", "where should i go", "hotel name"),
    ("lisbon is lovely", "where should i go", "hotel name"),
    ("the breakfast is great", "how are you", "hotel fact"),
    ("we have the best views", "how are you", "hotel fact"),
    ("my wife loves it", "do you like snow", "persona"),
    ("i'm a student at the college", "what do you do", "persona"),
    ("that's shit", "do you like it", "unsafe"),
])
def test_safety_filter_drops_facts_and_unsafe_words(reply: str, user: str, problem: str) -> None:
    safety = SafetyFilter.with_terms(["Starlight Lisbon", "Lisbon"])
    assert problem in safety.problems(reply, user)


@pytest.mark.parametrize(("reply", "user"), [
    ("i love rainy days with a good book", "do you like rainy days"),
    ("lisbon sounds lovely", "have you been to lisbon"),
    ("5 cats is a lot", "i have 5 cats"),
    ("may the best one win", "who will win"),
    ("i am good thanks and you", "how are you doing"),
])
def test_safety_filter_keeps_plain_small_talk(reply: str, user: str) -> None:
    assert SafetyFilter.with_terms(["Lisbon"]).problems(reply, user) == []


# ------------------------------------------------------------------ quality and ranking

@pytest.mark.parametrize(("text", "finished", "problem"), [
    ("i like it a lot", False, "unfinished"),
    ("yes", True, "too short"),
    ("word " * 40, True, "too long"),
    ("i think that is the", True, "unfinished sentence"),
    ("no no no way", True, "repetition"),
    ("i like it i like it i like it i like it", True, "repetition"),
    ("do you like music", True, "echo"),
    ("i lkie msuic vrey mcuh", True, "misspelt"),
    ("What about you?", True, "generic"),
])
def test_quality_problems(text: str, finished: bool, problem: str) -> None:
    known = frozenset("i like it a lot yes very much music do you what about".split())
    assert problem in quality_problems(text, finished, "do you like music", SamplingConfig(),
                                       known, frozenset({"what about you", "me too"}))


def test_quality_catches_a_near_echo() -> None:
    assert "echo" in quality_problems("The weirdest food you've ever heard of?", True,
                                      "what's the weirdest food you've ever heard of?",
                                      SamplingConfig(max_words=20))
    assert quality_problems("The sound of rain is one of my favourite things.", True,
                            "i love the sound of rain", SamplingConfig(max_words=20)) == []


def test_quality_accepts_a_good_reply() -> None:
    known = frozenset("i love rainy days with a good book".split())
    assert quality_problems("i love rainy days with a good book", True,
                            "do you like rainy days?", SamplingConfig(), known) == []


def test_rank_orders_by_relevance_and_mmi_and_drops_off_topic() -> None:
    config = SamplingConfig(relevance_weight=1.0, mmi_weight=0.5, min_relevance=0.2)
    a = Candidate("a", True, relevance=0.5, mmi=0.0)
    b = Candidate("b", True, relevance=0.4, mmi=0.4)
    off = Candidate("off", True, relevance=0.1, mmi=5.0)
    broken = Candidate("broken", False, problems=["unfinished"], relevance=0.9)
    ranked = rank([a, b, off, broken], config)
    assert [c.text for c in ranked] == ["b", "a"]
    assert off.problems == ["off topic"] and broken.score == float("-inf")


def test_rank_gates_unlikely_replies_and_rewards_likely_ones() -> None:
    config = SamplingConfig(relevance_weight=1.0, mmi_weight=0.0, likelihood_weight=0.5,
                            min_relevance=0.0)
    fluent = Candidate("fluent", True, relevance=0.3, likelihood=-1.0)
    likely = Candidate("likely", True, relevance=0.3, likelihood=-0.5)
    salad = Candidate("salad", True, relevance=0.9, likelihood=-6.0)
    ranked = rank([fluent, likely, salad], config, min_logprob=-3.0)
    assert [c.text for c in ranked] == ["likely", "fluent"]
    assert salad.problems == ["not fluent"]
    assert [c.text for c in rank([Candidate("salad", True, relevance=0.9, likelihood=-6.0)],
                                 config)] == ["salad"]  # no floor: no gate


# ------------------------------------------------------------------ the Generator

def test_generator_is_repeatable_with_a_seed(tiny_dir: Path) -> None:
    generator = Generator(tiny_dir, encoder=FakeEmbedder())
    one = generator.reply("do you like music", ["hi there", "hello how are you"], seed=7)
    two = generator.reply("do you like music", ["hi there", "hello how are you"], seed=7)
    assert [c.to_dict() for c in one.candidates] == [c.to_dict() for c in two.candidates]
    assert one.text == two.text
    assert len(one.candidates) == generator.sampling.n_candidates
    chosen = [c for c in one.candidates if c.kept]
    if one.text is None:
        assert chosen == []
    else:
        assert one.text == max(chosen, key=lambda c: c.score).text
    meta = one.metadata()
    assert meta["generated"] is True
    assert meta["generation"]["candidates"] == generator.sampling.n_candidates


def test_generator_says_nothing_rather_than_a_hotel_name(tiny_dir: Path) -> None:
    generator = Generator(tiny_dir, encoder=FakeEmbedder(), protected_terms=["music"],
                          sampling=SamplingConfig(n_candidates=3, max_new_tokens=3,
                                                  min_words=1, min_relevance=-1))
    generator.load()
    tokenizer = generator._tokenizer
    # every candidate says "music music music" and is cut there: unfinished, repeated and
    # naming a protected term the user did not mention
    _force_token(generator._lm, tokenizer(" music", add_special_tokens=False)["input_ids"][0])
    reply = generator.reply("how are you", seed=0)
    assert reply.text is None
    assert all({"unfinished", "hotel name"} <= set(c.problems) for c in reply.candidates)


def test_generator_without_a_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="xingkong train"):
        Generator(tmp_path / "nowhere").load()
    (tmp_path / MANIFEST).write_text(json.dumps({"format": 99}))
    with pytest.raises(ModelLoadError, match="another format"):
        Generator(tmp_path).load()


def test_settings_are_checked_with_the_key_named() -> None:
    with pytest.raises(GenerationConfigError, match="Did you mean 'temperature'"):
        from_mapping(SamplingConfig, {"temprature": 0.5})
    with pytest.raises(GenerationConfigError, match="top_p"):
        SamplingConfig(top_p=1.5)
    with pytest.raises(GenerationConfigError, match="max_words"):
        SamplingConfig(min_words=5, max_words=2)


def test_training_on_reply_pairs_writes_a_lowercase_model_with_its_fluency_floor(
        tmp_path: Path) -> None:
    from generation import ModelConfig, read_manifest, train_generator

    conversations = liking_conversations(capitalised=True)
    report = train_generator(conversations, tmp_path,
                             model=ModelConfig(n_layer=1, n_embd=32, n_head=2, n_positions=32,
                                               vocab_size=300),
                             training=TrainingConfig(max_steps=2, batch_size=4,
                                                     heldout_fraction=0.2, eval_blocks=4),
                             own_pairs=[Conversation("own", ("Hi", "Hello there"))],
                             progress=False)
    manifest = read_manifest(tmp_path)
    assert manifest["lowercase"] is True
    floors = manifest["report"]["reply_logprob_quantiles"]
    assert floors["10"] <= floors["25"] <= floors["50"] < 0
    assert report.fluency_floor == floors["25"]
    assert report.corpus["own_pairs"] == 1 and report.steps == 2
    assert (tmp_path / "generic.txt").is_file()  # empty: every reply here is said once
    generator = Generator(tmp_path, encoder=FakeEmbedder(),
                          sampling=SamplingConfig(n_candidates=2, max_new_tokens=8))
    assert generator.load()._min_logprob == floors["25"]
