"""`xingkong train [generation]` and config.yml's `generation:` section, on a tiny project: a
1-layer GPT-2 trained for a few steps on 30 chitchat-dataset conversations plus the project's
own small talk; fingerprints, sampling refresh, `--budget`, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.project.config import load_config
from tests.bot.test_cli import invoke

DOMAIN = """version: "3.1"
intents:
  - chitchat
responses:
  utter_chitchat:
    - text: "I'd rather talk about hotels."
"""

NLU = """version: "3.1"
nlu:
  - intent: chitchat
    examples: |
      - how are you
      - do you like music
"""

CONFIG = """language: en
pipeline: []
policies:
  - name: RulePolicy
generation:
  budget_s: 60
  train: {max_conversations: 30, max_steps: 3, n_layer: 1, n_embd: 32, n_head: 2,
          n_positions: 64, vocab_size: 400, eval_blocks: 2, heldout_fraction: 0.2}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "domain.yml").write_text(DOMAIN)
    (tmp_path / "data" / "nlu.yml").write_text(NLU)
    (tmp_path / "config.yml").write_text(CONFIG)
    return tmp_path


def _manifest(project: Path) -> dict:
    return json.loads((project / "models" / "generation" / "generation.json").read_text())


def test_train_builds_the_generator_once(project: Path) -> None:
    first = invoke("train", "generation", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert "Generation: 30 conversations (" in first.output
    assert _manifest(project)["report"]["corpus"]["own_pairs"] == 2  # read, weight 0 by default
    assert "held-out perplexity" in first.output
    manifest = _manifest(project)
    assert manifest["model"] == "." and manifest["report"]["steps"] == 3
    assert (project / "models" / "generation" / "words.txt").is_file()
    fingerprint = json.loads((project / "models" / "fingerprint.json").read_text())
    assert set(fingerprint) == {"generation"}
    again = invoke("train", "generation", "--project", str(project))
    assert "Nothing changed" in again.output

    # new sampling settings reach the manifest without retraining
    (project / "config.yml").write_text(CONFIG + "  sampling: {n_candidates: 3}\n")
    refreshed = invoke("train", "generation", "--project", str(project))
    assert "Nothing changed" in refreshed.output
    assert _manifest(project)["sampling"]["n_candidates"] == 3

    # --budget asks for a run; a longer budget in config.yml alone does not retrain
    (project / "config.yml").write_text(CONFIG.replace("budget_s: 60", "budget_s: 90"))
    assert "Nothing changed" in invoke("train", "generation", "--project", str(project)).output
    rerun = invoke("train", "generation", "--budget", "30", "--project", str(project))
    assert "Trained generation" in rerun.output


def test_a_project_without_the_section_has_no_generator(project: Path) -> None:
    (project / "config.yml").write_text(CONFIG.split("generation:")[0])
    assert "generation" not in invoke("train", "--project", str(project)).output.lower()
    assert not (project / "models" / "generation").exists()
    result = invoke("train", "generation", "--project", str(project))
    assert result.exit_code == 1 and "no generation: section" in result.output


def test_a_pretrained_model_is_named_not_trained(project: Path) -> None:
    (project / "config.yml").write_text(CONFIG.replace("budget_s: 60", "model: distilgpt2"))
    result = invoke("train", "generation", "--project", str(project))
    assert result.exit_code == 0 and "pretrained model distilgpt2" in result.output
    assert "WARNING: generation model distilgpt2 is not on this machine" in result.output
    assert _manifest(project)["model"] == "distilgpt2"


def test_a_named_llama_is_exported_for_onnx_runtime(project: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from generation.onnx_decoder import DECODER_FILE
    from tests.fakes import write_tiny_gpt2

    tokenizer = AutoTokenizer.from_pretrained(str(write_tiny_gpt2(tmp_path / "gpt2")))
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(str(tmp_path / "llama"))
    tokenizer.save_pretrained(str(tmp_path / "llama"))
    (project / "config.yml").write_text(CONFIG.replace("budget_s: 60",
                                                       f"model: {tmp_path / 'llama'}"))
    result = invoke("train", "generation", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "exported for ONNX Runtime in" in result.output and "WARNING" not in result.output
    manifest = _manifest(project)
    assert manifest["model"] == "." and manifest["decoder"]["chat"] is True
    assert (project / "models" / "generation" / DECODER_FILE).is_file()
    config = (project / "config.yml").read_text()
    (project / "config.yml").write_text(config + "  sampling: {shots: 1}\n")
    assert invoke("train", "generation", "--project", str(project)).exit_code == 0
    refreshed = _manifest(project)  # new sampling settings, the same decoder
    assert refreshed["sampling"]["shots"] == 1 and refreshed["decoder"] == manifest["decoder"]


@pytest.mark.parametrize(("section", "message"), [
    ("generation: [1]", "'generation' must be a mapping"),
    ("generation: {budjet_s: 3}", "Did you mean 'budget_s'"),
    ("generation: {budget_s: -1}", "budget_s must be > 0"),
    ("generation: {sampling: 3}", "generation.sampling must be a mapping"),
    ("generation: {pairs: 3}", "generation.pairs must be a file path or a list"),
    ("generation: {pairs: []}", "generation.pairs must be a file path or a non-empty list"),
    ("generation: {pairs: [a.yml, 3]}", "generation.pairs must be a file path or a non-empty"),
])
def test_section_errors_name_the_key(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "config.yml"
    path.write_text(section + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("options", "message"), [
    ("train: {n_layr: 2}", "Did you mean 'n_layer'"),
    ("train: {n_embd: 30, n_head: 4}", "multiple of n_head"),
    ("sampling: {temprature: 1}", "Did you mean 'temperature'"),
    ("sampling: {top_p: 2}", "top_p must be in"),
])
def test_option_errors_stop_training_with_the_key(project: Path, options: str,
                                                  message: str) -> None:
    (project / "config.yml").write_text(CONFIG.split("generation:")[0]
                                        + "generation:\n  " + options + "\n")
    result = invoke("train", "generation", "--project", str(project))
    assert result.exit_code == 1 and message in result.output


def test_written_pairs_alone_are_indexed_in_seconds_and_fingerprinted(project: Path) -> None:
    (project / "data" / "smalltalk").mkdir()
    pairs = project / "data" / "smalltalk" / "pairs.yml"
    pairs.write_text("pairs:\n  - message: do you like rainy days\n"
                     "    reply: I do, rain is very calming.\n")
    (project / "config.yml").write_text(CONFIG.replace(
        "generation:\n", "generation:\n  pairs: data/smalltalk/pairs.yml\n").replace(
        "  train: {", "  train: {language_model: false, "))
    first = invoke("train", "generation", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert "Generation: 1 written small-talk pairs indexed" in first.output
    assert _manifest(project)["model"] is None
    assert (project / "models" / "generation" / "pairs.npy").is_file()
    assert "Nothing changed" in invoke("train", "generation", "--project", str(project)).output
    pairs.write_text(pairs.read_text() + "  - message: what a sunny day\n"
                     "    reply: Sunshine suits everyone.\n")
    again = invoke("train", "generation", "--project", str(project))
    assert "Generation: 2 written small-talk pairs indexed" in again.output  # the file counts
    pairs.unlink()
    missing = invoke("train", "generation", "--project", str(project))
    assert missing.exit_code != 0 and "generation.pairs names" in missing.output


def test_written_pairs_of_several_files_are_indexed_together(project: Path) -> None:
    folder = project / "data" / "smalltalk"
    folder.mkdir()
    (folder / "a.yml").write_text("pairs:\n  - message: do you like rainy days\n"
                                  "    reply: I do, rain is very calming.\n")
    (folder / "b.yml").write_text("pairs:\n  - message: what a sunny day\n"
                                  "    reply: Sunshine suits everyone.\n"
                                  "  - message: i got a new job\n"
                                  "    reply: Congratulations, that's big news!\n")
    (project / "config.yml").write_text(CONFIG.replace(
        "generation:\n",
        "generation:\n  pairs: [data/smalltalk/a.yml, data/smalltalk/b.yml]\n").replace(
        "  train: {", "  train: {language_model: false, "))
    result = invoke("train", "generation", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "Generation: 3 written small-talk pairs indexed" in result.output
    index = json.loads((project / "models" / "generation" / "pairs.json").read_text())
    assert index["replies"][0] == "I do, rain is very calming."
    assert len(index["replies"]) == 3
