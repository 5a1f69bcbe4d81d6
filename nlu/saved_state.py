"""The folder an entity extractor saves: Hugging Face weights, tokenizer and a state file.

`<extractor>.json` holds the format version, the extractor's config and its labels (plus what
the extractor adds). `write_state` saves the whole folder; `read_state` checks that the folder
is complete and readable and rebuilds the config, with `overrides` (device, quantize) applied
where they are not None; `load_saved` reads the weights and tokenizer back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nlu.errors import NLUModelError
from nlu.words import SpanLabel

if TYPE_CHECKING:  # transformers is imported when a model is loaded or saved
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

C = TypeVar("C")
M = TypeVar("M")


def write_state(directory: str | Path, model: PreTrainedModel,
                tokenizer: PreTrainedTokenizerBase, state_file: str, name: str,
                format_version: int, config: Any, labels: list[SpanLabel],
                **extra: Any) -> Path:
    """Save weights, tokenizer and `state_file` (format, extractor, config, labels, `extra`)
    into `directory`: everything `read_state` and `load_saved` need."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    state = {
        "format_version": format_version,
        "extractor": name,
        "config": asdict(config),
        "labels": [list(label) for label in labels],
        **extra,
    }
    (directory / state_file).write_text(json.dumps(state, indent=2), encoding="utf-8")
    return directory


def load_saved(source: Path | None, name: str,
               load_model: Callable[[Path], M]) -> tuple[M, PreTrainedTokenizerBase]:
    """The model (read by `load_model`) and tokenizer saved in `source`. None: the extractor
    was neither trained nor loaded."""
    if source is None:
        raise NLUModelError(
            f"{name} has no model: call train(examples) or {name}.load_from(directory) first."
        )
    from transformers import AutoTokenizer

    try:
        model = load_model(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise NLUModelError(f"Cannot load {name} from '{source}': {exc}") from exc
    return model, tokenizer


def read_state(directory: Path, state_file: str, name: str, config_cls: type[C],
               format_version: int, **overrides: Any) -> tuple[C, list[SpanLabel],
                                                                dict[str, Any]]:
    """(config, labels, the whole state) of the extractor saved in `directory`."""
    state_path = directory / state_file
    needed = (state_file, "config.json", "model.safetensors")
    missing = [n for n in needed if not (directory / n).is_file()]
    if missing:
        raise NLUModelError(
            f"No saved {name} in '{directory}': missing {', '.join(missing)}. "
            f"Save one with {name}.save(directory)."
        )
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(config_cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in state["config"].items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = config_cls(**values)
        labels = [(e, r, g) for e, r, g in state["labels"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise NLUModelError(f"Unreadable {state_path}: {exc!r}. Save the model again.") from exc
    if state.get("format_version") != format_version:
        raise NLUModelError(
            f"{state_path} has format {state.get('format_version')}, this version reads "
            f"{format_version}. Train and save the model again."
        )
    return config, labels, state
