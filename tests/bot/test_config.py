"""bot.project.config: config.yml, endpoints.yml, credentials.yml and project paths."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.project.config import (
    DEFAULT_PIPELINE,
    DEFAULT_POLICIES,
    ProjectPaths,
    Secret,
    load_config,
    load_credentials,
    load_endpoints,
    reveal,
)
from bot.errors import ConfigError, YamlError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- config.yml


def test_demo_config_loads() -> None:
    config = load_config(REPO / "config.yml")
    assert config.language == "en"
    assert config.assistant_id == "starlight-concierge"
    assert [c.name for c in config.policies] == ["MemoizationPolicy", "TEDPolicy", "RulePolicy"]
    assert config.pipeline[0].name == "JointIntentEntity"
    assert config.component("MemoizationPolicy").written == {"max_history": 5}
    assert config.component("MemoizationPolicy").params.max_history == 5
    assert config.component("FallbackClassifier").params.threshold == 0.4
    assert config.component("NoSuchThing") is None


def test_missing_config_uses_defaults(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.project.config"):
        config = load_config(tmp_path / "config.yml")
    assert config.language == "en"
    assert [c.name for c in config.pipeline] == [d["name"] for d in DEFAULT_PIPELINE]
    assert [c.name for c in config.policies] == [d["name"] for d in DEFAULT_POLICIES]
    fallback = config.component("FallbackClassifier")
    assert fallback is not None and fallback.params.threshold == 0.3
    assert "config.yml" in caplog.text


def test_empty_config_uses_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config.yml", "# nothing here\n"))
    assert [c.name for c in config.policies] == [d["name"] for d in DEFAULT_POLICIES]


def test_missing_sections_use_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path / "config.yml", "language: de\n"))
    assert config.language == "de"
    assert [c.name for c in config.pipeline] == [d["name"] for d in DEFAULT_PIPELINE]


def test_unknown_policy_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "policies:\n  - name: MemoisationPolicy\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "MemoisationPolicy" in message
    assert "Did you mean 'MemoizationPolicy'?" in message
    assert str(path) in message


def test_unknown_pipeline_component_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "pipeline:\n  - name: IntentClassifer\n")
    with pytest.raises(ConfigError, match="Did you mean 'IntentClassifier'"):
        load_config(path)


def test_rasa_component_names_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", """\
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
  - name: DIETClassifier
    epochs: 100
policies:
  - name: TEDPolicy
  - name: rasa.core.policies.rule_policy.RulePolicy
""")
    config = load_config(path)
    assert config.component("DIETClassifier").written == {"epochs": 100}
    assert [c.name for c in config.policies] == ["TEDPolicy", "RulePolicy"]


@pytest.mark.parametrize("entry", ["  - model: x\n", "  - IntentClassifier\n",
                                   "  - name: 3\n"])
def test_pipeline_entries_need_a_name(tmp_path: Path, entry: str) -> None:
    path = write(tmp_path / "config.yml", "pipeline:\n" + entry)
    with pytest.raises(ConfigError, match="needs a 'name'") as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "pipeline[0]" in str(info.value)


def test_pipeline_must_be_a_list(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "language: en\npipeline: IntentClassifier\n")
    with pytest.raises(ConfigError, match="must be a list") as info:
        load_config(path)
    assert f"{path}:2" in str(info.value)


def test_config_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path / "config.yml", "- name: RulePolicy\n"))


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yml", "language: en\npolicies:\n  - name: [RulePolicy\n")
    with pytest.raises(YamlError) as info:
        load_config(path)
    assert f"{path}:" in str(info.value)


def test_unknown_top_level_key_warns_but_loads(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "config.yml", "language: en\nflavour: vanilla\n")
    with caplog.at_level(logging.WARNING, logger="bot.project.config"):
        config = load_config(path)
    assert config.language == "en"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("flavour" in r.getMessage() and f"{path}:2" in r.getMessage() for r in warnings)


def test_known_rasa_keys_do_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "config.yml", "recipe: default.v1\nlanguage: en\n"
                 "assistant_id: a\nretrieval:\n  top_k: 3\n")
    with caplog.at_level(logging.WARNING, logger="bot.project.config"):
        config = load_config(path)
    assert caplog.records == []
    assert config.sections == {"retrieval": {"top_k": 3}}


# ---------------------------------------------------------------------- endpoints.yml

ENDPOINTS = """\
action_endpoint:
  url: "http://localhost:5055/webhook"
  token: ${XK_TEST_TOKEN}
tracker_store:
  type: redis
  url: "redis://${XK_TEST_HOST}:6379"
  password: ${XK_TEST_PASSWORD}
  db: 2
