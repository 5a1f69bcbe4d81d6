"""Joint intent + entity model: one pass, span pruning, context pairs, saving, the pipeline.

All on a tiny random BERT (tests/fakes.py); the quality figures come from `xingkong test nlu`
on the demo (README, NLU).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import BertTokenizerFast

from nlu.components import IntentClassifierConfig, LukeSpanConfig
from nlu.errors import NLUModelError, NLUTrainingError
from nlu.evaluation import score
from nlu.interpreter import load_interpreter
from nlu.joint import JointConfig, JointIntentEntity
from nlu.span_pruning import SpanPruner, recall
from nlu.training import TrainingSet, plan, train_pipeline
from nlu.types import Entity, Example
from nlu.words import encode_texts
from tests.fakes import write_tiny_bert

CITIES = ["lisbon", "paris", "berlin", "rome", "madrid", "vienna"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("book a room in please i want to stay hotel for me hello hi thanks thank you the "
         "from , . ! ? which city asked").split()
VOCAB = [*SPECIAL, *WORDS, *CITIES]


def _example(template: str, intent: str, city: str | None = None) -> Example:
    if city is None:
        return Example(template, intent)
    start = template.index("{c}")
    text = template.replace("{c}", city)
    return Example(text, intent, (Entity(start, start + len(city), city, "city"),))


def _dataset() -> list[Example]:
    examples = []
    for city in CITIES:
        name = city.capitalize()
        for template in ("book a room in {c}", "i want to stay in {c} please", "{c} please",
                         "a hotel in {c} for me"):
            examples.append(_example(template, "book_room", name))
    for text in ("hello", "hi", "hello !", "hi there", "hello hello", "hi hi !"):
        examples.append(Example(text, "greet"))
    for text in ("thanks", "thank you", "thanks !", "thank you !", "thanks thanks", "you !"):
        examples.append(Example(text, "thank"))
    return examples


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), VOCAB)


@pytest.fixture(scope="module")
def config(bert_dir: Path) -> JointConfig:
    return JointConfig(model=str(bert_dir), epochs=25, batch_size=8, learning_rate=2e-3,
                       head_learning_rate=5e-3, max_length=32, val_fraction=0.0, n_samples=4,
                       early_stopping_patience=0, seed=0, min_steps=0)


@pytest.fixture(scope="module")
def trained(config: JointConfig) -> tuple[JointIntentEntity, dict[str, Any]]:
    model = JointIntentEntity(config)
    return model, model.train(_dataset(), progress=False)


def test_one_pass_learns_intents_and_entities(trained: tuple[JointIntentEntity, Any]) -> None:
    model, report = trained
    texts = ["book a room in Paris", "hello", "thanks !", "i want to stay in Rome please"]
    intents, entities = model.parse_batch(texts)
    assert [p.intent.name for p in intents] == ["book_room", "greet", "thank", "book_room"]
    assert [[(e.value, e.entity) for e in found] for found in entities] == [
        [("Paris", "city")], [], [], [("Rome", "city")]]
    assert entities[0][0].extractor == "JointIntentEntity"
    assert all(p.n_samples == 4 and abs(sum(s.confidence for s in p.ranking) - 1) < 1e-6
               for p in intents)
    assert report["epochs"][-1]["train_loss"] < report["epochs"][0]["train_loss"]
    assert report["pruner"]["max_span_length"] == 1  # the longest gold entity has one word


def test_intent_does_not_depend_on_the_entity_tokens(trained: tuple[JointIntentEntity, Any]) -> None:
    """Words never attend to [MASK] entities: pruning more or fewer spans leaves the intent."""
    model, _ = trained
    net, _ = model._require()
    (text,) = encode_texts(model._tokenizer, ["i want to stay in Rome please"])
    with_spans = model._input(text, None, None)
    batch, _ = model._collate([with_spans])
    without, _ = model._collate([replace(with_spans, spans=(), token_spans=())])
    assert batch["entity_ids"].shape[1] > 1 and not without["entity_attention_mask"].any()
    with torch.inference_mode():
        a, spans = net.predict(batch, 1, 1)
        b, _ = net.predict(without, 1, 1)
        sampled_a, _ = net.predict(batch, 3, 1)
    torch.testing.assert_close(a, b)
    assert spans.shape[:2] == (1, len(with_spans.spans))
    assert sampled_a.shape[0] == 3 and not torch.allclose(sampled_a[0], sampled_a[1])


def test_mc_samples_are_reproducible_and_deterministic_mode_is_one_pass(
        trained: tuple[JointIntentEntity, Any]) -> None:
    model, _ = trained
    first, _ = model.parse_batch(["book a room in Paris"])
    again, _ = model.parse_batch(["book a room in Paris"])
    assert first == again and first[0].std > 0
    single, _ = model.parse_batch(["book a room in Paris"], n_samples=0)
    assert single[0].n_samples == 1 and single[0].std == 0


def _same_parse(a: Any, b: Any) -> bool:
    """Same ranking order and entities; confidences equal up to float rounding (ONNX)."""
    (intents_a, entities_a), (intents_b, entities_b) = a, b
    return all(
        [s.name for s in p.ranking] == [s.name for s in q.ranking]
        and all(abs(s.confidence - r.confidence) < 1e-4 for s, r in zip(p.ranking, q.ranking))
        for p, q in zip(intents_a, intents_b, strict=True)
    ) and [[(e.start, e.end, e.entity) for e in found] for found in entities_a] == \
        [[(e.start, e.end, e.entity) for e in found] for found in entities_b]


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_save_and_load_give_the_same_parse(trained: tuple[JointIntentEntity, Any],
                                           tmp_path: Path, runtime: str) -> None:
    model, _ = trained
    model.save(tmp_path / "joint")
    assert (tmp_path / "joint" / "joint.onnx").is_file()
    loaded = JointIntentEntity.load_from(tmp_path / "joint", mc_precision="float32")
    if runtime == "torch":
        state = json.loads((tmp_path / "joint" / "joint.json").read_text())
        state["config"]["runtime"] = "torch"
        (tmp_path / "joint" / "joint.json").write_text(json.dumps(state))
        loaded = JointIntentEntity.load_from(tmp_path / "joint")
    assert (loaded._onnx is not None) == (runtime == "onnx")
    texts = ["a hotel in Vienna for me", "hi", "thanks !"]  # the last two: no candidate span
    for n_samples in (None, 0):
        assert _same_parse(loaded.parse_batch(texts, n_samples=n_samples),
                           model.parse_batch(texts, n_samples=n_samples))
    assert _same_parse(loaded.parse_batch(texts[1:]), model.parse_batch(texts[1:]))
    assert loaded.pruner == model.pruner and loaded.temperatures == model.temperatures


def test_onnx_load_holds_only_the_sampled_layers_in_pytorch(
        trained: tuple[JointIntentEntity, Any], tmp_path: Path) -> None:
    """With the graph on disk no PyTorch encoder is built: the sampler holds the top layer and
    the intent head, and its MC samples are the full model's (same RNG draws)."""
    model, _ = trained
    model.save(tmp_path / "j")
    loaded = JointIntentEntity.load_from(tmp_path / "j", mc_precision="float32")
    assert loaded._net is None and loaded.is_trained and len(loaded._sampler.layers) == 1
    texts = ["book a room in Paris", "thanks !"]
    first, again = loaded.parse_batch(texts), loaded.parse_batch(texts)
    assert first == again and first[0][0].n_samples == 4 and first[0][0].std > 0
    assert _same_parse(first, model.parse_batch(texts))
    with pytest.raises(NLUModelError, match="runtime='torch'"):
        loaded.save(tmp_path / "again")


