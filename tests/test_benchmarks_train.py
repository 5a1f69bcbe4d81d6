"""benchmarks/train_time.py still runs: the policies of the pizzabot fixture, one JSON line
with the stage timings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_train_time_reports_the_stages(tmp_path: Path, restore_imports: None) -> None:
    spec = importlib.util.spec_from_file_location("benchmarks.train_time",
                                                  REPO_ROOT / "benchmarks" / "train_time.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    results = tmp_path / "train_time.jsonl"
    report = module.main(["--project", str(REPO_ROOT / "tests" / "fixtures" / "pizzabot"),
                          "--parts", "core", "--out", str(tmp_path / "models"),
                          "--results", str(results)])
    assert set(report["stages"]) == {"core"}
    assert report["stages"]["core"]["wall_s"] >= 0 and report["wall_s"] >= 0
    assert (tmp_path / "models" / "core" / "policies.json").is_file()
    assert json.loads(results.read_text().splitlines()[-1])["parts"] == ["core"]
