"""How much each part of the knowledge answers moves the test sets (tests/kb_test.json and the
blind tests/kb_blind.json), from a trained knowledge directory.

    python benchmarks/kb_ablation.py                      # models/knowledge
    python benchmarks/kb_ablation.py --baseline-reader ../main/models/knowledge/reader

Variants, each re-calibrated on the build's own held-out slice (never on a test set):

* `built`: the knowledge directory as trained;
* `encoder_untrained`: the sentence encoder replaced by the untrained backbone;
* `encoder_qa_only`: an encoder fine-tuned on qa.json's training split alone, without the
  generated questions (trained here, same settings);
* `reader_baseline` (with --baseline-reader): another reader (e.g. one trained on qa.json
  passages only) re-ranking and marking the span in the same selected sentences.

Per variant and test set: reply sentence holds the answer (answered and right), best sentence
right (before the threshold), unanswerable declined, span EM/F1. Prints ONE JSON line and
appends it to benchmarks/results/kb_ablation.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import (KB_TEST_SETS, add_knowledge_args,  # noqa: E402
                               add_machine_args, emit, environment, script_parser, set_threads)
from retrieval.answer_calibration import fit_calibration  # noqa: E402
from retrieval.answerer import Answerer, load_answerer, read_settings  # noqa: E402
from retrieval.kb_eval import evaluate_kb  # noqa: E402
from retrieval.knowledge_build import (KnowledgeBuild, held_out_questions,  # noqa: E402
                                       split_data)
from retrieval.reader import Reader  # noqa: E402
from retrieval.sentence_ranker import SentenceRanker  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "kb_ablation.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = script_parser(__doc__)
    add_knowledge_args(p)
    p.add_argument("--tests", default=KB_TEST_SETS)
    p.add_argument("--baseline-reader", type=Path, default=None)
    p.add_argument("--variants", default="built,encoder_untrained,encoder_qa_only,"
                                         "reader_baseline")
    add_machine_args(p, RESULTS, device=False)
    return p.parse_args(argv)


def scores(answerer: Answerer, tests: list[Path]) -> dict[str, Any]:
    out = {}
    for path in tests:
        report = evaluate_kb(answerer, path, gold_context=False)
        out[path.stem] = {**report["sentence"], "span_exact": report["pipeline"]["exact"],
                          "span_f1": report["pipeline"]["f1"],
                          "recall@5": report["retrieval"]["recall@5"],
                          "ece": report["reliability"]["ece"]}
    return out


def with_encoder(base: Answerer, encoder: Any, held: list[Any]) -> Answerer:
    """`base` with another sentence encoder, re-calibrated on the held-out slice."""
    table = base.ranker.table
    vectors = encoder.encode([s.search_text for s in table.sentences])
    ranker = SentenceRanker(table, base.ranker.passages, encoder, vectors)
    probe = Answerer(base.index, None, base.reader, config=base.config, ranker=ranker)
    return Answerer(base.index, None, base.reader, config=base.config, ranker=ranker,
                    calibration=fit_calibration(probe, held))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from retrieval.embedder import SentenceTransformerEmbedder

    set_threads(args.threads)
    wanted = {v.strip() for v in args.variants.split(",")}
    tests = [ROOT / t for t in args.tests.split(",") if (ROOT / t).is_file()]
    built = load_answerer(args.knowledge_dir).load()
    settings = read_settings(args.knowledge_dir)
    build = KnowledgeBuild(kb_dir=args.kb, out_dir=args.knowledge_dir,
                           embedder=settings.embedder)
    data = split_data(build, built.index)
    held = held_out_questions(data)
    variants: dict[str, Any] = {}
    if "built" in wanted:
        variants["built"] = scores(built, tests)
    if "encoder_untrained" in wanted:
        base_encoder = SentenceTransformerEmbedder(build.encoder.base_model)
        variants["encoder_untrained"] = scores(with_encoder(built, base_encoder, held), tests)
    if "encoder_qa_only" in wanted:
        from retrieval.knowledge_build import build_encoder

        with tempfile.TemporaryDirectory() as tmp:
            qa_only = replace(build, out_dir=Path(tmp))
            build_encoder(qa_only, replace(data, generated_train=[]))
            encoder = SentenceTransformerEmbedder(str(Path(tmp) / "sentence_encoder"))
            variants["encoder_qa_only"] = scores(with_encoder(built, encoder, held), tests)
    if "reader_baseline" in wanted and args.baseline_reader is not None:
        reader = Reader.from_dir(args.baseline_reader).load()
        probe = Answerer(built.index, None, reader, config=built.config, ranker=built.ranker)
        other = Answerer(built.index, None, reader, config=built.config, ranker=built.ranker,
                         calibration=fit_calibration(probe, held))
        variants["reader_baseline"] = scores(other, tests)
    report = {"benchmark": "kb_ablation", "knowledge_dir": str(args.knowledge_dir),
              "held_out": len(held), "variants": variants, **environment(),
              "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    emit(report, args.out)
    return report


if __name__ == "__main__":
    main()
