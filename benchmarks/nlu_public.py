"""The NLU on a public intent + slot benchmark (SNIPS), or on generated hotel data.

    python benchmarks/nlu_public.py                                  # generated data (smoke run)
    python benchmarks/nlu_public.py /work/shared/data/snips --limit-train 1400 \
        --intent-epochs 3 --entity-epochs 3                 # ~15-20 min on a shared 2-core CPU
    python benchmarks/nlu_public.py /work/shared/data/snips --extractor bio

PATH holds train.jsonl and test.jsonl, one `{"text", "intent", "entities": [{"start", "end",
"entity", "value"}]}` per line (see /work/shared/data/README.md; never a dependency of the
project). Without PATH a small hotel intent + slot set is generated (seeded). The pipeline is the
project's own: `train_pipeline` with IntentClassifier plus LukeSpanExtractor (or BioTagger), their
default configs and the MiniLM backbone resolved offline; `--epochs`, `--backbone` and
`--intent-param`/`--entity-param KEY=VALUE` override single settings, and every effective setting
is recorded. `--limit-train`/`--limit-test` subsample per intent in proportion (SNIPS has 13,784
training examples: all of them take hours on a CPU).

Scored on the test file: intent accuracy and macro-F1 (top intent), slot precision/recall/F1 on
exact span + type, the gold slots no candidate span can produce (word boundaries, span length),
training seconds per component, and parse throughput (batches of 64) and single-message p50.
Prints ONE JSON line and appends it to benchmarks/results/nlu_public.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (add_machine_args, emit, environment,  # noqa: E402
                               percentile, script_parser, set_threads)
from nlu.evaluation import entity_report, intent_report, write_reports  # noqa: E402
from nlu.interpreter import load_interpreter  # noqa: E402
from nlu.words import split_words  # noqa: E402
from nlu.training import TrainingSet, train_pipeline  # noqa: E402
from nlu.types import Entity, Example  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "nlu_public.jsonl"
EXTRACTORS = {"luke": "LukeSpanExtractor", "bio": "BioTagger"}
# Joint BERT-base on SNIPS, Table 2 of Chen, Zhuo and Wang (2019), arXiv:1902.10909. Their split
# (Goo et al. 2018) trains on 13,084 and tunes on 700 more; the 13,784 here are both together.
REFERENCE = {"model": "Joint BERT-base (Chen et al. 2019, arXiv:1902.10909)", "data": "SNIPS test",
             "intent_accuracy": 0.986, "slot_f1": 0.970,
             "with_crf": {"intent_accuracy": 0.984, "slot_f1": 0.967}}

# Generated data: templates with {slot} fields, filled from the value lists below.
TEMPLATES = {
    "book_room": [
        "book a {room_type} room in {city} for {number} guests",
        "i need a room in {city} from {date} for {number} people",
        "reserve a {room_type} at the hotel in {city} on {date}",
        "can you find me a hotel in {city} {date}",
    ],
    "ask_weather": [
        "what is the weather in {city} {date}",
        "will it rain in {city} on {date}",
        "forecast for {city} please",
        "is it sunny in {city} {date}",
    ],
    "order_food": [
        "order {number} {dish} to my room",
        "can i get a {dish} please",
        "bring {dish} for {number} people {date}",
        "i would like {number} portions of {dish}",
    ],
    "greet": ["hello there", "hi", "good morning", "hey how are you", "good evening to you"],
}
VALUES = {
    "city": ["Lisbon", "Paris", "Berlin", "Rome", "Madrid", "Vienna", "New York", "Prague"],
    "date": ["tomorrow", "next friday", "march 3", "this weekend", "monday", "tonight"],
    "number": ["two", "3", "four", "1", "six"],
    "room_type": ["double", "single", "twin", "family", "suite"],
    "dish": ["pizza", "club sandwich", "caesar salad", "pancakes", "green tea"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    p.add_argument("path", nargs="?", type=Path, help="folder with train.jsonl + test.jsonl")
    p.add_argument("--synthetic", action="store_true", help="generated data, even with PATH")
    p.add_argument("--limit-train", type=int, default=None, help="training examples (per intent "
                   "in proportion, seeded); default all")
    p.add_argument("--limit-test", type=int, default=None, help="test examples, as above")
    p.add_argument("--extractor", choices=sorted(EXTRACTORS), default="luke")
    p.add_argument("--epochs", type=int, default=None, help="both components (default: theirs)")
    p.add_argument("--intent-epochs", type=int, default=None)
    p.add_argument("--entity-epochs", type=int, default=None)
    p.add_argument("--backbone", default=None, help="encoder of both components (default: "
                   "their config's, all-MiniLM-L6-v2)")
    p.add_argument("--intent-param", action="append", default=[], metavar="KEY=VALUE",
                   help="an IntentClassifierConfig field (value read as JSON if it parses)")
    p.add_argument("--entity-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a LukeSpanConfig / BioTaggerConfig field, as above")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="keep the trained model (DIR/model) and Rasa reports (DIR/reports)")
    p.add_argument("--iterations", type=int, default=100, help="single-message parses timed")
    p.add_argument("--seed", type=int, default=0, help="subsampling and generated data")
    p.add_argument("--progress", action="store_true", help="training progress bars on stderr")
    add_machine_args(p, RESULTS)
    return p.parse_args(argv)


# -- data ----------------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            entities = tuple(Entity(int(e["start"]), int(e["end"]), e["value"], e["entity"])
                             for e in row.get("entities", []))
            examples.append(Example(row["text"], row["intent"], entities))
    return examples


def synthetic_data(seed: int, n_train: int = 120, n_test: int = 48) -> tuple[list[Example],
                                                                             list[Example]]:
    """Templates filled with random values; train and test share templates, not draws."""
    rng = random.Random(seed)
    intents = sorted(TEMPLATES)

    def draw(n: int) -> list[Example]:
        out = []
        for i in range(n):
            intent = intents[i % len(intents)]
            text, entities = "", []
            for piece in re.split(r"(\{\w+\})", rng.choice(TEMPLATES[intent])):
                if piece.startswith("{"):
                    slot, value = piece[1:-1], rng.choice(VALUES[piece[1:-1]])
                    entities.append(Entity(len(text), len(text) + len(value), value, slot))
                    piece = value
                text += piece
            out.append(Example(text, intent, tuple(entities)))
        return out

    return draw(n_train), draw(n_test)


def stratified(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """`limit` examples, each intent's share in proportion (largest remainders round up),
    drawn at random (seeded); the original order is kept."""
    if limit is None or limit >= len(examples):
        return list(examples)
    groups: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        groups.setdefault(example.intent or "", []).append(i)
    quotas = {k: limit * len(v) / len(examples) for k, v in groups.items()}
    counts = {k: int(q) for k, q in quotas.items()}
    by_remainder = sorted(quotas, key=lambda k: (counts[k] - quotas[k], k))
    for k in by_remainder[:limit - sum(counts.values())]:
        counts[k] += 1
    rng = random.Random(seed)
    chosen = sorted(i for k in sorted(groups) for i in rng.sample(groups[k], counts[k]))
    return [examples[i] for i in chosen]


def unreachable(examples: list[Example], max_span_length: int | None) -> int:
    """Gold entities the extractor cannot return exactly: a boundary inside a word, or (span
    extractor) more words than its longest candidate span."""
    count = 0
    for example in examples:
        words = split_words(example.text)
        starts, ends = {s for s, _ in words}, {e for _, e in words}
        for entity in example.entities:
            covered = sum(1 for s, e in words if s < entity.end and entity.start < e)
            if entity.start not in starts or entity.end not in ends or (
                    max_span_length is not None and covered > max_span_length):
                count += 1
    return count


# -- pipeline ------------------------------------------------------------------------------------


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SystemExit(f"Bad parameter '{text}': write KEY=VALUE, e.g. max_length=64.")
    try:
        return key.strip(), json.loads(raw)
    except ValueError:
        return key.strip(), raw


def pipeline(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A Rasa pipeline of our two components; only what the arguments set is passed on, so
    everything else is the component's default config."""
    intent: dict[str, Any] = {"device": args.device}
    entity: dict[str, Any] = {"device": args.device}
    if args.backbone is not None:
        intent["model"] = entity["model"] = args.backbone
    for params, epochs in ((intent, args.intent_epochs), (entity, args.entity_epochs)):
        chosen = epochs if epochs is not None else args.epochs
        if chosen is not None:
            params["epochs"] = chosen
    intent.update(_param(p) for p in args.intent_param)
    entity.update(_param(p) for p in args.entity_param)
    return [{"name": "IntentClassifier", **intent},
            {"name": EXTRACTORS[args.extractor], **entity}]


