from __future__ import annotations

import numpy as np
import pytest
import torch

from nlu.calibration import (
    ReliabilityDiagram,
    apply_temperature,
    calibrated_nll,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from nlu.errors import NLUTrainingError


def _sampled(n: int, c: int, scale: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): calibrated at T=1 by construction."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=gen) * scale  # (N, C)
    labels = torch.multinomial(torch.softmax(logits, -1), 1, generator=gen).squeeze(1)  # (N,)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_known_temperature(true_t: float) -> None:
    logits, labels = _sampled(20_000, 5, 3.0)
    # a model whose logits are true_t times too large/small needs T = true_t to undo it
    fitted = fit_temperature(logits * true_t, labels)
    assert fitted == pytest.approx(true_t, rel=0.06)


def test_fit_temperature_minimises_nll_and_accepts_log_probs() -> None:
    logits, labels = _sampled(5_000, 4, 2.0, seed=1)
    t = fit_temperature(logits * 2.0, labels)
    best = calibrated_nll(logits * 2.0, labels, t)
    for other in (t * 0.8, t * 1.25, 1.0):
        assert best <= calibrated_nll(logits * 2.0, labels, other) + 1e-9
    log_probs = torch.log_softmax(logits * 2.0, -1)  # (N, C) a per-row shift of the logits
    assert fit_temperature(log_probs, labels) == pytest.approx(t, rel=1e-3)


def test_fit_temperature_on_mc_samples_matches_mean_prediction() -> None:
    logits, labels = _sampled(4_000, 3, 2.0, seed=2)
    samples = logits.unsqueeze(0).repeat(4, 1, 1) * 3.0  # (S, N, C) identical samples
    assert fit_temperature(samples, labels) == pytest.approx(
        fit_temperature(logits * 3.0, labels), rel=1e-3
    )
    probs = apply_temperature(samples, 3.0)
    assert probs.shape == (4_000, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)


def test_fit_temperature_is_clamped_on_separable_data() -> None:
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]] * 10)  # (N, C) always right
    labels = torch.tensor([0, 1] * 10)
    assert fit_temperature(logits, labels, min_temperature=0.25) == pytest.approx(0.25, rel=1e-2)


def test_fit_temperature_rejects_bad_input() -> None:
    with pytest.raises(NLUTrainingError, match="shaped"):
        fit_temperature(torch.zeros(5), torch.zeros(5))
    with pytest.raises(NLUTrainingError, match="labels"):
        fit_temperature(torch.zeros(5, 3), torch.zeros(4))
    with pytest.raises(NLUTrainingError, match="class indices"):
        fit_temperature(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_ece_of_calibrated_data_is_near_zero() -> None:
    logits, labels = _sampled(50_000, 4, 2.0, seed=3)
    probs = torch.softmax(logits, -1).numpy()
    assert expected_calibration_error(probs, labels.numpy()) < 0.015


def test_ece_of_overconfident_data_is_large_and_shrinks_after_scaling() -> None:
    logits, labels = _sampled(20_000, 4, 2.0, seed=4)
    before = expected_calibration_error(torch.softmax(logits * 3.0, -1), labels)
    t = fit_temperature(logits * 3.0, labels)
    after = expected_calibration_error(apply_temperature(logits * 3.0, t), labels)
    assert before > 0.1
    assert after < 0.02


def test_reliability_diagram_bins_by_hand() -> None:
    probs = np.array([[0.95, 0.05], [0.92, 0.08], [0.55, 0.45], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])
    diagram = reliability_diagram(probs, labels, n_bins=10)
    assert isinstance(diagram, ReliabilityDiagram)
    assert len(diagram.edges) == 11 and len(diagram.counts) == 10
    assert diagram.total == 4
    assert diagram.counts[9] == 2 and diagram.accuracies[9] == pytest.approx(0.5)
    assert diagram.confidences[9] == pytest.approx(0.935)
    assert diagram.counts[5] == 2 and diagram.accuracies[5] == pytest.approx(1.0)
    expected = (2 * abs(0.5 - 0.935) + 2 * abs(1.0 - 0.575)) / 4
    assert diagram.ece == pytest.approx(expected)
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)
    assert diagram.to_dict()["counts"][9] == 2


def test_reliability_diagram_of_nothing_is_empty() -> None:
    diagram = reliability_diagram(np.zeros((0, 3)), np.zeros(0), n_bins=5)
    assert diagram.total == 0 and diagram.ece == 0.0
    with pytest.raises(NLUTrainingError, match="n_bins"):
        reliability_diagram(np.zeros((1, 2)), np.zeros(1), n_bins=0)
