"""Fine-tune the extractive reader and calibrate its no-answer margin.

`train_reader` starts from an encoder (by default the all-MiniLM-L6-v2 backbone, with a fresh
QA head) and trains on SQuAD-format span annotations (start/end cross-entropy per window;
windows that miss the answer, and unanswerable questions, point at [CLS]). Negatives for the
no-answer decision: the unanswerable questions, plus generated ones, an answerable question
paired with a context of ANOTHER document (target [CLS]) chosen among the contexts BM25 finds
most alike (hard negatives), never one that contains an answer text. About 10% of the
questions (stratified answerable / unanswerable) are held out: the margin on
best span score - null score that maximises answer quality plus no-answer accuracy on them
(their generated negatives included) becomes `no_answer_margin`. With `epochs=0` a pretrained
QA model is only calibrated. `extra_qa_paths` adds more SQuAD-format data (SQuAD 2.0, XQuAD).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nlu.cpu import cpu_has_bf16
from retrieval.bm25 import BM25
from retrieval.errors import RetrievalConfigError
from retrieval.qa_metrics import QAExample, exact_match, f1, load_qa, normalize_answer
from retrieval.reader import (DEFAULT_READER_BASE, Reader, ReaderConfig, ReaderResult,
                              encode_windows)
from retrieval.train_step import apply_step

logger = logging.getLogger(__name__)

TRAINING_REPORT = "training_report.json"


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Training settings (see the module docstring). `epochs=0`: calibrate only."""

    base_model: str = DEFAULT_READER_BASE
    epochs: float = 3.0
    lr: float = 1e-4
    batch_size: int = 16
    max_length: int = 256
    doc_stride: int = 64
    max_question_tokens: int = 48
    max_answer_tokens: int = 30
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    negatives_per_question: int = 1
    freeze_embeddings: bool = True
    hard_negatives: bool = True
    holdout_fraction: float = 0.1
    answer_weight: float | None = None
    seed: int = 13
    extra_qa_paths: tuple[str, ...] = ()
    extra_limit: int | None = None
    train_unanswerable: bool = True  # False: qa's unanswerable questions are never trained on
    num_threads: int | None = 1  # measured on 2 busy cores: 1 thread 13 s, 2 threads 105 s
    # the training passes' matrix products: "bfloat16" under autocast (weights, optimizer and
    # loss float32), "auto": bfloat16 on a CPU with bfloat16 instructions (the demo's reader:
    # about 28 % less CPU, the same or better kb_dev/kb_test figures), "float32"
    precision: str = "auto"
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise RetrievalConfigError("epochs must be >= 0, lr > 0 and batch_size >= 1")
        if not 0.0 <= self.holdout_fraction < 0.5:
            raise RetrievalConfigError("holdout_fraction must be in [0, 0.5)")
        if self.precision not in ("auto", "float32", "bfloat16"):
            raise RetrievalConfigError(f"precision must be auto, float32 or bfloat16, got "
                                       f"{self.precision!r}")

    def reader_config(self, margin: float = 0.0) -> ReaderConfig:
        return ReaderConfig(model=self.base_model, max_length=self.max_length,
                            doc_stride=self.doc_stride,
                            max_question_tokens=self.max_question_tokens,
                            max_answer_tokens=self.max_answer_tokens, no_answer_margin=margin,
                            device=self.device, num_threads=self.num_threads)


