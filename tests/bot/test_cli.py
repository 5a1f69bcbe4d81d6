"""The `xingkong` command line (bot.cli)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from bot.cli import main

REPO = Path(__file__).resolve().parents[2]


def copy_demo(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "domain.yml", dst / "domain.yml")
    config = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    for policy in config["policies"]:
        if policy["name"] == "TEDPolicy":
            policy["epochs"] = 2  # the CLI is under test here, not TED's accuracy
    (dst / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    shutil.copytree(REPO / "data", dst / "data")
    return dst


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    # only click's own exits; an escaping exception would be a crash with a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}\n{result.output}")
    return result


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "run", "shell", "data"):
        assert command in result.output


@pytest.mark.parametrize("args", [("train", "--help"), ("data", "validate", "--help"),
                                  ("run", "--help"), ("run", "actions", "--help")])
def test_subcommand_help(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert "0.1.0" in result.output


def test_usage_error_exits_2() -> None:
    result = invoke("train", "everything")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_train_core_twice_second_run_is_up_to_date(tmp_path: Path) -> None:
    project = copy_demo(tmp_path / "demo")
    first = invoke("train", "core", "--project", str(project))
    assert first.exit_code == 0, first.output
    assert "Trained core" in first.output
    models = project / "models"
    assert (models / "core" / "policies.json").is_file()
    assert json.loads((models / "domain.json").read_text())["intents"]
    fingerprint = json.loads((models / "fingerprint.json").read_text())
    assert "core" in fingerprint and "nlu" not in fingerprint
    assert not (models / "nlu").exists()  # core only: the NLU is never trained here

    second = invoke("train", "core", "--project", str(project))
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output
    assert "Trained" not in second.output


def test_malformed_domain_exits_1_with_a_clean_message(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    shutil.copy2(REPO / "config.yml", project / "config.yml")
    (project / "data").mkdir()
    (project / "domain.yml").write_text("version: '3.1'\nintents:\n  - greet\n  - [goodbye\n",
                                        encoding="utf-8")
    result = invoke("train", "core", "--project", str(project))
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert f"{project.resolve() / 'domain.yml'}:" in result.output
    assert "Traceback" not in result.output
    assert not (project / "models" / "core").exists()


def test_wrong_domain_type_exits_1(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "data").mkdir()
    (project / "domain.yml").write_text("slots:\n  s:\n    type: txt\n", encoding="utf-8")
    result = invoke("train", "core", "--project", str(project))
    assert result.exit_code == 1
    assert "domain.yml:2" in result.output
    assert "'txt'" in result.output
    assert "Traceback" not in result.output


def test_data_validate_with_malformed_domain_exits_1(tmp_path: Path) -> None:
    project = tmp_path / "broken"
    project.mkdir()
    (project / "data").mkdir()
    (project / "domain.yml").write_text("intents: [greet\n", encoding="utf-8")
    result = invoke("data", "validate", "--project", str(project))
    assert result.exit_code == 1
    assert "domain.yml" in result.output
    assert "Traceback" not in result.output


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def test_python_dash_m_bot_help() -> None:
    done = subprocess.run([sys.executable, "-m", "bot", "--help"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert "train" in done.stdout and "data" in done.stdout


def test_console_script_help() -> None:
    script = Path(sys.executable).parent / "xingkong"
    if not script.exists():
        pytest.skip("the xingkong console script is not installed in this environment")
    done = subprocess.run([str(script), "--help"], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usage: xingkong" in done.stdout
