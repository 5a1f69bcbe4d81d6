"""The Generator: one small-talk reply for a user message, or None.

    generator = Generator("models/generation", protected_terms=["Starlight Lisbon", "Lisbon"])
    reply = generator.reply("if you were a bird, where would you fly?", seed=0)
    reply.text          # the chosen reply, or None when every candidate was dropped
    reply.metadata()    # {"generated": True, "generation": {...}} for the bot message

A turn: when the guest's message is near the message of a pair written in the concierge's
voice (pairs.py; `sampling.pair_min_score`), that pair's reply is said as it is, and nothing
is sampled. A message that is no small talk (a job asked for, a question about the world:
kinds.small_talk) or mostly of words the encoder does not know gets nothing sampled.
Otherwise: retrieve exemplars (the replies to the corpus turns nearest to the message,
exemplars.py; a chat model instead sees the nearest written pairs as earlier turns,
sampler.chat_prompt) -> build a prompt per exemplar -> sample n_candidates spread over them
(sampler.py) -> drop unsafe and broken ones (safety.py, rerank.quality_problems) and what a
concierge would not say (concierge.py) -> score the rest by relevance, MMI and likeness to the
concierge's voice (rerank.py) -> the best one; a model directory without a language model
(`language_model: false`) declines instead. The model directory holds
`generation.json` (written by training or by `write_manifest` for a named pretrained model)
next to the weights (or a Llama-layout model's decoder.onnx and tokenizer: onnx_decoder.py),
the exemplar index when the model was trained with one and the written
pairs' index (pairs.npy, pairs.json) when it was given some.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.concierge import concierge_problems, persona_similarity, persona_vectors
from generation.config import SamplingConfig, from_mapping, to_dict
from generation.corpus import BOT, truecase
from generation.errors import GenerationError, ModelLoadError
from generation.exemplars import ExemplarIndex, encode
from generation.grounding import (WordVectors, borrowed_details, mood_clash, opposite_moods,
                                  person_problems, time_clash)
from generation.kinds import message_kind, small_talk
from generation.pairs import PAIRS_STEM, nearest_other, pair_kinds, pair_problems
from generation.rerank import Candidate, quality_problems, rank
from generation.safety import SafetyFilter

logger = logging.getLogger(__name__)

MANIFEST = "generation.json"
WORDS_FILE = "words.txt"  # known words, written by training (absent for pretrained models)
GENERIC_FILE = "generic.txt"  # the corpus's most frequent replies, written by training
FORMAT_VERSION = 1
DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_LETTERS = re.compile(r"[^\W\d_]+")  # words of letters, in any script (known_share)


def write_manifest(out: Path, *, model: str | None, sampling: SamplingConfig,
                   report: dict[str, Any] | None = None, lowercase: bool = False,
                   decoder: dict[str, Any] | None = None) -> Path:
    """generation.json: the model ("." is this directory, else an id or path; None: no
    language model, only the written pairs' index, pairs.py), the sampling
    settings, the training report, whether the model was trained on lowercased text
    (then prompts are lowercased and replies truecased) and, for a model exported to ONNX
    (onnx_decoder.py), its decoder: {"file", "shape", "chat"}."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    body = {"format": FORMAT_VERSION, "model": model, "sampling": to_dict(sampling),
            "report": report or {}, "lowercase": lowercase}
    if decoder:
        body["decoder"] = decoder
    path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    return path


def read_manifest(model_dir: Path) -> dict[str, Any]:
    path = model_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelLoadError(f"No generator model at {model_dir} ({MANIFEST} missing). Add a "
                             "generation: section to config.yml and run `xingkong train`.") from exc
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Unreadable {path}: {exc}. Run `xingkong train generation "
                             "--force`.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise ModelLoadError(f"{path} has another format (expected {FORMAT_VERSION}). Run "
                             "`xingkong train generation --force`.")
    return manifest


