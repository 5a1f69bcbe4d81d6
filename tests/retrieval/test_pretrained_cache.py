"""The machine-wide cache of pretrained models (retrieval.pretrained_cache), on its own and
as the knowledge build's pretraining step uses it."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from retrieval import pretrained_cache
from retrieval.knowledge_build import _unless_stamped


def _trainer(calls: list[Path], folder: Path):
    def train() -> dict[str, float]:
        calls.append(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(b"weights of " + folder.name.encode())
        return {"seconds": 1.0, "questions": 2}
    return train


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(pretrained_cache.ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "pretrained"


def test_a_second_models_folder_copies_the_pretrained_model(tmp_path: Path,
                                                            cache: Path) -> None:
    calls: list[Path] = []
    first = tmp_path / "one" / "reader_pretrained"
    done = _unless_stamped(first, "s1", _trainer(calls, first))
    assert done == {"reused": False, "seconds": 1.0, "questions": 2} and calls == [first]
    assert (cache / "reader_pretrained-s1" / "model.safetensors").is_file()

    second = tmp_path / "two" / "reader_pretrained"
    second.mkdir(parents=True)
    (second / "stale.bin").write_bytes(b"old")  # what was there is replaced
    done = _unless_stamped(second, "s1", _trainer(calls, second))
    assert done == {"reused": True, "seconds": 0.0, "cached": True} and calls == [first]
    assert (second / "model.safetensors").read_bytes() == b"weights of reader_pretrained"
    assert not (second / "stale.bin").exists()
    assert (second / "pretrain_fingerprint.txt").read_text(encoding="utf-8") == "s1"
    # kept in its folder now: reused from there, not copied again
    assert _unless_stamped(second, "s1", _trainer(calls, second)) == {"reused": True,
                                                                       "seconds": 0.0}
    # other data or settings: another stamp, trained and kept beside the first
    assert _unless_stamped(second, "s2", _trainer(calls, second))["reused"] is False
    assert calls == [first, second]
    assert sorted(p.name for p in cache.iterdir()) == ["reader_pretrained-s1",
                                                       "reader_pretrained-s2"]


def test_off_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pretrained_cache.ENV, "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert pretrained_cache.cache_dir() is None
    calls: list[Path] = []
    for name in ("a", "b"):
        folder = tmp_path / name / "reader_pretrained"
        assert _unless_stamped(folder, "s1", _trainer(calls, folder))["reused"] is False
    assert len(calls) == 2 and not (tmp_path / ".cache").exists()


def test_where_it_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pretrained_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained_cache.cache_dir() == tmp_path / "xdg" / "xingkong" / "pretrained"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained_cache.cache_dir() == tmp_path / "home" / ".cache" / "xingkong" / \
        "pretrained"

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(pretrained_cache.Path, "home", staticmethod(no_home))
    assert pretrained_cache.cache_dir() is None  # no cache, and no error


def test_only_the_most_recently_used_stay(tmp_path: Path, cache: Path) -> None:
    calls: list[Path] = []
    folder = tmp_path / "m" / "reranker_pretrained"
    for n in range(pretrained_cache.KEEP + 2):
        _unless_stamped(folder, f"s{n}", _trainer(calls, folder))
        entry = cache / f"reranker_pretrained-s{n}"
        os.utime(entry, (time.time() - 100 + n, time.time() - 100 + n))
    other = tmp_path / "m" / "reader_pretrained"  # another folder name: counted apart
    _unless_stamped(other, "s0", _trainer(calls, other))
    stale = cache / ".reranker_pretrained-s9.abc"  # a copy a dead build left half written
    stale.mkdir()
    os.utime(stale, (1.0, 1.0))
    pretrained_cache.prune(cache, "reranker_pretrained")
    kept = sorted(p.name for p in cache.iterdir())
    assert kept == ["reader_pretrained-s0",
                    *(f"reranker_pretrained-s{n}" for n in range(2, pretrained_cache.KEEP + 2))]


def test_a_cache_it_cannot_write_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the cache would go", encoding="utf-8")
    monkeypatch.setenv(pretrained_cache.ENV, str(blocked))
    calls: list[Path] = []
    folder = tmp_path / "m" / "reader_pretrained"
    with caplog.at_level(logging.WARNING, logger="retrieval.pretrained_cache"):
        done = _unless_stamped(folder, "s1", _trainer(calls, folder))
    assert done["reused"] is False and (folder / "model.safetensors").is_file()
    assert "keep_failed" in caplog.text
    assert pretrained_cache.fetch_pretrained(tmp_path / "n" / "reader_pretrained", "s1") is False
