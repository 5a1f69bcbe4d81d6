from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest
import torch

from nlu.errors import NLUModelError, NLUTrainingError
from nlu.intent import IntentClassifier, IntentClassifierConfig, IntentPrediction
from nlu.types import Example

# one intra-op thread: the tiny models gain nothing from more, and on a shared 2-core box
# oversubscribed OpenMP threads made the MiniLM test ~6x slower (122 s vs 19 s)
torch.set_num_threads(1)

GREET = ["hello", "hi there", "hey", "good morning", "hello there friend", "hi friend",
         "hey there", "good evening"]
BYE = ["bye", "goodbye", "see you later", "bye bye friend", "see you soon", "goodbye friend",
       "later", "see you"]
BOOK = ["book a room", "i want a room", "book a hotel room", "reserve a room please",
        "i need a hotel", "book me a hotel please", "reserve a hotel", "a room for two nights"]
WORDS = sorted({w for t in GREET + BYE + BOOK for w in t.split()} | {"weather", "pizza"})
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]


def _examples() -> list[Example]:
    return [Example(t, intent) for intent, texts in
            (("greet", GREET), ("goodbye", BYE), ("book_room", BOOK)) for t in texts]


def build_tiny_model(directory: Path, words: Sequence[str] = WORDS,
                     chars: Sequence[str] = LETTERS, max_positions: int = 64) -> Path:
    """A random 2-layer BERT whose WordPiece vocabulary is `words` (the test words by default)
    plus each of `chars` alone and as a `##` continuation, saved with its tokenizer."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chars,
             *(f"##{c}" for c in chars)]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 reads the WordPiece file from `vocab` (`vocab_file` is silently ignored)
    tokenizer = BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True)
    assert tokenizer.tokenize(f"{words[0]} {words[-1]}") == [words[0], words[-1]]
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=37,
                        max_position_embeddings=max_positions)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny_bert"))


def _config(model: Path, **overrides: object) -> IntentClassifierConfig:
    base: dict[str, object] = dict(model=str(model), epochs=12, batch_size=8, learning_rate=3e-3,
                                   head_learning_rate=1e-2, val_fraction=0.25,
                                   early_stopping_patience=0, n_samples=6, dropout=0.1,
                                   min_steps=0)
    return IntentClassifierConfig(**(base | overrides))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tiny_model: Path) -> tuple[IntentClassifier, dict]:
    clf = IntentClassifier(_config(tiny_model))
    report = clf.train(_examples(), progress=False)
    return clf, report


def test_training_reduces_loss_and_reports(trained: tuple[IntentClassifier, dict]) -> None:
    clf, report = trained
    assert clf.labels == ("book_room", "goodbye", "greet")
    assert report["epochs_run"] == 12
    assert len(report["train_loss"]) == len(report["val_accuracy"]) == 12
    assert report["train_loss"][-1] < report["train_loss"][0] * 0.8
    assert report["train_accuracy"][-1] > 0.8
    assert report["n_train"] + report["n_val"] == 24 and report["n_val"] == 6
    assert report["n_noise"] == 2
    assert report["temperature"] > 0 and set(report["temperatures"]) == {"deterministic", "mc"}
    assert 0.0 <= report["val_ece_after"] <= 1.0 and report["seconds"] > 0


def test_predictions_are_ranked_distributions(trained: tuple[IntentClassifier, dict]) -> None:
    clf, _ = trained
    preds = clf.predict_batch(["hello friend", "book a room please", "see you later"])
    assert [p.intent.name for p in preds] == ["greet", "book_room", "goodbye"]
    for pred in preds:
        assert isinstance(pred, IntentPrediction) and pred.n_samples == 6
        confs = [s.confidence for s in pred.ranking]
        assert len(confs) == 3 and confs == sorted(confs, reverse=True)
        assert sum(confs) == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= pred.entropy <= math.log(3) + 1e-9
        assert set(pred.uncertainty) == {"entropy", "std", "mutual_information", "samples"}
    assert clf.predict_batch([]) == []
    assert clf.predict("hey").intent.name == "greet"
    with pytest.raises(FrozenInstanceError):
        preds[0].entropy = 0.0  # type: ignore[misc]


def test_mc_samples_give_spread_and_deterministic_mode_none(
    trained: tuple[IntentClassifier, dict],
) -> None:
    clf, _ = trained
    texts = ["hello there", "reserve a hotel", "pizza weather"]
    mc = clf.predict_batch(texts)
    assert all(p.std > 0 and p.mutual_information >= 0 for p in mc)
    assert any(p.mutual_information > 0 for p in mc)
    for n in (0, 1):
        det = clf.predict_batch(texts, n_samples=n)
        assert all(p.std == 0.0 and p.n_samples == 1 for p in det)
    # MC samples are seeded: the same call gives the same answer
    assert clf.predict_batch(texts) == mc


def test_save_load_round_trip(trained: tuple[IntentClassifier, dict], tmp_path: Path) -> None:
    clf, _ = trained
    texts = ["hello", "bye bye", "book a hotel", "pizza"]
    out = clf.save(tmp_path / "intent")
    assert {"model.safetensors", "config.json", "labels.json", "encoder"} <= {
        p.name for p in out.iterdir()}
    assert (out / "encoder" / "tokenizer_config.json").is_file()
    assert json.loads((out / "labels.json").read_text()) == list(clf.labels)
    loaded = IntentClassifier.load_from(out)
    assert loaded.labels == clf.labels and loaded.temperatures == clf.temperatures
    assert loaded.load() is loaded  # idempotent
    assert loaded.predict_batch(texts, n_samples=0) == clf.predict_batch(texts, n_samples=0)
    mc_loaded, mc = loaded.predict_batch(texts), clf.predict_batch(texts)
    for a, b in zip(mc_loaded, mc, strict=True):
        assert a.intent.name == b.intent.name
        assert a.intent.confidence == pytest.approx(b.intent.confidence, abs=1e-5)
    quantized = IntentClassifier.load_from(out, quantize=True)
    assert quantized.config.quantize
    assert any("quantized.dynamic" in type(m).__module__ for m in quantized._require_net().modules())
    for a, b in zip(quantized.predict_batch(texts, n_samples=0), clf.predict_batch(texts, 0)):
        assert a.intent.confidence == pytest.approx(b.intent.confidence, abs=0.1)
    assert all(p.std > 0 for p in quantized.predict_batch(texts))  # MC dropout still samples


def test_min_steps_raises_the_epochs_of_a_small_dataset_only(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """24 examples: 18 train + 2 noise = 3 batches of 8 an epoch; 30 steps need 10 epochs, and
    the LR schedule decays over those 30 steps."""
    import nlu.intent

    totals: list[int] = []
    real = nlu.intent.linear_schedule
    monkeypatch.setattr(nlu.intent, "linear_schedule",
                        lambda warmup, total: totals.append(total) or real(warmup, total))
    small = IntentClassifier(_config(tiny_model, epochs=2, min_steps=30))
    report = small.train(_examples(), progress=False)
    assert report["steps_per_epoch"] == 3
    assert report["epochs_run"] == report["epochs_planned"] == 10 and totals == [30]
    enough = IntentClassifier(_config(tiny_model, epochs=2, min_steps=6))
    report = enough.train(_examples(), progress=False)
    assert report["epochs_run"] == report["epochs_planned"] == 2 and totals == [30, 6]


def test_training_is_seeded(tiny_model: Path) -> None:
    config = _config(tiny_model, epochs=2, noise_fraction=0.0)
    a = IntentClassifier(config).train(_examples(), progress=False)
    b = IntentClassifier(config).train(_examples(), progress=False)
    assert a["train_loss"] == pytest.approx(b["train_loss"])
    assert a["n_noise"] == 0


def test_cls_pooling_without_validation_slice(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clf = IntentClassifier(_config(tiny_model, epochs=2, pooling="cls", val_fraction=0.0))
    report = clf.train(_examples(), progress=True)
    assert "intent epoch 2/2" in capsys.readouterr().err
    assert report["n_val"] == 0 and report["val_loss"] == []
    assert report["temperature"] == 1.0 and math.isnan(report["val_ece_after"])
    assert len(clf.predict_batch(["hi"])[0].ranking) == 3


def test_training_errors(tiny_model: Path) -> None:
    clf = IntentClassifier(_config(tiny_model))
    with pytest.raises(NLUTrainingError, match="No usable intent examples"):
        clf.train([], progress=False)
    with pytest.raises(NLUTrainingError, match="No usable intent examples"):
        clf.train([Example("  ", "greet"), Example("hello", None)], progress=False)
    with pytest.raises(NLUTrainingError, match="at least 2 distinct intents"):
        clf.train([Example("hello", "greet"), Example("hi", "greet")], progress=False)
    with pytest.raises(NLUTrainingError, match="pooling"):
        IntentClassifierConfig(pooling="max")
    with pytest.raises(NLUTrainingError, match="dropout"):
        IntentClassifierConfig(dropout=1.5)


def test_model_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(NLUModelError, match="not trained"):
        IntentClassifier(_config(tiny_model)).predict("hello")
    with pytest.raises(NLUModelError, match="missing .*config.json"):
        IntentClassifier.load_from(tmp_path / "nowhere")
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / "notes.txt").write_text("not a model")
    with pytest.raises(NLUModelError, match="Cannot load"):
        IntentClassifier(_config(bogus)).load()
    with pytest.raises(NLUModelError, match="not found"):
        IntentClassifier(_config(tmp_path / "missing")).train(_examples(), progress=False)


def test_truncated_save_is_reported(
    trained: tuple[IntentClassifier, dict], tmp_path: Path
) -> None:
    clf, _ = trained
    out = clf.save(tmp_path / "intent")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(config | {"format_version": 99}))
    with pytest.raises(NLUModelError, match="format 99"):
        IntentClassifier.load_from(out)
    (out / "config.json").write_text("{not json")
    with pytest.raises(NLUModelError, match="Unreadable"):
        IntentClassifier.load_from(out)
    (out / "config.json").write_text(json.dumps(config))
    (out / "labels.json").write_text(json.dumps(["a", "b"]))  # head shape no longer matches
    with pytest.raises(NLUModelError, match="incompatible"):
        IntentClassifier.load_from(out)


# ---------------------------------------------------------------------------- integration
TRAIN = {
    "book_room": ["i want to book a room", "can you reserve a hotel room for me",
                  "book a double room in lisbon", "i need a room for two nights",
                  "reserve a suite for the weekend", "please make a hotel reservation",
                  "i'd like to book a hotel", "get me a room for tomorrow night",
                  "can i book a twin room", "book a family room for four people",
                  "i want a room in barcelona", "make a booking for friday",
                  "reserve two nights in porto", "i need accommodation next week",
                  "book me a single room"],
    "cancel_booking": ["cancel my booking", "i want to cancel my reservation",
                       "please cancel the room i booked", "cancel reservation 1234",
                       "i no longer need the hotel, cancel it", "drop my booking",
                       "can you cancel my stay", "call off my reservation",
                       "i need to cancel my hotel", "remove my reservation",
                       "cancel the suite i reserved", "undo my booking please",
                       "i'd like to cancel", "please cancel everything i booked",
                       "scrap my reservation for friday"],
    "greet": ["hello", "hi", "hey there", "good morning", "good evening", "hi, how are you",
              "hello there", "hey", "greetings", "morning!", "hiya", "howdy",
              "good afternoon", "hello bot", "hi there friend"],
    "ask_price": ["how much is a room", "what does a double room cost",
                  "what are your prices", "how expensive is the suite",
                  "price of a single room", "how much per night", "what is the rate for a twin",
                  "is it expensive", "tell me the room prices", "how much does it cost",
                  "what's the nightly rate", "cost of a family room",
                  "how much for two nights", "are rooms cheap", "give me the price list"],
}
HELD_OUT = [("could you book me a room for saturday", "book_room"),
            ("i want to cancel my hotel reservation", "cancel_booking"),
            ("hey, good morning", "greet"), ("how much does a suite cost per night", "ask_price"),
            ("reserve a room for three nights", "book_room"),
            ("please cancel my booking", "cancel_booking")]
UNRELATED = ["the mitochondria is the powerhouse of the cell", "xqzv blorp fnagh wuggle"]


@pytest.mark.integration
def test_minilm_fine_tune_end_to_end() -> None:
    config = IntentClassifierConfig(epochs=3, batch_size=16, learning_rate=1e-4,
                                    head_learning_rate=3e-3, n_samples=4, val_fraction=0.2,
                                    min_steps=0)
    clf = IntentClassifier(config)
    examples = [Example(t, intent) for intent, texts in TRAIN.items() for t in texts]
    clf.train(examples, progress=False)
    preds = clf.predict_batch([t for t, _ in HELD_OUT] + UNRELATED)
    in_domain, unrelated = preds[: len(HELD_OUT)], preds[len(HELD_OUT):]
    correct = sum(p.intent.name == y for p, (_, y) in zip(in_domain, HELD_OUT, strict=True))
    assert correct >= len(HELD_OUT) - 1
    mean_in = sum(p.intent.confidence for p in in_domain) / len(in_domain)
    assert max(p.intent.confidence for p in unrelated) < mean_in
    assert min(p.entropy for p in unrelated) > sum(p.entropy for p in in_domain) / len(in_domain)


def test_use_context_trains_on_pairs_and_reads_the_context(tiny_model: Path,
                                                           tmp_path: Path) -> None:
    from nlu.context import DialogueContext

    asked = DialogueContext("utter_greet")  # "greet" is in the tiny vocabulary
    contexts = {"book_room": [asked], "goodbye": [DialogueContext("utter_goodbye")]}
    clf = IntentClassifier(_config(tiny_model, use_context=True, context_fraction=1.0,
                                   n_samples=0))
    report = clf.train(_examples(), progress=False, contexts=contexts)
    # every training example of an intent with contexts got one paired copy (n_train counts
    # the pairs too); the context-free originals are all still there
    assert report["n_context_pairs"] == 12 and report["n_train"] == 18 + 12
    assert clf.uses_context
    plain = clf.predict("book a room please")
    paired = clf.predict("book a room please", context=asked)
    assert plain.intent.name == paired.intent.name == "book_room"
    assert plain.ranking != paired.ranking  # the context is part of the input
    assert clf.predict("book a room please", context=DialogueContext()).ranking == plain.ranking
    loaded = IntentClassifier.load_from(clf.save(tmp_path / "ctx"))
    assert loaded.uses_context
    assert loaded.predict("hello", context=asked).ranking == clf.predict(
        "hello", context=asked).ranking
