"""Out-of-domain evaluation: does the NLU know when a message is not for this assistant?

A message counts as caught when the parse routes it away from the in-domain intents: its intent
is `out_of_scope` (the domain's own intent for it) or the FallbackClassifier's `nlu_fallback`.
In-domain messages count as kept when their gold intent comes out on top above the fallback
threshold. The detector score for the AUROC is the best in-domain confidence of the ranking
(the probability the assistant would act on), higher meaning "in domain".
"""

from __future__ import annotations

from typing import Any

from nlu.types import Example, ParseResult

OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"


def ood_report(in_domain: list[Example], in_parses: list[ParseResult],
               ood_parses: list[ParseResult],
               not_in_domain: tuple[str, ...] = (OUT_OF_SCOPE, FALLBACK)) -> dict[str, Any]:
    """Caught share of OOD messages, kept share of in-domain ones (gold intents other than
    out_of_scope), and the AUROC of the in-domain score."""
    pairs = [(e, p) for e, p in zip(in_domain, in_parses) if e.intent not in not_in_domain]
    kept = [p.intent is not None and p.intent.name == e.intent for e, p in pairs]
    caught = [p.intent is None or p.intent.name in not_in_domain for p in ood_parses]
    scores_in = [domain_score(p, not_in_domain) for _, p in pairs]
    scores_out = [domain_score(p, not_in_domain) for p in ood_parses]
    return {
        "ood_messages": len(ood_parses),
        "ood_caught": _share(caught),
        "ood_as_out_of_scope": _share([p.intent is not None and p.intent.name == OUT_OF_SCOPE
                                       for p in ood_parses]),
        "ood_below_threshold": _share([p.intent is not None and p.intent.name == FALLBACK
                                       for p in ood_parses]),
        "in_domain_messages": len(pairs),
        "in_domain_kept": _share(kept),
        "auroc": auroc(scores_in, scores_out),
        "mean_score_in": _mean(scores_in),
        "mean_score_ood": _mean(scores_out),
        "targets": {"ood_caught": 0.80, "in_domain_kept": 0.95},
        "ood_missed": [{"text": p.text, "intent": p.intent.name if p.intent else None,
                        "confidence": round(p.intent.confidence, 4) if p.intent else None}
                       for p, ok in zip(ood_parses, caught) if not ok],
    }


def domain_score(parse: ParseResult, not_in_domain: tuple[str, ...]) -> float:
    """The highest confidence of an in-domain intent in the ranking."""
    return max((s.confidence for s in parse.intent_ranking if s.name not in not_in_domain),
               default=0.0)


def auroc(positives: list[float], negatives: list[float]) -> float | None:
    """P(score of a random positive > that of a random negative), ties counting half."""
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return round(wins / (len(positives) * len(negatives)), 4)


def _share(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None
