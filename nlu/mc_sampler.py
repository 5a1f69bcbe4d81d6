"""MC-dropout samples of the joint model's intent, from the word states below the top layers.

The ONNX graph (nlu/onnx_encoder.py) runs the deterministic pass and returns the word states
below the top `mc_layers` layers. `DropoutSampler` runs those top layers and the intent head S
times with dropout on, on the word tokens alone (words never attend to the entity tokens, so
this is exact). It holds only those layers' weights, as plain tensors, and needs no
transformers model class: a server on the ONNX runtime never builds the full PyTorch encoder.

The first sampled layer reads the same input in every sample, so its query, key and value
projections and its attention scores are computed once; the samples differ from the dropout
on the attention probabilities on (the layer is BERT's, as LUKE's word stream runs it).

The matrix products may run in bfloat16 (`precision`): on a CPU with bfloat16 instructions
(avx512_bf16, AMX) they take half the time of float32 (the sampled layer was 4.4 of a 15-word
parse's 20 ms; the parse is about 1.1 ms faster, rows padded and blocked as below). Residuals,
LayerNorm, softmax and dropout stay in float32. "auto" picks bfloat16 only where the CPU has
those instructions (elsewhere bfloat16 is emulated, and slower).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch.nn import functional as F

from nlu.cpu import cpu_has_bf16

# the weights of one layer, under LUKE's names (after "luke.encoder.layer.<i>.")
LAYER_WEIGHTS = ("attention.self.query", "attention.self.key", "attention.self.value",
                 "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
                 "output.dense", "output.LayerNorm")

PRECISIONS = ("auto", "float32", "bfloat16")
def matmul_dtype(precision: str) -> torch.dtype:
    """The dtype of the sampler's matrix products for a `precision` of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if cpu_has_bf16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


