"""TEDPolicy: featurisation on tiny domains, a toy story set that memoization cannot solve but
TED generalises to (trained deterministically in a second or two), save/load, the ensemble's
priorities and the config checks. The demo-sized check of the held-out stories is `slow`."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest
import torch

from bot.project.project import Project
from bot.training.core import load_policies, train_core
from bot.errors import ConfigError
from bot.policies import MemoizationPolicy, PolicyEnsemble, PolicyPrediction, build_policies
from bot.policies.evaluation import evaluate_stories
from bot.policies.states import StateWalker
from bot.policies.ted import TEDConfig, TEDPolicy, balanced_order
from bot.policies.ted_features import StateFeaturizer
from bot.policies.ted_model import TEDDims, TEDModel
from bot.project.config import (
    ProjectPaths,
    component_config,
    load_config,
    skipped_components,
)
from bot.project.domain import Domain, load_domain
from bot.project.ted_params import ATTRIBUTES
from bot.project.training_data import load_training_data
from bot.state.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActiveLoop,
    Event,
    SlotSet,
    UserUttered,
)
from bot.state.tracker import DialogueStateTracker

REPO = Path(__file__).resolve().parents[2]

SLOTS_DOMAIN = """\
version: "3.1"
intents: [greet, inform]
entities:
  - city
  - date:
      roles: [checkin, checkout]
slots:
  city: {type: text, mappings: [{type: from_entity, entity: city}]}
  vip: {type: bool, mappings: [{type: custom}]}
  room: {type: categorical, values: [single, Double], mappings: [{type: custom}]}
  guests: {type: float, min_value: 1, max_value: 5, mappings: [{type: custom}]}
  note: {type: text, influence_conversation: false, mappings: [{type: custom}]}
  extra: {type: any, mappings: [{type: custom}]}
forms:
  room_form: {required_slots: [city]}
responses:
  utter_greet: [{text: hi}]
"""


def tiny_domain(tmp_path: Path, text: str) -> Domain:
    path = tmp_path / "domain.yml"
    path.write_text(text)
    return load_domain(path)


def vector(domain: Domain, *events: Event) -> dict[str, list[float]]:
    """The state after `events`, featurised and cut into its named parts."""
    featurizer = StateFeaturizer.from_domain(domain)
    walker = StateWalker(domain)
    for event in events:
        walker.apply(event)
    flat = featurizer.encode(walker.state())
    parts, at = {}, 0
    for name, width in featurizer.sizes.items():
        parts[name] = flat[at:at + width]
        at += width
    return parts


def user(intent: str, **entities: str) -> UserUttered:
    ents = [{"entity": k.split("__")[0], "value": v,
             **({"role": k.split("__")[1]} if "__" in k else {})} for k, v in entities.items()]
    return UserUttered(text=f"/{intent}", parse_data={
        "intent": {"name": intent, "confidence": 1.0}, "entities": ents, "text": f"/{intent}"})


# ---------------------------------------------------------------- featurisation


def test_each_part_of_a_state_has_its_columns(tmp_path: Path) -> None:
    domain = tiny_domain(tmp_path, SLOTS_DOMAIN)
    featurizer = StateFeaturizer.from_domain(domain)
    # text `note` does not influence the conversation and `any` slots never do (as in Rasa)
    assert [c.name for c in featurizer.slots] == ["city", "guests", "room", "vip"]
    assert featurizer.entities == ("city", "date", "date#checkin", "date#checkout")
    assert featurizer.loops == ("room_form",)

    empty = vector(domain)
    assert all(v == 0.0 for part in empty.values() for v in part)

    parts = vector(domain, ActionExecuted(name="action_listen"),
                   user("inform", city="Rome", date__checkin="may 2"),
                   ActionExecuted(name="room_form"), ActiveLoop(name="room_form"))
    assert parts["intent"][featurizer.intents.index("inform")] == 1.0
    assert sum(parts["intent"]) == 1.0
    assert parts["entities"] == [1.0, 1.0, 1.0, 0.0]
    assert parts["prev_action"][featurizer.actions.index("room_form")] == 1.0
    assert sum(parts["prev_action"]) == 1.0
    assert parts["active_loop"] == [1.0]


def test_slots_follow_rasas_featurisation_rules(tmp_path: Path) -> None:
    domain = tiny_domain(tmp_path, SLOTS_DOMAIN)
    # columns: city [set] | guests [set, value] | room [single, double, __other__]
    #          | vip [set, value]
    assert vector(domain)["slots"] == [0.0] * 8
    slots = vector(domain, SlotSet("city", "Rome"), SlotSet("guests", 3),
                   SlotSet("room", "DOUBLE"), SlotSet("vip", False))["slots"]
    assert slots == [1.0, 1.0, 0.5, 0.0, 1.0, 0.0, 1.0, 0.0]
    slots = vector(domain, SlotSet("room", "penthouse"), SlotSet("vip", True),
                   SlotSet("guests", 99))["slots"]
    assert slots == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # __other__, clipped float


def test_the_featurizer_survives_a_round_trip(tmp_path: Path) -> None:
    featurizer = StateFeaturizer.from_domain(tiny_domain(tmp_path, SLOTS_DOMAIN))
    assert StateFeaturizer.from_dict(json.loads(json.dumps(featurizer.to_dict()))) == featurizer


# ---------------------------------------------------------------- a toy that needs TED

TOY_DOMAIN = """\
version: "3.1"
intents: [greet, weather, joke, chitchat, goodbye]
responses:
  utter_greet: [{text: hi}]
  utter_weather: [{text: sunny}]
  utter_joke: [{text: a joke}]
  utter_chitchat: [{text: small talk}]
  utter_goodbye: [{text: bye}]
