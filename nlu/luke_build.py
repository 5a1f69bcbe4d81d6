"""The LUKE backbone of the span extractor: built from a BERT encoder's pretrained weights (the
offline default, `build_luke_from_bert`) or loaded from a pretrained LUKE (`load_pretrained_luke`).

No pretrained LUKE checkpoint ships with the project, but a BERT-style encoder does
(`sentence-transformers/all-MiniLM-L6-v2`). LUKE's word stream *is* a BERT encoder, so this module
transplants the encoder and adds LUKE's entity side the way the LUKE paper initialises it:

- word embeddings, position embeddings, token type embeddings, LayerNorm and every encoder layer
  (query/key/value/output/intermediate) and the pooler are copied unchanged;
- the entity-aware query matrices (w2e, e2w, e2e) of each layer start as that layer's word query
  matrix, so with no entities the word stream computes exactly what BERT computes;
- the entity position embeddings are the word position embeddings, the entity token type
  embeddings and LayerNorm are the word ones;
- a three-entry entity vocabulary: [PAD] (zeros), [UNK] (the mean word embedding) and [MASK]
  (the word [MASK] embedding). Every candidate span is fed as the [MASK] entity.

Word positions count from 0 as in BERT, so callers pass `position_ids` explicitly (LUKE's own
default counts RoBERTa-style from `pad_token_id + 1`, which is right for a pretrained LUKE).
Both builders leave the same three-entry entity vocabulary, so [MASK] is always ENTITY_MASK_ID.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import AutoConfig, AutoTokenizer, LukeConfig, PreTrainedTokenizerBase

if TYPE_CHECKING:  # the model classes load transformers' modelling code: imported where used
    from transformers import BertConfig, BertModel, LukeForEntitySpanClassification, LukeModel

from nlu.errors import NLUModelError

logger = logging.getLogger(__name__)

ENTITY_PAD_ID = 0
ENTITY_UNK_ID = 1
ENTITY_MASK_ID = 2
_ENTITY_VOCAB_SIZE = 3
# Encoder settings LUKE takes over from the BERT config unchanged.
_SHARED_CONFIG = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "hidden_act", "hidden_dropout_prob",
                  "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
                  "initializer_range", "layer_norm_eps", "pad_token_id")


def luke_config_from_bert(bert_config: BertConfig, id2label: dict[int, str]) -> LukeConfig:
    """A LukeConfig with the BERT encoder's sizes, a tiny entity vocabulary and span labels."""
    return LukeConfig(
        **{name: getattr(bert_config, name) for name in _SHARED_CONFIG},
        entity_vocab_size=_ENTITY_VOCAB_SIZE,
        entity_emb_size=bert_config.hidden_size,  # no entity_embedding_dense projection
        use_entity_aware_attention=True,
        tie_word_embeddings=False,
        id2label=dict(id2label),
        label2id={name: index for index, name in id2label.items()},
    )


@torch.no_grad()
def transplant_bert_weights(bert: BertModel, luke: LukeModel, mask_token_id: int) -> None:
    """Load `bert`'s weights into `luke` and initialise LUKE's entity side from the word side.

    The state dict is loaded strictly, so a BERT parameter with no LUKE counterpart, a shape
    mismatch or a LUKE parameter left out raises NLUModelError.
    """
    state = dict(bert.state_dict())  # LUKE's word stream uses BERT's parameter names
    layers = {int(name.split(".")[2]) for name in state if name.startswith("encoder.layer.")}
    for index in sorted(layers):
        prefix = f"encoder.layer.{index}.attention.self."
        for query in ("w2e_query", "e2w_query", "e2e_query"):  # as in the LUKE paper
            state[f"{prefix}{query}.weight"] = state[f"{prefix}query.weight"]
            state[f"{prefix}{query}.bias"] = state[f"{prefix}query.bias"]
    for part in ("position_embeddings.weight", "token_type_embeddings.weight"):
        state[f"entity_embeddings.{part}"] = state[f"embeddings.{part}"]
    for part in ("LayerNorm.weight", "LayerNorm.bias"):
        state[f"entity_embeddings.{part}"] = state[f"embeddings.{part}"]
    words = state["embeddings.word_embeddings.weight"]  # (V, H)
    table = torch.zeros(_ENTITY_VOCAB_SIZE, words.shape[1], dtype=words.dtype)  # (3, H)
    table[ENTITY_UNK_ID] = words.mean(dim=0)  # [PAD] stays zero
    table[ENTITY_MASK_ID] = words[mask_token_id]
    state["entity_embeddings.entity_embeddings.weight"] = table
    try:
        luke.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        problems = [line.strip() for line in str(exc).splitlines()[1:]]
        raise NLUModelError(
            f"Cannot build LUKE from this encoder: {len(problems)} problem(s), e.g. "
            f"{'; '.join(problems[:2])}. Use a BERT-style encoder, or set luke_model to a "
            "pretrained LUKE checkpoint."
        ) from exc


