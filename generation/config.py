"""Typed settings of the generator: the model trained from scratch, its training run, and how
replies are sampled and chosen. Each value is checked once, here; `from_mapping` builds them
from config.yml's `generation:` section and names the unknown key with the ones it knows."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, TypeVar

from generation.errors import GenerationConfigError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The GPT-2 trained from scratch. Small on purpose: on one CPU thread it trains at about
    9,000 tokens per second of CPU (1,400 steps of 32 x 64 tokens took 331 s of CPU with the
    corpus and scoring), so the default budget shows it the 1.3M-token pair corpus about twice
    on an idle core; a deeper or wider model sees too little text to stop making word salad
    (4 layers x 256 wide, 8k vocabulary, 4 minutes: perplexity 167). A longer budget can
    afford a wider model."""

    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 64  # tokens of context: one short exchange (a pair is ~30 tokens);
    # with exemplars (TrainingConfig.exemplars) 128: an exemplar and an exchange are ~42
    # tokens (99% under 70), and 64 crops 14% of the prompts
    vocab_size: int = 2048  # byte-level BPE merges trained on the lowercased corpus; the
    # output layer costs vocab_size x n_embd per token, as much as two layers at 4k

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "n_positions"):
            _at_least(name, getattr(self, name), 1)
        _at_least("vocab_size", self.vocab_size, 300)  # 256 bytes plus a few merges
        if self.n_embd % self.n_head:
            raise GenerationConfigError(f"generation n_embd ({self.n_embd}) must be a multiple "
                                        f"of n_head ({self.n_head}).")


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """One training run. `budget_s` bounds the wall-clock time (the default keeps `make run`
    under 10 minutes on 2 cores); a longer budget or `max_steps` keeps improving the model.
    The corpus is short (previous turn, reply) pairs (corpus.reply_pairs), not whole
    conversations: a small model learns one well-formed short reply far sooner."""

    budget_s: float = 480.0
    max_steps: int | None = None  # None: as many steps as the budget allows
    batch_size: int = 32  # blocks of n_positions tokens (with exemplars: 16 blocks of 128)
    lr: float = 3e-3  # tiny models from scratch take a high rate
    warmup_steps: int = 30  # then a cosine decay to lr / 10 at the end of the budget
    weight_decay: float = 0.01
    heldout_fraction: float = 0.02  # conversations kept out for the perplexity
    eval_blocks: int = 256  # held-out blocks scored (the perplexity's sample size)
    max_conversations: int | None = None  # None: the whole corpus
    pairs: bool = True  # False: whole conversations, as the first version trained
    max_reply_words: int = 14  # longer replies are rarely fluent from a small model
    max_context_words: int = 20
    min_word_count: int = 5  # a reply with a rarer word (a typo, a name) is left out
    lowercase: bool = True  # one spelling per word; replies are truecased when said
    assistant_weight: int = 0  # times the assistant's own (message, response) pairs are
    # repeated. 0: the demo's are refusals and hotel lines ("I'm much better at hotel rooms
    # than small talk", 272 out_of_scope pairs); at 3 they came out in 1 candidate in 5
    related_weight: int = 1  # times a pair whose reply takes up a content word of its
    # context (corpus.on_topic, 15% of the pairs) is repeated: teaches replies that answer
    drop_generic_pairs: bool = False  # leave out pairs whose reply is a generic one
    generic_replies: int = 300  # the most frequent corpus replies written to generic.txt;
    # the sampler drops a candidate that is one of them (SamplingConfig.drop_generic)
    threads: int = 1  # torch threads while training: on a busy 2-core machine a step of
    # this small model took 10x longer with 2 threads (each waits for the other) than with 1
    exemplars: bool = False  # retrieve and refine (exemplars.py): each pair is trained after
    # the reply given to a near context of another conversation (MiniLM). Off: at 1,000 and
    # 1,400 steps the model never copied an exemplar and its replies were no better (README)
    exemplar_neighbours: int = 2  # the exemplar is one of this many nearest contexts' replies
    exemplar_gold_rate: float = 0.2  # share of pairs whose exemplar is their own reply: teaches
    # copying a fitting exemplar (Roller et al. 2020's alpha-blending)
    retrieval_index: bool = False  # the "retrieve" arm alone: build the exemplar index (its
    # replies become candidates, SamplingConfig.exemplar_candidates) but train the model
    # without exemplars in its prompts, as exemplars: false does (the model never learnt to
    # copy one, and hint-free prompts are half as long)
    index_limit: int | None = 12000  # with retrieval_index: turns embedded at most (MiniLM
    # costs ~5 ms of CPU a turn: all 35k fit ones would take 180 s, a third of the budget);
    # replies that take up their turn's topic (corpus.on_topic, ~6k) come first, then the
    # rest in a seeded random order. None: every fit pair
    language_model: bool = True  # False: no tokenizer nor GPT-2 is trained, only the index of
    # the concierge's written pairs (config.yml generation.pairs): built in seconds; a turn
    # then says a written reply or declines
    seed: int = 0

    def __post_init__(self) -> None:
        _at_least("exemplar_neighbours", self.exemplar_neighbours, 1)
        if self.index_limit is not None:
            _at_least("index_limit", self.index_limit, 1)
        if not 0 <= self.exemplar_gold_rate <= 1:
            raise GenerationConfigError("generation exemplar_gold_rate must be in [0, 1], got "
                                        f"{self.exemplar_gold_rate!r}.")
        if not self.budget_s > 0:
            raise GenerationConfigError(f"generation budget_s must be > 0, got {self.budget_s}.")
        if self.max_steps is not None:
            _at_least("max_steps", self.max_steps, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("eval_blocks", self.eval_blocks, 1)
        _at_least("max_reply_words", self.max_reply_words, 2)
        _at_least("max_context_words", self.max_context_words, 1)
        _at_least("min_word_count", self.min_word_count, 1)
        _at_least("assistant_weight", self.assistant_weight, 0)
        _at_least("generic_replies", self.generic_replies, 0)
        _at_least("related_weight", self.related_weight, 1)
        _at_least("threads", self.threads, 1)
        if not self.lr > 0:
            raise GenerationConfigError(f"generation lr must be > 0, got {self.lr}.")
        if not 0 < self.heldout_fraction < 0.5:
            raise GenerationConfigError("generation heldout_fraction must be in (0, 0.5), got "
                                        f"{self.heldout_fraction}.")


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """How one reply is produced: `n_candidates` samples, each stopped at the turn boundary,
    then filtered and reranked. temperature 0 decodes greedily (one candidate)."""

    n_candidates: int = 16  # more candidates give the filters and the gate more to choose
    max_new_tokens: int = 24  # a 14-word reply and its newline fit
    temperature: float = 0.7  # 0.6 with mmi_weight 0.5 gave 10 grammatical replies of the
    # first 25 messages against 15 at 0.7 / 0.1
    top_k: int = 40
    top_p: float = 0.9
    repetition_penalty: float = 1.2  # on the reply's own tokens (not the message's)
    topic_boost: float = 4.5  # added to the logits of the tokens spelling the content words
    # of the guest's message (sampler.topic_token_ids): replies that take up its topic. On
    # the first sample set the chosen reply's MiniLM relevance was 0.20 at 0, 0.30 at 2.0,
    # 0.51 at 4.5 (the fluency gate scores replies without the boost)
    min_words: int = 2
    max_words: int = 14  # as long as the training replies (TrainingConfig.max_reply_words)
    relevance_weight: float = 1.0  # cosine of the MiniLM embeddings, user message vs reply
    mmi_weight: float = 0.1  # log p(reply | context) - log p(reply): penalises generic replies
    likelihood_weight: float = 0.2  # mean log p(reply | context) per token: fluent replies
    min_relevance: float = 0.1  # below it, a reply is off-topic and dropped
    min_logprob: float | None = None  # the fluency gate: a reply whose mean log p per token
    # is lower is dropped. None: the floor measured at training (generation.json's report:
    # the 25th percentile of held-out human replies), or no gate for a pretrained model
    drop_generic: bool = True  # drop a candidate that is one of the corpus's most frequent
    # replies (generic.txt): "me too", "what about you?" fit any message, so say nothing
    history_turns: int = 0  # earlier turns kept in the prompt (the default model is trained
    # on one previous turn)
    exemplars: int = 4  # retrieved human replies to turns like the message, one per prompt,
    # the candidates spread over them (a model trained with exemplars; 0: none)
    exemplar_candidates: bool = False  # the exemplars themselves join the candidates (the
    # "retrieve" arm of Weston et al.): filtered and reranked like the sampled ones, and
    # marked `retrieved` in the reply's metadata when chosen
    context_weight: float = 0.0  # a retrieved candidate's score also counts the MiniLM cosine
    # of the corpus turn it answered to the guest's message: a human reply to nearly the
    # same words fits by construction, which its own words' relevance may understate
    min_context_similarity: float = 0.0  # a retrieved reply whose corpus turn is less similar
    # to the guest's message than this is no candidate (it answered something else)
    concierge_filter: bool = True  # drop what a concierge would not say (concierge.py):
    # life stories ("this semester", "my mom"), promises of service, prying questions
    persona_weight: float = 0.0  # + this x MiniLM likeness to replies in the concierge's voice
    question_penalty: float = 0.0  # - this for a reply ending with a question (the
    # steer-back line asks the next one)
    word_penalty: float = 0.0  # - this per word: short replies
    pairs: int = 8  # written pairs (generation.pairs) considered per turn: the nearest by
    # MiniLM likeness of their guest message to the guest's
    pair_relevance_weight: float = 1.0  # a pair's score: that likeness + this x its reply's
    # likeness to the guest's message (on the dev set 1.0 chose better replies than 0: a
    # near message's reply may answer something else, "are you happy" -> "i'm so happy")
    pair_min_score: float = 1.1  # the best pair scoring at least this: its reply is said as
    # it is, nothing sampled. None that high: the GPT-2 samples (without one the turn
    # declines and the canned response follows). Chosen on a dev set (README; session 12,
    # 4,220 pairs: 36 good of 45 said at 1.1, 50 of 71 at 1.0; 5,122: 43 of 55, 56 of 79)
    pair_reciprocal: bool = True  # a pair only when the guest's message is at least as near
    # to its message as any other pair's message is (reciprocal nearest neighbours, pairs.py)
    pair_same_kind: bool = True  # a pair only for a message of its message's kind (question,
    # statement or request; about the bot or not: kinds.py), and the reciprocal check only
    # against messages of that kind (on the dev set: 14 good of 16 said, 13 of 19 without)
    pair_grounded: bool = True  # a pair only when its reply takes no detail from its own
    # message that the guest did not give (grounding.py: "any beach jokes" -> a joke about
    # sand; "beach or mountains" -> a reply that weighs the mountains too). On the dev set
    # it dropped none of the 16 said at the defaults, and with the other gates loosened
    # (pair_reciprocal off, pair_min_score 0.85) 17 good of 27 said became 20 of 24 (README)
    pair_word_similarity: float = 0.65  # ... and a word at least this MiniLM-alike counts as
    # the same both ways ("movie" answers "film"; "gloves" comes from "hands"). 1.0: the
    # same stem only; 0.6 let a worse reply through on the dev set, 0.7 was as good
    pair_same_mood: bool = True  # a pair only when its message's mood (good news, bad news,
    # neither: grounding.polarity) is not the opposite of the guest's ("i love the rain" is
    # not answered with the reply to "i hate the wind")
    pair_same_time: bool = True  # a pair only when its reply does not look back at news told
    # of a plan, or ahead at a plan told of news (grounding.time_clash)
    pair_same_person: bool = True  # a pair only when its reply speaks to the guest about the
    # guest's people (grounding.person_problems): no "Congratulations, grandma!", no "her"
    # for a son, no "you both" to one guest
    min_score: float | None = None  # a kept candidate scoring less is dropped ("low score"),
    # and with none left the turn falls back to the canned response: a polite refusal beats
    # an odd reply. None: no floor
    seed: int | None = None  # set: every reply is sampled from this seed (deterministic mode)
    system_prompt: str | None = None  # a chat model's (one whose tokenizer has a chat
    # template) system line: who it is and how it answers
    shots: int = 3  # a chat model sees this many of the written pairs nearest to the guest's
    # message as earlier turns (few-shot): their voice and length, not their facts
    one_sentence: bool = False  # a reply ends at its first sentence's end
    small_talk_only: bool = True  # a message that asks for a job or about the world ("write
    # me a poem", "whats the capital of peru": kinds.small_talk) gets no sampled reply (a
    # written pair may still answer it); the canned response follows
    min_known_words: float = 0.6  # a message with fewer of its words in the encoder's
    # vocabulary (MiniLM's: English) gets no sampled reply: another language, keys mashed
    enough: int = 0  # sampling stops once this many candidates have ended their turn, the
    # rest cut there (unfinished, so dropped): the long tail a slow model spends most steps
    # on. 0: every candidate ends or reaches max_new_tokens

    def __post_init__(self) -> None:
        _at_least("n_candidates", self.n_candidates, 1)
        for name in ("persona_weight", "question_penalty", "word_penalty"):
            if getattr(self, name) < 0:
                raise GenerationConfigError(f"generation {name} must be >= 0, got "
                                            f"{getattr(self, name)}.")
        if self.context_weight < 0:
            raise GenerationConfigError("generation context_weight must be >= 0, got "
                                        f"{self.context_weight}.")
        _at_least("exemplars", self.exemplars, 0)
        _at_least("shots", self.shots, 0)
        _at_least("enough", self.enough, 0)
        if not 0 <= self.min_known_words <= 1:
            raise GenerationConfigError("generation min_known_words must be in [0, 1], got "
                                        f"{self.min_known_words!r}.")
        _at_least("pairs", self.pairs, 1)
        if self.pair_relevance_weight < 0:
            raise GenerationConfigError("generation pair_relevance_weight must be >= 0, got "
                                        f"{self.pair_relevance_weight}.")
        if not 0 <= self.pair_word_similarity <= 1:
            raise GenerationConfigError("generation pair_word_similarity must be in [0, 1], "
                                        f"got {self.pair_word_similarity!r}.")
        _at_least("max_new_tokens", self.max_new_tokens, 1)
        _at_least("min_words", self.min_words, 1)
        _at_least("max_words", self.max_words, self.min_words)
        _at_least("history_turns", self.history_turns, 0)
        if self.temperature < 0:
            raise GenerationConfigError("generation temperature must be >= 0, got "
                                        f"{self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise GenerationConfigError(f"generation top_p must be in (0, 1], got {self.top_p}.")
        _at_least("top_k", self.top_k, 0)
        if self.topic_boost < 0:
            raise GenerationConfigError("generation topic_boost must be >= 0, got "
                                        f"{self.topic_boost}.")
        if self.repetition_penalty < 1:
            raise GenerationConfigError("generation repetition_penalty must be >= 1, got "
                                        f"{self.repetition_penalty}.")


def _at_least(name: str, value: Any, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise GenerationConfigError(f"generation {name} must be a number >= {low}, "
                                    f"got {value!r}.")


def config_keys(kind: type[Any]) -> list[str]:
    return [f.name for f in fields(kind)]


def check_keys(values: Mapping[str, Any], known: list[str], where: str) -> None:
    """A GenerationConfigError naming the first key of `values` not in `known`."""
    for key in values:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise GenerationConfigError(f"Unknown key '{key}' in {where}.{did_you_mean} "
                                        f"Available: {', '.join(known)}.")


def from_mapping(kind: type[T], values: Mapping[str, Any], where: str = "generation") -> T:
    """`kind(**values)`, with unknown keys named (and a close match suggested)."""
    check_keys(values, config_keys(kind), where)
    try:
        return kind(**dict(values))
    except TypeError as exc:  # a wrong type reached a comparison
        raise GenerationConfigError(f"{where}: {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    return asdict(config)