def _load_weights(encoder: Any) -> None:
    """Load an encoder that loads lazily (retrieval.embedder's), so that `load()` holds all."""
    load = getattr(encoder, "load", None)
    if callable(load):
        load()


@dataclass(frozen=True, slots=True)
class GeneratedReply:
    text: str | None  # None: nothing could be said safely; the caller uses its fallback
    candidates: tuple[Candidate, ...]
    seconds: float
    model: str = ""  # the model's name (a pretrained id, "GPT-2 (trained here)")

    def metadata(self) -> dict[str, Any]:
        kept = sum(1 for c in self.candidates if c.kept)
        best = max((c for c in self.candidates if c.kept), key=lambda c: c.score, default=None)
        return {"generated": True, "generation": {
            "model": self.model, "candidates": len(self.candidates), "kept": kept,
            "retrieved": bool(best is not None and best.retrieved),
            "written": bool(best is not None and best.written),
            "score": round(max((c.score for c in self.candidates if c.kept), default=0.0), 4),
            "ms": round(self.seconds * 1000, 1)}}


class Generator:
    """Small talk from a causal LM; see the module docstring. Construction is cheap; `load()`
    (idempotent, also run on first use) loads the model, tokenizer and encoder."""

    def __init__(self, model_dir: str | Path, *, sampling: SamplingConfig | None = None,
                 encoder: Any = None, protected_terms: Iterable[str] = (),
                 device: str = "cpu") -> None:
        self.model_dir = Path(model_dir)
        self._sampling = sampling
        self._encoder = encoder
        self.safety = SafetyFilter.with_terms(protected_terms)
        self.device = device
        self._lm: Any = None
        self._tokenizer: Any = None
        self._stop_ids: list[int] = []
        self._prior_ids: list[int] = []
        self._window = 0
        self._known_words: frozenset[str] = frozenset()
        self._generic: frozenset[str] = frozenset()
        self._lowercase = False
        self._min_logprob: float | None = None
        self._index: ExemplarIndex | None = None
        self._hints = False  # the model was trained with exemplars in its prompts
        self._chat = False  # prompts in the tokenizer's chat template (sampler.chat_prompt)
        self._model_name = ""  # said in each reply's metadata (the UI's badge)
        self._persona: Any = None  # (P, D) the concierge-voice replies' embeddings
        self._pairs: ExemplarIndex | None = None  # the written pairs' messages (pairs.py)
        self._pair_nearest: dict[bool, Any] = {}  # same kind? -> (n,) cosine of each pair
        # message's nearest other one (pair_reciprocal), computed when first needed
        self._pair_kinds: list[Any] = []  # each pair message's kind (kinds.py)
        self._words: WordVectors | None = None  # pair_word_similarity's word vectors
        self._vocabulary: frozenset[str] | None = None  # the encoder's words (known_share)
        self._loaded = False
        self._lock = threading.Lock()

    @property
    def sampling(self) -> SamplingConfig:
        if self._sampling is None:
            raise GenerationError("Generator.sampling is read after load().")
        return self._sampling

    def load(self) -> Generator:
        with self._lock:
            if self._loaded:
                return self
            manifest = read_manifest(self.model_dir)
            if self._sampling is None:
                self._sampling = from_mapping(SamplingConfig, manifest.get("sampling") or {},
                                              str(self.model_dir / MANIFEST))
            self._pairs = ExemplarIndex.load(self.model_dir, PAIRS_STEM)
            if self._pairs is not None:
                self._pair_kinds = pair_kinds(self._pairs)
                if len(self._pairs) and not self._pair_kinds:
                    logger.warning("generation.pairs %s has no messages saved (an older "
                                   "index): pair_same_kind is not applied; retrain it",
                                   self.model_dir)
                if self._sampling.pair_reciprocal:  # at load, not at the first turn
                    same = self._sampling.pair_same_kind and bool(self._pair_kinds)
                    self._pair_nearest[same] = self._nearest_of(same)
            if manifest.get("model") is None:  # language_model: false
                if self._pairs is None:
                    raise ModelLoadError(f"{self.model_dir} has neither a language model nor "
                                         "written pairs. Run `xingkong train generation "
                                         "--force`.")
                if self._encoder is None:
                    from retrieval.embedder import get_embedder

                    self._encoder = get_embedder(DEFAULT_ENCODER, device=self.device)
                _load_weights(self._encoder)
                self._loaded = True
                return self
            from generation.model import context_window, load_causal_lm
            from generation.sampler import chat_prompt, sentence_end_ids
            from generation.tokenizer import turn_end_ids

            name = str(manifest.get("model") or ".")
            decoder = manifest.get("decoder")
            self._model_name = str((manifest.get("report") or {}).get("pretrained")
                                   or (name if name != "." else "an exported model" if decoder
                                       else "GPT-2 (trained here)"))
            if decoder:  # exported to ONNX at training (onnx_decoder.py)
                from generation.onnx_decoder import load_decoder

                lm, tokenizer = load_decoder(self.model_dir, decoder)
                self._chat = bool(decoder.get("chat")) and bool(tokenizer.chat_template)
            else:
                lm, tokenizer = load_causal_lm(str(self.model_dir) if name == "." else name,
                                               self.device)
            self._stop_ids = turn_end_ids(tokenizer)
            if self._sampling.one_sentence:
                self._stop_ids = sorted({*self._stop_ids, *sentence_end_ids(tokenizer)})
            eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
            self._window = context_window(lm)
            # MMI's prior p(reply): a bot's turn with nothing before it (a chat model's: after
            # its system line and an empty message)
            self._prior_ids = (chat_prompt(tokenizer, "", [], self._window,
                                           system=self._sampling.system_prompt) if self._chat
                               else [eos, *tokenizer(BOT, add_special_tokens=False)["input_ids"]])
            if self._window <= self._sampling.max_new_tokens + 8:
                raise ModelLoadError(f"The model's window ({self._window} tokens) leaves no room "
                                     f"for a prompt with max_new_tokens="
                                     f"{self._sampling.max_new_tokens}; lower it.")
            if self._encoder is None:
                from retrieval.embedder import get_embedder

                self._encoder = get_embedder(DEFAULT_ENCODER, device=self.device)
            words = self.model_dir / WORDS_FILE
            if name == "." and words.is_file():
                self._known_words = frozenset(words.read_text(encoding="utf-8").split())
            generic = self.model_dir / GENERIC_FILE
            if self._sampling.drop_generic and generic.is_file():
                self._generic = frozenset(line.strip() for line in
                                          generic.read_text(encoding="utf-8").splitlines()
                                          if line.strip())
            self._lowercase = bool(manifest.get("lowercase"))
            if self._sampling.persona_weight:
                self._persona = persona_vectors(self._encoder)
            self._index = ExemplarIndex.load(self.model_dir) if name == "." else None
            report = manifest.get("report") or {}
            # models trained before retrieve-only indexes existed had exemplars in training
            self._hints = self._index is not None and bool(report.get("exemplar_prompts", True))
            floor = report.get("fluency_floor")
            self._min_logprob = (self._sampling.min_logprob
                                 if self._sampling.min_logprob is not None
                                 else float(floor) if isinstance(floor, (int, float)) else None)
            self._tokenizer = tokenizer
            self._lm = lm
            _load_weights(self._encoder)  # now, not at the first guest's turn (4-5 s)
            self._loaded = True
        return self

    def reply(self, user_text: str, history: Sequence[str] = (), *,
              seed: int | None = None) -> GeneratedReply:
        """The best safe reply to `user_text` after `history` (earlier turns, oldest first,
        ending with the bot's); `seed` (default: the sampling config's) makes sampling
        repeatable."""
        from generation.sampler import (build_prompt, chat_prompt, reply_logprobs,
                                        reply_logprobs_each, sample_prompts, topic_token_ids)

        self.load()
        started = time.perf_counter()
        query = (encode(self._encoder, [user_text])  # (1, D), for the pairs and the shots
                 if self._pairs is not None and user_text.strip() else None)
        written = self.written(user_text, query)
        if written or self._lm is None:  # a written reply, or nothing to sample with
            text = written[0].text if written else None
            seconds = time.perf_counter() - started
            logger.info("generation.reply written=%s ms=%.0f", text is not None, seconds * 1000)
            return GeneratedReply(text, tuple(written), seconds, self._model_name)
        config = self.sampling
        unfit = ("no small talk" if config.small_talk_only and not small_talk(user_text)
                 else "unknown words" if self.known_share(user_text) < config.min_known_words
                 else None)
        if unfit:
            seconds = time.perf_counter() - started
            logger.info("generation.reply declined=%r ms=%.0f", unfit, seconds * 1000)
            return GeneratedReply(None, (), seconds, self._model_name)
        earlier = list(history)[-config.history_turns:] if config.history_turns else []
        case = str.lower if self._lowercase else str
        found = self.retrieve(user_text)  # (reply, its corpus turn's cosine to the message)
        hints: list[str | None] = ([r for r, _ in found] if self._hints else []) or [None]
        if self._chat:
            prompts = [chat_prompt(self._tokenizer, user_text, earlier,
                                   self._window - config.max_new_tokens,
                                   system=config.system_prompt,
                                   shots=self.shots(user_text, query))]
        else:
            prompts = [build_prompt(self._tokenizer, case(user_text), [case(t) for t in earlier],
                                    self._window - config.max_new_tokens,
                                    exemplar=case(h) if h is not None else None) for h in hints]
        n = 1 if config.temperature == 0 else config.n_candidates
        boost = topic_token_ids(self._tokenizer, case(user_text)) if config.topic_boost else []
        samples = sample_prompts(self._lm, self._tokenizer,
                                 [prompts[i % len(prompts)] for i in range(n)], config,
                                 self._stop_ids, seed=seed if seed is not None else config.seed,
                                 boost_ids=boost)
        retrieved = found if config.exemplar_candidates else []
        samples += [self._as_sample(case(r)) for r, _ in retrieved]

        def slot(i: int) -> int:  # the prompt of candidate i (a retrieved one: its own)
            if i < n:
                return i % len(prompts)
            return i - n if self._hints else 0

        candidates = []
        for i, s in enumerate(samples):
            problems = quality_problems(s.text, s.finished, user_text, config,
                                        self._known_words, self._generic)
            problems += self._unfit(s.text, user_text)
            candidates.append(Candidate(
                s.text, s.finished, problems, exemplar=hints[slot(i)] or "", retrieved=i >= n,
                context_similarity=retrieved[i - n][1] if i >= n else 0.0))
        alive = [(i, c, s) for i, (c, s) in enumerate(zip(candidates, samples)) if c.kept]
        if alive:
            ids = [list(s.token_ids) for _, _, s in alive]
            pad = self._tokenizer.pad_token_id or 0
            # a sampled candidate's log p was taken as it was sampled; a retrieved one's is
            # read after its own prompt (its exemplar's, if any)
            given = [s.logprob for _, _, s in alive]
            others = [k for k, (i, _, _) in enumerate(alive) if i >= n]
            if others:
                scored = reply_logprobs_each(self._lm, [prompts[slot(alive[k][0])]
                                                        for k in others],
                                             [ids[k] for k in others], pad)
                for k, value in zip(others, scored):
                    given[k] = value
            prior = (reply_logprobs(self._lm, self._prior_ids, ids, pad) if config.mmi_weight
                     else given)  # no MMI: skip its pass (mmi reads 0)
            if query is None:  # no written pairs: the message is encoded here, once
                query = encode(self._encoder, [user_text])  # (1, D)
            vectors = encode(self._encoder, [c.text for _, c, _ in alive])  # (N, D)
            sims = [float(v) for v in vectors @ query[0]]  # (N,) cosines
            persona = (persona_similarity(vectors, self._persona)
                       if self._persona is not None else [0.0] * len(alive))
            for (_, c, _), g, p, r, q in zip(alive, given, prior, sims, persona):
                c.mmi, c.relevance, c.likelihood, c.persona = g - p, r, g, q
        ranked = rank(candidates, config, self._min_logprob)
        seconds = time.perf_counter() - started
        text = ranked[0].text if ranked else None
        if text is not None and self._lowercase:
            text = truecase(text)
        logger.info("generation.reply candidates=%d kept=%d ms=%.0f", len(candidates),
                    len(ranked), seconds * 1000)
        return GeneratedReply(text, tuple(candidates), seconds, self._model_name)

    def written(self, user_text: str, query: Any = None) -> list[Candidate]:
        """The replies of the `pairs` written pairs whose message is nearest to `user_text`,
        each one the filters let through for this message and scoring at least
        `pair_min_score` (that message's likeness plus `pair_relevance_weight` times the
        reply's own likeness to `user_text`), best first. With `pair_reciprocal`, only pairs
        whose message has no other pair's message nearer to it than `user_text` is; with
        `pair_same_kind`, only pairs whose message is of the kind of `user_text` (kinds.py),
        and only a message of that kind is a nearer other. With `pair_grounded` and
        `pair_same_mood`, only pairs whose reply takes no detail of its own message that
        `user_text` lacks and whose message is not of the opposite mood (grounding.py)."""
        self.load()
        config = self.sampling
        if self._pairs is None or not user_text.strip():
            return []
        if query is None:
            query = encode(self._encoder, [user_text])  # (1, D)
        rows = self._pairs.search(query, config.pairs)[0]
        same_kind = config.pair_same_kind and bool(self._pair_kinds)
        if same_kind:  # a reply for another kind of message answers something else
            kind = message_kind(user_text)
            rows = [(row, c) for row, c in rows if self._pair_kinds[row].fits(kind)]
        if config.pair_reciprocal:  # no other message (of the same kind) is nearer
            nearest = self._nearest_pairs(same_kind)
            rows = [(row, c) for row, c in rows if c >= nearest[row] - 1e-5]
        rows = [(row, c) for row, c in rows
                if not pair_problems(self._pairs.replies[row], user_text, self.safety)]
        if not rows:
            return []
        relevance = [0.0] * len(rows)
        if config.pair_relevance_weight:
            vectors = encode(self._encoder, [self._pairs.replies[r] for r, _ in rows])  # (k, D)
            relevance = [float(v) for v in vectors @ query[0]]
        scored = sorted(((row, float(c), rel, c + config.pair_relevance_weight * rel)
                         for (row, c), rel in zip(rows, relevance)), key=lambda t: -t[3])
        scored = [t for t in scored if t[3] >= config.pair_min_score]
        if any((config.pair_grounded, config.pair_same_mood, config.pair_same_time,
                config.pair_same_person)):  # only the pairs that would be said
            scored = [t for t in scored if not self.ungrounded(t[0], user_text)]
        return [Candidate(self._pairs.replies[row], True, retrieved=True, written=True,
                          context_similarity=c, relevance=rel, score=score)
                for row, c, rel, score in scored]

    def ungrounded(self, row: int, user_text: str) -> list[str]:
        """Why pair `row`'s reply does not answer `user_text` (grounding.py): a detail of
        its own message the guest did not give (`pair_grounded`), the opposite mood
        (`pair_same_mood`), a reply looking back at a plan or ahead at news (`pair_same_time`),
        another person than the guest's (`pair_same_person`); [] when none."""
        config = self.sampling
        if self._pairs is None or not self._pair_kinds:  # no messages saved (an older index)
            return []
        message, reply = str(self._pairs.contexts[row]), self._pairs.replies[row]
        problems: list[str] = []
        if config.pair_grounded:
            similarity = None
            if config.pair_word_similarity < 1.0:
                with self._lock:
                    if self._words is None:
                        self._words = WordVectors(self._encoder)
                similarity = self._words.similarity
            problems += [f"detail {w}" for w in borrowed_details(
                reply, message, user_text, similarity, config.pair_word_similarity)]
        if config.pair_same_mood and opposite_moods(message, user_text):
            problems.append("mood")
        if config.pair_same_time and time_clash(message, reply, user_text):
            problems.append("time")
        if config.pair_same_person:
            problems += person_problems(reply, user_text)
        return problems

    def _nearest_pairs(self, same_kind: bool) -> Any:
        """(n,) each pair message's cosine to its nearest other (of the same kind)."""
        with self._lock:
            if same_kind not in self._pair_nearest:
                self._pair_nearest[same_kind] = self._nearest_of(same_kind)
            return self._pair_nearest[same_kind]

    def _nearest_of(self, same_kind: bool) -> Any:
        """nearest_other over the pairs (the caller holds the lock)."""
        return nearest_other(self._pairs, self._pair_kinds if same_kind else None)

    def _unfit(self, reply: str, user_text: str) -> list[str]:
        """The safety filter's problems, what a concierge would not say (when
        `sampling.concierge_filter`) and a reply in the opposite mood to the message."""
        problems = self.safety.problems(reply, user_text)
        if self.sampling.concierge_filter:
            problems += concierge_problems(reply, user_text)
        if mood_clash(reply, user_text):
            problems.append("mood")
        return problems

    def _as_sample(self, text: str) -> Any:
        """An exemplar as a candidate: its tokens as the model would have ended them."""
        from generation.sampler import Sample

        ids = self._tokenizer(f" {text}\n", add_special_tokens=False)["input_ids"]
        return Sample(text, True, tuple(ids))

    def known_share(self, user_text: str) -> float:
        """The share of the message's words (of two letters or more) that are words of the
        encoder's vocabulary; 1.0 when the encoder has none to ask."""
        if self._vocabulary is None:
            vocabulary = getattr(self._encoder, "vocabulary", None)
            self._vocabulary = vocabulary() if callable(vocabulary) else frozenset()
        words = [w.lower() for w in _LETTERS.findall(user_text)]
        words = [w for w in words if len(w) >= 2] or words
        if not self._vocabulary:
            return 1.0
        return sum(w in self._vocabulary for w in words) / len(words) if words else 0.0

    def shots(self, user_text: str, query: Any = None) -> list[tuple[str, str]]:
        """The `sampling.shots` written pairs whose message is nearest to `user_text` (whose
        embedding `query` is, when given), as (message, reply), nearest last: a chat model's
        few-shot turns."""
        self.load()
        want = self.sampling.shots
        if self._pairs is None or not want or not self._pairs.contexts or not user_text.strip():
            return []
        if query is None:
            query = encode(self._encoder, [user_text])  # (1, D)
        rows = self._pairs.search(query, want)[0]
        return [(str(self._pairs.contexts[r]), self._pairs.replies[r]) for r, _ in reversed(rows)]

    def exemplars(self, user_text: str) -> list[str]:
        """Up to `sampling.exemplars` replies people gave to the turns of the exemplar index
        nearest to `user_text`, each one the safety filter lets through for this message,
        best first ([] for a model without an exemplar index)."""
        return [reply for reply, _ in self.retrieve(user_text)]

    def retrieve(self, user_text: str) -> list[tuple[str, float]]:
        """The exemplars with the cosine of the corpus turn each answered to `user_text`;
        turns less similar than `sampling.min_context_similarity` are passed over."""
        self.load()
        want = self.sampling.exemplars
        if self._index is None or not want or not user_text.strip():
            return []
        query = encode(self._encoder, [user_text])  # (1, D)
        out: list[tuple[str, float]] = []
        for row, cosine in self._index.search(query, want * 8)[0]:
            if cosine < self.sampling.min_context_similarity:
                break  # best first: the rest are further still
            reply = self._index.replies[row]
            if all(reply != r for r, _ in out) and not self._unfit(reply, user_text):
                out.append((reply, float(cosine)))
            if len(out) == want:
                break
        return out
