"""Typed component params (bot/project/params.py): checked when config.yml loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.project.config import load_config, skipped_components
from bot.project.params import RulePolicyParams
from nlu.components import FallbackClassifierParams, JointConfig


def _config(tmp_path: Path, section: str, entry: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(f"language: en\n{section}:\n  - name: {entry}\n")
    return path


# (section, entry, what the message must name besides file and line)
BAD = [
    ("pipeline", "JointIntentEntity\n    epochs: ten",
     ["JointIntentEntity.epochs", "'ten'", "an integer"]),
    ("pipeline", "JointIntentEntity\n    learning_rat: 0.001",
     ["'JointIntentEntity.learning_rat'", "Did you mean 'learning_rate'?"]),
    ("pipeline", "IntentClassifier\n    pooling: max", ["IntentClassifier", "pooling", "'max'"]),
    ("pipeline", "IntentClassifier\n    min_steps: many",
     ["IntentClassifier.min_steps", "'many'", "an integer"]),
    ("pipeline", "JointIntentEntity\n    min_steps: -5", ["JointIntentEntity", "min_steps >= 0"]),
    ("pipeline", "LukeSpanExtractor\n    max_span_length: true",
     ["LukeSpanExtractor.max_span_length", "True", "an integer"]),
    ("pipeline", "FallbackClassifier\n    threshold: high",
     ["FallbackClassifier.threshold", "'high'", "a number"]),
    ("pipeline", "RegexEntityExtractor\n    use_regexes: 'no'",
     ["RegexEntityExtractor.use_regexes", "'no'", "true or false"]),
    ("pipeline", "DucklingEntityExtractor\n    timeout: fast",
     ["DucklingEntityExtractor.timeout", "'fast'", "a number"]),
    ("pipeline", "DucklingEntityExtractor\n    dimension: [time]",
     ["'DucklingEntityExtractor.dimension'", "Did you mean 'dimensions'?"]),
    ("pipeline", "DucklingEntityExtractor\n    dimensions: [tim]", ["tim", "dimensions"]),
    ("policies", "MemoizationPolicy\n    max_history: 2.5",
     ["MemoizationPolicy.max_history", "2.5", "an integer or null"]),
    ("policies", "RulePolicy\n    core_fallback_threshold: [0.3]",
     ["RulePolicy.core_fallback_threshold", "[0.3]", "a number"]),
    ("policies", "RulePolicy\n    max_number_of_predictions: 0",
     ["max_number_of_predictions", "0", "an integer >= 1"]),
    ("policies", "TEDPolicy\n    epochs: ten", ["TEDPolicy", "epochs", "'ten'", ":4)"]),
]


@pytest.mark.parametrize(("section", "entry", "names"), BAD)
def test_a_bad_param_fails_at_load_naming_file_line_key_and_value(
        tmp_path: Path, section: str, entry: str, names: list[str]) -> None:
    path = _config(tmp_path, section, entry)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:" in message  # file and line
    for name in names:
        assert name in message


def test_params_are_typed_with_their_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("pipeline:\n  - name: JointIntentEntity\n    epochs: 3\n"
                    "  - name: FallbackClassifier\n    threshold: 1\n"
                    "policies:\n  - name: RulePolicy\n    max_number_of_predictions: 7\n")
    config = load_config(path)
    assert config.component("JointIntentEntity").params == JointConfig(epochs=3)
    fallback = config.component("FallbackClassifier").params
    assert fallback == FallbackClassifierParams(threshold=1.0)
    assert isinstance(fallback.threshold, float)
    assert config.component("RulePolicy").params == RulePolicyParams()
    assert config.max_number_of_predictions == 7


def test_unknown_keys_of_a_rasa_component_warn_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("pipeline:\n  - name: FallbackClassifier\n    treshold: 0.4\n"
                    "  - name: DIETClassifier\n    epochs: 100\n"
                    "policies:\n  - name: RulePolicy\n    max_number_of_predictions: 5\n")
    config = load_config(path)  # Rasa accepts them: the project still loads
    assert config.component("FallbackClassifier").params.threshold == 0.3  # Rasa's default
    notes = skipped_components(config)
    assert len(notes) == 1  # DIET's own options and the manager's key are not unknown
    assert f"FallbackClassifier ({path}:3): unknown key 'treshold' is ignored." in notes[0]
    assert "Did you mean 'threshold'?" in notes[0]