"""

# Every request has one answer, whatever came before: the stories show it in a few orders.
TOY_STORIES = """\
version: "3.1"
stories:
- story: weather then joke
  steps: [{intent: greet}, {action: utter_greet}, {intent: weather}, {action: utter_weather},
          {intent: joke}, {action: utter_joke}, {intent: goodbye}, {action: utter_goodbye}]
- story: joke then chitchat
  steps: [{intent: greet}, {action: utter_greet}, {intent: joke}, {action: utter_joke},
          {intent: chitchat}, {action: utter_chitchat}, {intent: goodbye}, {action: utter_goodbye}]
- story: chitchat then weather
  steps: [{intent: chitchat}, {action: utter_chitchat}, {intent: weather}, {action: utter_weather},
          {intent: goodbye}, {action: utter_goodbye}]
- story: weather twice
  steps: [{intent: weather}, {action: utter_weather}, {intent: weather}, {action: utter_weather}]
"""

# Orders no story shows: memoization (whole history) has never seen these histories.
TOY_HELDOUT = """\
version: "3.1"
stories:
- story: joke first, then weather, then greet late
  steps: [{intent: joke}, {action: utter_joke}, {intent: weather}, {action: utter_weather},
          {intent: greet}, {action: utter_greet}, {intent: goodbye}, {action: utter_goodbye}]
- story: chitchat twice then a joke
  steps: [{intent: chitchat}, {action: utter_chitchat}, {intent: chitchat},
          {action: utter_chitchat}, {intent: joke}, {action: utter_joke}]
"""

TOY_TED = {"max_history": 3, "epochs": 40, "batch_size": 32, "learning_rate": 0.01,
           "transformer_size": 16, "number_of_attention_heads": 2, "embedding_dimension": 8,
           "encoding_dimension": 16, "dense_dimension": 8, "augmentation_factor": 2,
           "random_seed": 7}


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """One torch thread: fast on a shared 2-core machine, and bit-for-bit repeatable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_project(tmp_path: Path, policies: str) -> Project:
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "domain.yml").write_text(TOY_DOMAIN)
    (tmp_path / "data" / "stories.yml").write_text(TOY_STORIES)
    (tmp_path / "config.yml").write_text("language: en\npolicies:\n" + textwrap.dedent(policies))
    (tmp_path / "heldout.yml").write_text(TOY_HELDOUT)
    return Project.load(ProjectPaths.at(tmp_path))


