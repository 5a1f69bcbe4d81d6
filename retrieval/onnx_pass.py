"""A knowledge model's forward pass in ONNX Runtime, for answering on the CPU.

An answer runs four small BERT-like transformers: the passage embedder and the sentence
encoder read the question, the reranker reads it with each of the selection's first
sentences, the reader with the chosen one. ONNX Runtime fuses their attention, GELU and
LayerNorm steps and skips PyTorch's per-operator overhead, as it does for the NLU
(nlu/onnx_encoder.py); the outputs are PyTorch's float32 ones within 1e-5, so the answers
and confidences are the same. It is faster than PyTorch under bfloat16 autocast too
(`runtime: auto`, retrieval.answerer).

    graph = export_graph(model, ("logits",))                    # bytes of the ONNX graph
    run = OnnxPass(graph, ("logits",), threads=1)
    logits, = run(tokenizer(questions, texts, return_tensors="pt", padding=True))

`cached_pass` keeps the graph in a file beside what it was exported from (a stamp of the
weights' size and time): `xingkong train` writes them, an answerer exports them once when
they are missing or stale. With `int8=True` the graph's MatMul weights are int8 and their
inputs are quantised as they come (`quantize_graph`): on a CPU with int8 dot products (VNNI)
a pass costs about half, and the scores move by a little (README, Answer speed).
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _positional(model: Any, outputs: Sequence[str]) -> Any:
    """A module running `model` on positional INPUTS and returning a tuple of `outputs`."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any,
                    token_type_ids: Any) -> tuple[Any, ...]:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, return_dict=True)
            return tuple(out[name] for name in outputs)

    return Positional().eval()


def export_graph(model: Any, outputs: Sequence[str]) -> bytes:
    """The ONNX graph of a transformers `model` (inputs INPUTS, dynamic batch and length)
    returning `outputs` (names of its output, e.g. "logits", "last_hidden_state")."""
    import torch

    example = {name: torch.ones((2, 8), dtype=torch.long) for name in INPUTS}
    example["token_type_ids"] = torch.zeros((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "words"} for name in (*INPUTS, *outputs)}
    buffer = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes on shape arithmetic, all dynamic
            torch.onnx.export(_positional(model, outputs),
                              tuple(example[k] for k in INPUTS), buffer,
                              input_names=list(INPUTS), output_names=list(outputs),
                              dynamic_axes=axes, opset_version=_OPSET, dynamo=False)
    finally:
        model.train(was_training)
    return buffer.getvalue()


class OnnxPass:
    """An ONNX Runtime session over an exported graph; calling it with a tokenizer's batch
    (torch tensors or arrays) returns the outputs as float32 arrays."""

    def __init__(self, graph: bytes | Path, outputs: Sequence[str], threads: int = 1) -> None:
        import onnxruntime as ort

        from nlu.onnx_encoder import cpu_session

        self.outputs = tuple(outputs)
        self._session = cpu_session(ort, graph, threads)  # the NLU's session settings

    def __call__(self, batch: Mapping[str, Any]) -> list[np.ndarray]:
        feed = {}
        for name in INPUTS:
            value = batch.get(name)
            if value is None and name == "token_type_ids":
                value = np.zeros_like(_array(batch["input_ids"]))
            feed[name] = _array(value).astype(np.int64, copy=False)
        return [np.asarray(x, dtype=np.float32) for x in self._session.run(list(self.outputs),
                                                                            feed)]


def _array(value: Any) -> np.ndarray:
    return value.cpu().numpy() if hasattr(value, "cpu") else np.asarray(value)


def weights_stamp(model_dir: Path) -> dict[str, Any]:
    """What a graph was exported from: the weights file's path, size and time."""
    for name in WEIGHTS:
        path = model_dir / name
        if path.is_file():
            stat = path.stat()
            return {"weights": str(path.resolve()), "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns}
    return {"weights": str(model_dir.resolve())}


def quantize_graph(graph: bytes) -> bytes:
    """`graph` with int8 weights in its MatMuls (one scale per output channel) whose float
    inputs are quantised on the fly: ONNX Runtime's dynamic quantisation."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "float32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(graph)
        root = logging.getLogger()  # the quantiser advises pre-processing on the root logger
        root.addFilter(_not_onnxruntime)
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
        finally:
            root.removeFilter(_not_onnxruntime)
        return target.read_bytes()


def _not_onnxruntime(record: logging.LogRecord) -> bool:
    return "onnxruntime" not in record.pathname


def cached_pass(model: Any, outputs: Sequence[str], graph: Path, source_dir: Path,
                threads: int = 1, int8: bool = False) -> OnnxPass | None:
    """The OnnxPass of `model` (whose weights are in `source_dir`), from the graph file
    `graph` when its stamp matches the weights, else exported now (and written when the
    folder is writable); `int8`: the quantised graph. None, logged, when ONNX Runtime cannot
    run it: PyTorch answers."""
    stamp_path = graph.with_suffix(".json")
    stamp = {**weights_stamp(source_dir), **({"int8": True} if int8 else {})}
    try:
        if graph.is_file() and stamp_path.is_file() and \
                json.loads(stamp_path.read_text(encoding="utf-8")) == stamp:
            return OnnxPass(graph, outputs, threads)
        data = export_graph(model, outputs)
        if int8:
            data = quantize_graph(data)
        try:  # written whole, then renamed: a server's other workers never read half of it
            graph.parent.mkdir(parents=True, exist_ok=True)
            partial = graph.with_name(f"{graph.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(graph)
            stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
        except OSError as exc:  # a read-only model folder: the graph lives in memory
            logger.info("retrieval.onnx.not_saved path=%s error=%s", graph, exc)
        return OnnxPass(data, outputs, threads)
    except Exception as exc:  # noqa: BLE001 - any export or runtime failure: keep PyTorch
        logger.warning("retrieval.onnx.unavailable graph=%s error=%s: %s; answering with "
                       "PyTorch", graph, type(exc).__name__, exc)
        return None
