"""Dates normalised right: of the date mentions annotated in held-out NLU files, how many
become the right calendar day through the trained NLU (Duckling) and the forms' reading of it.

    python benchmarks/nlu_dates.py                                  # tests/nlu_test.yml
    python benchmarks/nlu_dates.py --nlu tests/nlu_test.yml tests/nlu_blind.yml

For each annotated `date` entity: the reference day is the annotated text read by the
hand parser (actions/dates.py parse_date, on today; a check-out on or after the example's
check-in); mentions it cannot read have no reference and are counted apart. The predicted
day is what `actions.dates.said_dates` reads from the parse's Duckling entities over that
span (a stay gives its first day, or its check-out day for a check-out mention), the next
occurrence on or after the same floor. Prints ONE JSON line per file and appends it to
benchmarks/results/nlu_dates.jsonl; `--show` prints the misses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from actions.dates import parse_date, said_dates  # noqa: E402
from benchmarks.common import emit, environment  # noqa: E402
from bot.project.project import Project  # noqa: E402
from bot.project.config import ProjectPaths  # noqa: E402
from bot.project.training_data import load_training_data  # noqa: E402
from nlu.interpreter import load_interpreter, to_rasa  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "nlu_dates.jsonl"
TARGET = 0.95


def score_file(interpreter: Any, path: Path, today: date) -> dict[str, Any]:
    examples = load_training_data([path]).examples
    reference_time = time.time()
    mentions = right = no_reference = 0
    misses = []
    for example in examples:
        dates = [a for a in example.entities if a.entity == "date"]
        if not dates:
            continue
        parse = to_rasa(interpreter.parse_batch([example.text], None, [reference_time])[0])
        said = said_dates(parse)
        checkin = next((parse_date(str(a.value), today) for a in dates if a.role == "checkin"),
                       None)
        for gold in dates:
            floor = checkin + timedelta(days=1) if gold.role == "checkout" and checkin else today
            expected = parse_date(str(gold.value), today, floor)
            if expected is None:
                no_reference += 1
                continue
            mentions += 1
            over = [d for d in said if d.start < gold.end and gold.start < d.end]
            got = None
            if over:
                first, last = over[0].first_on_or_after(
                    today if gold.role == "checkout" and over[0].is_stay else floor)
                got = last if gold.role == "checkout" and last is not None else first
            if got == expected:
                right += 1
            else:
                misses.append({"text": example.text, "span": gold.value, "role": gold.role,
                               "expected": str(expected), "got": str(got)})
    return {"file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
            "mentions": mentions, "right": right,
            "rate": round(right / mentions, 4) if mentions else None,
            "no_reference": no_reference, "misses": misses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nlu", nargs="+", default=["tests/nlu_test.yml"])
    parser.add_argument("--project", default=str(ROOT))
    parser.add_argument("--models", default=None, help="models folder (default: the project's)")
    parser.add_argument("--show", action="store_true", help="print the misses")
    args = parser.parse_args()
    project = Project.load(ProjectPaths.at(
        Path(args.project), models=Path(args.models).resolve() if args.models else None))
    pipeline = project.config.pipeline_dicts()
    interpreter = load_interpreter(project.paths.models / "nlu", pipeline,
                                   project.config.language)
    today = date.today()
    for name in args.nlu:
        report = score_file(interpreter, Path(args.project) / name, today)
        misses = report.pop("misses")
        if args.show:
            for miss in misses:
                print(miss, file=sys.stderr)
        emit({"benchmark": "nlu_dates", **report, "target": TARGET, "misses_n": len(misses),
              "today": str(today), "environment": environment()}, RESULTS)


if __name__ == "__main__":
    main()
