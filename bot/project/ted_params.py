"""config.yml's TEDPolicy entry, typed: TEDConfig and the check of each Rasa option.

Here, below bot/policies, so that config.yml is checked when it is loaded (no torch).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from bot.errors import ConfigError

logger = logging.getLogger(__name__)

# The state attributes TED featurises (bot/policies/ted_features.py), in its order.
ATTRIBUTES = ("intent", "entities", "prev_action", "slots", "active_loop")

# Rasa TED options that this implementation does not use, and why (they warn when set).
IGNORED_OPTIONS = {
    "hidden_layers_sizes": "no text features", "concat_dimension": "no text features",
    "unidirectional_encoder": "no text encoder", "featurizers": "no text features",
    "entity_recognition": "entities come from the NLU", "BILOU_flag": "no entity tagging",
    "split_entities_by_comma": "no entity tagging",
    "use_masked_language_model": "no text features",
    "key_relative_attention": "positions count back from the latest turn",
    "value_relative_attention": "positions count back from the latest turn",
    "max_relative_position": "positions count back from the latest turn",
    "number_of_negative_examples": "scores cover every action (full softmax)",
    "similarity_type": "always inner product", "loss_type": "always cross entropy",
    "maximum_positive_similarity": "margin loss only", "maximum_negative_similarity":
    "margin loss only", "use_maximum_negative_similarity": "margin loss only",
    "negative_margin_scale": "margin loss only", "scale_loss": "plain cross entropy",
    "constrain_similarities": "plain cross entropy", "connection_density": "dense layers",
    "drop_rate": "no utterance features", "use_sparse_input_dropout": "always on",
    "use_dense_input_dropout": "no dense inputs", "evaluate_every_number_of_epochs":
    "no validation split", "evaluate_on_number_of_examples": "no validation split",
    "tensorboard_log_directory": "progress bar and log lines instead",
    "tensorboard_log_level": "progress bar and log lines instead",
    "checkpoint_model": "the last epoch is kept", "e2e_confidence_threshold": "no end-to-end",
}
DEFAULT_SEED = 42  # Rasa's default is random; a fixed one makes `xingkong train` repeatable


@dataclass(frozen=True, slots=True)
class TEDConfig:
    """config.yml's TEDPolicy entry. Defaults are Rasa 3's, except random_seed (fixed) and
    augmentation_factor (Rasa's `rasa train --augmentation`, here a policy option)."""

    priority: int = 1
    max_history: int | None = None  # None: the conversation since the last restart (<= 128)
    epochs: int = 1  # Rasa's default; real configs set 100 or more
    batch_size: tuple[int, int] = (64, 256)  # grows linearly from the first to the last epoch
    batch_strategy: str = "balanced"  # rare actions drawn more often; "sequence": plain shuffle
    learning_rate: float = 0.001
    random_seed: int = DEFAULT_SEED
    embedding_dimension: int = 20
    encoding_dimension: int = 50
    transformer_size: int = 128
    number_of_transformer_layers: int = 1
    number_of_attention_heads: int = 4
    dense_dimension: tuple[tuple[str, int], ...] = tuple((a, 20) for a in ATTRIBUTES)
    drop_rate_dialogue: float = 0.1
    drop_rate_attention: float = 0.0
    drop_rate_label: float = 0.0
    regularization_constant: float = 0.001
    ranking_length: int = 10  # actions kept in the ranking (0: all)
    renormalize_confidences: bool = False  # rescale the kept ones to sum to 1
    model_confidence: str = "softmax"
    augmentation_factor: int = 50
    max_positions: int = 32  # position embeddings when max_history is None

    @classmethod
    def from_params(cls, params: dict[str, Any], at: str,
                    key_at: dict[str, str] | None = None) -> TEDConfig:
        """The checked options of `params` (`at`: where the entry is; `key_at`: where each key
        is); the others (Rasa's unused ones, unknown keys) are left out here and named by
        bot/project/params.py unknown_keys."""
        known = set(option_names())
        values = {key: _check(key, value, (key_at or {}).get(key, at))
                  for key, value in params.items() if key in known}
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{exc} ({at})") from exc

    def __post_init__(self) -> None:
        if self.transformer_size % self.number_of_attention_heads:
            raise ConfigError(
                f"TEDPolicy transformer_size {self.transformer_size} is not divisible by "
                f"number_of_attention_heads {self.number_of_attention_heads}")


def option_names() -> list[str]:
    """TEDPolicy's config.yml keys read here (max_positions is not a Rasa option)."""
    return sorted(f.name for f in fields(TEDConfig) if f.name != "max_positions")


def _check(key: str, value: Any, at: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"TEDPolicy option '{key}' has value {value!r} ({at}); "
                           f"expected {expected}.")

    def positive_int(v: Any) -> int:
        if type(v) is not int or v < 1:
            raise fail("a positive integer")
        return v

    if key == "max_history":
        return None if value is None else positive_int(value)
    if key in ("priority", "random_seed"):
        if type(value) is not int:
            raise fail("an integer")
        return value
    if key in ("ranking_length", "augmentation_factor"):
        if type(value) is not int or value < 0:
            raise fail("an integer >= 0")
        return value
    if key == "batch_size":
        pair = [value, value] if not isinstance(value, list) else value
        if len(pair) != 2:
            raise fail("an integer or a list [first, last]")
        return tuple(positive_int(v) for v in pair)
    if key in ("transformer_size", "number_of_transformer_layers"):
        # Rasa also accepts one value per encoder; TED here has only the dialogue one.
        return positive_int(value.get("dialogue") if isinstance(value, dict) else value)
    if key == "dense_dimension":
        names = {"intent": "intent", "entities": "entities", "action_name": "prev_action",
                 "slots": "slots", "active_loop": "active_loop"}
        if isinstance(value, dict):
            given = {names[k]: positive_int(v) for k, v in value.items() if k in names}
            return tuple((a, given.get(a, 20)) for a in ATTRIBUTES)
        return tuple((a, positive_int(value)) for a in ATTRIBUTES)
    if key in ("learning_rate", "regularization_constant") or key.startswith("drop_rate"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                or (key.startswith("drop_rate") and value >= 1):
            raise fail("a number >= 0" + (" and < 1" if key.startswith("drop_rate") else ""))
        return float(value)
    if key == "renormalize_confidences":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if key == "batch_strategy":
        if value not in ("balanced", "sequence"):
            raise fail("'balanced' or 'sequence'")
        return value
    if key == "model_confidence":
        if value != "softmax":
            raise fail("'softmax' (Rasa 3 removed the others)")
        return value
    # epochs, embedding_dimension, encoding_dimension, number_of_attention_heads
    return positive_int(value)
