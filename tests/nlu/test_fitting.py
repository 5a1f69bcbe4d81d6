"""The minimum number of optimizer steps: small datasets run more epochs, large ones do not."""

from __future__ import annotations

import pytest

from nlu.components import (
    MIN_STEPS,
    BioTaggerConfig,
    IntentClassifierConfig,
    JointConfig,
    LukeSpanConfig,
)
from nlu.errors import NLUTrainingError
from nlu.fitting import raised_epochs


def test_a_small_dataset_gets_more_epochs() -> None:
    # Rasa's starter project: 64 inputs, batches of 16, 5 epochs -> 20 steps
    assert raised_epochs(5, 4, 200, "intent") == 50
    assert raised_epochs(5, 3, 200, "intent") == 67  # ceil(200 / 3)
    assert raised_epochs(6, 18, 200, "joint") == 12  # Rasa's formbot


def test_a_large_dataset_keeps_its_epochs() -> None:
    # the demo: 3054 inputs in batches of 16 = 191 steps an epoch x 6 epochs = 1146 steps
    assert raised_epochs(6, 191, MIN_STEPS, "joint") == 6
    assert raised_epochs(5, 40, 200, "intent") == 5  # exactly 200 steps
    assert raised_epochs(5, 4, 0, "intent") == 5  # min_steps 0: off


@pytest.mark.parametrize("config", [JointConfig, IntentClassifierConfig, LukeSpanConfig,
                                    BioTaggerConfig])
def test_min_steps_is_a_checked_config_field(config: type) -> None:
    assert config().min_steps == MIN_STEPS
    assert config(min_steps=0).min_steps == 0
    with pytest.raises(NLUTrainingError, match="min_steps"):
        config(min_steps=-1)