def ted_yaml(**overrides: object) -> str:
    params = {**TOY_TED, **overrides}
    return "- name: TEDPolicy\n" + "".join(f"  {k}: {json.dumps(v)}\n" for k, v in params.items())


def trained(project: Project) -> PolicyEnsemble:
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    ensemble.train(project.domain, project.data)
    return ensemble


def test_ted_generalises_where_memoization_cannot(tmp_path: Path) -> None:
    memo_only = toy_project(tmp_path, "- name: MemoizationPolicy\n  max_history: 3\n")
    heldout = load_training_data([tmp_path / "heldout.yml"]).stories
    alone = evaluate_stories(trained(memo_only), memo_only.domain, heldout)
    assert alone.accuracy < 0.7, alone.summary()  # unseen histories: memoization abstains
    # 7 bot actions, 5 listens between messages; not the listen before the first message nor
    # the one training adds after a story's last action
    assert (alone.actions, alone.by_action["action_listen"]) == (12, 5)

    with_ted = toy_project(tmp_path, "- name: MemoizationPolicy\n  max_history: 3\n"
                           + ted_yaml())
    result = evaluate_stories(trained(with_ted), with_ted.domain, heldout)
    assert result.accuracy == 1.0, result.misses
    assert result.by_policy["TEDPolicy"] > 0


def test_training_is_deterministic_under_a_seed(tmp_path: Path) -> None:
    project = toy_project(tmp_path, ted_yaml(epochs=5))
    first, second = trained(project), trained(project)
    one, two = (next(p for p in e.policies if isinstance(p, TEDPolicy)) for e in (first, second))
    assert one.model is not None and two.model is not None
    for (name, a), (_, b) in zip(one.model.state_dict().items(), two.model.state_dict().items()):
        assert torch.equal(a, b), name
    other = toy_project(tmp_path, ted_yaml(epochs=5, random_seed=8))
    three = next(p for p in trained(other).policies if isinstance(p, TEDPolicy))
    assert three.model is not None
    assert not torch.equal(one.model.dialogue.weight, three.model.dialogue.weight)


def test_training_and_prediction_leave_the_callers_torch_threads(tmp_path: Path) -> None:
    project = toy_project(tmp_path, ted_yaml(epochs=2))
    torch.set_num_threads(2)  # TED runs its small ops on one thread, then gives them back
    ensemble = trained(project)
    assert torch.get_num_threads() == 2
    tracker = DialogueStateTracker("t", {}, [ActionExecuted(name="action_listen"), user("joke")])
    ensemble.policies[0].predict(tracker, project.domain)
    assert torch.get_num_threads() == 2


def test_save_and_load_give_the_same_prediction(tmp_path: Path) -> None:
    project = toy_project(tmp_path, ted_yaml(epochs=10))
    train_core(project, project.paths.models / "core")
    saved = json.loads((project.paths.models / "core" / "policies.json").read_text())
    assert saved["TEDPolicy"]["trained"] and saved["TEDPolicy"]["report"]["examples"] > 0
    loaded = load_policies(project)
    fresh = trained(project)
    tracker = DialogueStateTracker("t", {}, [ActionExecuted(name="action_listen"), user("joke")])
    a, b = loaded.policies[0].predict(tracker, project.domain), \
        fresh.policies[0].predict(tracker, project.domain)
    assert a.action == b.action and a.action is not None
    assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
    assert a.diagnostics["ranking"] == b.diagnostics["ranking"]


