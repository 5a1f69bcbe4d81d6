"""The deployment files, checked as far as a machine without Docker allows: the compose file
against the Compose Specification's JSON schema, the Dockerfile with hadolint, every COPY
source present and not excluded by .dockerignore, the deploy/ endpoints and credentials
loadable and fit for several workers, every service health-checked, every variable documented
in the README."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.project.config import load_credentials, load_endpoints
from bot.serving.channels import ChannelServices, build_channels
from bot.wiring import check_shared_stores

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
SERVICES = {"assistant", "action-server", "ui", "redis", "duckling"}
_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} is not installed (pip install -c constraints.txt -e '.[dev]')")
    return path


def test_compose_file_follows_the_compose_spec() -> None:
    check = subprocess.run([_tool("check-jsonschema"), "--builtin-schema",
                            "vendor.compose-spec", str(COMPOSE)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    ports: 5005\n    restart: sometimes\n")
    check = subprocess.run([_tool("check-jsonschema"), "--builtin-schema",
                            "vendor.compose-spec", str(broken)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode != 0


def test_dockerfile_passes_hadolint() -> None:
    lint = subprocess.run([_tool("hadolint"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            sources += [part for part in line.split()[1:-1] if not part.startswith("--")]
    assert "constraints.txt" in sources and "bot" in sources and "deploy" in sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        excluded = [p for p in ignored if fnmatch.fnmatch(source, p.lstrip("*/"))]
        assert not excluded, f"COPY {source} is excluded by .dockerignore {excluded}"


def test_services_images_and_health_checks() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service or name == "assistant" and "HEALTHCHECK" in \
            DOCKERFILE.read_text(), f"{name} has no health check"
    for name in ("assistant", "action-server", "ui"):
        assert services[name]["build"]["context"] == "."
    assert services["duckling"]["image"].startswith("rasa/duckling:")
    assert "--appendonly" in services["redis"]["command"]
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert "ports" not in services["redis"]  # state stays on the compose network
    command = DOCKERFILE.read_text().split("CMD [", 1)[1]
    assert "deploy/endpoints.yml" in command and "deploy/credentials.yml" in command


def test_deploy_files_load_and_allow_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = _compose()["services"]["assistant"]["environment"]
    for key in ("REDIS_HOST", "ACTION_SERVER_HOST"):
        monkeypatch.setenv(key, environment[key])
    endpoints = load_endpoints(REPO / "deploy" / "endpoints.yml")
    check_shared_stores(endpoints, 4, "deploy/endpoints.yml")  # raises when not shared
    assert endpoints.action_endpoint is not None
    assert endpoints.action_endpoint.url == "http://action-server:5055/webhook"
    channels = build_channels(load_credentials(REPO / "deploy" / "credentials.yml"),
                              ChannelServices())
    assert [c.name for c in channels] == ["rest", "socketio"]


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    serving = readme.split("## Serving", 1)[1].split("\n## ", 1)[0]
    used = set(_VAR.findall(COMPOSE.read_text()))
    for path in (REPO / "deploy").glob("*.yml"):
        used |= set(_VAR.findall(path.read_text()))  # commented examples too
    for service in _compose()["services"].values():
        used |= set(service.get("environment", {}))
    used |= set(re.findall(r"^ARG ([A-Z_]+)", DOCKERFILE.read_text(), re.M))
    assert len(used) > 10
    missing = sorted(name for name in used if f"`{name}`" not in serving)
    assert not missing, f"not in the README's Serving section: {missing}"


def test_volumes_of_the_app_services_are_prepared_for_the_app_user() -> None:
    """A named volume takes the owner of the image's folder; the image runs as uid 10001."""
    dockerfile = DOCKERFILE.read_text()
    assert "USER 10001" in dockerfile
    for name in ("action-server", "assistant", "ui"):
        for volume in _compose()["services"][name].get("volumes", []):
            target = volume.split(":")[1]
            assert target in dockerfile.split("chown", 1)[1].split("\n")[0], (
                f"{name}: volume target {target} is not created and chowned in the Dockerfile")
