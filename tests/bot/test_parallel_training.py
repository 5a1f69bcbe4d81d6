"""`xingkong train` builds the knowledge, then the policies, in a spawned process while the
NLU, then the small talk, train; the NLU takes the cores left idle once that job ends. Tiny
real models only: a spawned process does not see the fakes other tests patch in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.errors import TrainingError
from bot.project.config import ProjectPaths
from bot.project.project import Project
from bot.training import parallel
from bot.training.train import train
from tests.bot.test_cli_knowledge import ENCODER_NAME, make_project
from tests.fakes import build_tiny_reader, write_tiny_bert
from tests.retrieval.test_answerer import tiny_encoder
from tests.retrieval.test_train_step import one_step

NLU = """version: "3.1"
nlu:
  - intent: greet
    examples: |
      - hello
      - hi there
      - hello hello
      - hi
  - intent: ask
    examples: |
      - shirt price in [Lisbon](city)
      - bus to [Rome](city)
      - laundry in [Paris](city)
      - shirt in [Rome](city) please
"""
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         *"hello hi there shirt price in bus to laundry please lisbon rome paris".split()]


def side_by_side_project(tmp_path: Path, extra: str = "") -> Path:
    """A tiny project with an NLU model and a knowledge base (plus `extra` config)."""
    bert = tmp_path / "bert"
    bert.mkdir()
    write_tiny_bert(bert, VOCAB)
    reader = build_tiny_reader(tmp_path / "reader")
    tiny_encoder(reader.parent / ENCODER_NAME)  # make_project names it as the sentence encoder
    root = make_project(tmp_path / "bot", reader)
    config = (root / "config.yml").read_text()
    (root / "config.yml").write_text(
        config.replace("pipeline: []", f"pipeline:\n  - name: JointIntentEntity\n"
                                       f"    model: {bert}\n    epochs: 1\n    max_length: 32")
        .replace("hybrid: false", f"hybrid: false\n  embedder: {bert}") + extra)
    domain = (root / "domain.yml").read_text().replace("  - greet\n", "  - greet\n  - ask\n")
    (root / "domain.yml").write_text(domain + "entities:\n  - city\n")
    (root / "data" / "nlu.yml").write_text(NLU)
    return root


def test_nlu_and_knowledge_train_side_by_side(tmp_path: Path) -> None:
    root = side_by_side_project(tmp_path)
    report = train(Project.load(ProjectPaths.at(root)), progress=False)
    assert report.nlu_trained and report.knowledge_trained
    assert (root / "models" / "nlu" / "joint" / "joint.onnx").is_file()
    assert report.knowledge_report and (root / "models" / "knowledge").is_dir()
    assert report.core_trained and (root / "models" / "core" / "policies.json").is_file()
    assert (root / "models" / "domain.json").is_file()
    stages = report.stages
    assert list(stages)[0] in ("nlu", "knowledge") and set(stages) == {"nlu", "knowledge", "core"}
    # the policies train beside the NLU, after the knowledge build, in the other process
    # (StageTime rounds each figure to 0.1 s: three figures, each up to 0.05 off)
    knowledge_end = stages["knowledge"].start_s + stages["knowledge"].wall_s
    assert stages["core"].start_s >= knowledge_end - 0.15
    assert stages["nlu"].start_s < stages["core"].start_s
    assert all(s.wall_s >= 0 and s.cpu_s >= 0 for s in stages.values())


@pytest.mark.parametrize(("done", "idle", "expected"), [
    (False, 4.0, 2),   # the side job still trains: one core each (of 4)
    (True, 4.0, 4),    # quiet machine, the NLU alone: every core
    (True, 2.4, 2),    # 2.4 cores idle
    (True, 0.2, 1),    # busy machine: one thread, never a descheduled second one
])
def test_nlu_threads_take_the_idle_cores(monkeypatch: pytest.MonkeyPatch, done: bool,
                                        idle: float, expected: int) -> None:
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(parallel, "_idle_cores", lambda: idle)
    assert parallel.nlu_threads(lambda: done)() == expected


def test_idle_cores_reads_the_machine() -> None:
    idle = parallel._idle_cores(0.05)
    assert 0.0 <= idle <= (parallel.os.cpu_count() or 1) + 0.01


def test_small_talk_trains_beside_the_knowledge_and_its_failure_keeps_that(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The small talk trains in this process after the NLU, while the knowledge build goes on
    in the other; when it fails, the knowledge build still finishes (kept for the next run)
    before the error reaches the caller."""
    from bot.training import train as training

    root = side_by_side_project(tmp_path, "generation:\n  train: {language_model: false}\n")

    def broken(*args: object, **kwargs: object) -> None:
        raise TrainingError("small talk broke")

    monkeypatch.setattr(training, "train_generation", broken)
    with pytest.raises(TrainingError, match="small talk broke"):
        train(Project.load(ProjectPaths.at(root)), progress=False)
    assert (root / "models" / "knowledge" / "knowledge.json").is_file()
    assert not (root / "models" / "fingerprint.json").is_file()  # trained again next time


