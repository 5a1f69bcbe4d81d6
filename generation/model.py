"""The generator's language model: a GPT-2 (`GPT2LMHeadModel`) built from scratch from a
ModelConfig, or any causal LM loaded by id or path (gpt2, distilgpt2, a user's own)."""

from __future__ import annotations

import json
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
    """(model, tokenizer) of a causal LM directory or id, resolved offline first (resolver;
    a packaged GGUF file is read dequantised), in eval mode on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from resolver import ModelNotFoundError, packaged_gguf, resolve_model

    gguf = packaged_gguf(model)
    try:
        path = gguf.parent if gguf is not None else resolve_model(model)
    except ModelNotFoundError as exc:
        raise ModelLoadError(str(exc)) from exc
    extra = {"gguf_file": gguf.name} if gguf is not None else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **extra)
        lm = AutoModelForCausalLM.from_pretrained(str(path), **extra).to(device).eval()
    except (OSError, ValueError, ImportError) as exc:
        raise ModelLoadError(f"Cannot load the causal LM at {path} (generation model "
                             f"'{model}'): {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer


def model_type(model: str) -> str | None:
    """The `model_type` of a causal LM directory or id, read from its config alone ("llama"
    for a packaged GGUF file); None when it is not found here or has no readable config."""
    from resolver import PACKAGED_GGUF, ModelNotFoundError, packaged_gguf, resolve_model

    if model in PACKAGED_GGUF:
        return "llama" if packaged_gguf(model) is not None else None
    try:
        path = resolve_model(model)
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ModelNotFoundError, OSError, ValueError):
        return None
    value = config.get("model_type") if isinstance(config, dict) else None
    return str(value) if value else None


def context_window(lm: Any) -> int:
    """Positions the model can attend to (GPT-2 names it n_positions)."""
    config = lm.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def parameter_count(lm: Any) -> int:
    if hasattr(lm, "parameter_count"):  # an OnnxCausalLM: counted at export
        return int(lm.parameter_count)
    return sum(p.numel() for p in lm.parameters())


def save_model(lm: Any, tokenizer: Any, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
