"""Building LUKE from BERT weights: the copied word stream must compute what BERT computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    DistilBertConfig,
    LukeConfig,
    LukeModel,
)

from nlu.errors import NLUModelError
from nlu.luke_build import (
    ENTITY_MASK_ID,
    ENTITY_PAD_ID,
    build_luke_from_bert,
    luke_config_from_bert,
    transplant_bert_weights,
)
from tests.fakes import write_tiny_bert

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = [*SPECIAL, *"book a room in lis ##bon paris hello please , .".split()]


def _tiny_bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=37, max_position_embeddings=64,
    )  # fmt: skip


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), VOCAB, intermediate_size=37)


def test_word_stream_equals_bert_without_entities(bert_dir: Path) -> None:
    model, tokenizer = build_luke_from_bert(bert_dir, {0: "O", 1: "city"})
    bert = BertModel.from_pretrained(bert_dir).eval()
    model.eval()
    batch = tokenizer(["book a room in lisbon, please", "hello"], padding=True, return_tensors="pt")
    B, T = batch["input_ids"].shape
    with torch.no_grad():
        expected = bert(**batch, output_hidden_states=True)
        got = model.luke(
            **batch, position_ids=torch.arange(T).expand(B, T), output_hidden_states=True
        )
    assert len(got.hidden_states) == len(expected.hidden_states) == 3
    for layer, (ours, theirs) in enumerate(zip(got.hidden_states, expected.hidden_states)):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0, msg=f"hidden states {layer}")
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=1e-4, rtol=0)


def test_entity_side_starts_from_the_word_side(bert_dir: Path) -> None:
    model, tokenizer = build_luke_from_bert(bert_dir, {0: "O", 1: "city", 2: "date#checkin"})
    luke = model.luke
    for layer in luke.encoder.layer:
        attention = layer.attention.self
        for name in ("w2e_query", "e2w_query", "e2e_query"):
            assert torch.equal(getattr(attention, name).weight, attention.query.weight)
            assert torch.equal(getattr(attention, name).bias, attention.query.bias)
    entities, words = luke.entity_embeddings, luke.embeddings
    assert torch.equal(entities.position_embeddings.weight, words.position_embeddings.weight)
    mask_row = entities.entity_embeddings.weight[ENTITY_MASK_ID]
    assert torch.equal(mask_row, words.word_embeddings.weight[tokenizer.mask_token_id])
    assert not entities.entity_embeddings.weight[ENTITY_PAD_ID].any()
    assert model.config.use_entity_aware_attention
    assert model.config.entity_emb_size == model.config.hidden_size == 32
    assert model.config.id2label[2] == "date#checkin"
    assert model.classifier.in_features == 3 * 32 and model.classifier.out_features == 3


def test_span_head_scores_mask_entities(bert_dir: Path) -> None:
    model, _ = build_luke_from_bert(bert_dir, {0: "O", 1: "city"})
    model.eval()
    input_ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 3]])  # [CLS] book a room in lis ##bon [SEP]
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            position_ids=torch.arange(8)[None],
            entity_ids=torch.tensor([[ENTITY_MASK_ID, ENTITY_MASK_ID]]),
            entity_position_ids=torch.tensor([[[5, 6], [1, -1]]]),
            entity_start_positions=torch.tensor([[5, 1]]),
            entity_end_positions=torch.tensor([[6, 1]]),
        )
    assert out.logits.shape == (1, 2, 2)  # (B, n_spans, labels)
    assert torch.isfinite(out.logits).all()


def test_luke_config_copies_the_encoder_sizes() -> None:
    config = luke_config_from_bert(_tiny_bert_config(), {0: "O", 1: "city"})
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (len(VOCAB), 32, 2)
    assert (config.num_attention_heads, config.intermediate_size) == (4, 37)
    assert config.max_position_embeddings == 64 and config.entity_vocab_size == 3


def test_mismatched_architectures_are_refused() -> None:
    bert = BertModel(_tiny_bert_config())
    sizes = luke_config_from_bert(_tiny_bert_config(), {0: "O"}).to_dict()
    sizes.update(hidden_size=48, entity_emb_size=48, intermediate_size=40)
    wider = LukeModel(LukeConfig(**sizes))
    with pytest.raises(
        NLUModelError, match="Cannot build LUKE.*size mismatch for embeddings.word_embeddings"
    ):
        transplant_bert_weights(bert, wider, mask_token_id=4)


def test_non_bert_encoder_is_refused(tmp_path: Path) -> None:
    DistilBertConfig(vocab_size=20, dim=32, n_layers=1, n_heads=4, hidden_dim=37).save_pretrained(
        tmp_path
    )
    with pytest.raises(NLUModelError, match="only BERT-style encoders"):
        build_luke_from_bert(tmp_path, {0: "O", 1: "city"})


def test_missing_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(NLUModelError, match="Cannot read a model config"):
        build_luke_from_bert(tmp_path / "absent", {0: "O", 1: "city"})
