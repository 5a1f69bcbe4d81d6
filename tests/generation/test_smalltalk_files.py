"""The demo's small talk written in a concierge's voice (data/smalltalk/*.yml): every file
reads, no message is written twice or close to a message the generator is measured on, and
config.yml's generation section (the demo's pairs-only arm) and its commented GPT-2 arm name
every file."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from generation.pairs import read_pairs
from tests.benchmark_scripts import load_benchmark

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "data" / "smalltalk").glob("*.yml"))
NEAR = 0.5  # Jaccard of word tokens at which a pair's message copies a measured one


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _messages() -> list[tuple[str, str]]:
    return [(path.name, m) for path in FILES for m, _ in read_pairs(path)]


def test_every_file_reads_and_no_message_is_written_twice() -> None:
    assert len(FILES) >= 5
    seen: dict[str, str] = {}
    for name, message in _messages():
        key = " ".join(message.lower().split())
        assert key not in seen, f"{message!r} of {name} is also in {seen.get(key)}"
        seen[key] = name


def test_no_message_is_near_a_measured_small_talk_message() -> None:
    samples = load_benchmark("generation_samples")
    written = [line for path in sorted((REPO / "benchmarks" / "messages").glob("*.txt"))
               for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    assert len(written) >= 170
    measured = [_tokens(m) for m in (*samples.MESSAGES, *samples.FRESH, *samples.BLIND,
                                     *samples.DEV, *written)]
    near = [(name, m) for name, m, mine in ((n, m, _tokens(m)) for n, m in _messages())
            if any(_jaccard(mine, other) >= NEAR for other in measured)]
    assert near == []


def commented_generation_sections() -> list[dict]:
    """config.yml's commented `# generation:` sections (the arms a user may switch on)."""
    sections, block = [], None
    for line in (REPO / "config.yml").read_text(encoding="utf-8").splitlines():
        if line == "# generation:":
            if block is not None:
                sections.append(yaml.safe_load("\n".join(block))["generation"])
            block = ["generation:"]
        elif block is not None and line.startswith("#"):
            block.append(line[2:])
        elif block is not None:
            sections.append(yaml.safe_load("\n".join(block))["generation"])
            block = None
    return sections


def test_the_demos_pairs_only_arm_names_every_file() -> None:
    config = yaml.safe_load((REPO / "config.yml").read_text(encoding="utf-8"))
    section = config["generation"]
    assert section["train"] == {"language_model": False}
    assert sorted(section["pairs"]) == [f"data/smalltalk/{p.name}" for p in FILES]
    assert "action_generate_reply" in config["fallback"]["attempts"]
    smollm2, gpt2 = commented_generation_sections()  # the arms to switch on name them too
    assert smollm2["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "budget_s" in gpt2
    assert smollm2["pairs"] == gpt2["pairs"] == section["pairs"]