@dataclass(frozen=True, slots=True)
class TrainReport:
    out_dir: str
    base_model: str
    margin: float
    seconds: float
    steps: int
    windows: int
    counts: dict[str, int]
    holdout: dict[str, Any]
    losses: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_reader(train_examples: Sequence[QAExample] | str | Path,
                 base_model: str = DEFAULT_READER_BASE, out_dir: str | Path = "models/reader",
                 epochs: float = 3.0, lr: float = 1e-4, *,
                 extra_qa_paths: Sequence[str | Path] = (),
                 extra_examples: Sequence[QAExample] = (), **options: Any) -> TrainReport:
    """Train (or, with epochs=0, only calibrate) a reader; save it to `out_dir` (safetensors
    weights, tokenizer, reader_config.json with the margin, training_report.json).
    `extra_examples` are trained on and never held out (generated questions)."""
    import torch

    config = TrainConfig(base_model=base_model, epochs=epochs, lr=lr,
                         extra_qa_paths=tuple(str(p) for p in extra_qa_paths), **options)
    examples = (load_qa(train_examples) if isinstance(train_examples, (str, Path))
                else list(train_examples))
    if not examples:
        raise RetrievalConfigError("no training examples")
    started = time.perf_counter()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    train, holdout = split_holdout(examples, config.holdout_fraction, config.seed)
    if not config.train_unanswerable:  # kept for calibrating the whole pipeline instead
        train = [e for e in train if not e.is_impossible]
    negatives = make_negatives(train, examples, config.negatives_per_question, rng,
                               hard=config.hard_negatives)
    extra = [ex for path in config.extra_qa_paths for ex in load_qa(path,
                                                                    limit=config.extra_limit)]
    extra += list(extra_examples)
    reader = Reader(config.reader_config())
    tokenizer, model = _load_model(config)
    reader.set_model(model, tokenizer)
    steps, windows, losses = 0, 0, []
    if config.epochs > 0:
        steps, windows, losses = _fit(model, tokenizer, [*train, *negatives, *extra], config,
                                      rng, reader.device)
    model.eval()
    held_negatives = make_negatives(holdout, examples, 1, random.Random(config.seed + 1),
                                    hard=config.hard_negatives)
    calibration = calibrate_reader(reader, [*holdout, *held_negatives], config.answer_weight)
    reader = reader.with_margin(calibration["margin"])
    folder = reader.save(out_dir)
    counts = {"train_answerable": sum(not e.is_impossible for e in train),
              "train_unanswerable": sum(e.is_impossible for e in train),
              "generated_negatives": len(negatives), "extra": len(extra),
              "holdout": len(holdout), "holdout_generated_negatives": len(held_negatives)}
    report = TrainReport(str(folder), base_model, calibration["margin"],
                         round(time.perf_counter() - started, 1), steps, windows, counts,
                         {**calibration, "ids": [e.id for e in holdout]},
                         [round(x, 4) for x in losses], _jsonable(asdict(config)))
    (folder / TRAINING_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n",
                                          encoding="utf-8")
    logger.info("retrieval.reader.trained out=%s seconds=%.0f steps=%d margin=%.3f", folder,
                report.seconds, steps, report.margin)
    return report


def split_holdout(examples: Sequence[QAExample], fraction: float,
                  seed: int) -> tuple[list[QAExample], list[QAExample]]:
    """(train, holdout): `fraction` of the answerable and of the unanswerable questions held
    out, drawn with `seed` (at least one of each kind when there are several)."""
    rng = random.Random(seed)
    train, holdout = [], []
    for impossible in (False, True):
        group = sorted((e for e in examples if e.is_impossible == impossible), key=lambda e: e.id)
        rng.shuffle(group)
        n = round(len(group) * fraction)
        n = max(n, 1) if fraction > 0 and len(group) > 1 else n
        holdout += group[:n]
        train += group[n:]
    return train, holdout


def make_negatives(examples: Sequence[QAExample], pool: Sequence[QAExample], per_question: int,
                   rng: random.Random, *, hard: bool = True) -> list[QAExample]:
    """For each answerable example, `per_question` unanswerable copies whose context is one of
    another document (`title`) from `pool`, and contains none of the example's answer texts.
    `hard`: chosen among the 5 BM25-nearest such contexts, else at random."""
    contexts = sorted({(e.title, e.context) for e in pool})
    if per_question < 1 or len({t for t, _ in contexts}) < 2:
        return []
    bm25 = BM25()
    bm25.add(list(range(len(contexts))), [c for _, c in contexts])
    answerable = [e for e in examples if not e.is_impossible]
    ranked = bm25.search([e.question for e in answerable], 40) if hard else None
    out = []
    for n, ex in enumerate(answerable):
        golds = [normalize_answer(a) for a in ex.answer_texts]

        def usable(i: int, ex: QAExample = ex, golds: list[str] = golds) -> bool:
            title, text = contexts[i]
            norm = normalize_answer(text)
            return title != ex.title and not any(g and g in norm for g in golds)

        near = [k for k, _ in ranked[n] if usable(k)][:5] if ranked is not None else []
        if len(near) < per_question:
            others = [i for i in range(len(contexts)) if usable(i)]
            near += rng.sample(others, min(len(others), per_question - len(near)))
        for k, i in enumerate(rng.sample(near, min(per_question, len(near)))):
            out.append(QAExample(f"{ex.id}#neg{k}", ex.question, contexts[i][1], (),
                                 contexts[i][0]))
    return out


