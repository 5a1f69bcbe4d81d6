"""benchmarks/train_time.py still runs: the policies of the pizzabot fixture, one JSON line
with the stage timings."""

from __future__ import annotations

import json
from pathlib import Path

from tests.benchmark_scripts import REPO_ROOT, load_benchmark


def test_train_time_reports_the_stages(tmp_path: Path, restore_imports: None) -> None:
    module = load_benchmark("train_time")

    results = tmp_path / "train_time.jsonl"
    report = module.main(["--project", str(REPO_ROOT / "tests" / "fixtures" / "pizzabot"),
                          "--parts", "core", "--out", str(tmp_path / "models"),
                          "--results", str(results)])
    assert set(report["stages"]) == {"core"}
    assert report["stages"]["core"]["wall_s"] >= 0 and report["wall_s"] >= 0
    assert (tmp_path / "models" / "core" / "policies.json").is_file()
    assert json.loads(results.read_text().splitlines()[-1])["parts"] == ["core"]
