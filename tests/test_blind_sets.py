"""The blind sets stay blind: no question or message in them is a near-duplicate of the data the
models train on (or of the older held-out files, for the KB).

Blind files are written by someone who saw only the documents, the domain and docs/; this test
catches what such a writer could still share with the training data by chance. Offenders are
dropped from the blind file, never rewritten by looking at the training data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
KB_LIMIT = 0.5      # issue 10: no blind question within Jaccard 0.5 of qa.json / kb_test.json
NLU_LIMIT = 0.6     # a blind message this close to a training example counts as a copy
MIN_TOKENS = 4      # shorter replies ("yes", "two of us") are shared by any two writers


def tokens(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def plain(text: str) -> str:
    """Rasa's inline annotations removed: `[Lisbon](city)` -> `Lisbon`."""
    text = re.sub(r"\[([^\]]*)\](\([^)]*\)|\{[^}]*\})(\{[^}]*\})?", r"\1", text)
    return text.strip()


def squad_questions(path: Path, impossible: bool | None = None) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [qa["question"] for doc in data for para in doc["paragraphs"] for qa in para["qas"]
            if impossible is None or qa.get("is_impossible", False) == impossible]


def nlu_texts(path: Path) -> list[str]:
    items = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("nlu") or []
    texts = []
    for item in items:
        examples = item.get("examples") or ""
        texts += [plain(line.strip()[2:]) for line in examples.splitlines()
                  if line.strip().startswith("- ")]
    return texts


def story_texts(path: Path) -> list[str]:
    stories = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stories") or []
    return [plain(str(step["user"])) for story in stories for step in story.get("steps", [])
            if isinstance(step, dict) and "user" in step]


def questions_beside(path: Path) -> list[str]:
    """Every question of the other KB files, the house pretraining questions and the NLU
    examples: what a blind set's questions must not be near."""
    others = [p for p in sorted((REPO / "tests").glob("kb_*.json")) if p != path]
    others += [REPO / "data" / "kb" / "qa.json", REPO / "data" / "kb" / "guest_questions.json",
               *sorted((REPO / "data" / "qa_pretrain").glob("house_qa*.json"))]
    return [q for other in others for q in squad_questions(other)] + nlu_texts(
        REPO / "data/nlu.yml")


def answers_not_copied(path: Path) -> list[str]:
    """The answers of `path` that are not where they say in their document's text."""
    return [answer["text"] for doc in json.loads(path.read_text(encoding="utf-8"))["data"]
            for para in doc["paragraphs"] for qa in para["qas"] for answer in qa["answers"]
            if para["context"][answer["answer_start"]:
                               answer["answer_start"] + len(answer["text"])] != answer["text"]]


def near_duplicates(blind: list[str], seen: list[str], limit: float,
                    min_tokens: int = 1) -> list[tuple[str, float]]:
    seen_sets = [tokens(text) for text in seen]
    found = []
    for text in blind:
        mine = tokens(text)
        if len(mine) < min_tokens:
            continue
        best = max((jaccard(mine, other) for other in seen_sets), default=0.0)
        if best >= limit:
            found.append((text, round(best, 2)))
    return found


def test_there_are_enough_blind_stories() -> None:
    stories = yaml.safe_load((REPO / "tests/test_stories_blind.yml").read_text(encoding="utf-8"))
    assert len(stories["stories"]) >= 25  # issue 12


def test_jaccard_and_annotation_stripping() -> None:
    assert jaccard(tokens("Is breakfast included?"), tokens("is BREAKFAST included")) == 1.0
    assert plain('from [the 3rd](date){"role": "checkin"} in [Lisbon](city)') == \
        "from the 3rd in Lisbon"
    assert near_duplicates(["a b c d"], ["a b c e"], 0.5) == [("a b c d", 0.6)]


def test_kb_blind_questions_are_not_near_duplicates() -> None:
    blind = squad_questions(REPO / "tests/kb_blind.json")
    seen = squad_questions(REPO / "data/kb/qa.json") + squad_questions(REPO / "tests/kb_test.json")
    # issue 10: at least 80 answerable and 30 unanswerable questions
    assert len(squad_questions(REPO / "tests/kb_blind.json", impossible=False)) >= 80
    assert len(squad_questions(REPO / "tests/kb_blind.json", impossible=True)) >= 30
    assert near_duplicates(blind, seen, KB_LIMIT) == []


def test_kb_dev_questions_are_not_near_duplicates() -> None:
    """The guest-voice dev set the knowledge selection and confidence are tuned on (session 5)
    shares no question with the training data or with the sets that report quality."""
    dev = squad_questions(REPO / "tests/kb_dev.json")
    seen = [q for name in ("data/kb/qa.json", "tests/kb_test.json", "tests/kb_blind.json")
            for q in squad_questions(REPO / name)]
    assert len(squad_questions(REPO / "tests/kb_dev.json", impossible=False)) >= 60
    assert len(squad_questions(REPO / "tests/kb_dev.json", impossible=True)) >= 20
    assert near_duplicates(dev, seen, KB_LIMIT) == []


