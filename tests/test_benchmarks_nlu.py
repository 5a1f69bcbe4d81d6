"""The NLU benchmarks still run: nlu_public on its generated data and nlu_latency on the model it
trained, both with a tiny random BERT (hidden 32, 2 layers), one epoch and a handful of parses.
The figures mean nothing here; the test checks the JSON line's shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.benchmark_scripts import load_benchmark
from tests.nlu.test_intent import LETTERS, build_tiny_model


@pytest.fixture(scope="module")
def nlu_public() -> ModuleType:
    return load_benchmark("nlu_public")


@pytest.fixture(scope="module")
def nlu_latency(nlu_public: ModuleType) -> ModuleType:
    return load_benchmark("nlu_latency")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, nlu_public: ModuleType) -> Path:
    """A random 2-layer BERT whose WordPiece vocabulary has the generated data's words."""
    texts = [t for ts in nlu_public.TEMPLATES.values() for t in ts]
    texts += [v for vs in nlu_public.VALUES.values() for v in vs]
    words = sorted({w for t in texts for w in re.findall(r"[a-z]+", t.lower())})
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"), [*",.?!-/@", *words],
                            chars=[*LETTERS, *"0123456789"], max_positions=128)


def test_nlu_public_and_latency_print_one_json_line(
    nlu_public: ModuleType, nlu_latency: ModuleType, tiny_bert: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    threads = torch.get_num_threads()
    try:
        report = nlu_public.main([
            "--backbone", str(tiny_bert), "--epochs", "1", "--limit-train", "40",
            "--limit-test", "12", "--iterations", "2", "--out-dir", str(tmp_path / "run"),
            "--entity-param", "max_length=48", "--out", str(tmp_path / "public.jsonl")])
        printed = capsys.readouterr().out.strip().splitlines()[-1]
        assert json.loads(printed) == report
        assert (tmp_path / "public.jsonl").read_text().strip() == printed
        assert {"benchmark", "data", "settings", "intent", "slots", "training", "throughput",
                "reference", "versions", "commit"} <= report.keys()
        assert report["data"] == "synthetic"
        assert report["settings"]["n_train"] == 40 and report["settings"]["n_test"] == 12
        assert report["settings"]["entities"]["max_length"] == 48
        assert set(report["intent"]) == {"accuracy", "macro_f1", "ece"}
        assert {"precision", "recall", "f1", "unreachable_gold"} <= report["slots"].keys()
        assert report["training"]["intent_seconds"] >= 0
        assert report["throughput"]["batch_64_parses_per_s"] > 0
        assert (tmp_path / "run" / "reports" / "intent_report.json").is_file()

        latency = nlu_latency.main([
            "--model", str(tmp_path / "run" / "model"), "--iterations", "2", "--warmup", "1",
            "--n-samples", "2", "--batch-sizes", "2", "--concurrency", "4",
            "--out", str(tmp_path / "latency.jsonl")])
    finally:
        torch.set_num_threads(threads)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == latency
    assert set(latency["single"]) == {"5w", "15w", "40w"}
    assert latency["mc_samples"] == 2
    assert {"intent_p50_ms_15w", "entities_p50_ms_15w"} <= latency["components"].keys()
    # the demo config's DucklingEntityExtractor is timed on its own
    assert latency["components"]["duckling_p50_ms_15w"] > 0
    assert latency["concurrent"][0]["callers"] == 4
    assert {"targets", "meets_p50_target", "meets_throughput_target", "rss_mb"} <= latency.keys()


def test_stratified_subsample_keeps_intent_shares(nlu_public: ModuleType) -> None:
    from nlu.types import Example

    examples = [Example(f"a{i}", "a") for i in range(60)] + \
        [Example(f"b{i}", "b") for i in range(30)] + [Example(f"c{i}", "c") for i in range(10)]
    picked = nlu_public.stratified(examples, 10, seed=0)
    assert [e.intent for e in picked].count("a") == 6
    assert [e.intent for e in picked].count("b") == 3
    assert len(picked) == 10
    assert picked == nlu_public.stratified(examples, 10, seed=0)
    assert nlu_public.stratified(examples, None, seed=0) == examples


def test_latency_messages_have_their_lengths(nlu_latency: ModuleType) -> None:
    for words, texts in nlu_latency.MESSAGES.items():
        assert [len(t.split()) for t in texts] == [words] * len(texts)


def test_latency_without_a_model_exits_2(nlu_latency: ModuleType, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        nlu_latency.main(["--model", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "xingkong train nlu" in capsys.readouterr().err


def test_formbot_without_a_project_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    formbot = load_benchmark("formbot")
    with pytest.raises(SystemExit) as exit_info:
        formbot.main(["--formbot", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and "Pass --formbot DIR" in capsys.readouterr().err
    assert formbot.RASA_3_6["parse_p50_ms"] == 8.7  # issue 13's reference figures


def test_mc_sampling_compares_both_samplers_on_a_saved_joint_model(
        tmp_path: Path, nlu_latency: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    from nlu.joint import JointConfig, JointIntentEntity
    from tests.fakes import write_tiny_bert
    from tests.nlu.test_joint import VOCAB, _dataset

    mc_sampling = load_benchmark("mc_sampling")
    with pytest.raises(SystemExit) as exit_info:
        mc_sampling.main(["--model", str(tmp_path / "missing")])
    assert exit_info.value.code == 2 and "xingkong train nlu" in capsys.readouterr().err
    (tmp_path / "bert").mkdir()
    bert = write_tiny_bert(tmp_path / "bert", VOCAB)
    model = JointIntentEntity(JointConfig(model=str(bert), epochs=1, max_length=32,
                                          val_fraction=0.0, early_stopping_patience=0,
                                          min_steps=0))
    model.train(_dataset(), progress=False)
    model.save(tmp_path / "joint")
    out = tmp_path / "mc.jsonl"
    report = mc_sampling.main(["--model", str(tmp_path / "joint"), "--iterations", "3",
                               "--warmup", "1", "--out", str(out)])
    assert set(report["cpu_ms_p50"]) == {"onnx_pass", "old_samples_8", "samples_8",
                                         "samples_4", "parse_8", "parse_4"}
    assert json.loads(out.read_text().splitlines()[-1])["benchmark"] == "mc_sampling"