def test_an_untrained_policy_abstains(tmp_path: Path) -> None:
    domain = tiny_domain(tmp_path, TOY_DOMAIN)
    tracker = DialogueStateTracker("t", {}, [ActionExecuted(name="action_listen"), user("joke")])
    vote = TEDPolicy().predict(tracker, domain)
    assert vote.action is None
    policy = TEDPolicy()
    policy.load_dict({"trained": False})
    assert policy.model is None


@pytest.mark.parametrize("layers", [1, 2])
def test_the_one_window_path_scores_as_forward(layers: int) -> None:
    # the run-time path (per-state embeddings, the last block for the latest turn alone)
    # against the training forward, on windows shorter and longer than the positions
    torch.manual_seed(0)
    dims = TEDDims(attribute_sizes=(("intent", 5), ("entities", 3), ("prev_action", 7),
                                    ("slots", 0), ("active_loop", 2)),
                   dense_dimension=tuple((a, 8) for a in ATTRIBUTES), n_actions=7,
                   max_positions=6, transformer_size=16, layers=layers, heads=4)
    model = TEDModel(dims).eval()
    for length in (1, 4, 9):
        x = (torch.rand(1, length, 17) > 0.7).float()  # (1, T, F)
        with torch.inference_mode():
            expected = model(x, torch.tensor([length]))[0]  # (A,)
            h = torch.stack([model.embed_state(row) for row in x[0]])  # (T, H)
            got = model.score_latest(h)
        assert got == pytest.approx(expected, abs=1e-5)


def test_balanced_batches_draw_rare_actions_more_often() -> None:
    y = torch.tensor([0] * 90 + [1] * 9 + [2])
    order = balanced_order(y, 10, torch.Generator().manual_seed(0))
    assert set(order.tolist()) == set(range(100))  # every example at least once
    drawn = torch.bincount(y[order], minlength=3)
    assert drawn[0] == 90 and drawn[2] > 1  # the frequent action once, the rare one often
    assert drawn[2] / drawn[0] > 1 / 90


# ---------------------------------------------------------------- the ensemble


def test_rasas_priorities_memoization_and_rules_win_ties(tmp_path: Path) -> None:
    project = toy_project(tmp_path, ted_yaml() + "- name: MemoizationPolicy\n"
                          "- name: RulePolicy\n")
    assert [(p.name, p.priority) for p in build_policies(project.config.policies)] == [
        ("TEDPolicy", 1), ("MemoizationPolicy", 3), ("RulePolicy", 6)]
    ensemble = trained(project)
    # A known history: memoization (1.0) wins over TED whatever TED's confidence.
    known = DialogueStateTracker("t", {}, [ActionExecuted(name="action_listen"), user("greet")])
    best, votes = ensemble.predict(known, project.domain)
    assert (best.action, best.policy) == ("utter_greet", "MemoizationPolicy")
    assert {v.policy for v in votes} == {"TEDPolicy", "MemoizationPolicy", "RulePolicy"}
    # An unknown one: no rule and no memory, so TED beats the core fallback (0.3).
    chitchat = [ActionExecuted(name="action_listen"), user("chitchat"),
                ActionExecuted(name="utter_chitchat")]
    unknown = DialogueStateTracker("t", {}, [*chitchat, *chitchat,
                                             ActionExecuted(name="action_listen"), user("joke")])
    best, _ = ensemble.predict(unknown, project.domain)
    assert (best.action, best.policy) == ("utter_joke", "TEDPolicy")
    assert 0.3 < best.confidence < 1.0


def test_a_tie_at_full_confidence_goes_to_the_higher_priority() -> None:
    class Fixed:
        def __init__(self, name: str, priority: int) -> None:
            self.name, self.priority = name, priority

        def predict(self, tracker: object, domain: object) -> PolicyPrediction:
            return PolicyPrediction(f"utter_{self.name}", 1.0, self.name, self.priority)

    ensemble = PolicyEnsemble([Fixed("ted", 1), Fixed("memo", 3)])  # type: ignore[list-item]
    best, _ = ensemble.predict(DialogueStateTracker("t"), None)  # type: ignore[arg-type]
    assert best.policy == "memo"


