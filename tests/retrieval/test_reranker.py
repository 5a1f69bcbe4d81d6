"""retrieval.reranker on a tiny random BERT: training, scoring, its no-answer slot and its
errors (the demo's own reranker is measured by benchmarks/kb_gate.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.reranker import Reranker, RerankerConfig, fit_reranker, padded_batches
from tests.fakes import build_tiny_reader

GROUPS = [("how much is a dog", "Dogs are welcome for 18 EUR per night.",
           ("Breakfast costs 14 EUR per adult.", "Check-in opens at 3:00 pm.")),
          ("when is breakfast", "Breakfast is served from 07:00 to 10:30.",
           ("Parking costs 9 EUR a day.",)),
          ("is there a casino", None, ("Parking costs 9 EUR a day.",))] * 8


def test_a_trained_reranker_scores_its_answers_above_the_rest(tmp_path: Path) -> None:
    config = RerankerConfig(base_model=str(build_tiny_reader(tmp_path / "tiny")), epochs=6,
                            lr=3e-3, groups=4, num_threads=None, precision="float32")
    report = fit_reranker(GROUPS, tmp_path / "reranker", config)
    assert report["groups"] == len(GROUPS) and report["steps"] == 36
    reranker = Reranker(tmp_path / "reranker").load()
    scores = reranker.score(["how much is a dog"] * 2 + ["is there a casino"],
                            ["Dogs are welcome for 18 EUR per night.",
                             "Check-in opens at 3:00 pm.", "Parking costs 9 EUR a day."])
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert scores[0] > scores[1]
    assert scores[2] < 0  # the no-answer slot (logit 0) wins for an unanswerable question
    assert reranker.score([], []).shape == (0,)
    kept = fit_reranker(GROUPS, tmp_path / "kept", RerankerConfig(
        base_model=str(tmp_path / "reranker"), epochs=0, num_threads=None))
    assert kept["steps"] == 0 and kept["final_loss"] is None  # `epochs: 0`: used as it is
    again = Reranker(tmp_path / "kept").load().score(["how much is a dog"],
                                                    ["Dogs are welcome for 18 EUR per night."])
    assert again[0] == pytest.approx(scores[0], abs=1e-4)  # the same weights
    with pytest.raises(ValueError, match="2 questions for 1 texts"):
        reranker.score(["a", "b"], ["c"])


def test_bad_settings_and_missing_models_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RetrievalConfigError, match="negatives >= 1"):
        RerankerConfig(negatives=0)
    with pytest.raises(RetrievalConfigError, match="top_k >= 2"):
        RerankerConfig(top_k=1)
    with pytest.raises(RetrievalConfigError, match="layers >= 1"):
        RerankerConfig(layers=0)
    with pytest.raises(RetrievalConfigError, match="pretrain_epochs must be >= 0"):
        RerankerConfig(pretrain_epochs=-1)
    with pytest.raises(RetrievalConfigError, match="precision must be"):
        RerankerConfig(precision="half")
    with pytest.raises(RetrievalConfigError, match="with_pretrained needs epochs > 0"):
        RerankerConfig(epochs=0, with_pretrained=True)
    with pytest.raises(RetrievalConfigError, match="no question"):
        fit_reranker([("q", None, ())], tmp_path / "r", RerankerConfig())
    with pytest.raises(RetrievalError, match="No reranker at"):
        Reranker(tmp_path / "nowhere").load()


def test_pairs_are_read_in_batches_of_nearly_one_length() -> None:
    assert padded_batches([30, 12, 31, 50, 13, 29], 64) == [[1, 4], [5, 0, 2], [3]]
    assert padded_batches([10] * 5, 2) == [[0, 1], [2, 3], [4]]
    assert padded_batches([], 8) == []
    assert padded_batches([30, 12, 31], 2, None) == [[0, 1], [2]]  # PyTorch: as they come