@pytest.mark.parametrize(("idle", "expected"), [(2.1, 2), (1.2, 1), (0.0, 1)])
def test_idle_threads_count_the_idle_cores(monkeypatch: pytest.MonkeyPatch, idle: float,
                                           expected: int) -> None:
    """The knowledge build's steps ask this every 30 s: while the NLU trains one core idles
    (its own, while it measures), after it both do."""
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(parallel, "_idle_cores", lambda: idle)
    assert parallel.idle_threads() == expected


def test_the_knowledge_builds_in_the_background_after_train_returns(tmp_path: Path) -> None:
    """`train(knowledge_behind=True)` (`make run`): the NLU and the policies are trained when
    it returns; the knowledge build goes on in a process of its own, which marks the folder
    as building, records its fingerprint when done and removes the mark."""
    import json
    import time

    from retrieval.building import building, marker

    root = side_by_side_project(tmp_path)
    models = root / "models"
    report = train(Project.load(ProjectPaths.at(root)), progress=False, knowledge_behind=True)
    assert report.nlu_trained and report.core_trained and report.knowledge_behind
    assert not report.knowledge_trained and "knowledge" not in report.stages
    assert set(json.loads((models / "fingerprint.json").read_text())) >= {"nlu", "core"}
    deadline = time.monotonic() + 240
    while building(models / "knowledge") and time.monotonic() < deadline:
        time.sleep(0.5)
    from bot.training.background import STARTED

    assert [p.wait(timeout=10) for p in STARTED] == [0]
    STARTED.clear()
    log = (models / "knowledge_build.log").read_text()
    assert "Knowledge built in" in log, log[-2000:]
    assert (models / "knowledge" / "knowledge.json").is_file()
    assert not marker(models / "knowledge").exists()
    fingerprints = json.loads((models / "fingerprint.json").read_text())
    assert {"nlu", "core", "knowledge"} <= set(fingerprints)
    again = train(Project.load(ProjectPaths.at(root)), progress=False, knowledge_behind=True)
    assert not (again.knowledge_behind or again.nlu_trained or again.core_trained)


def test_a_failed_background_build_is_logged_and_leaves_no_mark(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    from bot.training.background import run_build
    from retrieval.building import marker

    root = side_by_side_project(tmp_path)
    next((root / "data").rglob("qa.json")).unlink()  # the reader has nothing to learn from
    paths = ProjectPaths.at(root)
    paths.models.mkdir()
    with caplog.at_level(logging.ERROR):
        assert run_build(paths, force=False) == 1
    assert "Knowledge build failed: TrainingError: No qa.json" in caplog.text
    assert not marker(paths.models / "knowledge").exists()
    fingerprints = paths.models / "fingerprint.json"
    assert not fingerprints.exists() or "knowledge" not in json.loads(fingerprints.read_text())


def test_a_marker_left_by_a_dead_build_does_not_count(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys
    import time

    from retrieval.building import building, mark_building

    target = tmp_path / "knowledge"
    assert not building(target)
    mark_building(target, os.getpid())
    assert building(target)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    mark_building(target, child.pid)
    deadline = time.monotonic() + 30
    while building(target) and time.monotonic() < deadline:
        time.sleep(0.1)  # exited, not yet waited for: not building
    assert not building(target)
    child.wait()
    assert not building(target)
    (target.parent / "knowledge.building").write_text("not json")
    assert not building(target)


def test_xingkong_run_says_when_the_knowledge_is_still_building(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from bot.cli import _echo_building
    from retrieval.building import mark_building

    _echo_building(tmp_path)
    assert capsys.readouterr().out == ""
    mark_building(tmp_path / "knowledge", os.getpid())
    _echo_building(tmp_path)
    assert "still building in the background" in capsys.readouterr().out


def test_a_knowledge_build_alone_takes_the_idle_cores_and_gives_them_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    monkeypatch.setattr(parallel, "_idle_cores", lambda: 2.0)
    with parallel.on_idle_cores():
        torch.set_num_threads(1)  # what the reader's and the encoder's loops set first
        one_step()
        assert torch.get_num_threads() == min(2, os.cpu_count() or 1)
    assert torch.get_num_threads() == before
    try:  # no source is asked any more: the steps keep the threads they are given
        torch.set_num_threads(1)
        one_step()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
