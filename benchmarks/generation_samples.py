"""Replies of the trained generator to small-talk messages it never saw (three sets and a dev
set to tune on).

    python benchmarks/generation_samples.py                  # models/generation
    python benchmarks/generation_samples.py --show-candidates
    python benchmarks/generation_samples.py --messages blind  # the third round's blind set
    python benchmarks/generation_samples.py --sampling topic_boost=0   # another setting
    python benchmarks/generation_samples.py --messages dev    # tune on this one
    python benchmarks/generation_samples.py --messages-file mine.txt   # your own, one a line

The messages below were written for this script, not taken from the training corpus (the
script checks that none appears in chitchat-dataset). Each reply is sampled from seed i, as
the action would, and printed as it came out, with why every dropped candidate was dropped.
Whether a reply is on topic and fluent is a human judgement: the script counts only what a
machine can (declined turns, candidates kept, relevance). Prints the replies, then ONE JSON
line, appended to benchmarks/results/generation_samples.jsonl.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import emit, environment, sampling_setting  # noqa: E402
from generation import Generator, SamplingConfig, from_mapping  # noqa: E402
from generation.config import to_dict  # noqa: E402
from generation.corpus import chitchat_conversations, clean  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "generation_samples.jsonl"
MESSAGES = (
    "if you were a bird, which city would you fly to first?",
    "do you enjoy working at a hotel?",
    "what's the best way to spend a rainy sunday?",
    "i just finished a really long book and i feel a bit lost now",
    "do you prefer the mountains or the beach?",
    "what do you think about people who put pineapple on pizza?",
    "i've been learning to play the guitar, it's harder than i thought",
    "if you could have any superpower what would it be?",
    "my cat keeps knocking things off the table",
    "do you ever dream about anything?",
    "what's your favourite kind of weather?",
    "i think i'm going to start running in the mornings",
    "tell me something that made you smile recently",
    "do you like board games?",
    "i'm so nervous about my presentation at the conference",
    "what's the most beautiful thing you've ever seen?",
    "i love the smell of fresh coffee in the morning",
    "would you rather be really tall or really short?",
    "how do you stay so cheerful?",
    "my sister is getting married next summer",
    "what do you think about robots taking over the world?",
    "i can't stop watching cooking shows lately",
    "do you believe in luck?",
    "what's a good movie for a quiet night in?",
    "i miss the snow from where i grew up",
)

# A second set, written on 2026-12-05 (session 4) before any reply of the retuned generator
# was read: the blind judgement of issue #14's second round. `--messages fresh` uses it.
FRESH = (
    "do you like listening to music while you work?",
    "i went hiking yesterday and my legs are still sore",
    "which season of the year makes you happiest?",
    "are you more of a morning person or a night owl?",
    "i just adopted a puppy and she chews everything",
    "what was the last thing that made you laugh?",
    "what kind of food could you eat every day?",
    "i'm thinking about learning italian this year",
    "have you ever wanted to see the ocean?",
    "it has been raining all week and i'm fed up",
    "what do you like to do when you have free time?",
    "i'm really tired today, i barely slept",
    "what's the best part of your day?",
    "do you like cats more than dogs?",
    "my favourite band is playing a concert tonight",
    "what do you usually do on a lazy weekend?",
    "i baked my first loaf of bread this morning",
    "do you think it will snow a lot this winter?",
    "i love lying outside and watching the stars at night",
    "what's something you're really good at?",
    "my friends say i drink far too much tea",
    "have you ever tried painting with watercolours?",
    "i can't wait for my holiday next month",
    "do you ever get bored?",
    "what makes a day a good day for you?",
)

# The third set, written on 2026-12-05 (session 5) before any reply of the generator of issue
# #14's third round was read: small talk as a guest types it to a hotel bot, no hotel facts.
# `--messages blind` uses it; nothing from it goes into training data. Two of the 30 written
# ("how's your day going so far?", "what's your favourite colour?") are turns of
# chitchat-dataset word for word, so they were dropped (never rewritten): 28 remain.
BLIND = (
    "i just landed and i'm exhausted from the flight",
    "do you have a favourite book?",
    "what's your opinion on spicy food?",
    "my kids have been arguing all morning",
    "are you a fan of football?",
    "walking around a new city is my favourite thing to do",
    "what would you do if you won the lottery?",
    "do you ever feel lonely?",
    "the sunset from the plane was amazing",
    "i'm trying to eat healthier but it's hard when travelling",
    "have you ever been to a museum?",
    "do you know any good jokes?",
    "i always forget to pack something important",
    "what's the nicest compliment anyone ever gave you?",
    "do you think people are friendlier in small towns?",
    "i ran my first marathon a few weeks ago",
    "what do you think about chocolate?",
    "my husband snores so loudly i can't sleep",
    "are you good at keeping secrets?",
    "i'm learning to cook thai food",
    "what song is stuck in your head right now?",
    "do you like hot summer days?",
    "i wish i could travel more often",
    "is it weird that i talk to my plants?",
    "what's your favourite animal?",
    "i feel like taking a long nap",
    "do you like meeting new people?",
    "i'm so happy, i got a new job!",
)


# A dev set, written on 2026-12-05 (session 7) to tune the reranking of retrieved replies
# (context_weight, min_context_similarity) on, so that the three sets above stay unseen.
# `--messages dev` uses it. Two first drafts were chitchat-dataset turns word for word and
# were replaced.
DEV = (
    "do you like going to the beach?",
    "i just finished a really good book",
    "what's your favourite kind of weather?",
    "i'm so hungry i could eat a horse",
    "do you play any video games?",
    "my cat knocked my coffee off the table this morning",
    "what's the best movie you've ever seen?",
    "i love the sound of rain on the window",
    "are you into sports at all?",
    "i just got a haircut and i don't like it",
    "do you prefer tea or coffee?",
    "what would you do on a perfect day?",
    "i've been really stressed at work lately",
    "do you like to dance?",
    "my phone battery always dies at the worst time",
    "what music do you put on when you cook?",
    "i think i'm getting a cold",
    "would you like to build a snowman someday?",
    "i love pizza more than anything",
    "do you believe in ghosts?",
    "my brother just had a baby girl",
    "what's your favourite holiday?",
    "i can't decide what to wear tonight",
    "do you like the mountains?",
    "i'm learning to play the guitar",
    "are you scared of spiders?",
    "what's the weirdest food you've ever heard of?",
    "i finally cleaned my whole apartment",
    "do you get nervous before big events?",
    "i love long road trips with friends",
)
def unseen(messages: tuple[str, ...]) -> list[str]:
    """The messages that appear word for word as a turn of chitchat-dataset (should be none)."""
    turns = {clean(t).lower().strip(" ?!.") for c in chitchat_conversations() for t in c.turns}
    return [m for m in messages if m.lower().strip(" ?!.") in turns]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=ROOT / "models" / "generation")
    p.add_argument("--show-candidates", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--messages", choices=("first", "fresh", "blind", "dev"), default="fresh",
                   help="first: the 25 of the first round; fresh: the second round's; blind: "
                        "the 28 of the third round; dev: 30 to tune on")
    p.add_argument("--messages-file", type=Path, default=None,
                   help="messages of your own, one a line, '#' opens a comment (a dev set to "
                        "tune on, so that the three sets stay unseen; session 11's blind set: "
                        "benchmarks/messages/smalltalk_blind4.txt); replaces --messages")
    p.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                   help="override a sampling setting of the model's manifest (a JSON value: "
                        "--sampling topic_boost=0 --sampling exemplars=8)")
    p.add_argument("--perplexity", type=int, default=0, metavar="N",
                   help="also the perplexity of N written pairs' replies after their message "
                        "(data/smalltalk, a seeded sample; no shots): how well the model "
                        "predicts a concierge's replies")
    args = p.parse_args(argv)
    messages = {"first": MESSAGES, "fresh": FRESH, "blind": BLIND, "dev": DEV}[args.messages]
    name = args.messages
    if args.messages_file is not None:
        messages = tuple(line.strip() for line in
                         args.messages_file.read_text(encoding="utf-8").splitlines()
                         if line.strip() and not line.startswith("#"))
        name = str(args.messages_file)
    torch.set_num_threads(args.threads)
    seen = unseen(messages)
    generator = Generator(args.model_dir, protected_terms=["Starlight"]).load()
    if args.sampling:
        generator._sampling = from_mapping(SamplingConfig, {
            **to_dict(generator.sampling), **dict(sampling_setting(s) for s in args.sampling)},
            "--sampling")
    declined, retrieved, written, kept, relevance, problems = 0, 0, 0, 0, [], {}
    for i, message in enumerate(messages):
        reply = generator.reply(message, seed=i)
        chosen = max((c for c in reply.candidates if c.kept), key=lambda c: c.score,
                     default=None)  # the reply said (truecased from the candidate)
        source = (" [written]" if chosen is not None and chosen.written  # a concierge pair's
                  else " [retrieved]" if chosen is not None and chosen.retrieved else "")
        print(f"{i + 1:2}. > {message}\n    < {reply.text if reply.text else '(declined)'}"
              f"{source}")
        declined += reply.text is None
        retrieved += source == " [retrieved]"
        written += source == " [written]"
        kept += sum(c.kept for c in reply.candidates)
        if chosen is not None:
            relevance.append(chosen.relevance)
        for c in reply.candidates:
            for problem in c.problems:
                problems[problem] = problems.get(problem, 0) + 1
            if args.show_candidates:
                hint = f" <- {c.exemplar!r}" if c.exemplar and not c.retrieved else ""
                if c.retrieved:
                    hint = f" [retrieved, turn {c.context_similarity:.2f}]"
                scores = f" {c.score:.2f}" if c.kept else ""
                print(f"      {'kept' if c.kept else 'drop'}{scores} {c.text!r} {c.problems or ''}"
                      f"{hint}")
    report = {"benchmark": "generation_samples", "model_dir": str(args.model_dir),
              "messages": f"{name} ({len(messages)})", "in_training_corpus": seen,
              "declined": declined, "retrieved": retrieved, "written": written,
              "candidates_kept_per_turn": round(kept / len(messages), 2),
              "mean_relevance": round(sum(relevance) / len(relevance), 3) if relevance else None,
              "dropped_for": dict(sorted(problems.items(), key=lambda kv: -kv[1])),
              "sampling": to_dict(generator.sampling), **environment()}
    if args.perplexity:
        report["pairs_perplexity"] = pairs_perplexity(generator, args.perplexity)
    emit(report, args.out)
    return report


def pairs_perplexity(generator: Generator, n: int) -> dict[str, Any]:
    """exp of minus the mean log p per token of `n` written replies (their turn-ending token
    included) after their own message, prompted as a turn is (no shots, no history)."""
    import math
    import random

    from generation.pairs import read_pairs
    from generation.sampler import build_prompt, chat_prompt, reply_logprobs_each

    pairs = [pair for path in sorted((ROOT / "data" / "smalltalk").glob("*.yml"))
             for pair in read_pairs(path)]
    pairs = random.Random(0).sample(pairs, min(n, len(pairs)))
    lm, tokenizer, config = generator._lm, generator._tokenizer, generator.sampling
    if lm is None:
        return {"pairs": 0, "perplexity": None}
    total, tokens = 0.0, 0
    for message, reply in pairs:
        if generator._chat:  # the reply, then the end of the assistant's turn
            ids = [*tokenizer(reply, add_special_tokens=False)["input_ids"],
                   tokenizer.eos_token_id]
        else:  # " reply" and its newline, as the corpus lays a turn out
            ids = list(tokenizer(f" {reply}\n", add_special_tokens=False)["input_ids"])
        ids = ids[:generator._window // 2]
        room = generator._window - len(ids)
        prompt = (chat_prompt(tokenizer, message, [], room, system=config.system_prompt)
                  if generator._chat else build_prompt(tokenizer, message, [], room))
        mean = reply_logprobs_each(lm, [prompt], [ids], tokenizer.pad_token_id or 0)[0]
        total, tokens = total + mean * len(ids), tokens + len(ids)
    return {"pairs": len(pairs), "tokens": tokens,
            "perplexity": round(math.exp(-total / tokens), 2)}


if __name__ == "__main__":
    main()