def test_bfloat16_samples_are_the_float32_samples_within_rounding(
        trained: tuple[JointIntentEntity, Any], tmp_path: Path) -> None:
    """The sampler's matrix products in bfloat16: the same RNG draws, the same ranking, and
    probabilities within bfloat16's rounding; the entities come from the float32 graph."""
    from nlu.mc_sampler import matmul_dtype

    model, _ = trained
    model.save(tmp_path / "j")
    exact = JointIntentEntity.load_from(tmp_path / "j", mc_precision="float32")
    fast = JointIntentEntity.load_from(tmp_path / "j", mc_precision="bfloat16")
    assert fast._sampler.dtype == torch.bfloat16 and exact._sampler.dtype == torch.float32
    texts = ["a hotel in Vienna for me", "book a room in Paris", "thanks !"]
    (want, want_entities), (got, got_entities) = exact.parse_batch(texts), fast.parse_batch(texts)
    assert got_entities == want_entities
    for p, q in zip(got, want, strict=True):
        assert p.ranking[0].name == q.ranking[0].name
        assert all(abs(s.confidence - r.confidence) < 0.02 for s, r in zip(p.ranking, q.ranking))
    assert matmul_dtype("float32") == torch.float32 and matmul_dtype("auto") in (
        torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="precision"):
        matmul_dtype("int8")
    with pytest.raises(NLUTrainingError, match="mc_precision"):
        JointConfig(mc_precision="half")


