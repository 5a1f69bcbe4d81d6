"""Prompt building and bounded sampling. The prompt is the last turns as labelled lines,
ending with "Bot:" (a chat model's: its own chat template, chat_prompt); it is cropped to
the model's window (oldest turns first) so that `max_new_tokens` still fit. Every candidate
stops at the turn boundary (a newline or the end-of-text token; with `one_sentence` also a
sentence's end) or after `max_new_tokens` (then it is marked unfinished)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.config import SamplingConfig
from generation.corpus import content_words, render


@dataclass(frozen=True, slots=True)
class Sample:
    text: str  # the reply, cut at the turn boundary, stripped
    finished: bool  # the model ended the turn itself (not cut by max_new_tokens)
    token_ids: tuple[int, ...]  # generated ids, the turn-ending token included
    logprob: float = field(default=float("-inf"), compare=False)  # mean log p per token of
    # token_ids after the prompt, as the model gave it (before the topic boost, repetition
    # penalty and temperature); a padded batch differs from a lone prompt in its last bits


def build_prompt(tokenizer: Any, user_text: str, history: Sequence[str],
                 max_tokens: int, exemplar: str | None = None) -> list[int]:
    """Token ids of the prompt for a reply to `user_text` after `history` (earlier turns,
    oldest first, alternating and ending with the bot's), after the `exemplar` line when one
    is given. At most `max_tokens` ids: whole old turns are dropped first, then the message's
    first words (the exemplar stays); a prompt still too long keeps its end."""
    turns = [*history, user_text]

    def encode(turns: Sequence[str]) -> list[int]:
        text = render(turns, reply_next=True, exemplar=exemplar)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    ids = encode(turns)
    while len(ids) > max_tokens and len(turns) > 1:
        turns = turns[1:]
        ids = encode(turns)
    words = user_text.split()
    while len(ids) > max_tokens and exemplar is not None and len(words) > 1:
        words = words[1:]  # the message's end says most about what to answer
        ids = encode([" ".join(words)])
    return ids[-max_tokens:]


def chat_prompt(tokenizer: Any, user_text: str, history: Sequence[str], max_tokens: int, *,
                system: str | None = None, shots: Sequence[tuple[str, str]] = ()) -> list[int]:
    """Token ids of a chat model's prompt, in its own chat template: the `system` line, the
    `shots` ((message, reply) pairs shown as earlier turns, nearest last), `history` (earlier
    turns, oldest first, ending with the bot's), the guest's message, then the assistant's
    turn opened. While too long, whole shots go first, then the oldest turns; a prompt still
    too long keeps its end."""
    shots, turns = list(shots), list(history)

    def encode() -> list[int]:
        messages = [{"role": "system", "content": system}] if system else []
        for message, reply in shots:
            messages += [{"role": "user", "content": message},
                         {"role": "assistant", "content": reply}]
        messages += [{"role": "assistant" if (len(turns) - i) % 2 else "user", "content": t}
                     for i, t in enumerate(turns)]
        messages.append({"role": "user", "content": user_text})
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, Mapping):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    ids = encode()
    while len(ids) > max_tokens and (shots or turns):
        if shots:
            shots = shots[1:]
        else:
            turns = turns[1:]
        ids = encode()
    return ids[-max_tokens:]


def sentence_end_ids(tokenizer: Any) -> list[int]:
    """Tokens whose text ends a sentence (".", "!" or "?", a closing quote or bracket after
    it): `SamplingConfig.one_sentence` stops a reply there."""
    ids = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id]).rstrip()
        if text.rstrip("\"')").endswith((".", "!", "?")) and not text.endswith(".."):
            ids.append(token_id)
    return ids


def topic_token_ids(tokenizer: Any, user_text: str) -> list[int]:
    """The tokens that spell the content words of the user's message (corpus.topic_stems'
    words, as they start a word mid-sentence: " games"), pieces under 3 letters left out:
    the tokens `SamplingConfig.topic_boost` favours so that a reply takes up the topic."""
    ids: set[int] = set()
    for word in sorted(content_words(user_text)):
        for token_id in tokenizer(f" {word}", add_special_tokens=False)["input_ids"]:
            if len(tokenizer.decode([token_id]).strip()) >= 3:
                ids.add(int(token_id))
    return sorted(ids)


def sample(lm: Any, tokenizer: Any, prompt_ids: Sequence[int], config: SamplingConfig,
           stop_ids: Sequence[int], seed: int | None = None,
           boost_ids: Sequence[int] = ()) -> list[Sample]:
    """`config.n_candidates` sampled continuations of the prompt (one greedy one when the
    temperature is 0); see sample_prompts."""
    n = 1 if config.temperature == 0 else config.n_candidates
    return sample_prompts(lm, tokenizer, [prompt_ids] * n, config, stop_ids, seed, boost_ids)


def sample_prompts(lm: Any, tokenizer: Any, prompts: Sequence[Sequence[int]],
                   config: SamplingConfig, stop_ids: Sequence[int], seed: int | None = None,
                   boost_ids: Sequence[int] = ()) -> list[Sample]:
    """One sampled continuation of each prompt (greedy when the temperature is 0), each cut
    at its first turn-ending token. `boost_ids` (topic_token_ids) get `config.topic_boost`
    added to their logits. The candidates are one batch (prompts of different lengths are
    padded on the left, masked, their positions counted from their first real token) with
    one key/value cache; the loop ends when every candidate (or `config.enough` of them) has
    ended its turn or after max_new_tokens (a small loop of our own: transformers' generate
    costs about twice as much per token on a small model)."""
    import torch

    generator = torch.Generator(device=lm.device)
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()  # fresh randomness, the global generator untouched
    n = len(prompts)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=lm.device)
    pad = int(stops[0]) if len(stops) else int(tokenizer.pad_token_id or 0)
    ids, mask, positions = left_padded(prompts, pad, lm.device)  # (N, T) each
    done = torch.zeros(n, dtype=torch.bool, device=lm.device)  # (N,)
    new: list[Any] = []
    logprobs: list[Any] = []  # (N,) each step: the model's own log p of the token taken
    boost = torch.tensor(sorted(set(boost_ids)), dtype=torch.long, device=lm.device)
    with torch.inference_mode():
        out = lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                 logits_to_keep=1)
        position = positions[:, -1:]  # (N, 1)
        for _ in range(config.max_new_tokens):
            logits = out.logits[:, -1].float()  # (N, V)
            own = torch.log_softmax(logits, dim=-1)
            if len(boost) and config.topic_boost:
                logits[:, boost] += config.topic_boost
            # only the reply's own tokens are penalised: penalising the prompt's pushed the
            # reply away from the very words of the message it answers
            seen = torch.cat(new, dim=1) if new else None  # (N, t)
            token = _next_token(logits, seen, config, generator)  # (N, 1)
            token[done] = pad  # a finished candidate only pads
            new.append(token)
            logprobs.append(own.gather(1, token).squeeze(1))
            done |= torch.isin(token.squeeze(1), stops)
            if bool(done.all()) or (config.enough and int(done.sum()) >= config.enough):
                break
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)  # (N, T + t)
            position = position + 1
            out = lm(input_ids=token, attention_mask=mask, position_ids=position,
                     past_key_values=out.past_key_values, use_cache=True, logits_to_keep=1)
    rows = torch.cat(new, dim=1).tolist() if new else [[] for _ in range(n)]
    scores = torch.stack(logprobs, dim=1).tolist() if logprobs else [[] for _ in range(n)]
    stop_set = set(stop_ids)
    samples = []
    for row, score in zip(rows, scores):
        end = next((i for i, t in enumerate(row) if t in stop_set), None)
        kept = row if end is None else row[: end + 1]
        text = tokenizer.decode(kept, skip_special_tokens=True).split("\n")[0].strip()
        mean = sum(score[:len(kept)]) / len(kept) if kept else float("-inf")
        samples.append(Sample(text, end is not None, tuple(kept), mean))
    return samples


def left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """(ids, attention mask, position ids), each (N, longest): the rows padded on the left,
    positions counted from each row's first real token."""
    import torch

    longest = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (longest - len(r)) + list(r) for r in rows],
                       dtype=torch.long, device=device)  # (N, T)
    mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows],
                        dtype=torch.long, device=device)  # (N, T)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)  # (N, T)
    return ids, mask, positions


