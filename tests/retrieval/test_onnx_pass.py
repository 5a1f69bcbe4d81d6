"""The knowledge models in ONNX Runtime (retrieval/onnx_pass.py): the same outputs as
PyTorch, the graph kept beside a stamp of its weights and exported again when they change,
and PyTorch kept when ONNX Runtime cannot run a model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from retrieval import onnx_pass
from tests.fakes import build_tiny_reader, write_tiny_bert

pytest.importorskip("onnxruntime")

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "pool", "opens", "at", "9",
         "breakfast", "costs", "18", "eur", "when", "does", "how", "much", "is", "?", "."]
QUESTIONS = ["when does the pool open?", "how much is breakfast?", "pool?"]
TEXTS = ["the pool opens at 9 .", "breakfast costs 18 eur .", "breakfast is at 9 ."]


def test_the_reader_reads_the_same_spans_in_onnx_runtime(tmp_path: Path) -> None:
    from retrieval.reader import Reader, ReaderConfig

    reader = Reader(ReaderConfig(model=str(build_tiny_reader(tmp_path / "reader"))))
    before = reader.read_pairs(QUESTIONS, TEXTS)
    assert reader.use_onnx(tmp_path / "onnx" / "reader.onnx")
    assert reader.model is None  # the session holds the weights now
    after = reader.read_pairs(QUESTIONS, TEXTS)
    for a, b in zip(before, after):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert [s.score for s in b.spans] == pytest.approx([s.score for s in a.spans],
                                                           abs=1e-4)
        assert b.null_score == pytest.approx(a.null_score, abs=1e-4)


def tiny_reranker(path: Path, seed: int) -> Path:
    """A random tiny BERT with one output, as a reranker."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path.mkdir()
    write_tiny_bert(path, WORDS)
    torch.manual_seed(seed)
    config = BertConfig.from_pretrained(str(path), num_labels=1)
    BertForSequenceClassification(config).save_pretrained(str(path))
    return path


def test_the_reranker_scores_the_same_in_onnx_runtime(tmp_path: Path) -> None:
    from retrieval.reranker import Reranker

    path = tiny_reranker(tmp_path / "reranker", 0)
    reranker = Reranker(path, precision="float32")
    before = reranker.score(QUESTIONS, TEXTS)
    assert reranker.use_onnx(tmp_path / "onnx" / "reranker.onnx") and reranker.model is None
    assert reranker.score(QUESTIONS, TEXTS) == pytest.approx(before, abs=1e-5)


def test_a_reranker_with_a_twin_scores_the_mean_of_both_in_either_runtime(
        tmp_path: Path) -> None:
    from retrieval.reranker import Reranker

    path, other = tiny_reranker(tmp_path / "reranker", 0), tiny_reranker(tmp_path / "first", 1)
    alone = Reranker(path, precision="float32").score(QUESTIONS, TEXTS)
    twin = Reranker(other, precision="float32").score(QUESTIONS, TEXTS)
    assert not np.allclose(alone, twin, atol=1e-3)
    paired = Reranker(path, precision="float32", twin=other)
    assert "twin=" in repr(paired)
    before = paired.score(QUESTIONS, TEXTS)
    assert before == pytest.approx((alone + twin) / 2, abs=1e-5)
    assert paired.use_onnx(tmp_path / "onnx" / "reranker.int8.onnx", int8=True)
    assert (tmp_path / "onnx" / "first.int8.onnx").is_file()  # the twin's graph, beside
    assert paired.model is None and paired.twin is not None and paired.twin.model is None
    after = paired.score(QUESTIONS, TEXTS)
    assert np.abs(after - before).max() < 0.05 * max(np.ptp(before), 1e-3) + 0.02


def test_an_embedder_keeps_its_graph_until_its_weights_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval.embedder import SentenceTransformerEmbedder

    (tmp_path / "encoder").mkdir()
    path = write_tiny_bert(tmp_path / "encoder", WORDS)
    graph = tmp_path / "onnx" / "encoder.onnx"
    embedder = SentenceTransformerEmbedder(str(path))
    before = embedder.encode(TEXTS, batch_size=2)
    assert embedder.use_onnx(graph)
    assert graph.is_file() and graph.with_suffix(".json").is_file()
    assert sorted(p.name for p in graph.parent.iterdir()) == ["encoder.json", "encoder.onnx"]
    after = embedder.encode(TEXTS, batch_size=2)
    assert np.abs(after - before).max() < 1e-5
    assert np.linalg.norm(after, axis=1) == pytest.approx(1.0, abs=1e-5)

    exported = []
    real = onnx_pass.export_graph
    monkeypatch.setattr(onnx_pass, "export_graph",
                        lambda *a: exported.append(1) or real(*a))
    again = SentenceTransformerEmbedder(str(path))
    assert again.use_onnx(graph) and exported == []  # the kept graph, not exported again
    weights = path / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert again.use_onnx(graph) and exported == [1]  # newer weights: exported again


