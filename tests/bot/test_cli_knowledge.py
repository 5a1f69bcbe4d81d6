"""The knowledge commands of the CLI: `xingkong index`, `xingkong train [knowledge]` and
`xingkong test kb`, on the tiny KB (tests/fixtures/kb_tiny) with a deterministic fake embedder
(patched in at retrieval.embedder.get_embedder) and a tiny random BERT reader trained for one
short epoch; plus the `knowledge:` section of config.yml."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result

from bot.project.config import load_config
from bot.errors import ConfigError
from tests.bot.test_cli import invoke
from tests.fakes import FakeEmbedder, build_tiny_reader
from tests.retrieval.test_answerer import tiny_encoder

KB_TINY = Path(__file__).resolve().parents[1] / "fixtures" / "kb_tiny"

DOMAIN = """version: "3.1"
intents:
  - greet
responses:
  utter_greet:
    - text: "Hello!"
"""

RULES = """version: "3.1"
rules:
  - rule: greet back
    steps:
      - intent: greet
      - action: utter_greet
"""

REPORT_KEYS = {"test_path", "questions", "answerable", "unanswerable", "retrieval", "pipeline",
               "sentence", "reliability", "gold_context", "latency_ms", "settings",
               "error_counts", "errors"}


@pytest.fixture(scope="module", autouse=True)
def fake_embedder() -> Iterator[list[str]]:
    """Every embedder the commands ask for is the fake one; yields the model ids asked for."""
    asked: list[str] = []

    def get_embedder(model: str = "", device: str | None = "cpu", **_: object) -> FakeEmbedder:
        asked.append(model)
        return FakeEmbedder()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("retrieval.embedder.get_embedder", get_embedder)
        yield asked


@pytest.fixture(scope="module")
def tiny_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT QA model whose word vocabulary covers the tiny KB, with a tiny
    sentence encoder beside it (ENCODER_NAME: make_project configures both)."""
    reader = build_tiny_reader(tmp_path_factory.mktemp("reader") / "tiny")
    tiny_encoder(reader.parent / ENCODER_NAME)
    return reader


ENCODER_NAME = "tiny_encoder"


def qa_set() -> dict:
    """SQuAD 2.0 questions on the tiny KB: 10 answerable, 2 unanswerable."""
    laundry = (KB_TINY / "laundry.md").read_text()
    prices = next(p for p in laundry.split("\n\n") if "shirt" in p)
    bus = "The bus leaves every 30 minutes."

    def qa(qid: str, question: str, context: str, answer: str | None) -> dict:
        answers = [] if answer is None else [{"text": answer,
                                              "answer_start": context.index(answer)}]
        return {"id": qid, "question": question, "is_impossible": answer is None,
                "answers": answers}

    return {"version": "v2.0", "data": [
        {"title": "laundry", "paragraphs": [{"context": prices, "qas": [
            qa("l1", "How much is a shirt?", prices, "6 EUR"),
            qa("l2", "How much are trousers?", prices, "8 EUR"),
            qa("l3", "Is there a casino?", prices, None)]}]},
        {"title": "shuttle_bus", "paragraphs": [{"context": bus, "qas": [
            *(qa(f"s{n}", f"When does bus {n} leave?", bus, "every 30 minutes")
              for n in range(8)),
            qa("s9", "Can I rent a helicopter?", bus, None)]}]}]}


def make_project(root: Path, reader: Path | None, *, kb: bool = True,
                 knowledge: str | None = None) -> Path:
    """A Rasa project with no NLU pipeline, one rule and (when `kb`) data/kb = the tiny KB
    plus qa.json. `knowledge` replaces the config's knowledge section."""
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text(DOMAIN, encoding="utf-8")
    (root / "data" / "rules.yml").write_text(RULES, encoding="utf-8")
    if knowledge is None and reader is not None:
        knowledge = (f"knowledge:\n  hybrid: false\n  reader:\n    base_model: {reader}\n"
                     "    epochs: 1\n    lr: 0.001\n    batch_size: 4\n    max_length: 96\n"
                     "    doc_stride: 16\n    max_question_tokens: 16\n"
                     "    holdout_fraction: 0.2\n    progress: false\n    num_threads: null\n"
                     f"  encoder:\n    base_model: {reader.parent / ENCODER_NAME}\n"
                     "    batch_size: 8\n    num_threads: null\n")
    (root / "config.yml").write_text(
        "language: en\npipeline: []\npolicies:\n  - name: RulePolicy\n" + (knowledge or ""),
        encoding="utf-8")
    if kb:
        shutil.copytree(KB_TINY, root / "data" / "kb")
        (root / "data" / "kb" / "qa.json").write_text(json.dumps(qa_set()), encoding="utf-8")
    return root


