"""The joint model's deterministic pass in ONNX Runtime, for CPU inference.

ONNX Runtime fuses the attention, GELU and LayerNorm steps and skips PyTorch's per-operator
overhead; on this project's 2-core CPU the joint model's pass ran about 1.5x faster with
identical outputs (max difference 1e-5). The graph holds everything deterministic: embeddings,
all layers, both heads; it also returns the word states below the top `mc_layers` layers, from
which PyTorch draws the MC-dropout samples (nlu/mc_sampler.py `DropoutSampler`).

`export` writes the graph (dynamic batch, word, entity and mention sizes) next to the saved
weights; `OnnxJointPass` runs it.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlu.errors import NLUModelError

logger = logging.getLogger(__name__)

INPUTS = ("input_ids", "token_type_ids", "attention_mask", "position_ids", "entity_ids",
          "entity_attention_mask", "entity_token_type_ids", "entity_position_ids",
          "entity_start_positions", "entity_end_positions")
OUTPUTS = ("low_word", "intent_logits", "span_logits")
_OPSET = 17


class _Deterministic(nn.Module):
    """(word states below the sampled layers, intent logits, span logits) in eval mode."""

    def __init__(self, net: Any, split: int) -> None:
        super().__init__()
        self.net, self.split = net, split

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch = dict(zip(INPUTS, tensors, strict=True))
        n_layers = len(self.net.luke.encoder.layer)
        low = self.net.run_layers(self.net.embed(batch), batch, 0, self.split)
        word, entity, _ = self.net.run_layers(low, batch, self.split, n_layers)
        return (low[0], self.net.intent_logits(word, batch["attention_mask"]),
                self.net.span_logits(word, entity, batch))


def export(net: nn.Module, example: dict[str, torch.Tensor], split: int,
           path: Path | None = None) -> bytes:
    """The ONNX graph of `net`'s deterministic pass (written to `path` too when given);
    `example` is a collated batch with at least one entity token."""
    module = _Deterministic(net, split).eval()
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "words"} for name in INPUTS}
    for name in INPUTS[4:]:
        axes[name] = {0: "batch", 1: "entities"}
    axes["entity_position_ids"] = {0: "batch", 1: "entities", 2: "mention"}
    axes |= {"low_word": {0: "batch", 1: "words"}, "intent_logits": {0: "batch"},
             "span_logits": {0: "batch", 1: "entities"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, all dynamic here
        torch.onnx.export(module, tuple(example[k] for k in INPUTS), buffer,
                          input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
    graph = buffer.getvalue()
    if path is not None:
        path.write_bytes(graph)
    return graph


def cpu_session(ort: Any, graph: bytes | Path, threads: int) -> Any:
    """An ONNX Runtime CPU session over `graph` (bytes or a file) with `threads` intra-op
    threads, every graph optimisation, and pool threads that never spin. The knowledge
    models' sessions are made here too (retrieval/onnx_pass.py)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's pool threads spin on a core waiting for work; in a server that core is the
    # event loop's and the MC sampler's. Formbot, 8 clients, 2 threads, busy machine:
    # 18.9 CPU ms a turn spinning, 15.5 with spinning stopped after each run
    # (session.force_spinning_stop), 10.7 never spinning; parse p50 27.6 / 21.4 / 13.4 ms.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxJointPass:
    """An ONNX Runtime session over the exported graph; `run` takes a collated batch."""

    def __init__(self, graph: bytes | Path, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise NLUModelError(
                "runtime: onnx needs the onnxruntime package. Fix: `pip install -c "
                "constraints.txt onnxruntime`, or set `runtime: torch` in config.yml."
            ) from exc
        self._session = cpu_session(ort, graph, threads)

    def run(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        feed = {name: batch[name].cpu().numpy() for name in INPUTS}
        return tuple(torch.from_numpy(out) for out in self._session.run(list(OUTPUTS), feed))