"""


def test_endpoints_interpolate_environment_variables(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XK_TEST_TOKEN", "tok-123-secret")
    monkeypatch.setenv("XK_TEST_HOST", "redis.internal")
    monkeypatch.setenv("XK_TEST_PASSWORD", "pw-456-secret")
    endpoints = load_endpoints(write(tmp_path / "endpoints.yml", ENDPOINTS))
    action = endpoints.action_endpoint
    assert action is not None and action.url == "http://localhost:5055/webhook"
    assert isinstance(action.token, Secret)
    assert action.token.reveal() == "tok-123-secret"
    assert reveal(action.token) == "tok-123-secret"
    store = endpoints.tracker_store
    assert store is not None and store.type == "redis"
    assert store.url == "redis://redis.internal:6379"  # inside a string: plain text
    assert reveal(store.params["password"]) == "pw-456-secret"
    assert store.params["db"] == 2
    assert endpoints.lock_store is None


def test_secret_repr_hides_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XK_TEST_TOKEN", "tok-123-secret")
    monkeypatch.setenv("XK_TEST_HOST", "h")
    monkeypatch.setenv("XK_TEST_PASSWORD", "pw-456-secret")
    endpoints = load_endpoints(write(tmp_path / "endpoints.yml", ENDPOINTS))
    token = endpoints.action_endpoint.token
    for shown in (repr(token), str(token), f"{token}", repr(endpoints)):
        assert "tok-123-secret" not in shown
        assert "pw-456-secret" not in shown
    assert "XK_TEST_TOKEN" in repr(token)
    assert reveal("plain") == "plain"


def test_missing_environment_variable_names_file_key_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XK_TEST_TOKEN", raising=False)
    path = write(tmp_path / "endpoints.yml", ENDPOINTS)
    with pytest.raises(ConfigError) as info:
        load_endpoints(path)
    message = str(info.value)
    assert str(path) in message
    assert "action_endpoint" in message
    assert "token" in message
    assert "XK_TEST_TOKEN" in message


def test_missing_endpoints_file_is_empty(tmp_path: Path) -> None:
    endpoints = load_endpoints(tmp_path / "endpoints.yml")
    assert endpoints.action_endpoint is None and endpoints.tracker_store is None


def test_endpoint_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "endpoints.yml", "action_endpoint: http://localhost:5055\n")
    with pytest.raises(ConfigError, match="must be a mapping") as info:
        load_endpoints(path)
    assert f"{path}:1" in str(info.value)


def test_unknown_endpoints_key_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "endpoints.yml", "version: '3.1'\nmystery_store:\n  url: x\n")
    with caplog.at_level(logging.WARNING, logger="bot.project.config"):
        load_endpoints(path)
    assert "mystery_store" in caplog.text


# --------------------------------------------------------------------- credentials.yml


def test_credentials_interpolate_and_hide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XK_TEST_SLACK", "xoxb-very-secret")
    path = write(tmp_path / "credentials.yml", """\
rest:
socketio:
  user_message_evt: user_uttered
slack:
  slack_token: ${XK_TEST_SLACK}
  nested:
    signing: ${XK_TEST_SLACK}
""")
    credentials = load_credentials(path)
    assert credentials["rest"] == {}
    assert credentials["socketio"] == {"user_message_evt": "user_uttered"}
    token = credentials["slack"]["slack_token"]
    assert isinstance(token, Secret) and token.reveal() == "xoxb-very-secret"
    assert reveal(credentials["slack"]["nested"]["signing"]) == "xoxb-very-secret"
    assert "xoxb-very-secret" not in repr(credentials)


def test_credentials_missing_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XK_TEST_MISSING", raising=False)
    path = write(tmp_path / "credentials.yml", "slack:\n  slack_token: ${XK_TEST_MISSING}\n")
    with pytest.raises(ConfigError) as info:
        load_credentials(path)
    message = str(info.value)
    assert str(path) in message and "slack" in message and "slack_token" in message
    assert "XK_TEST_MISSING" in message


def test_credentials_channel_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "credentials.yml", "rest: yes please\n")
    with pytest.raises(ConfigError, match="rest") as info:
        load_credentials(path)
    assert f"{path}:1" in str(info.value)


def test_missing_credentials_file_is_empty(tmp_path: Path) -> None:
    assert load_credentials(tmp_path / "credentials.yml") == {}


# ----------------------------------------------------------------------- project paths


def test_project_paths_defaults(tmp_path: Path) -> None:
    paths = ProjectPaths.at(tmp_path)
    root = tmp_path.resolve()
    assert paths.root == root
    assert paths.config == root / "config.yml"
    assert paths.data == (root / "data",)
    assert paths.endpoints == root / "endpoints.yml"
    assert paths.credentials == root / "credentials.yml"
    assert paths.models == root / "models"
    assert paths.domain == root / "domain"  # no domain.yml: a domain folder
    (tmp_path / "domain.yml").write_text("intents: [greet]\n", encoding="utf-8")
    assert ProjectPaths.at(tmp_path).domain == root / "domain.yml"


def test_project_paths_overrides(tmp_path: Path) -> None:
    custom = tmp_path / "elsewhere.yml"
    paths = ProjectPaths.at(tmp_path, domain=custom, data=(tmp_path / "nlu",))
    assert paths.domain == custom
    assert paths.data == (tmp_path / "nlu",)


def test_environment_variables_inside_lists_are_interpolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XK_TEST_TOPIC", "bot-events")
    path = write(tmp_path / "endpoints.yml", """\
event_broker:
  type: kafka
  url: localhost
  topics:
    - ${XK_TEST_TOPIC}
""")
    broker = load_endpoints(path).event_broker
    assert broker is not None
    assert [reveal(t) for t in broker.params["topics"]] == ["bot-events"]