def _load_bert(bert_dir: Path) -> tuple[BertConfig, BertModel, PreTrainedTokenizerBase]:
    """The BERT encoder in `bert_dir` with its config and fast tokenizer, or NLUModelError."""
    from transformers import BertConfig, BertModel

    try:
        bert_config = AutoConfig.from_pretrained(bert_dir)
    except (OSError, ValueError) as exc:
        raise NLUModelError(f"Cannot read a model config in '{bert_dir}': {exc}") from exc
    if not isinstance(bert_config, BertConfig):
        raise NLUModelError(
            f"Cannot build LUKE from model type '{bert_config.model_type}' ({bert_dir}): only "
            "BERT-style encoders are supported. Set luke_model to a pretrained LUKE instead."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(bert_dir)
        bert = BertModel.from_pretrained(bert_dir, add_pooling_layer=True)
    except (OSError, ValueError) as exc:
        raise NLUModelError(f"Cannot load the BERT encoder in '{bert_dir}': {exc}") from exc
    if tokenizer.mask_token_id is None or not tokenizer.is_fast:
        raise NLUModelError(
            f"The tokenizer in '{bert_dir}' must be a fast tokenizer with a [MASK] token."
        )
    return bert_config, bert, tokenizer


def build_luke_from_bert(
    bert_dir: str | Path, id2label: dict[int, str]
) -> tuple[LukeForEntitySpanClassification, PreTrainedTokenizerBase]:
    """Load the BERT encoder in `bert_dir` and return an untrained LUKE span classifier and the
    encoder's tokenizer. The classifier head (3H -> len(id2label)) is freshly initialised."""
    from transformers import LukeForEntitySpanClassification

    bert_dir = Path(bert_dir)
    bert_config, bert, tokenizer = _load_bert(bert_dir)
    model = LukeForEntitySpanClassification(luke_config_from_bert(bert_config, id2label))
    transplant_bert_weights(bert, model.luke, tokenizer.mask_token_id)
    logger.info(
        "nlu.luke.built_from_bert model=%s layers=%d hidden=%d labels=%d",
        bert_dir.name,
        bert_config.num_hidden_layers,
        bert_config.hidden_size,
        len(id2label),
    )
    return model, tokenizer


def build_luke_encoder(
    bert_dir: str | Path, dropout: float | None = None
) -> tuple[LukeModel, PreTrainedTokenizerBase]:
    """LUKE's encoder alone (word and entity streams, no head) built from the BERT encoder in
    `bert_dir`, for models that put their own heads on it; `dropout` overrides BERT's rates."""
    from transformers import LukeModel

    bert_config, bert, tokenizer = _load_bert(Path(bert_dir))
    config = luke_config_from_bert(bert_config, {0: "O"})
    if dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = dropout
    luke = LukeModel(config)
    transplant_bert_weights(bert, luke, tokenizer.mask_token_id)
    return luke, tokenizer


def load_pretrained_luke(
    luke_dir: Path, id2label: dict[int, str]
) -> tuple[LukeForEntitySpanClassification, PreTrainedTokenizerBase]:
    """A pretrained LUKE with a fresh span head; its entity vocabulary is cut to [PAD], [UNK],
    [MASK] (the only entities a span extractor feeds), which drops ~500k unused rows."""
    from transformers import LukeForEntitySpanClassification

    try:
        config = AutoConfig.from_pretrained(luke_dir)
        if not isinstance(config, LukeConfig):
            raise NLUModelError(
                f"luke_model '{luke_dir}' is a '{config.model_type}' model, not LUKE. Give a LUKE "
                "checkpoint (e.g. studio-ousia/luke-base), or leave luke_model unset to build one."
            )
        model = LukeForEntitySpanClassification.from_pretrained(
            luke_dir,
            num_labels=len(id2label),
            id2label=id2label,
            label2id={name: i for i, name in id2label.items()},
            ignore_mismatched_sizes=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(luke_dir)
    except (OSError, ValueError) as exc:
        raise NLUModelError(f"Cannot load the pretrained LUKE in '{luke_dir}': {exc}") from exc
    if not tokenizer.is_fast:
        raise NLUModelError(f"The tokenizer of '{luke_dir}' must be a fast tokenizer (offsets).")
    vocab_path = luke_dir / "entity_vocab.json"
    vocab = json.loads(vocab_path.read_text(encoding="utf-8")) if vocab_path.is_file() else {}
    vocab = vocab if isinstance(vocab, dict) else {}
    keep = [vocab.get("[PAD]", 0), vocab.get("[UNK]", 1), vocab.get("[MASK]", ENTITY_MASK_ID)]
    old = model.luke.entity_embeddings.entity_embeddings
    table = nn.Embedding(len(keep), old.embedding_dim, padding_idx=0)
    with torch.no_grad():
        table.weight.copy_(old.weight[keep])  # (3, entity_emb_size)
    model.luke.entity_embeddings.entity_embeddings = table
    model.config.entity_vocab_size = len(keep)
    return model, tokenizer
