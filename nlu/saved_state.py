"""The state file an entity extractor saves beside its Hugging Face weights.

`<extractor>.json` holds the format version, the extractor's config and its labels (plus what
the extractor adds); `read_state` checks that the folder is complete and readable and rebuilds
the config, with `overrides` (device, quantize) applied where they are not None.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from nlu.errors import NLUModelError
from nlu.words import SpanLabel

C = TypeVar("C")


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
