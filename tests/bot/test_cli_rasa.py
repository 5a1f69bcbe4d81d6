"""Rasa's commands and flags on `xingkong` (issue 11): init, test core, data split / convert /
migrate, visualize, export, interactive; --domain, -c/--config, --data, --fixed-model-name,
-m/--model, --cors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot.cli import main

# `init` projects have their own `actions` package, loaded here by --execute-actions
pytestmark = pytest.mark.usefixtures("restore_imports")


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    return result


def test_init_then_train_then_test_core_passes(tmp_path: Path) -> None:
    root = tmp_path / "starter"
    assert invoke("init", "--init-dir", str(root)).exit_code == 0
    assert (root / "actions" / "actions.py").exists()
    assert invoke("init", "--init-dir", str(root)).exit_code == 1  # not empty any more
    assert invoke("data", "validate", "--project", str(root)).exit_code == 0
    assert invoke("train", "core", "--project", str(root)).exit_code == 0
    result = invoke("test", "core", "--project", str(root), "--out", str(tmp_path / "r"),
                    "--fail-on-prediction-errors")
    assert result.exit_code == 0, result.output
    assert "1/1 stories" in result.output
    # with the actions run for real (the starter's action_tell_time, in-process)
    result = invoke("test", "core", "--project", str(root), "--out", str(tmp_path / "r"),
                    "--execute-actions", "--fail-on-prediction-errors")
    assert result.exit_code == 0, result.output


def test_rasa_path_flags_and_fixed_model_name(tmp_path: Path) -> None:
    root = tmp_path / "p"
    invoke("init", "--init-dir", str(root))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (root / "domain.yml").rename(moved / "my_domain.yml")
    (root / "config.yml").rename(moved / "my_config.yml")
    (root / "data").rename(moved / "my_data")
    flags = ["--domain", str(moved / "my_domain.yml"), "-c", str(moved / "my_config.yml"),
             "--data", str(moved / "my_data")]
    assert invoke("train", "core", "--project", str(root)).exit_code == 1  # no domain there
    result = invoke("train", "core", "--project", str(root), *flags, "--out",
                    str(tmp_path / "out"), "--fixed-model-name", "v1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "v1" / "core" / "policies.json").exists()
    result = invoke("test", "core", "--project", str(root), *flags, "-m",
                    str(tmp_path / "out" / "v1"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0 and "1/1 stories" in result.output, result.output
    # as in Rasa, -m may name a folder of models: the newest one in it is read
    result = invoke("test", "core", "--project", str(root), *flags, "-m", str(tmp_path / "out"),
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 0 and "1/1 stories" in result.output, result.output
    assert invoke("test", "core", "--project", str(root), *flags, "-m",
                  str(tmp_path / "nothing"), "--out", str(tmp_path / "r")).exit_code == 1
    bad = invoke("train", "--project", str(root), *flags, "--fixed-model-name", "../x")
    assert bad.exit_code == 2


def test_data_split_and_convert_nlu(tmp_path: Path) -> None:
    root = tmp_path / "p"
    invoke("init", "--init-dir", str(root))
    out = tmp_path / "split"
    result = invoke("data", "split", "nlu", "--project", str(root), "--training-fraction",
                    "0.75", "--random-seed", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    from bot.project.training_data import load_training_data

    train = load_training_data([out / "training_data.yml"]).examples
    test = load_training_data([out / "test_data.yml"]).examples
    assert len(train) + len(test) == 24 and len(test) >= 4
    assert {e.intent for e in test} == {"greet", "goodbye", "ask_time", "bot_challenge"}
    # YAML -> JSON -> YAML keeps examples, entities, synonyms, regexes and lookups
    nlu = tmp_path / "nlu.yml"
    nlu.write_text('version: "3.1"\nnlu:\n- intent: inform\n  examples: |\n'
                   '    - a room in [Lisboa](city:Lisbon) please\n'
                   '    - from [Porto]{"entity": "city", "role": "from"}\n'
                   '- synonym: Lisbon\n  examples: |\n    - lisboa\n'
                   '- regex: zip\n  examples: |\n    - \\d{5}\n'
                   '- lookup: city\n  examples: |\n    - Faro\n')
    assert invoke("data", "convert", "nlu", "--data", str(nlu), "-f", "json", "--out",
                  str(tmp_path / "nlu.json")).exit_code == 0
    body = json.loads((tmp_path / "nlu.json").read_text())["rasa_nlu_data"]
    assert body["common_examples"][0]["entities"][0]["value"] == "Lisbon"
    assert invoke("data", "convert", "nlu", "--data", str(tmp_path / "nlu.json"), "-f",
                  "yaml", "--out", str(tmp_path / "back.yml")).exit_code == 0
    back = load_training_data([tmp_path / "back.yml"])
    first = load_training_data([nlu])
    assert [(e.text, e.entities) for e in back.examples] == [
        (e.text, e.entities) for e in first.examples]
    assert (back.synonyms, back.regexes, back.lookups) == (
        first.synonyms, first.regexes, first.lookups)


def test_visualize_writes_html_and_dot(tmp_path: Path) -> None:
    root = tmp_path / "p"
    invoke("init", "--init-dir", str(root))
    assert invoke("visualize", "--project", str(root), "--out",
                  str(tmp_path / "graph.html")).exit_code == 0
    page = (tmp_path / "graph.html").read_text()
    assert "<svg" in page and "action_tell_time" in page and "ask_time" in page
    assert invoke("visualize", "--project", str(root), "--out",
                  str(tmp_path / "graph.dot")).exit_code == 0
    dot = (tmp_path / "graph.dot").read_text()
    assert dot.startswith("digraph") and '"utter_goodbye"' in dot and "->" in dot


def test_export_writes_the_stored_events(tmp_path: Path) -> None:
    import asyncio

    from bot.project.project import Project
    from bot.manager import UserMessage
    from bot.project.config import ProjectPaths
    from bot.wiring import build_runtime

    root = tmp_path / "p"
    invoke("init", "--init-dir", str(root))
    (root / "endpoints.yml").write_text(
        f"tracker_store:\n  type: sql\n  dialect: sqlite\n  db: {tmp_path / 'tracker.db'}\n")
    invoke("train", "core", "--project", str(root))
    runtime = build_runtime(Project.load(ProjectPaths.at(root)), actions_package=None)
    asyncio.run(runtime.manager.handle_message(UserMessage("/greet", "ana")))
    out = tmp_path / "events.jsonl"
    result = invoke("export", "--project", str(root), "--out", str(out))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert {e["sender_id"] for e in events} == {"ana"}
    assert [e["event"] for e in events if e["event"] in ("user", "bot")] == ["user", "bot"]
    assert invoke("export", "--project", str(root), "--conversation-ids", "nobody", "--out",
                  str(out)).exit_code == 0
    assert out.read_text() == ""


def test_interactive_says_what_to_use_instead() -> None:
    result = invoke("interactive")
    assert result.exit_code == 1
    assert "not supported" in result.output and "xingkong shell" in result.output


def test_cors_allows_the_given_origin(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bot.manager import DialogueManager
    from bot.policies import PolicyEnsemble, build_policies
    from bot.project.config import component_config
    from bot.serving.server import create_app
    from tests.bot.conftest import TINY_DOMAIN

    (tmp_path / "domain.yml").write_text(TINY_DOMAIN)
    from bot.project.domain import load_domain

    domain = load_domain(tmp_path / "domain.yml")
    manager = DialogueManager(domain, PolicyEnsemble(build_policies(
        (component_config("RulePolicy"),))))
    client = TestClient(create_app(manager, cors_origins=("https://example.org",)))
    response = client.options("/webhooks/rest/webhook", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
    assert response.headers.get("access-control-allow-origin") == "https://example.org"
    plain = TestClient(create_app(manager)).get("/", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in plain.headers
    assert "--cors" in invoke("run", "--help").output


def test_xingkong_test_sends_the_text_through_a_trained_nlu(tmp_path: Path) -> None:
    """The whole path on a tiny random BERT (plumbing, not quality): `init`, `train` (NLU and
    core), then `test core` parsing every user step with the trained NLU."""
    from tests.fakes import write_tiny_bert

    root = tmp_path / "p"
    invoke("init", "--init-dir", str(root))
    words = ("[PAD] [UNK] [CLS] [SEP] [MASK] hi hello there good morning evening hey bot bye "
             "goodbye see you later night talk to soon that is all what time it s the tell me "
             "do know please now are a am i talking human real person this robot").split()
    (root / "tiny_bert").mkdir()
    bert = write_tiny_bert(root / "tiny_bert", words)
    (root / "config.yml").write_text(
        "language: en\npipeline:\n  - name: IntentClassifier\n"
        f"    model: {bert}\n    epochs: 40\n    batch_size: 8\n    learning_rate: 0.002\n"
        "    head_learning_rate: 0.005\n    val_fraction: 0.0\n    early_stopping_patience: 0\n"
        "    n_samples: 2\npolicies:\n  - name: MemoizationPolicy\n  - name: RulePolicy\n")
    assert invoke("train", "--project", str(root)).exit_code == 0
    for mode in ([], ["--execute-actions"], ["--e2e"]):  # Rasa's --e2e: the default here
        result = invoke("test", "core", "--project", str(root), "--out", str(tmp_path / "r"),
                        "--fail-on-prediction-errors", *mode)
        assert result.exit_code == 0, result.output
        assert ", text): 1/1 stories" in result.output and "3/3 intents" in result.output
    report = json.loads((tmp_path / "r" / "story_report.json").read_text())
    assert report["xingkong"]["turn_latency_ms"]["turns"] == 3
    result = invoke("test", "core", "--project", str(root), "--out", str(tmp_path / "r"),
                    "--intents-given")
    assert result.exit_code == 0 and "intents given): 1/1 stories" in result.output
    both = invoke("test", "--project", str(root), "--e2e", "--intents-given")
    assert both.exit_code == 2 and "choose one" in both.output


def test_latest_model_reads_a_folder_of_models_as_rasa_does(tmp_path: Path) -> None:
    import os

    from bot.training.model_dir import latest_model

    models = tmp_path / "models"
    for age, name in ((200, "old"), (100, "new"), (0, "half")):
        folder = models / name
        folder.mkdir(parents=True)
        (folder / "fingerprint.json").write_text("{}")
        if name != "half":  # a folder without domain.json is not a finished model
            (folder / "domain.json").write_text("{}")
        stamp = 1_700_000_000 - age
        os.utime(folder / "fingerprint.json", (stamp, stamp))
    assert latest_model(models) == models / "new"
    (models / "fingerprint.json").write_text("{}")  # the folder is a model itself
    assert latest_model(models) == models
    assert latest_model(tmp_path / "missing") == tmp_path / "missing"


def test_init_no_prompt_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = invoke("init", "--init-dir", str(tmp_path), "--no-prompt")
    assert result.exit_code == 1 and "--force" in result.output
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_init_no_prompt_trains_the_new_project_as_rasa_does(tmp_path: Path) -> None:
    """`rasa init --no-prompt` then `rasa shell`: the starter is trained by init (its NLU
    fine-tunes the real MiniLM backbone: minutes of CPU)."""
    root = tmp_path / "starter"
    result = invoke("init", "--init-dir", str(root), "--no-prompt")
    assert result.exit_code == 0, result.output
    assert (root / "models" / "nlu").is_dir() and (root / "models" / "core").is_dir()
    result = invoke("test", "--project", str(root), "--out", str(tmp_path / "r"),
                    "--fail-on-prediction-errors")
    assert result.exit_code == 0, result.output
