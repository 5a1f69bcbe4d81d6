"""A Llama-family causal LM's decoding step as one ONNX graph with 8-bit weights, run by ONNX
Runtime: several times the tokens per second of the same model in torch on a CPU.

    decoder = save_decoder(lm, tokenizer, out)      # out/decoder.onnx, the tokenizer
    lm, tokenizer = load_decoder(out, decoder)      # an OnnxCausalLM
    out = lm(input_ids=ids, attention_mask=mask, position_ids=positions,
             past_key_values=None, logits_to_keep=1)  # out.logits (N, 1, V) torch
    out = lm(input_ids=next_ids, attention_mask=longer_mask, position_ids=next_positions,
             past_key_values=out.past_key_values, logits_to_keep=1)

The graph's inputs are the token ids (N, T), the attention mask (N, P + T) over the cache
and the new tokens, the position ids (N, T), how many last positions get logits and the
cache, a key and a value array (N, kv heads, P, head dim) per layer; its outputs the logits
and the grown cache. One array per layer, not one for all: slicing and stacking a single
cache cost a third of a decoding step.
`OnnxCausalLM` answers the calls sampler.py makes of a transformers model, so sampling,
stopping and scoring are the same code for both.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from generation.errors import ModelLoadError

DECODER_FILE = "decoder.onnx"
LAYOUTS = ("llama",)  # model_type values whose layers this export reads
_OPSET = 17


def can_export(lm: Any) -> bool:
    """Whether `lm` has the Llama layout (rotary attention with grouped keys and values,
    RMSNorm, a gated SiLU feed-forward) that `export_decoder` reads."""
    return getattr(lm.config, "model_type", None) in LAYOUTS


def _step_module(lm: Any) -> Any:
    import torch
    import torch.nn.functional as F

    config = lm.config
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    theta = (getattr(config, "rope_parameters", None) or {}).get(
        "rope_theta", getattr(config, "rope_theta", 10000.0))

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.head = lm.model, lm.lm_head
            inverse = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
            self.register_buffer("inverse", inverse, persistent=False)

        def norm(self, x: Any, weight: Any) -> Any:
            eps = config.rms_norm_eps
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

        def forward(self, ids: Any, mask: Any, positions: Any, keep: Any,
                    *past: Any) -> tuple[Any, ...]:
            n, t = ids.shape
            p = past[0].shape[2]
            angles = positions[..., None].float() * self.inverse  # (N, T, D/2)
            angles = torch.cat([angles, angles], dim=-1)[:, None]  # (N, 1, T, D)
            cos, sin = angles.cos(), angles.sin()

            def rotate(x: Any) -> Any:
                half = head_dim // 2
                return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

            group = heads // kv_heads  # query heads per key/value head
            later = torch.arange(p + t)[None, :] > (torch.arange(t)[:, None] + p)  # (T, P+T)
            blocked = later[None, None] | (mask[:, None, None, :] == 0)  # (N, 1, T, P+T)
            blocked = blocked.repeat(1, 1, group, 1)  # (N, 1, G*T, P+T): rows as the queries'
            x = self.model.embed_tokens(ids)
            present = []
            for i, layer in enumerate(self.model.layers):
                attention = layer.self_attn
                y = self.norm(x, layer.input_layernorm.weight)
                q = attention.q_proj(y).view(n, t, heads, head_dim).transpose(1, 2)
                k = attention.k_proj(y).view(n, t, kv_heads, head_dim).transpose(1, 2)
                v = attention.v_proj(y).view(n, t, kv_heads, head_dim).transpose(1, 2)
                k = torch.cat([past[2 * i], rotate(k)], dim=2)  # (N, KVH, P+T, D)
                v = torch.cat([past[2 * i + 1], v], dim=2)
                present += [k, v]
                # each key/value head answers its group of query heads as one (G*T)-row
                # block: no copies of the cache per query head
                q = rotate(q).reshape(n, kv_heads, group * t, head_dim)
                scores = q @ k.transpose(-1, -2) / head_dim ** 0.5  # (N, KVH, G*T, P+T)
                weights = scores.masked_fill(blocked, -1e9).softmax(dim=-1)
                heads_out = (weights @ v).reshape(n, heads, t, head_dim)
                x = x + attention.o_proj(heads_out.transpose(1, 2).reshape(n, t, -1))
                y = self.norm(x, layer.post_attention_layernorm.weight)
                mlp = layer.mlp
                x = x + mlp.down_proj(F.silu(mlp.gate_proj(y)) * mlp.up_proj(y))
            x = self.norm(x[:, t - keep:], self.model.norm.weight)
            return (self.head(x), *present)

    return Step().eval()


def export_decoder(lm: Any) -> bytes:
    """The float32 ONNX graph of `lm`'s decoding step (see the module docstring)."""
    import torch

    if not can_export(lm):
        raise ModelLoadError(f"Only models of the layouts {LAYOUTS} run in ONNX Runtime; "
                             f"this one is {getattr(lm.config, 'model_type', None)!r}.")
    config = lm.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    layers, kv_heads = config.num_hidden_layers, config.num_key_value_heads
    past = [f"past_{i}_{kv}" for i in range(layers) for kv in "kv"]
    present = [f"present_{i}_{kv}" for i in range(layers) for kv in "kv"]
    example = (torch.ones((2, 3), dtype=torch.long), torch.ones((2, 7), dtype=torch.long),
               torch.arange(4, 7).repeat(2, 1), torch.tensor(3),
               *(torch.zeros((2, kv_heads, 4, head_dim)) for _ in past))
    axes = {"ids": {0: "n", 1: "t"}, "mask": {0: "n", 1: "pt"}, "positions": {0: "n", 1: "t"},
            "logits": {0: "n", 1: "kept"}, **{name: {0: "n", 2: "p"} for name in past},
            **{name: {0: "n", 2: "pt"} for name in present}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, all dynamic
        torch.onnx.export(_step_module(lm), example, buffer,
                          input_names=["ids", "mask", "positions", "keep", *past],
                          output_names=["logits", *present], dynamic_axes=axes,
                          opset_version=_OPSET, dynamo=False)
    return buffer.getvalue()


def decoder_shape(lm: Any) -> dict[str, int]:
    """What OnnxCausalLM needs of the model's config, for generation.json."""
    config = lm.config
    heads = config.num_attention_heads
    return {"layers": config.num_hidden_layers, "kv_heads": config.num_key_value_heads,
            "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
            "window": int(config.max_position_embeddings),
            "parameters": sum(p.numel() for p in lm.parameters())}


class OnnxCausalLM:
    """The exported step in an ONNX Runtime session, called like a transformers causal LM by
    sampler.py (input_ids, attention_mask, position_ids, past_key_values, logits_to_keep);
    `past_key_values` is the graph's cache: a list of arrays, a key and a value per layer.
    A first call whose rows are one prompt repeated (the candidates of one turn) runs that
    prompt once."""

    def __init__(self, graph: str | Path, shape: dict[str, int], threads: int = 1) -> None:
        import onnxruntime as ort
        import torch

        self.shape = dict(shape)
        self.parameter_count = int(shape.get("parameters", 0))
        self._past = [f"past_{i}_{kv}" for i in range(int(shape["layers"])) for kv in "kv"]
        self.device = torch.device("cpu")
        self.config = SimpleNamespace(max_position_embeddings=int(shape["window"]))
        options = ort.SessionOptions()  # as the NLU's and the knowledge models' sessions
        options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(graph), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own kinds
            raise ModelLoadError(f"Cannot load the decoder graph {graph}: {exc}") from exc

    def eval(self) -> OnnxCausalLM:
        return self

    def __call__(self, input_ids: Any, attention_mask: Any = None, position_ids: Any = None,
                 past_key_values: Any = None, use_cache: bool = True,
                 logits_to_keep: int = 0) -> SimpleNamespace:
        import torch

        ids = np.asarray(input_ids, dtype=np.int64)
        n, t = ids.shape
        empty = np.zeros((n, self.shape["kv_heads"], 0, self.shape["head_dim"]),
                         dtype=np.float32)
        past = (list(past_key_values) if past_key_values is not None
                else [empty] * (2 * self.shape["layers"]))
        p = past[0].shape[2]
        mask = (np.asarray(attention_mask, dtype=np.int64) if attention_mask is not None
                else np.ones((n, p + t), dtype=np.int64))
        positions = (np.asarray(position_ids, dtype=np.int64) if position_ids is not None
                     else np.broadcast_to(np.arange(p, p + t), (n, t)).copy())
        keep = np.asarray(t if not logits_to_keep else min(int(logits_to_keep), t),
                          dtype=np.int64)
        repeated = (p == 0 and n > 1 and (ids == ids[:1]).all() and (mask == mask[:1]).all()
                    and (positions == positions[:1]).all())
        rows = 1 if repeated else n
        feed = {"ids": ids[:rows], "mask": mask[:rows], "positions": positions[:rows],
                "keep": keep, **{name: a[:rows] for name, a in zip(self._past, past)}}
        logits, *present = self._session.run(None, feed)
        if repeated:
            logits = np.repeat(logits, n, axis=0)
            present = [np.repeat(a, n, axis=0) for a in present]
        return SimpleNamespace(logits=torch.from_numpy(logits), past_key_values=present)


def quantize_decoder(graph: bytes) -> bytes:
    """`graph` with 8-bit weights in blocks of 32 (one scale and zero point each) in every
    MatMul, the activations quantised per block as they come (ONNX Runtime's MatMulNBits,
    accuracy level 4). On SmolLM2-135M: the float graph's next token 98 % of the time, a
    mean KL of 0.005 nats, and about three times its speed; per-tensor int8 (as the
    reranker's) agreed 49 % of the time."""
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # otherwise a line per node (thousands)
    try:
        quantizer = MatMulNBitsQuantizer(onnx.load_from_string(graph), block_size=32,
                                         is_symmetric=False, accuracy_level=4, bits=8)
        quantizer.process()
    finally:
        chatty.setLevel(level)
    return quantizer.model.model.SerializeToString()


def save_decoder(lm: Any, tokenizer: Any, out: Path) -> dict[str, Any]:
    """Export `lm` (quantised) and its tokenizer into `out`; generation.json's "decoder"
    entry ({"file", "shape", "chat", "seconds"}). The file is written whole, then renamed."""
    import time

    started = time.perf_counter()
    data = quantize_decoder(export_decoder(lm))
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f"{DECODER_FILE}.part"
    partial.write_bytes(data)
    partial.replace(out / DECODER_FILE)
    tokenizer.save_pretrained(str(out))
    return {"file": DECODER_FILE, "shape": decoder_shape(lm),
            "chat": bool(getattr(tokenizer, "chat_template", None)),
            "seconds": round(time.perf_counter() - started, 1)}


def load_decoder(model_dir: Path, decoder: dict[str, Any]) -> tuple[OnnxCausalLM, Any]:
    """(OnnxCausalLM, tokenizer) of a decoder saved by save_decoder, with as many threads as
    torch uses in this process."""
    import torch
    from transformers import AutoTokenizer

    graph = model_dir / str(decoder.get("file") or DECODER_FILE)
    if not graph.is_file() or not isinstance(decoder.get("shape"), dict):
        raise ModelLoadError(f"{model_dir} names a decoder graph it does not hold ({graph}). "
                             "Run `xingkong train generation --force`.")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Cannot load the tokenizer in {model_dir}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return OnnxCausalLM(graph, decoder["shape"], threads=torch.get_num_threads()), tokenizer