def test_a_model_onnx_cannot_run_stays_in_pytorch(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import torch

    class Broken(torch.nn.Module):
        def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
            raise RuntimeError("no graph for this one")

    with caplog.at_level(logging.WARNING):
        found = onnx_pass.cached_pass(Broken(), ("logits",), tmp_path / "x.onnx", tmp_path)
    assert found is None and "answering with PyTorch" in caplog.text
    assert not (tmp_path / "x.onnx").exists()


def test_the_runtime_is_checked() -> None:
    from retrieval.answerer import Answerer
    from retrieval.errors import RetrievalConfigError
    from retrieval.reader import Reader

    with pytest.raises(RetrievalConfigError, match="runtime must be one of"):
        Answerer(None, None, Reader(), runtime="tensorrt")
    assert Answerer(None, None, Reader(), runtime="onnx").onnx is False  # no graphs folder
    assert Answerer(None, None, Reader(), runtime="onnx", graphs=Path("g")).onnx is True
    assert Answerer(None, None, Reader(), runtime="torch", graphs=Path("g")).onnx is False
    # "auto": ONNX Runtime on any CPU, bfloat16 or not (a model on a GPU declines use_onnx)
    assert Answerer(None, None, Reader(), runtime="auto", graphs=Path("g")).onnx is True


def test_int8_runs_the_reranker_where_the_cpu_has_int8_dot_products(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import answerer as answerer_module
    from nlu import cpu
    from retrieval.answerer import Answerer

    class Model:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict]] = []

        def use_onnx(self, graph: Path, threads: int = 1, **options: bool) -> bool:
            self.calls.append((graph.name, options))
            return True

    for flags, runtime, int8 in [(set(), "auto", False), ({"avx512_vnni"}, "auto", True),
                                 ({"avx512_vnni"}, "onnx", False),
                                 (set(), "onnx-int8", True), ({"amx_int8"}, "torch", False)]:
        monkeypatch.setattr(cpu, "cpu_flags", lambda f=flags: f)
        reader, reranker = Model(), Model()
        answerer = Answerer(None, None, reader, reranker=reranker, runtime=runtime,
                            graphs=Path("g"))
        assert answerer.int8 is int8, (flags, runtime)
        if runtime == "torch":
            continue
        assert answerer.use_onnx() == {"reader": True, "reranker": True}
        name = ".int8.onnx" if int8 else ".onnx"
        assert reader.calls == [("reader.onnx", {})]  # the reader stays float32
        assert reranker.calls == [("reranker" + name, {"int8": True} if int8 else {})]
    assert answerer_module.INT8_MODELS == ("reranker",)


def test_an_int8_graph_scores_close_to_float32_and_keeps_its_own_stamp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from retrieval.reranker import Reranker

    (tmp_path / "reranker").mkdir()
    path = write_tiny_bert(tmp_path / "reranker", WORDS)
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(str(path), num_labels=1)
    BertForSequenceClassification(config).save_pretrained(str(path))
    before = np.array(Reranker(path, precision="float32").score(QUESTIONS, TEXTS))
    graph = tmp_path / "onnx" / "reranker.int8.onnx"
    reranker = Reranker(path, precision="float32")
    assert reranker.use_onnx(graph, int8=True)
    after = np.array(reranker.score(QUESTIONS, TEXTS))
    assert np.abs(after - before).max() < 0.05 * max(np.ptp(before), 1e-3) + 0.02
    assert not np.allclose(after, before, atol=1e-6)  # quantised: not float32's scores
    import onnx
    ops = {node.op_type for node in onnx.load(str(graph)).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    stamp = graph.with_suffix(".json").read_text(encoding="utf-8")
    assert '"int8": true' in stamp

    exported = []
    real = onnx_pass.export_graph
    monkeypatch.setattr(onnx_pass, "export_graph",
                        lambda *a: exported.append(1) or real(*a))
    assert Reranker(path, precision="float32").use_onnx(graph, int8=True) and exported == []
    # the same file asked for in float32: its stamp differs, so it is exported again
    assert Reranker(path, precision="float32").use_onnx(graph) and exported == [1]
    assert '"int8"' not in graph.with_suffix(".json").read_text(encoding="utf-8")