def test_blocked_bfloat16_products_meet_few_shapes_and_match_float32(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows padded to ROW_STEP and cut into blocks of BLOCK_ROWS: any batch shape gives the
    float32 product within bfloat16 rounding, through at most BLOCK_ROWS / ROW_STEP shapes."""
    from nlu import mc_sampler

    seen: set[tuple[int, ...]] = set()
    linear = torch.nn.functional.linear

    def spy(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        seen.add(tuple(x.shape))
        return linear(x, w, b)

    monkeypatch.setattr(mc_sampler.F, "linear", spy)
    weight, bias = torch.randn(48, 24) * 0.2, torch.randn(48)
    for shape in [(1, 1, 7, 24), (4, 3, 19, 24), (4, 16, 96, 24), (2, 1, 32, 24)]:
        x = torch.randn(shape)
        got = mc_sampler._blocked_linear(x, weight.bfloat16(), bias.bfloat16())
        assert got.dtype == torch.float32 and got.shape == (*shape[:-1], 48)
        torch.testing.assert_close(got, linear(x, weight, bias), atol=0.05, rtol=0.02)
    assert len(seen) <= mc_sampler.BLOCK_ROWS // mc_sampler.ROW_STEP
    assert all(rows % mc_sampler.ROW_STEP == 0 and rows <= mc_sampler.BLOCK_ROWS
               for rows, _ in seen)


@pytest.mark.parametrize("first_layer", [0, 1])
def test_the_sampler_without_dropout_is_the_deterministic_pass(
        trained: tuple[JointIntentEntity, Any], first_layer: int) -> None:
    from nlu.mc_sampler import DropoutSampler

    model, _ = trained
    net, _ = model._require()
    encoder = net.luke.config
    sampler = DropoutSampler.from_state(
        net.state_dict(), first_layer, encoder.num_hidden_layers,
        heads=encoder.num_attention_heads, eps=encoder.layer_norm_eps, attention_dropout=0.1,
        hidden_dropout=0.1, head_dropout=0.1)
    (text,) = encode_texts(model._tokenizer, ["i want to stay in Rome please"])
    batch, _ = model._collate([model._input(text, None, None)])
    with torch.inference_mode():
        low = net.run_layers(net.embed(batch), batch, 0, first_layer)
        expected, _ = net.predict(batch, 1, 1)  # (1, 1, C)
        plain = sampler.sample(low[0], batch["attention_mask"], 3, dropout=False)
        sampled = sampler.sample(low[0], batch["attention_mask"], 3)
    assert plain.shape == sampled.shape == (3, 1, len(model.intents))
    torch.testing.assert_close(plain, expected.expand(3, -1, -1), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(sampled[0], sampled[1])


def test_serving_an_onnx_model_imports_no_transformers_model_code(
        trained: tuple[JointIntentEntity, Any], tmp_path: Path) -> None:
    """transformers' modelling code costs about 120 MB of a server's memory."""
    model, _ = trained
    model.save(tmp_path / "j")
    script = ("import sys; from nlu.joint import JointIntentEntity as J; "
              f"J.load_from({str(tmp_path / 'j')!r}).parse_batch(['book a room in Paris']); "
              "print([m for m in ('transformers.modeling_utils', "
              "'transformers.models.luke.modeling_luke') if m in sys.modules])")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-500:]


def test_an_onnx_graph_is_exported_at_load_when_missing(trained: tuple[JointIntentEntity, Any],
                                                        tmp_path: Path) -> None:
    model, _ = trained
    model.save(tmp_path / "j")
    (tmp_path / "j" / "joint.onnx").unlink()
    loaded = JointIntentEntity.load_from(tmp_path / "j")
    assert loaded._onnx is not None
    assert _same_parse(loaded.parse_batch(["book a room in Rome"]),
                       model.parse_batch(["book a room in Rome"]))


def test_load_errors_name_the_folder_and_the_fix(trained: tuple[JointIntentEntity, Any],
                                                 tmp_path: Path) -> None:
    with pytest.raises(NLUModelError, match="missing joint.json.*xingkong train nlu"):
        JointIntentEntity.load_from(tmp_path)
    model, _ = trained
    model.save(tmp_path / "j")
    state = json.loads((tmp_path / "j" / "joint.json").read_text())
    (tmp_path / "j" / "joint.json").write_text(json.dumps(state | {"format_version": 99}))
    with pytest.raises(NLUModelError, match="format 99"):
        JointIntentEntity.load_from(tmp_path / "j")
    with pytest.raises(NLUModelError, match="not trained"):
        JointIntentEntity().parse_batch(["hi"])


def test_bad_config_and_data_fail_clearly(config: JointConfig) -> None:
    with pytest.raises(NLUTrainingError, match="dropout"):
        replace(config, dropout=1.5)
    with pytest.raises(NLUTrainingError, match="typo_fraction"):
        replace(config, typo_fraction=1.5)
    with pytest.raises(NLUTrainingError, match="at least 2 distinct intents"):
        JointIntentEntity(config).train([Example("hi", "greet")], progress=False)


def test_context_is_the_first_segment_and_entities_stay_on_the_message(
        config: JointConfig) -> None:
    model = JointIntentEntity(replace(config, use_context=True, epochs=25, context_fraction=1.0))
    report = model.train(_dataset(), contexts={"book_room": ["which city"]}, progress=False)
    assert report["n_context_pairs"] == 24 and model.uses_context
    (text,) = encode_texts(model._tokenizer, ["Paris please"])
    item = model._input(text, "which city", None)
    tokens = model._tokenizer.convert_ids_to_tokens(list(item.input_ids))
    assert tokens[:4] == ["[CLS]", "which", "city", "[SEP]"]
    assert item.token_type_ids == (0, 0, 0, 0, 1, 1, 1)
    assert [tokens[s] for s, _ in item.token_spans] == ["paris"]  # "please" is a stop word
    _, entities = model.parse_batch(["Paris please"], ["which city"])
    assert [(e.start, e.end, e.value) for e in entities[0]] == [(0, 5, "Paris")]


def test_misspelt_copies_train_the_intent_and_entities(config: JointConfig) -> None:
    model = JointIntentEntity(replace(config, typo_fraction=1.0, epochs=2))
    report = model.train(_dataset(), progress=False)
    # every message with a word of four letters or more gets one copy; short ones ("hi") none
    long_enough = [e for e in _dataset() if any(len(w) >= 4 for w in re.findall("[a-z]+",
                                                                                 e.text.lower()))]
    assert report["n_typos"] == len(long_enough) and report["n_train"] == len(_dataset())
    assert JointIntentEntity(replace(config, epochs=1)).train(
        _dataset(), progress=False)["n_typos"] == 0


def test_min_steps_raises_the_epochs_of_a_small_dataset_only(
    config: JointConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nlu.joint

    totals: list[int] = []
    real = nlu.joint.linear_schedule
    monkeypatch.setattr(nlu.joint, "linear_schedule",
                        lambda warmup, total: totals.append(total) or real(warmup, total))
    small = JointIntentEntity(replace(config, epochs=1, min_steps=8)).train(_dataset(),
                                                                             progress=False)
    per_epoch = small["steps_per_epoch"]
    assert per_epoch < 8 and small["epochs_planned"] == -(-8 // per_epoch)
    assert len(small["epochs"]) == small["epochs_planned"] > 1
    assert totals == [per_epoch * small["epochs_planned"]]  # the schedule spans the raised run
    enough = JointIntentEntity(replace(config, epochs=1, min_steps=per_epoch)).train(
        _dataset(), progress=False)
    assert len(enough["epochs"]) == enough["epochs_planned"] == 1
    assert totals[-1] == per_epoch


def test_training_takes_the_threads_it_is_given_each_quarter_epoch(config: JointConfig) -> None:
    asked: list[int] = []

    def threads() -> int:  # two threads once the caller's other job is done (here: at once)
        asked.append(2)
        return 2

    before = torch.get_num_threads()
    try:
        report = JointIntentEntity(replace(config, epochs=2)).train(_dataset(), progress=False,
                                                                    threads=threads)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    batches = math.ceil((report["n_train"] + report["n_noise"]) / config.batch_size)
    assert len(asked) == 2 * math.ceil(batches / math.ceil(batches / 4))  # each quarter
    assert set(report["stage_seconds"]) == {"prepare", "fit", "calibrate"}


# -- span pruning ------------------------------------------------------------------------------


def test_pruning_drops_stop_word_and_punctuation_boundaries(bert_dir: Path) -> None:
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    (text,) = encode_texts(tokenizer, ["book a room in paris , please"])
    words = [text.text[w.start:w.end] for w in text.words]
    pruner = SpanPruner(max_span_length=3)
    spans = {" ".join(words[i:j + 1]) for i, j in pruner.candidates(text)}
    assert "paris" in spans and "room in paris" in spans and "book a room" in spans
    assert not {"a room", "in paris", "paris ,", ", please", "please"} & spans
    everything = SpanPruner(max_span_length=3, prune=False).candidates(text)
    assert len(everything) == 7 + 6 + 5 and len(spans) < len(everything) / 2


def test_pruner_learns_lengths_and_exceptions_from_the_training_data(bert_dir: Path) -> None:
    tokenizer = BertTokenizerFast.from_pretrained(bert_dir)
    examples = [Example("stay in the paris hotel", "book",
                        (Entity(8, 23, "the paris hotel", "hotel"),)),
                Example("book rome", "book", (Entity(5, 9, "rome", "city"),))]
    encoded = encode_texts(tokenizer, [e.text for e in examples])
    pruner = SpanPruner.from_training(examples, encoded, max_span_length=8)
    assert pruner.max_span_length == 3 and pruner.start_words == {"the"}
    assert pruner.end_words == frozenset()
    (text,) = encode_texts(tokenizer, ["the paris hotel"])
    assert (0, 2) in pruner.candidates(text)
    assert recall(pruner, examples, encoded)["recall"] == 1.0
    short = SpanPruner(max_span_length=1)
    assert recall(short, examples, encoded)["recall"] == 0.5
    assert SpanPruner.from_dict(pruner.to_dict()) == pruner


# -- the pipeline ------------------------------------------------------------------------------


def test_pipeline_trains_saves_and_serves_the_joint_model(bert_dir: Path, tmp_path: Path) -> None:
    components = [{"name": "WhitespaceTokenizer"},
                  {"name": "JointIntentEntity", "model": str(bert_dir), "epochs": 2,
                   "max_length": 32, "n_samples": 2},
                  {"name": "DIETClassifier", "epochs": 100},
                  {"name": "EntitySynonymMapper"},
                  {"name": "FallbackClassifier", "threshold": 0.0}]
    steps = plan(components)
    assert steps.joint is not None and steps.joint.epochs == 2
    assert steps.intent is None and steps.entity is None
    report = train_pipeline(TrainingSet(_dataset(), synonyms={"lisbon": "LIS"}), components,
                            tmp_path, progress=False)
    assert report["joint"]["component"] == "JointIntentEntity"
    assert not (tmp_path / "intent").exists() and (tmp_path / "joint" / "joint.json").is_file()
    interpreter = load_interpreter(tmp_path)
    parse = interpreter.parse("book a room in Lisbon")
    assert parse["intent"]["name"] in {"book_room", "greet", "thank"}
    assert parse["uncertainty"]["samples"] == 2.0
    assert all(re.fullmatch(r"\w+", e["entity"]) for e in parse["entities"])
    examples = _dataset()[:6]
    parses = interpreter.parse_batch([e.text for e in examples])
    score(examples, parses, tmp_path / "reports")
    found = {e.extractor for p in parses for e in p.entities}
    if found:  # the entity files are named after the model that found the entities
        assert (tmp_path / "reports" / "JointIntentEntity_report.json").is_file()


def test_unknown_joint_parameter_names_the_valid_ones(bert_dir: Path, tmp_path: Path) -> None:
    components = [{"name": "JointIntentEntity", "model": str(bert_dir), "epoch": 2}]
    with pytest.raises(NLUTrainingError, match="no parameter.*epoch.*Valid:.*epochs"):
        train_pipeline(TrainingSet(_dataset()), components, tmp_path, progress=False)


def test_words_may_see_entities_as_in_luke(config: JointConfig) -> None:
    model = JointIntentEntity(replace(config, words_see_entities=True, epochs=2))
    model.train(_dataset(), progress=False)
    net, _ = model._require()
    (text,) = encode_texts(model._tokenizer, ["i want to stay in Rome please"])
    item = model._input(text, None, None)
    batch, _ = model._collate([item])
    without, _ = model._collate([replace(item, spans=(), token_spans=())])
    with torch.inference_mode():
        a, _ = net.predict(batch, 1, 1)
        b, _ = net.predict(without, 1, 1)
        sampled, spans = net.predict(batch, 3, 1)
    assert not torch.allclose(a, b)  # the intent now reads the entity tokens
    assert sampled.shape[0] == 3 and spans.shape[1] == len(item.spans)


def test_diet_is_served_by_the_joint_model_unless_separate_components_are_listed() -> None:
    assert plan([{"name": "DIETClassifier", "epochs": 100}]).joint == JointConfig()
    separate = plan([{"name": "DIETClassifier"}, {"name": "LukeSpanExtractor"}])
    assert separate.joint is None and separate.intent == IntentClassifierConfig()
    assert separate.entity_name == "LukeSpanExtractor"
    no_entities = plan([{"name": "DIETClassifier", "entity_recognition": False}])
    assert no_entities.joint is None and no_entities.entity is None
    listed = plan([{"name": "IntentClassifier"}, {"name": "LukeSpanExtractor", "epochs": 2}])
    assert listed.joint is None and listed.entity == LukeSpanConfig(epochs=2)


def test_entity_tokens_may_join_the_top_layers_only(config: JointConfig, tmp_path: Path) -> None:
    model = JointIntentEntity(replace(config, entity_layers=1))
    model.train(_dataset(), progress=False)
    assert model._require()[0].entity_start == 1  # of 2 layers
    texts = ["book a room in Paris", "thanks !"]
    intents, entities = model.parse_batch(texts)
    assert [p.intent.name for p in intents] == ["book_room", "thank"]
    assert [(e.value, e.entity) for e in entities[0]] == [("Paris", "city")]
    model.save(tmp_path / "late")
    assert _same_parse(JointIntentEntity.load_from(tmp_path / "late").parse_batch(texts),
                       (intents, entities))


def test_a_context_object_is_rendered_by_its_own_module(trained: tuple[JointIntentEntity, Any]
                                                        ) -> None:
    from nlu.joint import _context_text

    assert _context_text(None) == "" and _context_text("asks city") == "asks city"
    assert _context_text(_Asked("city")) == "asks city"
    with pytest.raises(NLUModelError, match="cannot read a dialogue context of type int"):
        _context_text(3)


@dataclass(frozen=True)
class _Asked:
    slot: str


def render_context(context: _Asked) -> str:  # what nlu/context.py provides for its contexts
    return f"asks {context.slot}"


def test_length_batches_cover_every_input_once_pad_less_and_follow_the_seed() -> None:
    import numpy as np

    from nlu.joint import _Input, _length_batches

    shapes = np.random.default_rng(0)
    inputs = [_Input(tuple(range(int(t))), (0,) * int(t), tuple((0, 0) for _ in range(int(e))),
                     ())
              for t, e in zip(shapes.integers(4, 40, 500), shapes.integers(0, 30, 500),
                              strict=True)]

    def padded(batches: list[Any]) -> int:  # tokens of the padded word + entity streams
        return sum(len(b) * (max(len(inputs[i].input_ids) for i in b) +
                             max(len(inputs[i].spans) for i in b)) for b in batches)

    batches = _length_batches(inputs, 16, np.random.default_rng(7))
    assert sorted(i for b in batches for i in b) == list(range(500))
    assert all(len(b) <= 16 for b in batches)
    again = _length_batches(inputs, 16, np.random.default_rng(7))
    assert [b.tolist() for b in batches] == [b.tolist() for b in again]
    other = _length_batches(inputs, 16, np.random.default_rng(8))
    assert [b.tolist() for b in batches] != [b.tolist() for b in other]
    order = np.random.default_rng(7).permutation(500)
    shuffled = [order[k:k + 16] for k in range(0, 500, 16)]
    real = sum(len(i.input_ids) + len(i.spans) for i in inputs)
    assert padded(batches) - real < 0.5 * (padded(shuffled) - real)


def test_a_retargeted_example_is_copied_into_each_of_its_contexts_with_the_intent_there() -> None:
    import numpy as np

    from nlu.joint import _context_copies

    train = [(Example("ya just cancel it", "affirm"), ""), (Example("yes", "affirm"), "")]
    contexts = {"affirm": ["confirm cancel", "anything else"]}
    retargets = {"ya just cancel it": [("anything else", "cancel_booking"),
                                       ("confirm cancel", "affirm")]}
    copies = _context_copies(train, contexts, 1.0, np.random.default_rng(0), retargets)
    mine = [(e.intent, c) for e, c in copies if e.text == "ya just cancel it"]
    assert sorted(mine) == [("affirm", "confirm cancel"), ("cancel_booking", "anything else")]
    assert [e.intent for e, c in copies if e.text == "yes"] == ["affirm"]


def test_answer_copies_train_the_intent_only(config: JointConfig,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An answer copy (nlu/context.py answer_contexts) is trained in the context asking for
    what it names, beside the random draw, with no span labels: its spans are learnt from
    the example's other inputs."""
    seen: list[Any] = []
    original = JointIntentEntity._train_epoch

    def spy(self: JointIntentEntity, inputs: list[Any], *args: Any, **kwargs: Any) -> float:
        seen[:] = inputs
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(JointIntentEntity, "_train_epoch", spy)
    model = JointIntentEntity(replace(config, use_context=True, epochs=1, context_fraction=1.0,
                                      typo_fraction=0.0))
    answers = {e.text: ["which city"] for e in _dataset() if e.entities}
    report = model.train(_dataset(), contexts={"book_room": ["hello"]}, answers=answers,
                         progress=False)
    assert report["n_context_pairs"] == 24 + 24  # a random draw and an answer copy each
    asked = [item for item in seen if list(item.input_ids[:4]) ==
             model._tokenizer.convert_tokens_to_ids(["[CLS]", "which", "city", "[SEP]"])]
    assert len(asked) == 24 and all(item.spans and not item.labels for item in asked)
    drawn = [item for item in seen if list(item.input_ids[:3]) ==
             model._tokenizer.convert_tokens_to_ids(["[CLS]", "hello", "[SEP]"])]
    assert len(drawn) == 24 and all(item.labels for item in drawn)