def failed(result: Result, *phrases: str) -> bool:
    """Exit code 1 with a clean message that contains every phrase."""
    return (result.exit_code == 1 and "Traceback" not in result.output
            and "Error:" in result.output and all(p in result.output for p in phrases))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_reader: Path) -> tuple[Path, str]:
    """A project whose knowledge model was trained once: (project, output of that run)."""
    project = make_project(tmp_path_factory.mktemp("trained") / "bot", tiny_reader)
    result = invoke("train", "knowledge", "--project", str(project))
    assert result.exit_code == 0, result.output
    return project, result.output


def copy_project(trained: tuple[Path, str], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "bot"))


# ------------------------------------------------------------------ xingkong index

def test_index_then_index_again_updates_in_place(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None)
    out = project / "models" / "knowledge"

    first = invoke("index", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert "built from scratch (no index yet)" in first.output
    assert "5 documents" in first.output and "flat + BM25" in first.output
    assert "5 added, 0 changed, 0 removed, 0 unchanged" in first.output
    assert "  + laundry.md" in first.output
    assert (out / "index" / "manifest.json").is_file()
    assert not (out / "reader").exists() and not (out / "knowledge.json").exists()

    again = invoke("index", "--project", str(project))
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output
    assert "0 added, 0 changed, 0 removed, 5 unchanged" in again.output

    kb = project / "data" / "kb"
    (kb / "laundry.md").write_text((kb / "laundry.md").read_text() + "\nIroning is free.\n")
    (kb / "guest_library.md").unlink()
    (kb / "spa.md").write_text("# Spa\n\nThe spa opens at 9:00.\n")
    changed = invoke("index", "--project", str(project))
    assert changed.exit_code == 0, changed.output
    assert "updated in place" in changed.output
    assert "1 added, 1 changed, 1 removed, 3 unchanged" in changed.output
    assert "  + spa.md" in changed.output and "  ~ laundry.md" in changed.output
    assert "  - guest_library.md" in changed.output

    rebuilt = invoke("index", "--project", str(project), "--rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "built from scratch (--rebuild)" in rebuilt.output


def test_index_takes_kb_and_out_options(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None, kb=False)
    result = invoke("index", "--project", str(project), "--kb", str(KB_TINY),
                    "--out", "elsewhere")
    assert result.exit_code == 0, result.output
    assert (project / "elsewhere" / "index" / "manifest.json").is_file()
    assert "5 added" in result.output


def test_index_of_a_missing_kb_folder_is_a_clean_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None, kb=False)
    result = invoke("index", "--project", str(project))
    assert failed(result, "data/kb", "does not exist")


# ------------------------------------------------------------------ xingkong train

def test_train_knowledge_builds_the_model(trained: tuple[Path, str],
                                          fake_embedder: list[str]) -> None:
    project, output = trained
    out = project / "models" / "knowledge"
    assert "Trained knowledge" in output
    assert "Knowledge: 5 documents" in output and "reader trained" in output
    assert (out / "knowledge.json").is_file() and (out / "index" / "manifest.json").is_file()
    assert (out / "reader" / "model.safetensors").is_file()
    assert json.loads((out / "knowledge.json").read_text())["embedder"] == "fake-hash"
    fingerprint = json.loads((project / "models" / "fingerprint.json").read_text())
    assert set(fingerprint) == {"knowledge"}  # `train knowledge` trains nothing else
    assert "sentence-transformers/all-MiniLM-L6-v2" in fake_embedder  # the default embedder


def test_train_knowledge_again_is_skipped_by_fingerprint(trained: tuple[Path, str]) -> None:
    project, _ = trained
    built_at = json.loads((project / "models" / "knowledge" / "knowledge.json").read_text())
    again = invoke("train", "knowledge", "--project", str(project))
    assert again.exit_code == 0, again.output
    assert "up to date" in again.output and "Trained" not in again.output
    assert json.loads((project / "models" / "knowledge" / "knowledge.json").read_text()) \
        == built_at


def test_a_changed_document_updates_the_index_and_reuses_the_reader(
        trained: tuple[Path, str], tmp_path: Path) -> None:
    project = copy_project(trained, tmp_path)
    (project / "data" / "kb" / "spa.md").write_text("# Spa\n\nThe spa opens at 9:00.\n")
    result = invoke("train", "knowledge", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "Trained knowledge" in result.output
    assert "Knowledge: 6 documents" in result.output and "reader reused" in result.output


def test_train_all_includes_knowledge_and_force_retrains(trained: tuple[Path, str],
                                                         tmp_path: Path) -> None:
    project = copy_project(trained, tmp_path)
    result = invoke("train", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "Trained core in" in result.output  # knowledge is up to date
    assert set(json.loads((project / "models" / "fingerprint.json").read_text())) == {
        "core", "nlu", "knowledge"}
    forced = invoke("train", "knowledge", "--force", "--project", str(project))
    assert forced.exit_code == 0, forced.output
    assert "Trained knowledge" in forced.output and "reader trained" in forced.output


def test_reader_paragraphs_option_retrains_only_the_reader(trained: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    project = copy_project(trained, tmp_path)
    config = project / "config.yml"
    config.write_text(config.read_text().replace("  reader:\n", "  reader:\n    paragraphs: true\n"))
    result = invoke("train", "knowledge", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "reader trained" in result.output and "encoder reused" in result.output


def test_the_knowledge_line_says_what_the_pretraining_did(
        trained: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XINGKONG_CACHE", str(tmp_path / "cache"))
    project = copy_project(trained, tmp_path)
    config = project / "config.yml"
    pretrain = "    pretrain_qa: [data/kb/qa.json]\n    pretrain_epochs: 1\n"
    config.write_text(config.read_text().replace("  reader:\n", "  reader:\n" + pretrain))
    first = invoke("train", "knowledge", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert re.search(r"reader trained in \d+s after pretraining on \d+ questions in \d+s;",
                     first.output), first.output
    again = invoke("train", "knowledge", "--force", "--project", str(project))
    assert again.exit_code == 0, again.output
    assert "from its pretrained reader (kept);" in again.output
    # a models folder without it (another project, a fresh clone) copies the machine's
    shutil.rmtree(project / "models" / "knowledge" / "reader_pretrained")
    copied = invoke("train", "knowledge", "--force", "--project", str(project))
    assert copied.exit_code == 0, copied.output
    assert "from its pretrained reader (from the machine's cache);" in copied.output


def test_the_reranker_trains_after_its_pretraining_and_can_be_turned_off(
        trained: tuple[Path, str], tmp_path: Path) -> None:
    project = copy_project(trained, tmp_path)
    config = project / "config.yml"
    text = config.read_text()
    reranker = ("  reranker:\n    pretrain_qa: [data/kb/qa.json]\n    groups: 4\n"
                "    num_threads: null\n")
    config.write_text(text.replace("  reader:\n", reranker + "  reader:\n"))
    first = invoke("train", "knowledge", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert re.search(r"reranker trained in \d+s after pretraining on \d+ questions in \d+s;",
                     first.output), first.output
    assert (project / "models" / "knowledge" / "reranker" / "config.json").is_file()
    again = invoke("train", "knowledge", "--force", "--project", str(project))
    assert again.exit_code == 0, again.output
    assert "from its pretrained reranker (kept);" in again.output
    config.write_text(text.replace("  reader:\n", reranker + "    epochs: 0\n  reader:\n"))
    as_is = invoke("train", "knowledge", "--project", str(project))
    assert as_is.exit_code == 0, as_is.output
    assert "reranker pretrained (kept), used as it is;" in as_is.output
    config.write_text(text.replace("  reader:\n", "  reranker: false\n  reader:\n"))
    off = invoke("train", "knowledge", "--project", str(project))
    assert off.exit_code == 0 and "reranker trained" not in off.output, off.output
    assert "reranker reused" not in off.output
    assert not (project / "models" / "knowledge" / "reranker").exists()
    config.write_text(text.replace("  reader:\n", "  reranker:\n    epoch: 1\n  reader:\n"))
    bad = invoke("train", "knowledge", "--project", str(project))
    assert failed(bad, "Bad knowledge.reranker option", "pretrain_limit")


def test_train_without_a_kb_folder_has_no_knowledge_step(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None, kb=False)
    result = invoke("train", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "Trained core" in result.output and "knowledge" not in result.output.lower()
    assert not (project / "models" / "knowledge").exists()
    assert "knowledge" not in json.loads((project / "models" / "fingerprint.json").read_text())


def test_train_knowledge_without_a_kb_folder_is_a_clean_error(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None, kb=False)
    result = invoke("train", "knowledge", "--project", str(project))
    assert failed(result, "No knowledge base folder", "data/kb")
    assert not (project / "models" / "knowledge").exists()


def test_a_configured_kb_folder_must_exist(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None, kb=False,
                           knowledge="knowledge:\n  kb: docs/faq\n")
    result = invoke("train", "--project", str(project))
    assert failed(result, "docs/faq", "does not exist", "knowledge.kb", "config.yml")


def test_a_kb_without_qa_json_is_a_clean_error(tmp_path: Path, tiny_reader: Path) -> None:
    project = make_project(tmp_path / "bot", tiny_reader)
    (project / "data" / "kb" / "qa.json").unlink()
    result = invoke("train", "knowledge", "--project", str(project))
    assert failed(result, "No qa.json", "data/kb")


def test_an_unknown_reader_option_is_named_with_a_suggestion(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None,
                           knowledge="knowledge:\n  reader:\n    epoch: 1\n")
    result = invoke("train", "knowledge", "--project", str(project))
    assert failed(result, "knowledge.reader.epoch", "Did you mean 'epochs'?")


# ------------------------------------------------------------------ xingkong test kb

def write_test_set(project: Path) -> Path:
    path = project / "tests" / "kb_test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(qa_set()), encoding="utf-8")
    return path


def test_test_kb_prints_the_metrics_and_writes_the_report(trained: tuple[Path, str]) -> None:
    project, _ = trained
    write_test_set(project)
    result = invoke("test", "kb", "--project", str(project), "--out", "results/r.json")
    assert result.exit_code == 0, result.output
    for metric in ("recall@1", "recall@5", "MRR", "holds the answer", "EM", "F1",
                   "no-answer accuracy", "ECE", "p50"):
        assert metric in result.output
    assert "12 questions (10 answerable, 2 unanswerable)" in result.output
    report = json.loads((project / "results" / "r.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert {"recall@1", "recall@5", "mrr"} <= set(report["retrieval"])
    assert {"exact", "f1", "no_answer_accuracy"} <= set(report["pipeline"])
    assert report["questions"] == 12 and report["latency_ms"]["p50"] >= 0
    assert report["test_path"].endswith("kb_test.json")
    assert {"answered_right", "best_sentence_right", "declined_unanswerable"} <= set(
        report["sentence"])
    assert (project / "results" / "kb_reliability_kb_test.png").stat().st_size > 1000

    limited = invoke("test", "kb", "--project", str(project), "--limit", "3",
                     "--out", "results/three.json")
    assert limited.exit_code == 0, limited.output
    assert json.loads((project / "results" / "three.json").read_text())["questions"] == 3


def test_test_kb_reports_the_test_and_the_blind_set_by_default(
        trained: tuple[Path, str]) -> None:
    project, _ = trained
    test = write_test_set(project)
    shutil.copy(test, project / "tests" / "kb_blind.json")
    result = invoke("test", "kb", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert result.output.count("holds the answer") == 2
    for name in ("kb_test", "kb_blind"):
        assert (project / "results" / f"kb_report_{name}.json").is_file()
        assert (project / "results" / f"kb_reliability_{name}.png").is_file()
    one_file = invoke("test", "kb", "--project", str(project), "--out", "results/r.json")
    assert one_file.exit_code == 2 and "give a folder" in one_file.output
    (project / "tests" / "kb_blind.json").unlink()


def test_test_kb_without_a_model_says_to_train_first(tmp_path: Path) -> None:
    project = make_project(tmp_path / "bot", None)
    write_test_set(project)
    result = invoke("test", "kb", "--project", str(project))
    assert failed(result, "No knowledge model", "xingkong train knowledge")
    assert not (project / "results").exists()


@pytest.mark.parametrize(("content", "phrase"), [
    ('{"data": [', "invalid JSON"),
    ('{"questions": []}', "not SQuAD-format"),
    ('{"data": [{"title": "x", "paragraphs": [{"qas": []}]}]}', "context"),
])
def test_test_kb_with_a_malformed_test_set_names_the_file(
        trained: tuple[Path, str], tmp_path: Path, content: str, phrase: str) -> None:
    project, _ = trained
    bad = tmp_path / "broken_test.json"
    bad.write_text(content, encoding="utf-8")
    result = invoke("test", "kb", "--project", str(project), "--kb-test", str(bad),
                    "--out", str(tmp_path / "r.json"))
    assert failed(result, "Malformed KB test set", "broken_test.json", phrase)
    assert not (tmp_path / "r.json").exists()


def test_test_kb_with_a_missing_test_set(trained: tuple[Path, str]) -> None:
    project, _ = trained
    result = invoke("test", "kb", "--project", str(project), "--kb-test", "nowhere.json")
    assert failed(result, "nowhere.json", "does not exist")


# ------------------------------------------------------------------ config.yml knowledge:

def test_knowledge_section_is_read_and_typed(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("knowledge:\n  kb: docs\n  embedder: my/model\n  top_k: 8\n  read_k: 3\n"
                    "  hybrid: false\n  follow: false\n  reader:\n    epochs: 2\n"
                    "    extra_qa: [squad.json]\n")
    settings = load_config(path).knowledge
    assert (settings.kb, settings.kb_path, settings.embedder) == ("docs", "docs", "my/model")
    assert (settings.top_k, settings.read_k, settings.hybrid) == (8, 3, False)
    assert settings.follow is False
    assert settings.reader == {"epochs": 2, "extra_qa": ["squad.json"]}
    default = load_config(tmp_path / "missing.yml").knowledge
    assert (default.kb, default.kb_path, default.top_k, default.reader, default.follow) == (
        None, "data/kb", 5, {}, True)


def test_demo_config_keeps_retrievals_defaults() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_config(root / "config.yml").knowledge
    assert settings.embedder is None and settings.hybrid is None
    # the demo's reader learns its house questions first, then the KB's for fewer epochs;
    # every other reader setting is retrieval's own
    assert set(settings.reader) == {"pretrain_qa", "epochs"}
    assert all((root / path).is_file() for path in settings.reader["pretrain_qa"])
    # its reranker (session 16): pretrained on the house files (the fourth too, session
    # 29), then the KB's questions, read beside its pretrained self, reading three
    # sentences; it is a valid RerankerConfig
    assert settings.reranker is not None
    assert set(settings.reranker["pretrain_qa"]) > set(settings.reader["pretrain_qa"])
    assert all((root / path).is_file() for path in settings.reranker["pretrain_qa"])
    assert (settings.reranker["epochs"], settings.reranker["top_k"]) == (0.5, 3)
    assert settings.reranker["with_pretrained"] is True
    from retrieval.reranker import RerankerConfig
    RerankerConfig(**{k: v for k, v in settings.reranker.items()
                      if k not in ("pretrain_qa", "pretrain_limit")})


@pytest.mark.parametrize(("section", "phrase"), [
    ("knowledge: [kb]\n", "must be a mapping"),
    ("knowledge:\n  topk: 3\n", "Did you mean 'top_k'?"),
    ("knowledge:\n  top_k: 0\n", "knowledge.top_k must be an integer >= 1"),
    ("knowledge:\n  top_k: five\n", "knowledge.top_k must be an integer >= 1"),
    ("knowledge:\n  hybrid: 1\n", "knowledge.hybrid must be true or false"),
    ("knowledge:\n  reader:\n    lr: 0\n", "knowledge.reader.lr must be a number > 0"),
    ("knowledge:\n  reader:\n    extra_qa: squad.json\n", "must be a list"),
    ("knowledge:\n  reader:\n    pretrain_qa: squad.json\n", "pretrain_qa must be a list"),
    ("knowledge:\n  reader:\n    pretrain_epochs: -1\n",
     "knowledge.reader.pretrain_epochs must be a number >= 0"),
    ("knowledge:\n  encoder:\n    pretrain_qa: house.json\n",
     "knowledge.encoder.pretrain_qa must be a list"),
    ("knowledge:\n  encoder:\n    pretrain_limit: 0\n",
     "knowledge.encoder.pretrain_limit must be an integer >= 1"),
    ("knowledge:\n  reader:\n    pretrain_contexts: paragraph\n",
     "pretrain_contexts must be sentence or passage"),
    ("knowledge:\n  reranker: yes please\n", "knowledge.reranker must be true, false or"),
    ("knowledge:\n  reranker:\n    pretrain_qa: house.json\n",
     "knowledge.reranker.pretrain_qa must be a list"),
    ("knowledge:\n  reranker:\n    pretrain_limit: 0\n",
     "knowledge.reranker.pretrain_limit must be an integer >= 1"),
    ("knowledge:\n  runtime: tensorrt\n", "knowledge.runtime must be auto, torch, onnx or onnx-int8"),
    ("knowledge:\n  runtime: 1\n", "knowledge.runtime must be auto, torch, onnx or onnx-int8"),
    ("knowledge:\n  follow: sometimes\n", "knowledge.follow must be true or false"),
])
def test_bad_knowledge_settings_name_file_and_line(tmp_path: Path, section: str,
                                                   phrase: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text("language: en\n" + section, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert phrase in str(info.value) and f"{path}:" in str(info.value)