def _next_token(logits: Any, seen: Any, config: SamplingConfig, generator: Any) -> Any:
    """(N, 1) next tokens: repetition penalty on the tokens seen, then greedy, or temperature,
    top-k and top-p (nucleus) sampling. With top_k, the top-p cut and the draw run over the k
    best tokens only: the same distribution, without sorting a whole vocabulary (49k tokens
    for SmolLM2: 3 ms a step)."""
    import torch

    if config.repetition_penalty != 1.0 and seen is not None:
        picked = logits.gather(1, seen)  # (N, T)
        picked = torch.where(picked > 0, picked / config.repetition_penalty,
                             picked * config.repetition_penalty)
        logits = logits.scatter(1, seen, picked)
    if config.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / config.temperature
    order = None
    if 0 < config.top_k < logits.shape[-1]:
        logits, order = torch.topk(logits, config.top_k, dim=-1)  # (N, k), best first
    else:
        logits, order = torch.sort(logits, descending=True, dim=-1)  # (N, V)
    if config.top_p < 1.0:
        probs = torch.softmax(logits, dim=-1)
        drop = probs.cumsum(dim=-1) - probs > config.top_p  # keep the first
        logits = logits.masked_fill(drop, float("-inf"))
    choice = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
    return order.gather(1, choice)


def reply_logprobs(lm: Any, prefix_ids: Sequence[int],
                   replies: Sequence[Sequence[int]], pad_id: int) -> list[float]:
    """Mean log-probability per token of each reply after `prefix_ids` (one batched pass)."""
    return reply_logprobs_each(lm, [prefix_ids] * len(replies), replies, pad_id)


def reply_logprobs_each(lm: Any, prefixes: Sequence[Sequence[int]],
                        replies: Sequence[Sequence[int]], pad_id: int) -> list[float]:
    """Mean log-probability per token of each reply after its own prefix (one batched pass:
    prefixes padded on the left, replies on the right)."""
    import torch

    if not replies:
        return []
    longest = max(len(r) for r in replies)
    rows = [list(p) + list(r) + [pad_id] * (longest - len(r)) for p, r in zip(prefixes, replies)]
    ids, mask, positions = left_padded(rows, pad_id, lm.device)  # (N, P + R)
    width = ids.shape[1]
    for i, reply in enumerate(replies):  # the right padding of the reply is masked too
        mask[i, width - (longest - len(reply)):] = 0
    with torch.inference_mode():
        logits = lm(input_ids=ids, attention_mask=mask,
                    position_ids=positions).logits.float()  # (N, P + R, V)
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t + 1
    picked = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (N, P + R - 1)
    start = width - longest - 1  # every reply starts right after the (left-padded) prefix
    out = []
    for i, reply in enumerate(replies):
        span = picked[i, start:start + len(reply)]
        out.append(float(span.mean()) if len(reply) else float("-inf"))
    return out