def _config(component: Any) -> dict[str, Any]:
    return asdict(component.config) if component is not None else {}


def parse_all(interpreter: Any, test: list[Example],
              iterations: int) -> tuple[list[Any], dict[str, Any]]:
    """Every test message, in batches of 64 (timed after a warm-up batch), then `iterations`
    single messages timed one by one."""
    texts = [e.text for e in test]
    interpreter.parse_batch(texts[:8])
    started = time.perf_counter()
    parses = []
    for i in range(0, len(texts), 64):
        parses += interpreter.parse_batch(texts[i:i + 64])
    batched = len(texts) / (time.perf_counter() - started)
    latencies = []
    for n in range(max(1, iterations)):
        started = time.perf_counter()
        interpreter.parse(texts[n % len(texts)])
        latencies.append((time.perf_counter() - started) * 1000)
    return parses, {"batch_64_parses_per_s": round(batched, 1),
                    "single_p50_ms": round(percentile(latencies, 50), 2),
                    "single_p95_ms": round(percentile(latencies, 95), 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    set_threads(args.threads, seed=args.seed)
    if args.path is not None and not args.synthetic:
        missing = [f for f in ("train.jsonl", "test.jsonl") if not (args.path / f).is_file()]
        if missing:
            raise SystemExit(f"No {' or '.join(missing)} in {args.path}. Give a folder with "
                             "train.jsonl and test.jsonl, or no PATH for generated data.")
        data = str(args.path)
        train_all, test_all = load_jsonl(args.path / "train.jsonl"), \
            load_jsonl(args.path / "test.jsonl")
    else:
        data = "synthetic"
        train_all, test_all = synthetic_data(args.seed)
    train = stratified(train_all, args.limit_train, args.seed)
    test = stratified(test_all, args.limit_test, args.seed)
    components = pipeline(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out_dir if args.out_dir is not None else Path(tmp)
        report = train_pipeline(TrainingSet(train), components, out / "model",
                                progress=args.progress)
        interpreter = load_interpreter(out / "model")
        parses, speed = parse_all(interpreter, test, args.iterations)
        scores = {"intent": intent_report(test, parses, "nlu_fallback"),
                  "entities": entity_report(test, parses)}
        if args.out_dir is not None:
            write_reports(scores, test, parses, out / "reports", EXTRACTORS[args.extractor])
        intent_config = _config(interpreter.intent_model)
        entity_config = _config(interpreter.entity_model)
    intent_training, entity_training = report.get("intent", {}), report.get("entities", {})
    max_span = entity_config.get("max_span_length") if args.extractor == "luke" else None
    n_gold = sum(len(e.entities) for e in test)
    missed = unreachable(test, max_span)
    result = {
        "benchmark": "nlu_public", "data": data,
        "settings": {
            "limit_train": args.limit_train, "limit_test": args.limit_test,
            "n_train": len(train), "n_train_available": len(train_all), "n_test": len(test),
            "n_test_available": len(test_all), "seed": args.seed, "extractor": args.extractor,
            "components": components,
            "intent": {k: intent_config.get(k) for k in (
                "model", "epochs", "batch_size", "learning_rate", "max_length", "n_samples",
                "mc_layers", "early_stopping_patience", "val_fraction")},
            "entities": {k: entity_config.get(k) for k in (
                "model", "luke_model", "epochs", "batch_size", "learning_rate",
                "entity_learning_rate", "negative_ratio", "max_span_length", "max_length",
                "early_stopping_patience", "val_fraction") if k in entity_config},
            "intents": len({e.intent for e in train}),
            "entity_types": len({x.entity for e in train for x in e.entities}),
        },
        "intent": {"accuracy": round(scores["intent"]["accuracy"], 4),
                   "macro_f1": round(scores["intent"]["macro_f1"], 4),
                   "ece": round(scores["intent"]["ece"], 4)},
        "slots": {"precision": round(scores["entities"]["precision"], 4),
                  "recall": round(scores["entities"]["recall"], 4),
                  "f1": round(scores["entities"]["f1"], 4),
                  "gold": n_gold, "unreachable_gold": missed,
                  "recall_ceiling": round(1 - missed / n_gold, 4) if n_gold else None},
        "training": {
            "intent_seconds": round(intent_training.get("seconds", 0.0), 1),
            "intent_epochs_run": intent_training.get("epochs_run"),
            "intent_best_epoch": intent_training.get("best_epoch"),
            "entity_seconds": round(entity_training.get("seconds", 0.0), 1),
            "entity_epochs_run": len(entity_training.get("epochs", [])) or None,
            "entity_best_epoch": entity_training.get("best_epoch"),
            "total_seconds": round(report["seconds"], 1),
        },
        "throughput": speed,
        "reference": REFERENCE if data != "synthetic" else None,
        "device": args.device, "iterations": args.iterations, **environment(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