class DropoutSampler:
    """Top encoder layers + mean pool + intent head, sampled with dropout."""

    def __init__(self, layers: list[dict[str, torch.Tensor]], head_weight: torch.Tensor,
                 head_bias: torch.Tensor, *, heads: int, eps: float, attention_dropout: float,
                 hidden_dropout: float, head_dropout: float,
                 dtype: torch.dtype = torch.float32) -> None:
        # the projections' weights in `dtype` (the matrix products' type); LayerNorm's float32
        self.layers = [{k: v.to(dtype) if _is_projection(k) else v.float() for k, v in w.items()}
                       for w in layers]
        self.head_weight, self.head_bias = head_weight, head_bias
        self.dtype = dtype
        self.heads, self.eps = heads, eps
        self.attention_dropout, self.hidden_dropout = attention_dropout, hidden_dropout
        self.head_dropout = head_dropout

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor], first: int, count: int, *,
                   heads: int, eps: float, attention_dropout: float, hidden_dropout: float,
                   head_dropout: float, dtype: torch.dtype = torch.float32) -> DropoutSampler:
        """From the joint model's state dict: layers [first, count) and `intent_head`."""
        layers = []
        for index in range(first, count):
            prefix = f"luke.encoder.layer.{index}."
            layers.append({f"{name}.{part}": state[f"{prefix}{name}.{part}"]
                           for name in LAYER_WEIGHTS for part in ("weight", "bias")})
        return cls(layers, state["intent_head.weight"], state["intent_head.bias"], heads=heads,
                   eps=eps, attention_dropout=attention_dropout, hidden_dropout=hidden_dropout,
                   head_dropout=head_dropout, dtype=dtype)

    def sample(self, low_word: torch.Tensor, attention_mask: torch.Tensor, n_samples: int,
               dropout: bool = True) -> torch.Tensor:
        """(S, B, C) intent logits from (B, T, H) word states and the (B, T) mask. The samples
        draw from torch's global RNG (the caller seeds it). `dropout=False`: the
        deterministic pass (every sample equal), for checks."""
        keys = attention_mask.to(low_word.dtype)  # (B, T)
        additive = ((1.0 - keys) * torch.finfo(low_word.dtype).min)[None, :, None, None, :]
        state = low_word.unsqueeze(0)  # (1, B, T, H): shared until the first dropout
        for layer in self.layers:
            state = self._layer(layer, state, additive, n_samples, dropout)
        weights = keys[None, :, :, None]  # (1, B, T, 1)
        pooled = (state * weights).sum(2) / weights.sum(2).clamp(min=1.0)  # (S, B, H)
        pooled = F.dropout(pooled, self.head_dropout, training=dropout)
        return F.linear(pooled, self.head_weight, self.head_bias)  # (S, B, C)

    def _layer(self, w: dict[str, torch.Tensor], x: torch.Tensor, additive: torch.Tensor,
               n_samples: int, dropout: bool) -> torch.Tensor:
        """One BERT layer on (S or 1, B, T, H) states; returns (S, B, T, H)."""
        s, b, t, h = x.shape
        size = h // self.heads

        def project(name: str, states: torch.Tensor) -> torch.Tensor:  # float32 out
            weight, bias = w[f"{name}.weight"], w[f"{name}.bias"]
            if self.dtype == torch.float32:
                return F.linear(states, weight, bias)
            return _blocked_linear(states, weight, bias)

        def split_heads(states: torch.Tensor) -> torch.Tensor:  # (s, B, heads, T, d)
            return states.view(s, b, t, self.heads, size).transpose(2, 3)

        query = split_heads(project("attention.self.query", x))
        key = split_heads(project("attention.self.key", x))
        value = split_heads(project("attention.self.value", x))
        scores = query @ key.transpose(-1, -2) / math.sqrt(size) + additive
        probs = scores.softmax(-1)  # (s, B, heads, T, T)
        if s == 1 and n_samples > 1:  # the samples part here
            probs = probs.expand(n_samples, -1, -1, -1, -1)
            value = value.expand(n_samples, -1, -1, -1, -1)
        probs = F.dropout(probs, self.attention_dropout, training=dropout)
        context = (probs @ value).transpose(2, 3).reshape(probs.shape[0], b, t, h)
        hidden = F.dropout(project("attention.output.dense", context), self.hidden_dropout,
                           training=dropout)
        attended = F.layer_norm(hidden + x, (h,), w["attention.output.LayerNorm.weight"],
                                w["attention.output.LayerNorm.bias"], self.eps)
        inner = F.gelu(project("intermediate.dense", attended))
        out = F.dropout(project("output.dense", inner), self.hidden_dropout, training=dropout)
        return F.layer_norm(out + attended, (h,), w["output.LayerNorm.weight"],
                            w["output.LayerNorm.bias"], self.eps)


# bfloat16 products: rows padded to a multiple of ROW_STEP, in blocks of at most BLOCK_ROWS, so
# each weight meets at most BLOCK_ROWS / ROW_STEP = 8 shapes (see _blocked_linear)
ROW_STEP, BLOCK_ROWS = 32, 256


def _blocked_linear(states: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                    ) -> torch.Tensor:
    """F.linear in weight's dtype, float32 out. oneDNN keeps about 0.9 MB for every new matrix
    shape it multiplies in bfloat16 (300 batches of varied sizes: +400 MB); padded and in
    blocks, the shapes are few whatever the batch and message lengths (about 30 MB in all)."""
    flat = states.reshape(-1, states.shape[-1]).to(weight.dtype)  # (N, in)
    n = flat.shape[0]
    if n % ROW_STEP:
        flat = F.pad(flat, (0, 0, 0, ROW_STEP - n % ROW_STEP))
    if flat.shape[0] <= BLOCK_ROWS:  # one block (most batches): no split and copy
        out = F.linear(flat, weight, bias)
    else:
        out = torch.cat([F.linear(block, weight, bias) for block in flat.split(BLOCK_ROWS)])
    return out[:n].float().view(*states.shape[:-1], -1)


def _is_projection(name: str) -> bool:
    return not name.startswith(("attention.output.LayerNorm", "output.LayerNorm"))
