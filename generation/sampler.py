"""Prompt building and bounded sampling. The prompt is the last turns as labelled lines,
ending with "Bot:"; it is cropped to the model's window (oldest turns first) so that
`max_new_tokens` still fit. Every candidate stops at the turn boundary (a newline or the
end-of-text token) or after `max_new_tokens` (then it is marked unfinished)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generation.config import SamplingConfig
from generation.corpus import render


@dataclass(frozen=True, slots=True)
class Sample:
    text: str  # the reply, cut at the turn boundary, stripped
    finished: bool  # the model ended the turn itself (not cut by max_new_tokens)
    token_ids: tuple[int, ...]  # generated ids, the turn-ending token included


def build_prompt(tokenizer: Any, user_text: str, history: Sequence[str],
                 max_tokens: int) -> list[int]:
    """Token ids of the prompt for a reply to `user_text` after `history` (earlier turns,
    oldest first, alternating and ending with the bot's). At most `max_tokens` ids: whole old
    turns are dropped first; a user message longer than the window keeps its end."""
    turns = [*history, user_text]
    while True:
        ids = tokenizer(render(turns, reply_next=True), add_special_tokens=False)["input_ids"]
        if len(ids) <= max_tokens or len(turns) == 1:
            return list(ids[-max_tokens:])
        turns = turns[1:]


def sample(lm: Any, tokenizer: Any, prompt_ids: Sequence[int], config: SamplingConfig,
           stop_ids: Sequence[int], seed: int | None = None) -> list[Sample]:
    """`config.n_candidates` sampled continuations of the prompt (one greedy one when the
    temperature is 0), each cut at its first turn-ending token."""
    import torch
    from transformers import GenerationConfig

    if seed is not None:
        torch.manual_seed(seed)
    greedy = config.temperature == 0
    options: dict[str, Any] = {
        "max_new_tokens": config.max_new_tokens, "eos_token_id": list(stop_ids),
        "pad_token_id": tokenizer.pad_token_id, "do_sample": not greedy,
        "repetition_penalty": config.repetition_penalty,
        "num_return_sequences": 1 if greedy else config.n_candidates}
    if not greedy:
        options.update(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p)
    inputs = torch.tensor([list(prompt_ids)], dtype=torch.long, device=lm.device)  # (1, T)
    with torch.inference_mode():
        out = lm.generate(inputs, attention_mask=torch.ones_like(inputs),
                          generation_config=GenerationConfig(**options))  # (N, T + new)
    stops = set(stop_ids)
    samples = []
    for row in out[:, inputs.shape[1]:].tolist():
        end = next((i for i, t in enumerate(row) if t in stops), None)
        ids = row if end is None else row[: end + 1]
        text = tokenizer.decode(ids, skip_special_tokens=True).split("\n")[0].strip()
        samples.append(Sample(text, end is not None, tuple(ids)))
    return samples


def reply_logprobs(lm: Any, prefix_ids: Sequence[int],
                   replies: Sequence[Sequence[int]], pad_id: int) -> list[float]:
    """Mean log-probability per token of each reply after `prefix_ids` (one batched pass)."""
    import torch

    if not replies:
        return []
    longest = max(len(r) for r in replies)
    rows = [list(prefix_ids) + list(r) + [pad_id] * (longest - len(r)) for r in replies]
    ids = torch.tensor(rows, dtype=torch.long, device=lm.device)  # (N, P + R)
    mask = torch.tensor([[1] * (len(prefix_ids) + len(r)) + [0] * (longest - len(r))
                         for r in replies], dtype=torch.long, device=lm.device)
    with torch.inference_mode():
        logits = lm(input_ids=ids, attention_mask=mask).logits.float()  # (N, P + R, V)
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t + 1
    picked = logprobs.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)  # (N, P + R - 1)
    start = len(prefix_ids) - 1
    out = []
    for i, reply in enumerate(replies):
        span = picked[i, start:start + len(reply)]
        out.append(float(span.mean()) if len(reply) else float("-inf"))
    return out
