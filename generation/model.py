"""The generator's language model: a GPT-2 (`GPT2LMHeadModel`) built from scratch from a
ModelConfig, or any causal LM loaded by id or path (gpt2, distilgpt2, a user's own)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from generation.config import ModelConfig
from generation.errors import ModelLoadError


def build_gpt2(config: ModelConfig, tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised GPT2LMHeadModel sized by `config` for `tokenizer`'s vocabulary
    (input and output embeddings tied, as in GPT-2)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    gpt2 = GPT2Config(vocab_size=len(tokenizer), n_positions=config.n_positions,
                      n_embd=config.n_embd, n_layer=config.n_layer, n_head=config.n_head,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(gpt2)


def load_causal_lm(model: str, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM directory or id, resolved offline first (resolver),
    in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from resolver import ModelNotFoundError, resolve_model

    try:
        path = resolve_model(model)
    except ModelNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        lm = AutoModelForCausalLM.from_pretrained(str(path)).to(device).eval()
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot load the causal LM at {path} (generation model "
                             f"'{model}'): {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def context_window(lm: Any) -> int:
    """Positions the model can attend to (GPT-2 names it n_positions)."""
    config = lm.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def parameter_count(lm: Any) -> int:
    return sum(p.numel() for p in lm.parameters())


def save_model(lm: Any, tokenizer: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