def test_second_kb_blind_set_is_not_near_duplicates() -> None:
    """tests/kb_blind2.json (session 7): a second writer, shown only the KB documents, domain.yml
    and docs/, wrote 155 questions; the 105 within KB_LIMIT of a question of qa.json, the
    guest-voice calibration file or another KB test set were dropped. It checks that what is
    tuned on kb_dev and reported on kb_blind carries over to questions nobody tuned against."""
    blind2 = squad_questions(REPO / "tests/kb_blind2.json")
    seen = [q for name in ("data/kb/qa.json", "data/kb/guest_questions.json",
                           "tests/kb_blind.json", "tests/kb_test.json", "tests/kb_dev.json")
            for q in squad_questions(REPO / name)]
    assert len(squad_questions(REPO / "tests/kb_blind2.json", impossible=False)) >= 30
    assert len(squad_questions(REPO / "tests/kb_blind2.json", impossible=True)) >= 10
    assert near_duplicates(blind2, seen, KB_LIMIT) == []


def test_third_kb_blind_set_is_not_near_duplicates() -> None:
    """tests/kb_blind3.json (session 12): a third writer, shown only the KB documents, wrote 320
    answerable questions (answers copied from the documents) and 60 unanswerable ones; the 192
    within KB_LIMIT of a question of qa.json, the guest-voice calibration file or another KB
    test set were dropped. A session-12 experiment trained the encoder on these questions and
    was not kept, so no model has seen them."""
    blind3 = squad_questions(REPO / "tests/kb_blind3.json")
    seen = [q for name in ("data/kb/qa.json", "data/kb/guest_questions.json",
                           "tests/kb_blind.json", "tests/kb_blind2.json", "tests/kb_test.json",
                           "tests/kb_dev.json")
            for q in squad_questions(REPO / name)]
    assert len(squad_questions(REPO / "tests/kb_blind3.json", impossible=False)) >= 150
    assert len(squad_questions(REPO / "tests/kb_blind3.json", impossible=True)) >= 25
    assert near_duplicates(blind3, seen, KB_LIMIT) == []


@pytest.mark.parametrize("name, answerable, unanswerable",
                         [("kb_blind4", 50, 20), ("kb_blind5", 30, 12), ("kb_blind6", 150, 60),
                          ("kb_dev3", 120, 40)])
def test_later_kb_sets_are_not_near_duplicates(name: str, answerable: int,
                                               unanswerable: int) -> None:
    """Writers shown only the KB documents and docs/demo_assistant.md wrote questions with
    answers copied from the documents; those within KB_LIMIT of a question of any other KB
    file, a house pretraining question, an NLU training example or an earlier one of the set
    were dropped.

    tests/kb_blind4.json and kb_blind5.json (session 23): first messages in hurried shorthand
    ("smoking in room fine", "versailles by train"; 130 and 90 written, 54 and 47 dropped).
    kb_blind5 was written after kb_blind4's failures were read, to measure the shorthand
    ask_question examples of data/nlu.yml, written blind that session.
    tests/kb_blind6.json (session 25): four writers (guest questions; shorthand and two-part
    ones; long messages that tell the guest's situation first; guests mid-stay), 460 written,
    207 dropped; written before that session's changes, to measure them on questions nobody
    tuned against. tests/kb_dev3.json (session 25): a dev set (its failures may be read) of
    long messages (18-40 words: the situation first, or rambling), 220 written, 16 dropped."""
    path = REPO / "tests" / f"{name}.json"
    blind = squad_questions(path)
    seen = questions_beside(path)
    assert len(squad_questions(path, impossible=False)) >= answerable
    assert len(squad_questions(path, impossible=True)) >= unanswerable
    assert near_duplicates(blind, seen, KB_LIMIT) == []
    assert all(near_duplicates([q], blind[:i], KB_LIMIT) == [] for i, q in enumerate(blind))
    assert answers_not_copied(path) == []


def test_second_kb_dev_set_is_not_near_duplicates() -> None:
    """tests/kb_dev2.json (session 16): a writer shown only the KB documents wrote 305
    answerable and 93 unanswerable guest questions; the 176 within KB_LIMIT of a question of
    qa.json, the calibration file or another KB set were dropped, then the 27 within it of
    a house question the models pretrain on (tests/test_qa_pretrain.py). A dev set: its
    failures may be read, so the figures that count stay those of the kb_blind sets."""
    dev2 = squad_questions(REPO / "tests/kb_dev2.json")
    seen = [q for name in ("data/kb/qa.json", "data/kb/guest_questions.json",
                           "tests/kb_blind.json", "tests/kb_blind2.json", "tests/kb_blind3.json",
                           "tests/kb_test.json", "tests/kb_dev.json")
            for q in squad_questions(REPO / name)]
    assert len(squad_questions(REPO / "tests/kb_dev2.json", impossible=False)) >= 150
    assert len(squad_questions(REPO / "tests/kb_dev2.json", impossible=True)) >= 35
    assert near_duplicates(dev2, seen, KB_LIMIT) == []
    assert all(near_duplicates([q], dev2[:i], KB_LIMIT) == [] for i, q in enumerate(dev2))


