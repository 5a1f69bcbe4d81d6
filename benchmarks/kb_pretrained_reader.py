"""What a reader that first learnt public extractive QA does for the knowledge answers.

    python benchmarks/kb_pretrained_reader.py data/qa_pretrain/house_qa*.json \
        --tests tests/kb_dev.json,tests/kb_test.json,tests/kb_blind.json

Copies the trained knowledge directory (`--knowledge-dir`, models/knowledge), rebuilds it
with the project's own settings plus `knowledge.reader.pretrain_qa: [FILE ...]` (the reader
learns the files for `--epochs`, cut to the answer's sentence or as whole passages
(`--contexts`), then the KB's questions from there; the index and the sentence
encoder are reused, the confidence is calibrated again), and reports both directories as
benchmarks/kb_gate.py does: per test set the best sentence's ceiling, the confidence's AUC,
right and declined at each one's threshold, and right at 80/85/90 % of the unanswerable
declined. A FILE may also be public data beside the project (/work/shared/data, see its
README), never a dependency of it; with network, `knowledge.reader.base_model` names a hub
reader instead.
Prints ONE JSON line, appended to benchmarks/results/kb_pretrained_reader.jsonl.
"""

from __future__ import annotations

import os
import shutil
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

from benchmarks.common import (add_knowledge_args, add_machine_args, emit,  # noqa: E402
                               environment, script_parser, set_threads)
from benchmarks.kb_gate import gate_rows, tradeoff  # noqa: E402
from retrieval.answerer import load_answerer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "kb_pretrained_reader.jsonl"


def parse_args(argv: list[str] | None = None) -> Any:
    p = script_parser(__doc__)
    p.add_argument("qa", type=Path, nargs="+",
                   help="SQuAD-format files (JSON or QA JSONL) learnt first")
    add_knowledge_args(p)
    p.add_argument("--epochs", type=float, default=2.0, help="epochs over the public QA")
    p.add_argument("--contexts", choices=("sentence", "passage"), default="sentence",
                   help="what the pretrained reader reads (knowledge.reader.pretrain_contexts)")
    p.add_argument("--tests", default="tests/kb_dev.json,tests/kb_test.json",
                   help="comma-separated SQuAD-format test sets")
    add_machine_args(p, RESULTS, device=False)
    return p.parse_args(argv)


def gate(knowledge_dir: Path, tests: list[Path]) -> dict[str, Any]:
    answerer = load_answerer(knowledge_dir).load()
    return {path.stem: tradeoff(gate_rows(answerer, path), answerer.threshold)
            for path in tests}


def main(argv: list[str] | None = None) -> None:
    from bot.project.config import ProjectPaths
    from bot.project.project import Project
    from bot.training.knowledge import knowledge_base, train_knowledge

    args = parse_args(argv)
    set_threads(args.threads)
    for path in args.qa:
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (SQuAD-format QA to learn first)")
    if not (args.knowledge_dir / "knowledge.json").is_file():
        raise SystemExit(f"{args.knowledge_dir}: no trained knowledge directory; run "
                         "`xingkong train` first")
    tests = [Path(p) if Path(p).is_absolute() else ROOT / p for p in args.tests.split(",") if p]
    project = Project.load(ProjectPaths.at(ROOT))
    knowledge = project.config.knowledge
    reader = {**knowledge.reader, "pretrain_qa": [str(p.resolve()) for p in args.qa],
              "pretrain_epochs": args.epochs, "pretrain_contexts": args.contexts}
    project.config = replace(project.config, knowledge=replace(knowledge, reader=reader))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "knowledge"
        shutil.copytree(args.knowledge_dir, out)
        build = train_knowledge(project, knowledge_base(project, required=True), out)
        seconds = round(time.perf_counter() - started, 1)
        report = {"benchmark": "kb_pretrained_reader", "qa": [str(p) for p in args.qa],
                  "epochs": args.epochs, "contexts": args.contexts, "build_seconds": seconds,
                  "reused": list(build.reused), "before": gate(args.knowledge_dir, tests),
                  "after": gate(out, tests), **environment()}
    emit(report, Path(args.out))


if __name__ == "__main__":
    main()
