"""A byte-level BPE tokenizer trained on the corpus with `tokenizers` (GPT-2's scheme: any
text encodes, nothing is unknown), saved as a transformers fast tokenizer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

END = "<|endoftext|>"  # between conversations; GPT-2's own end-of-text token


def train_tokenizer(texts: Iterable[str], vocab_size: int, out: Path | None = None) -> Any:
    """A PreTrainedTokenizerFast with `vocab_size` entries learnt from `texts` (saved to
    `out` when given)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=END, eos_token=END,
                                        unk_token=END, pad_token=END)
    if out is not None:
        tokenizer.save_pretrained(str(out))
    return tokenizer


def turn_end_ids(tokenizer: Any) -> list[int]:
    """Every token that ends a turn: the end-of-text token and each token whose text holds a
    newline (a byte-level vocabulary merges "\\n" with neighbours, so there are several)."""
    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    for token_id in range(len(tokenizer)):
        if "\n" in tokenizer.decode([token_id]):
            ids.add(token_id)
    return sorted(ids)