def calibrate_reader(reader: Reader, examples: Sequence[QAExample],
                     answer_weight: float | None = None) -> dict[str, Any]:
    """Read the gold contexts of `examples` and choose the margin (see choose_margin)."""
    results = reader.read_pairs([e.question for e in examples], [e.context for e in examples])
    return choose_margin(results, examples, answer_weight)


def choose_margin(results: Sequence[ReaderResult], examples: Sequence[QAExample],
                  answer_weight: float | None = None) -> dict[str, Any]:
    """Grid search of the margin m (answer when gap > m) maximising the objective (see
    `objective`). Candidates lie between consecutive gaps; ties go to the middle of the best
    run."""
    cases = [(r.gap, r.best.text if r.best else "", e.answer_texts)
             for r, e in zip(results, examples)]
    if not cases:
        return {"margin": 0.0, "objective": 0.0}
    gaps = sorted({max(g, -1e4) for g, _, _ in cases})
    grid = [gaps[0] - 1.0, *[(a + b) / 2 for a, b in zip(gaps, gaps[1:])], gaps[-1] + 1.0]
    scored = [(_objective(cases, m, answer_weight), m) for m in grid]
    best = max(s[0]["objective"] for s in scored)
    tied = [m for s, m in scored if s["objective"] >= best - 1e-12]
    margin = float(tied[len(tied) // 2])
    chosen = _objective(cases, margin, answer_weight)
    at_zero = _objective(cases, 0.0, answer_weight)
    return {"margin": round(margin, 4), **chosen, "at_margin_0": at_zero}


def objective(em: Sequence[float], f: Sequence[float], na: Sequence[float],
              answer_weight: float | None = None) -> float:
    """What calibration maximises. `answer_weight=None`: the mean over questions of
    (EM + F1) / 2 for answerable and no-answer correctness for unanswerable ones (SQuAD 2.0's
    per-question weighting); a number w: w * answer quality + (1 - w) * no-answer accuracy
    (each class weighs the same whatever its size)."""
    quality = [(a + b) / 2 for a, b in zip(em, f)]
    if answer_weight is None:
        return _mean([*quality, *na])
    if quality and na:
        return answer_weight * _mean(quality) + (1 - answer_weight) * _mean(na)
    return _mean(quality) if quality else _mean(na)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _objective(cases: Sequence[tuple[float, str, list[str]]], margin: float,
               weight: float | None) -> dict[str, float]:
    em, f, na = [], [], []
    for gap, text, golds in cases:
        pred = text if gap > margin else ""
        if golds:
            em.append(exact_match(pred, golds))
            f.append(f1(pred, golds))
        else:
            na.append(float(pred == ""))
    mean = _mean
    return {"objective": round(objective(em, f, na, weight), 4),
            "has_ans_exact": round(mean(em), 4),
            "has_ans_f1": round(mean(f), 4), "no_ans_accuracy": round(mean(na), 4),
            "has_ans_count": len(em), "no_ans_count": len(na)}


# ------------------------------------------------------------------ internals

def _load_model(config: TrainConfig) -> tuple[Any, Any]:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from resolver import resolve_model

    path = resolve_model(config.base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForQuestionAnswering.from_pretrained(str(path))
    if config.epochs == 0 and not any("QuestionAnswering" in a for a in
                                      (model.config.architectures or [])):
        logger.warning("retrieval.reader.untrained_head model=%s: epochs=0 on a model without "
                       "a QA head; the answers will be random", config.base_model)
    return tokenizer, model


def label_windows(tokenizer: Any, examples: Sequence[QAExample],
                  config: ReaderConfig) -> tuple[list[list[int]], list[list[int]], list[int],
                                                 list[int]]:
    """(input ids, token types, start positions, end positions) of every window of `examples`;
    windows without the (first) answer, and unanswerable examples, point at position 0."""
    windows = encode_windows(tokenizer, [e.question for e in examples],
                             [e.context for e in examples], config)
    starts, ends = [], []
    for w, offsets in enumerate(windows.offsets):
        ex = examples[windows.pair[w]]
        s = e = 0
        if ex.answers:
            text, a = ex.answers[0]
            b = a + len(text)
            inside = [(i, o) for i, o in enumerate(offsets) if o is not None]
            if inside and inside[0][1][0] <= a and inside[-1][1][1] >= b:
                s = next(i for i, o in inside if o[1] > a)
                e = next(i for i, o in reversed(inside) if o[0] < b)
        starts.append(s)
        ends.append(e)
    return windows.input_ids, windows.token_type_ids, starts, ends


def _fit(model: Any, tokenizer: Any, examples: Sequence[QAExample], config: TrainConfig,
         rng: random.Random, device: str) -> tuple[int, int, list[float]]:
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    ids, types, starts, ends = label_windows(tokenizer, examples, config.reader_config())
    per_epoch = math.ceil(len(ids) / config.batch_size)
    total = max(1, math.ceil(per_epoch * config.epochs))
    if config.freeze_embeddings:  # few examples: keep the pretrained word vectors
        model.get_input_embeddings().weight.requires_grad_(False)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in params if "bias" not in n and "LayerNorm" not in n]
    rest = [p for n, p in params if "bias" in n or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr,
                                  fused=True)  # one kernel for all the weights: same update
    schedule = get_linear_schedule_with_warmup(optimizer, int(total * config.warmup_ratio), total)
    model.to(device).train()
    bf16 = device == "cpu" and (config.precision == "bfloat16" or
                                (config.precision == "auto" and cpu_has_bf16()))
    pad = tokenizer.pad_token_id or 0
    losses, step, running = [], 0, 0.0
    bar = tqdm(total=total, desc="reader", disable=not config.progress, unit="step")
    while step < total:
        for chunk in length_batches([len(x) for x in ids], config.batch_size, rng):
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)  # (B, L)
            token_types = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, L)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)  # (B, L)
            for r, i in enumerate(chunk):
                input_ids[r, :len(ids[i])] = torch.tensor(ids[i])
                token_types[r, :len(types[i])] = torch.tensor(types[i])
                mask[r, :len(ids[i])] = 1
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                            token_type_ids=token_types.to(device),
                            start_positions=torch.tensor([starts[i] for i in chunk],
                                                         device=device),
                            end_positions=torch.tensor([ends[i] for i in chunk], device=device))
            value = apply_step(out.loss, model.parameters(), optimizer, schedule)
            step += 1
            running = 0.9 * running + 0.1 * value if step > 1 else value
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}")
            if step % max(1, per_epoch // 4) == 0:
                losses.append(running)
            if step >= total:
                break
    bar.close()
    return step, len(ids), losses


def length_batches(lengths: Sequence[int], size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar lengths (less padding): shuffle, sort pools of 32 batches
    by length, cut them into batches, shuffle the batches. The reranker batches its groups
    so too."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for p in range(0, len(order), size * 32):
        pool = sorted(order[p:p + size * 32], key=lambda i: lengths[i])
        batches += [pool[b:b + size] for b in range(0, len(pool), size)]
    rng.shuffle(batches)
    return batches


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def config_fields() -> list[str]:
    """Names accepted as `train_reader(**options)`."""
    return [f.name for f in fields(TrainConfig)]
