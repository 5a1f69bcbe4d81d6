"""TED's network: turn features -> causal transformer over the turns -> dialogue embedding,
scored by dot product against one embedding per action (StarSpace-style, as in Rasa's TED).

    x (B, T, F) --split by attribute--> Linear each to dense_dimension --concat--> Linear to
    encoding_dimension --> Linear to transformer_size (+ position counted back from the latest
    turn) --> causal transformer blocks --> LayerNorm --> Linear to embedding_dimension at the
    latest turn (B, E)   .   action embeddings (A, E)   ->   scores (B, A)

Windows are left-padded: the latest turn is always at position T-1. Positions count back from
it, so "two turns ago" means the same thing in a short and in a long conversation.

At run time one window is scored at a time, and a one-row forward is mostly PyTorch's per-call
overhead: `embed_state` maps one turn's features to its transformer input (everything before
the positions is per turn, so the policy keeps it per state), and `score_latest` runs the
blocks on one unpadded window through the layers' functions, the last block for the latest
turn alone (the only output read). Both give `forward`'s scores (to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, slots=True)
class TEDDims:
    attribute_sizes: tuple[tuple[str, int], ...]  # (attribute, width) in input order
    dense_dimension: tuple[tuple[str, int], ...]  # (attribute, its dense layer's width)
    n_actions: int
    max_positions: int
    encoding_dimension: int = 50
    transformer_size: int = 128
    layers: int = 1
    heads: int = 4
    embedding_dimension: int = 20
    drop_rate_dialogue: float = 0.1
    drop_rate_attention: float = 0.0
    drop_rate_label: float = 0.0


class _Block(nn.Module):
    """Pre-norm transformer block with a causal, padding-aware attention mask."""

    def __init__(self, size: int, heads: int, dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.norm1 = nn.LayerNorm(size)
        self.qkv = nn.Linear(size, 3 * size)
        self.out = nn.Linear(size, size)
        self.norm2 = nn.LayerNorm(size)
        self.ffn = nn.Sequential(nn.Linear(size, 4 * size), nn.GELU(), nn.Linear(4 * size, size))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        B, T, H = h.shape
        q, k, v = self.qkv(self.norm1(h)).split(H, dim=-1)
        q, k, v = (t.view(B, T, self.heads, H // self.heads).transpose(1, 2)
                   for t in (q, k, v))  # (B, heads, T, H/heads)
        p = self.attention_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        h = h + self.dropout(self.out(a.transpose(1, 2).reshape(B, T, H)))
        return h + self.dropout(self.ffn(self.norm2(h)))


class TEDModel(nn.Module):
    def __init__(self, dims: TEDDims) -> None:
        super().__init__()
        self.dims = dims
        dense = dict(dims.dense_dimension)
        self.parts = [(name, width) for name, width in dims.attribute_sizes]
        self.dense = nn.ModuleDict({name: nn.Linear(width, dense[name])
                                    for name, width in self.parts if width > 0})
        concat = sum(dense[name] for name, width in self.parts if width > 0)
        self.encode = nn.Linear(concat, dims.encoding_dimension)
        self.project = nn.Linear(dims.encoding_dimension, dims.transformer_size)
        self.positions = nn.Embedding(dims.max_positions, dims.transformer_size)
        self.input_dropout = nn.Dropout(dims.drop_rate_dialogue)
        self.blocks = nn.ModuleList(
            _Block(dims.transformer_size, dims.heads, dims.drop_rate_dialogue,
                   dims.drop_rate_attention) for _ in range(dims.layers))
        self.norm = nn.LayerNorm(dims.transformer_size)
        self.dialogue = nn.Linear(dims.transformer_size, dims.embedding_dimension)
        self.actions = nn.Embedding(dims.n_actions, dims.embedding_dimension)
        self.label_dropout = nn.Dropout(dims.drop_rate_label)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, F) left-padded turn features, lengths (B,) real turns -> scores (B, A)."""
        B, T, _ = x.shape
        x = self.input_dropout(x)  # Rasa's sparse input dropout: no single feature decides
        chunks, at = [], 0
        for name, width in self.parts:
            if width > 0:
                chunks.append(self.dense[name](x[..., at:at + width]))
            at += width
        h = self.encode(torch.cat(chunks, dim=-1))  # (B, T, encoding_dimension)
        back = torch.arange(T - 1, -1, -1, device=x.device).clamp(max=self.dims.max_positions - 1)
        h = self.project(h) + self.positions(back)  # (B, T, H)
        real = torch.arange(T, device=x.device)[None, :] >= (T - lengths)[:, None]  # (B, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        # A padded query may see itself, so no row is empty (softmax of nothing is NaN).
        allowed = causal[None] & (real[:, None, :] | torch.eye(T, dtype=torch.bool,
                                                              device=x.device)[None])
        allowed = allowed[:, None]  # (B, 1, T, T)
        for block in self.blocks:
            h = block(h, allowed)
        dialogue = self.dialogue(self.norm(h[:, -1]))  # (B, E)
        return dialogue @ self.label_dropout(self.actions.weight).T  # (B, A)

    # inference, one window (eval mode, no gradients) -------------------------------------------
    def embed_state(self, features: torch.Tensor) -> torch.Tensor:
        """(F,) one turn's features -> (H,) its transformer input before the position."""
        chunks, at = [], 0
        for name, width in self.parts:
            if width > 0:
                layer = self.dense[name]
                chunks.append(F.linear(features[at:at + width], layer.weight, layer.bias))
            at += width
        h = F.linear(torch.cat(chunks), self.encode.weight, self.encode.bias)
        return F.linear(h, self.project.weight, self.project.bias)  # (H,)

    def score_latest(self, h: torch.Tensor) -> torch.Tensor:
        """(T, H) embedded turns of one window, oldest first, no padding -> (A,) scores of
        the latest turn: ``forward``'s row in eval mode."""
        T, H = h.shape
        back = torch.arange(T - 1, -1, -1).clamp(max=self.dims.max_positions - 1)
        h = h + self.positions.weight[back]  # (T, H)
        for block in self.blocks[:-1]:
            h = _block_rows(block, h, h, causal=True)
        h = _block_rows(self.blocks[-1], h, h[-1:], causal=False)  # (1, H): the latest turn
        dialogue = F.linear(F.layer_norm(h[0], (H,), self.norm.weight, self.norm.bias,
                                         self.norm.eps), self.dialogue.weight, self.dialogue.bias)
        return self.actions.weight @ dialogue  # (A,)


