"""MC dropout over the last encoder layers only.

Full MC dropout runs the whole encoder S times. Here the lower layers run once, without dropout,
and only the top `mc_layers` layers (and the head) are sampled: one pass over the lower layers,
then the top layers on the batch repeated S times. With MiniLM-L6, 8 samples on the last layer
cost about 2.2 deterministic passes instead of 8. (Last-layer MC dropout is the usual cheap
variant of Gal & Ghahramani's approximation; the uncertainty comes from the sampled layer.)

The lower part's output and the keyword arguments the model passes to its layers (the prepared
attention mask, in whatever form the attention implementation wants) are captured with a
forward pre-hook on the first sampled layer, which stops the forward there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# Encoders whose last layer output is the model output (no final norm or pooling after the
# stack), so that running the top layers by hand gives last_hidden_state.
_SUPPORTED = frozenset({"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert"})


class _Captured(Exception):
    """Raised by the pre-hook to stop the forward at the first sampled layer."""


def layer_stack(encoder: nn.Module) -> nn.ModuleList | None:
    """The encoder's list of Transformer layers, or None when the architecture is unknown."""
    if getattr(encoder.config, "model_type", None) not in _SUPPORTED:
        return None
    for path in (("encoder", "layer"), ("transformer", "layer")):
        obj: Any = encoder
        for part in path:
            obj = getattr(obj, part, None)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0:
            return obj
    return None


def sampled_states(encoder: nn.Module, batch: dict[str, torch.Tensor], n_samples: int,
                   mc_layers: int) -> torch.Tensor:
    """(S*B, T, H) last hidden states: S dropout samples for each of the B inputs, sample-major
    (rows s*B .. s*B+B-1 are sample s). `mc_layers` <= 0, or an unknown architecture: dropout in
    every layer (the whole batch repeated S times)."""
    layers = layer_stack(encoder)
    if layers is None or mc_layers <= 0 or mc_layers >= len(layers):
        encoder.train(True)
        repeated = {k: v.repeat(n_samples, 1) for k, v in batch.items()}  # (S*B, T)
        states = encoder(**repeated).last_hidden_state
        encoder.eval()
        return states
    top = layers[len(layers) - mc_layers:]
    captured: dict[str, Any] = {}

    def stop(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        captured["args"], captured["kwargs"] = args, kwargs
        raise _Captured

    encoder.eval()
    handle = top[0].register_forward_pre_hook(stop, with_kwargs=True)
    try:
        encoder(**batch)
    except _Captured:
        pass
    finally:
        handle.remove()
    size = batch["input_ids"].shape[0]
    args = [_repeat(a, n_samples, size) for a in captured["args"]]
    kwargs = {k: _repeat(v, n_samples, size) for k, v in captured["kwargs"].items()}
    for layer in top:
        layer.train(True)
        out = layer(*args, **kwargs)
        hidden = out[0] if isinstance(out, tuple) else out
        args = [hidden, *args[1:]]
    encoder.eval()
    return args[0]


def _repeat(value: Any, n: int, size: int) -> Any:
    """Tile batch-first tensors S times along the batch; anything else passes through."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == size:
        return value.repeat(n, *([1] * (value.dim() - 1)))
    return value