def test_a_rejected_action_is_not_proposed_again(tmp_path: Path) -> None:
    project = toy_project(tmp_path, ted_yaml(epochs=20))
    policy = next(p for p in trained(project).policies if isinstance(p, TEDPolicy))
    events = [ActionExecuted(name="action_listen"), user("joke")]
    first = policy.predict(DialogueStateTracker("t", {}, events), project.domain)
    again = policy.predict(DialogueStateTracker(
        "t", {}, [*events, ActionExecutionRejected(name=first.action or "")]), project.domain)
    assert again.action not in (None, first.action)


# ---------------------------------------------------------------- configuration


def test_rasa_options_are_read_and_checked() -> None:
    config = TEDConfig.from_params({"max_history": 5, "epochs": 3, "batch_size": 32,
                                    "transformer_size": {"dialogue": 64, "text": 128},
                                    "dense_dimension": {"intent": 10, "action_name": 12},
                                    "random_seed": 1, "learning_rate": 0.01}, "config.yml:x")
    assert (config.max_history, config.epochs, config.batch_size) == (5, 3, (32, 32))
    assert config.transformer_size == 64 and config.random_seed == 1
    assert dict(config.dense_dimension) == {"intent": 10, "entities": 20, "prev_action": 12,
                                            "slots": 20, "active_loop": 20}
    assert TEDConfig().priority == 1 and TEDConfig().max_history is None


@pytest.mark.parametrize("key, value, expected", [
    ("epochs", 0, "a positive integer"),
    ("max_history", "5", "a positive integer"),
    ("batch_size", [1, 2, 3], "an integer or a list"),
    ("drop_rate_dialogue", 1.5, "< 1"),
    ("model_confidence", "linear_norm", "'softmax'"),
    ("number_of_attention_heads", 3, "not divisible"),
])
def test_a_bad_value_names_the_key_and_place(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=key) as error:
        TEDConfig.from_params({key: value}, "config.yml:policies[0]")
    assert "config.yml:policies[0]" in str(error.value) and expected in str(error.value)


def test_unknown_and_unused_keys_warn(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("policies:\n  - name: TEDPolicy\n    epoch: 5\n    loss_type: margin\n"
                    "    max_number_of_predictions: 8\n")
    config = load_config(path)
    assert config.component("TEDPolicy").params == TEDConfig()
    unknown, unused = skipped_components(config)
    assert f"({path}:3): unknown key 'epoch'" in unknown and "Did you mean 'epochs'?" in unknown
    assert f"({path}:4): option 'loss_type' is not used here: always cross entropy" in unused


def test_the_demo_config_has_a_real_ted_policy(demo: Project,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        policies = build_policies(demo.config.policies)
    assert "TEDPolicy" in [p.name for p in policies] and "unavailable" not in caplog.text
    assert not any(isinstance(p, MemoizationPolicy) and p.augmented for p in policies)


def test_a_component_without_params_gets_rasas_defaults() -> None:
    policies = build_policies((component_config("TEDPolicy"),))
    assert isinstance(policies[0], TEDPolicy) and policies[0].config == TEDConfig()


@pytest.mark.slow
def test_the_demo_generalises_to_the_held_out_stories(demo: Project) -> None:
    """The demo's ensemble with TED on tests/policy_heldout_stories.yml (stories written blind,
    none in data/). benchmarks/policy_heldout.py reports the same figures in full."""
    ensemble = trained(demo)
    heldout = load_training_data([REPO / "tests" / "policy_heldout_stories.yml"]).stories
    assert evaluate_stories(ensemble, demo.domain, heldout).accuracy >= 0.90