def ood_texts(path: Path) -> list[str]:
    return [str(x) for x in (yaml.safe_load(path.read_text(encoding="utf-8")) or {})["ood"]]


def held_texts(name: str) -> list[str]:
    path = REPO / name
    if name.endswith("nlu_ood.yml"):
        return ood_texts(path)
    return nlu_texts(path) if "nlu_" in name else story_texts(path)


@pytest.mark.parametrize("name", ["tests/nlu_blind.yml", "tests/test_stories_blind.yml",
                                  "tests/test_stories_blind2.yml"])
def test_blind_messages_are_not_near_duplicates_of_training_data(name: str) -> None:
    blind = held_texts(name)
    assert len(blind) >= 100
    assert near_duplicates(blind, nlu_texts(REPO / "data/nlu.yml"), NLU_LIMIT, MIN_TOKENS) == []


@pytest.mark.parametrize("name", ["tests/nlu_test.yml", "tests/nlu_blind.yml", "tests/nlu_ood.yml",
                                  "tests/test_stories.yml", "tests/test_stories_blind.yml",
                                  "tests/test_stories_blind2.yml"])
def test_training_examples_are_not_near_duplicates_of_test_messages(name: str) -> None:
    """The other direction, and the held-out sets too (issue 12): no training example of 4+
    words within NLU_LIMIT of a test message, and no test message of 4+ words within it of a
    training example. Offenders are dropped from data/nlu.yml: the test sets measure."""
    held, train = held_texts(name), nlu_texts(REPO / "data/nlu.yml")
    assert len(held) >= 100
    assert near_duplicates(train, held, NLU_LIMIT, MIN_TOKENS) == []
    assert near_duplicates(held, train, NLU_LIMIT, MIN_TOKENS) == []


def test_guest_calibration_questions_are_not_near_duplicates_of_the_kb_test_sets() -> None:
    """data/kb/guest_questions.json calibrates the knowledge confidence (session 6): written
    from the KB documents only, and none of them within KB_LIMIT of a question of the sets
    that tune or report (offenders were dropped, not rewritten)."""
    guest = squad_questions(REPO / "data/kb/guest_questions.json")
    seen = [q for name in ("tests/kb_blind.json", "tests/kb_test.json", "tests/kb_dev.json")
            for q in squad_questions(REPO / name)]
    assert len(squad_questions(REPO / "data/kb/guest_questions.json", impossible=True)) >= 80
    assert len(guest) >= 300
    assert near_duplicates(guest, seen, KB_LIMIT) == []


REPLIES_LIMIT = 0.5  # session 6's short-reply set was filtered at Jaccard 0.5, all lengths


def test_blind_replies_are_not_near_duplicates_of_any_other_message() -> None:
    """tests/nlu_blind_replies.yml (short replies, confusable intents): no message within
    Jaccard 0.5 of a training example or of any other test file's message, short ones
    included ("mhm yes" is "yes" with a word more), and no two alike within the file."""
    replies = nlu_texts(REPO / "tests/nlu_blind_replies.yml")
    assert len(replies) >= 10
    others = nlu_texts(REPO / "data/nlu.yml") + [
        text for name in ("tests/nlu_test.yml", "tests/nlu_blind.yml", "tests/nlu_ood.yml",
                          "tests/test_stories.yml", "tests/test_stories_blind.yml",
                          "tests/test_stories_blind2.yml", "tests/policy_heldout_stories.yml")
        for text in held_texts(name)]
    assert near_duplicates(replies, others, REPLIES_LIMIT) == []
    for i, text in enumerate(replies):
        assert near_duplicates([text], replies[:i], REPLIES_LIMIT) == []


@pytest.mark.parametrize("name", ["kb_blind", "kb_blind2", "kb_blind3", "kb_dev2"])
def test_alternatives_are_verbatim_in_their_documents(name: str) -> None:
    """An alternative answer (the same fact where another document states it, added by an
    auditor who saw the documents and questions, never a model's answers) is a text of the
    document it names, on an answerable question, not the gold answer itself."""
    data = json.loads((REPO / "tests" / f"{name}.json").read_text(encoding="utf-8"))["data"]
    count = 0
    for doc in data:
        for para in doc["paragraphs"]:
            for qa in para["qas"]:
                for alt in qa.get("alternatives") or []:
                    count += 1
                    assert not qa.get("is_impossible"), qa["id"]
                    text = (REPO / "data" / "kb" / alt["doc"]).read_text(encoding="utf-8")
                    assert alt["text"] in text, (qa["id"], alt)
                    assert alt["text"] not in [a["text"] for a in qa["answers"]], qa["id"]
    assert count >= 5
