"""Last-layer MC dropout: the lower layers run once, the top layers are sampled."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from nlu.mc_dropout import layer_stack, sampled_states
from tests.nlu.test_intent import build_tiny_model


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, object]:
    path = build_tiny_model(tmp_path_factory.mktemp("mc_bert"))
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _batch(tokenizer: object) -> dict[str, torch.Tensor]:
    return dict(tokenizer(["hello", "book a room please"], padding=True,  # type: ignore[operator]
                          return_tensors="pt"))


@pytest.mark.parametrize("mc_layers", [0, 1])
def test_without_dropout_every_sample_is_the_plain_forward(encoder, mc_layers: int) -> None:
    model, tokenizer = encoder
    batch = _batch(tokenizer)
    model.eval()
    with torch.inference_mode():
        plain = model(**batch).last_hidden_state  # (B, T, H)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        states = sampled_states(model, batch, 3, mc_layers)  # (3*B, T, H)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.1
    assert states.shape == (3 * plain.shape[0], *plain.shape[1:])
    mask = batch["attention_mask"].bool()
    for s in range(3):
        got = states[s * 2:(s + 1) * 2]
        assert torch.allclose(got[mask], plain[mask], atol=1e-5)


def test_samples_differ_only_through_the_top_layer(encoder) -> None:
    model, tokenizer = encoder
    batch = _batch(tokenizer)
    torch.manual_seed(0)
    with torch.inference_mode():
        states = sampled_states(model, batch, 4, 1)
    assert not torch.allclose(states[0:2], states[2:4])  # dropout made the samples differ
    assert not model.training and not any(m.training for m in model.modules())


def test_unknown_architecture_falls_back_to_full_sampling(encoder) -> None:
    model, _ = encoder
    assert layer_stack(model) is not None and len(layer_stack(model)) == 2
    saved = model.config.model_type
    try:
        model.config.model_type = "something-new"
        assert layer_stack(model) is None
    finally:
        model.config.model_type = saved

