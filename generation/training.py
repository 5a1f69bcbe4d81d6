"""Train the generator from scratch: byte-level BPE tokenizer, then a small GPT-2 on short
(previous turn, reply) pairs of the conversations (or whole conversations), packed into
blocks of `n_positions` tokens, for a wall-clock budget. The held-out conversations give the
perplexity (per BPE token of this tokenizer, so it compares only between models with the
same tokenizer and corpus) and the fluency gate: how likely the model finds human replies.

    out/                     what Generator.load reads
      generation.json        manifest: model ".", sampling settings, the training report
      words.txt              the corpus's known words (replies made of other "words" are
                             dropped: a small model spells badly)
      generic.txt            the corpus's most frequent replies ("me too"), one per line:
                             candidates that are one of them are dropped
      config.json, model.safetensors, tokenizer.json, ...
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from generation.config import ModelConfig, SamplingConfig, TrainingConfig
from generation.corpus import (EXEMPLAR, Conversation, frequent_replies, on_topic, render,
                               reply_key, reply_pairs, split)
from generation.errors import CorpusError
from generation.exemplars import ExemplarIndex, encode, exemplar_pairs, retrieval_pairs
from generation.generator import GENERIC_FILE, WORDS_FILE, write_manifest
from generation.pairs import save_pairs
from generation.rerank import words_of
from generation.model import build_gpt2, parameter_count, save_model
from generation.tokenizer import END, train_tokenizer

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class GenerationReport:
    """What a training run did and how good the result is."""

    corpus: dict[str, int] = field(default_factory=dict)
    train_tokens: int = 0
    heldout_tokens: int = 0
    parameters: int = 0
    vocab_size: int = 0
    steps: int = 0
    tokens_seen: int = 0
    seconds: float = 0.0
    final_loss: float = float("nan")
    heldout_perplexity: float = float("nan")
    reply_logprob_quantiles: dict[str, float] = field(default_factory=dict)  # held-out replies
    fluency_floor: float | None = None  # the gate: their 25th percentile (mean log p / token)
    exemplar_prompts: bool = False  # the model was trained with an exemplar before each pair
    # (the generator puts one in its prompts); False with a retrieve-only index
    index_seconds: float = 0.0  # building the exemplar index (MiniLM over the contexts)
    out_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_generator(conversations: Sequence[Conversation], out: Path, *,
                    model: ModelConfig | None = None, training: TrainingConfig | None = None,
                    sampling: SamplingConfig | None = None,
                    vocabulary_texts: Iterable[str] = (),
                    own_pairs: Sequence[Conversation] = (), encoder: Any = None,
                    written_pairs: Sequence[tuple[str, str]] = (),
                    progress: bool = True) -> GenerationReport:
    """Train tokenizer and GPT-2 on `conversations` and save them with the manifest in `out`.
    `own_pairs` (the assistant's own small talk) are trained on as they are, repeated
    `assistant_weight` times; `vocabulary_texts` (documents, responses) only shape the
    tokenizer's vocabulary. With `training.exemplars` (pairs only) every pair is trained after
    a retrieved exemplar (exemplars.py); `encoder` (default: MiniLM) embeds the contexts.
    `written_pairs` (guest message, reply in the concierge's voice) are indexed (pairs.py)
    and said as they are when the guest's message is near one; with
    `training.language_model` false only they are built, in seconds."""
    import torch

    model = model if model is not None else ModelConfig()
    training = training if training is not None else TrainingConfig()
    sampling = sampling if sampling is not None else SamplingConfig()
    started = time.perf_counter()
    if not training.language_model:
        return _pairs_only(written_pairs, out, sampling, encoder, started)
    corpus = split(conversations, training.heldout_fraction)
    generic = frequent_replies(corpus.train, training.generic_replies, training.max_reply_words)
    train, heldout = corpus.train, corpus.heldout
    threads = torch.get_num_threads()
    torch.set_num_threads(training.threads)  # embedding, training and scoring; restored after
    try:
        if training.pairs:
            options = {"max_reply_words": training.max_reply_words,
                       "max_context_words": training.max_context_words,
                       "min_word_count": training.min_word_count,
                       "lowercase": training.lowercase}
            train = tuple(emphasise(reply_pairs(train, **options), training, generic))
            heldout = tuple(reply_pairs(heldout, **{**options, "min_word_count": 1}))
        index, train_hints, heldout_hints = None, None, None
        building = time.perf_counter()
        if training.pairs and training.exemplars:
            index, train_hints, heldout_hints = _exemplars(train, heldout, training, generic,
                                                           encoder, progress)
        elif training.pairs and training.retrieval_index:
            index = _retrieval_index(train, training, generic, encoder, progress)
        index_seconds = time.perf_counter() - building
        case = str.lower if training.lowercase else str

        def text_of(conv: Conversation, hint: str | None = None) -> str:
            return render([case(t) for t in conv.turns],
                          exemplar=case(hint) if hint is not None else None)

        own = [text_of(c) for c in own_pairs] * training.assistant_weight
        texts = [text_of(c, train_hints[i] if train_hints else None)
                 for i, c in enumerate(train)] + own
        heldout_texts = [text_of(c, heldout_hints[i] if heldout_hints else None)
                         for i, c in enumerate(heldout)]
        random.Random(training.seed).shuffle(texts)  # own pairs spread through the blocks
        vocabulary = [case(t) for t in vocabulary_texts]
        tokenizer = train_tokenizer([*texts, *vocabulary], model.vocab_size)
        blocks_of = pack_blocks if train_hints is not None else encode_blocks
        train_blocks = blocks_of(tokenizer, texts, model.n_positions)  # (ids, labels)
        heldout_blocks = (pack_blocks(tokenizer, heldout_texts, model.n_positions, False)
                          if train_hints is not None
                          else encode_blocks(tokenizer, heldout_texts, model.n_positions))
        heldout_blocks = (heldout_blocks[0][: training.eval_blocks],
                          heldout_blocks[1][: training.eval_blocks])
        stats = {**corpus.stats(), "train_texts": len(texts), "heldout_texts": len(heldout),
                 "own_pairs": len(own_pairs), "exemplars": len(index) if index else 0}
        report = GenerationReport(corpus=stats, train_tokens=int((train_blocks[1] >= 0).sum()),
                                  heldout_tokens=int((heldout_blocks[1] >= 0).sum()),
                                  vocab_size=len(tokenizer), out_dir=str(out),
                                  exemplar_prompts=train_hints is not None,
                                  index_seconds=round(index_seconds, 1))
        lm = build_gpt2(model, tokenizer, seed=training.seed)
        report.parameters = parameter_count(lm)
        _train_and_score(lm, tokenizer, train_blocks, heldout_blocks, heldout, heldout_hints,
                         training, report, progress, sampling.max_new_tokens)
    finally:
        torch.set_num_threads(threads)
    save_model(lm, tokenizer, out)
    if index is not None:
        index.save(out)
    if written_pairs:
        report.corpus["written_pairs"] = save_pairs(written_pairs, out, encoder)
    write_words(out, texts)
    write_generic(out, generic)
    report.seconds = time.perf_counter() - started
    write_manifest(out, model=".", sampling=sampling, report=report.to_dict(),
                   lowercase=training.lowercase)
    logger.info("generation.train.done steps=%d loss=%.3f heldout_ppl=%.1f seconds=%.0f",
                report.steps, report.final_loss, report.heldout_perplexity, report.seconds)
    return report


def _pairs_only(written_pairs: Sequence[tuple[str, str]], out: Path, sampling: SamplingConfig,
                encoder: Any, started: float) -> GenerationReport:
    """No language model: the written pairs' index and a manifest whose model is None."""
    if not written_pairs:
        raise CorpusError("language_model: false needs written small-talk pairs "
                          "(config.yml generation.pairs): there would be nothing to say.")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors", "exemplars.npy", "exemplars.json"):
        (out / stale).unlink(missing_ok=True)  # a GPT-2 trained here before is not loaded
    report = GenerationReport(out_dir=str(out))
    report.corpus = {"written_pairs": save_pairs(written_pairs, out, encoder)}
    report.seconds = time.perf_counter() - started
    write_manifest(out, model=None, sampling=sampling, report=report.to_dict())
    logger.info("generation.train.pairs_only pairs=%d seconds=%.1f",
                report.corpus["written_pairs"], report.seconds)
    return report


def _exemplars(train: Sequence[Conversation], heldout: Sequence[Conversation],
               training: TrainingConfig, generic: Sequence[str], encoder: Any,
               progress: bool) -> tuple[ExemplarIndex, list[str], list[str]]:
    """The exemplar index of the training pairs, and the exemplar of every training pair (a
    reply to one of its `exemplar_neighbours` nearest contexts of other conversations, or,
    `exemplar_gold_rate` of the time, its own reply) and of every held-out pair (the nearest
    one's reply)."""
    if encoder is None:
        from retrieval.embedder import get_embedder

        from generation.generator import DEFAULT_ENCODER
        encoder = get_embedder(DEFAULT_ENCODER, device="cpu")
    contexts = sorted({c.turns[0] for c in (*train, *heldout)})
    logger.info("generation.exemplars.embed contexts=%d", len(contexts))
    vectors = embed(encoder, contexts, progress)
    row = {text: i for i, text in enumerate(contexts)}
    kept = exemplar_pairs(train, generic)
    index = ExemplarIndex(vectors[[row[p.turns[0]] for p in kept]],
                          tuple(p.turns[1] for p in kept),
                          tuple(p.id.split("/")[0] for p in kept),
                          str(getattr(encoder, "name", "")), tuple(p.turns[0] for p in kept))
    rng = random.Random(training.seed)
    hits = index.search(vectors[[row[c.turns[0]] for c in train]], training.exemplar_neighbours,
                        exclude=[c.id.split("/")[0] for c in train])
    train_hints = [conv.turns[1] if rng.random() < training.exemplar_gold_rate or not found
                   else index.replies[rng.choice(found)[0]]
                   for conv, found in zip(train, hits)]
    held = index.search(vectors[[row[c.turns[0]] for c in heldout]], 1)
    heldout_hints = [index.replies[found[0][0]] if found else conv.turns[1]
                     for conv, found in zip(heldout, held)]
    return index, train_hints, heldout_hints


def _retrieval_index(train: Sequence[Conversation], training: TrainingConfig,
                     generic: Sequence[str], encoder: Any, progress: bool) -> ExemplarIndex:
    """The retrieve-only index: the training pairs whose reply may be said as it is
    (exemplars.retrieval_pairs, at most `index_limit` contexts), each context embedded once."""
    if encoder is None:
        from retrieval.embedder import get_embedder

        from generation.generator import DEFAULT_ENCODER
        encoder = get_embedder(DEFAULT_ENCODER, device="cpu")
    pairs = retrieval_pairs(train, generic, training.index_limit, training.seed)
    logger.info("generation.exemplars.retrieval pairs=%d", len(pairs))
    return ExemplarIndex.of_pairs(encoder, pairs,
                                  lambda enc, texts: embed(enc, texts, progress))


def embed(encoder: Any, texts: Sequence[str], progress: bool, chunk: int = 2048) -> Any:
    """(len(texts), D) float32 unit rows, embedded a chunk at a time under a progress bar."""
    import numpy as np
    from tqdm.auto import tqdm

    parts = [encode(encoder, texts[start:start + chunk])
             for start in tqdm(range(0, len(texts), chunk), desc="generation exemplars",
                               unit="chunk", disable=not progress)]
    return np.concatenate(parts) if parts else encode(encoder, [])


def _train_and_score(lm: Any, tokenizer: Any, train_blocks: tuple[Any, Any],
                     heldout_blocks: tuple[Any, Any], heldout: Sequence[Conversation],
                     heldout_hints: Sequence[str] | None, training: TrainingConfig,
                     report: GenerationReport, progress: bool, max_new_tokens: int) -> None:
    """Fit the model, then fill the report's held-out figures."""
    logger.info("generation.train.start train_texts=%d train_tokens=%d parameters=%d "
                "budget_s=%.0f", report.corpus["train_texts"], report.train_tokens,
                report.parameters, training.budget_s)
    report.steps, report.final_loss = _fit(lm, train_blocks, training, progress)
    batch = min(training.batch_size, len(train_blocks[0]))
    report.tokens_seen = report.steps * batch * int(train_blocks[0].shape[1])
    report.heldout_perplexity = heldout_perplexity(lm, heldout_blocks, training.batch_size)
    if training.pairs:
        some = training.eval_blocks * 2
        quantiles = reply_logprob_quantiles(lm, tokenizer, heldout[:some],
                                            int(heldout_blocks[0].shape[1]), max_new_tokens,
                                            heldout_hints[:some] if heldout_hints else None)
        report.reply_logprob_quantiles = quantiles
        report.fluency_floor = quantiles.get("25")


def emphasise(pairs: Sequence[Conversation], training: TrainingConfig,
              generic: Sequence[str]) -> list[Conversation]:
    """The training pairs with generic replies left out (drop_generic_pairs) and the pairs
    whose reply takes up their context's topic repeated `related_weight` times."""
    dropped = frozenset(generic) if training.drop_generic_pairs else frozenset()
    out = []
    for pair in pairs:
        if reply_key(pair.turns[1]) in dropped:
            continue
        repeat = training.related_weight if on_topic(*pair.turns[:2]) else 1
        out.extend([pair] * repeat)
    return out


def write_words(out: Path, texts: Iterable[str], min_count: int = 3) -> Path:
    """words.txt: every word seen at least `min_count` times, one per line."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(words_of(text))
    path = out / WORDS_FILE
    path.write_text("\n".join(sorted(w for w, n in counts.items() if n >= min_count)) + "\n",
                    encoding="utf-8")
    return path


def write_generic(out: Path, replies: Sequence[str]) -> Path:
    """generic.txt: the generic replies (corpus.reply_key form), one per line."""
    path = out / GENERIC_FILE
    path.write_text("".join(f"{r}\n" for r in replies), encoding="utf-8")
    return path


def encode_blocks(tokenizer: Any, texts: Sequence[str], block: int) -> tuple[Any, Any]:
    """(ids, labels), each (n_blocks, block): the texts joined by the end-of-text token, cut
    into blocks (the last partial block is dropped); every token is a label."""
    import torch

    ids: list[int] = []
    for encoded in tokenizer([t + END for t in texts], add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
    n_blocks = len(ids) // block
    if n_blocks == 0:
        raise CorpusError(f"The corpus has {len(ids)} tokens, fewer than one block of {block}.")
    blocks = torch.tensor(ids[: n_blocks * block], dtype=torch.long).view(n_blocks, block)
    return blocks, blocks.clone()


def pack_blocks(tokenizer: Any, texts: Sequence[str], block: int,
                learn_exemplar: bool = True) -> tuple[Any, Any]:
    """(ids, labels), each (n_blocks, block): whole texts (each ended by the end-of-text
    token) packed into blocks, the rest of a block padded and its labels -100 (not learnt);
    a text longer than a block is left out. An exemplar is never cut from its reply. Without
    `learn_exemplar` the exemplar line is not a label either (a held-out perplexity of the
    exchange given its exemplar, comparable with one of a model trained without them)."""
    import torch

    pad = int(tokenizer.eos_token_id or 0)
    encoded = tokenizer([t + END for t in texts], add_special_tokens=False)["input_ids"]
    heads = [t[: t.index("\n") + 1] if t.startswith(EXEMPLAR) and "\n" in t else ""
             for t in texts]  # the byte-level pre-tokenizer never merges across the newline
    skip = ([0] * len(texts) if learn_exemplar else
            [len(ids) for ids in tokenizer(heads, add_special_tokens=False)["input_ids"]])
    rows: list[tuple[list[int], list[int]]] = []
    current: tuple[list[int], list[int]] = ([], [])
    for ids, n in zip(encoded, skip):
        if len(ids) > block:
            continue
        if len(current[0]) + len(ids) > block:
            rows.append(current)
            current = ([], [])
        current[0].extend(ids)
        current[1].extend([-100] * n + list(ids[n:]))
    if current[0]:
        rows.append(current)
    if not rows:
        raise CorpusError(f"No text of the corpus fits a block of {block} tokens.")
    ids = torch.tensor([r + [pad] * (block - len(r)) for r, _ in rows], dtype=torch.long)
    labels = torch.tensor([t + [-100] * (block - len(t)) for _, t in rows], dtype=torch.long)
    return ids, labels  # (n_blocks, block) each


def _fit(lm: Any, data: tuple[Any, Any], training: TrainingConfig,
         progress: bool) -> tuple[int, float]:
    """Train until the budget or max_steps; (steps, mean loss of the last 20 steps)."""
    import torch
    from tqdm.auto import tqdm

    blocks, labels = data
    rng = random.Random(training.seed)
    torch.manual_seed(training.seed)
    decay = [p for n, p in lm.named_parameters() if p.dim() >= 2]
    other = [p for n, p in lm.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": training.weight_decay},
                                   {"params": other, "weight_decay": 0.0}], lr=training.lr,
                                  betas=(0.9, 0.95))
    lm.train()
    started = time.perf_counter()
    losses: list[float] = []
    step = 0
    bar = tqdm(total=training.max_steps, desc="generation", unit="step", disable=not progress)
    while True:
        elapsed = time.perf_counter() - started
        done = max(elapsed / training.budget_s,
                   step / training.max_steps if training.max_steps is not None else 0.0)
        if done >= 1.0:
            break
        warmup = min(1.0, (step + 1) / training.warmup_steps)
        lr = training.lr * warmup * (0.1 + 0.45 * (1.0 + math.cos(math.pi * done)))  # cosine
        for group in optimizer.param_groups:
            group["lr"] = lr
        picked = rng.sample(range(len(blocks)), min(training.batch_size, len(blocks)))
        batch = blocks[picked]
        loss = lm(input_ids=batch, attention_mask=torch.ones_like(batch),
                  labels=labels[picked]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", left_s=f"{training.budget_s - elapsed:.0f}")
    bar.close()
    lm.eval()
    tail = losses[-20:]
    return step, (sum(tail) / len(tail) if tail else float("nan"))


def reply_logprob_quantiles(lm: Any, tokenizer: Any, pairs: Sequence[Conversation],
                            window: int, max_new_tokens: int,
                            hints: Sequence[str] | None = None) -> dict[str, float]:
    """Percentiles (10, 25, 50) of the mean log-probability per token of the held-out
    human replies after their context (and exemplar, `hints`), scored as the generator scores
    a candidate (the prompt cropped to the window, replies longer than `max_new_tokens` left
    out). A sampled reply less likely than most human ones is not fluent enough to say."""
    from generation.sampler import build_prompt, reply_logprobs

    scores: list[float] = []
    pad = int(tokenizer.pad_token_id or 0)
    for i, conv in enumerate(pairs):
        if len(conv.turns) < 2:
            continue
        context, reply = conv.turns[:2]
        ids = tokenizer(f" {reply}\n", add_special_tokens=False)["input_ids"]
        if len(ids) > max_new_tokens:
            continue
        prompt = build_prompt(tokenizer, context, [], window - max_new_tokens,
                              exemplar=hints[i] if hints else None)
        scores.extend(reply_logprobs(lm, prompt, [ids], pad))
    scores.sort()
    if not scores:
        return {}
    return {str(q): round(scores[min(len(scores) - 1, len(scores) * q // 100)], 4)
            for q in (10, 25, 50)}


def heldout_perplexity(lm: Any, data: tuple[Any, Any], batch_size: int = 16) -> float:
    """exp(mean next-token loss) over the held-out blocks' labelled tokens."""
    import torch

    blocks, labels = data
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(blocks), batch_size):
            batch, target = blocks[start:start + batch_size], labels[start:start + batch_size]
            n = int((target[:, 1:] >= 0).sum())  # next-token predictions in the batch
            if not n:
                continue
            total += float(lm(input_ids=batch, attention_mask=torch.ones_like(batch),
                              labels=target).loss) * n
            count += n
    return math.exp(total / count) if count else float("nan")