def _block_rows(block: _Block, h: torch.Tensor, rows: torch.Tensor, causal: bool
                ) -> torch.Tensor:
    """``block`` in eval mode on one window's states h (T, H), for its last len(rows) turns
    (the whole window with ``causal``; the latest turn alone, which sees every turn, without)."""
    T, H = h.shape
    n, size = rows.shape[0], H // block.heads
    norm1 = block.norm1
    qkv = F.linear(F.layer_norm(h, (H,), norm1.weight, norm1.bias, norm1.eps),
                   block.qkv.weight, block.qkv.bias)  # (T, 3H)
    q, k, v = qkv[T - n:, :H], qkv[:, H:2 * H], qkv[:, 2 * H:]
    q = q.view(n, block.heads, size).transpose(0, 1)  # (heads, n, H/heads)
    k, v = (t.view(T, block.heads, size).transpose(0, 1) for t in (k, v))  # (heads, T, H/heads)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (heads, n, H/heads)
    out = rows + F.linear(a.transpose(0, 1).reshape(n, H), block.out.weight, block.out.bias)
    norm2, (up, _, down) = block.norm2, block.ffn
    inner = F.gelu(F.linear(F.layer_norm(out, (H,), norm2.weight, norm2.bias, norm2.eps),
                            up.weight, up.bias))
    return out + F.linear(inner, down.weight, down.bias)  # (n, H)
