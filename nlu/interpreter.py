"""Text in, Rasa-shaped parse out: intent classifier, entity extractor, regex and lookup
entities, synonyms, and the FallbackClassifier's thresholds.

`parse_async` batches concurrent requests (dynamic batching): callers that arrive while a
batch runs are parsed together in the next one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

from nlu.context import DialogueContext
from nlu.duckling import DucklingConfig, DucklingEntityExtractor
from nlu.duckling_spans import align_spans, answer_span
from nlu.errors import NLUModelError
from nlu.types import Entity, IntentScore, ParseResult

logger = logging.getLogger(__name__)

NLU_FALLBACK = "nlu_fallback"
MAX_BATCH = 32


class NLUInterpreter:
    def __init__(self, steps: dict[str, Any], intent_model: Any | None, entity_model: Any | None,
                 synonyms: dict[str, str], regexes: dict[str, list[str]],
                 lookups: dict[str, list[str]], joint_model: Any | None = None,
                 duckling: DucklingEntityExtractor | None = None) -> None:
        self.steps = steps
        self.joint_model = joint_model  # intent and entities in one pass (nlu/joint.py)
        self.intent_model = intent_model
        self.entity_model = entity_model
        self.duckling = duckling
        # entity names the trained model knows; for those, Duckling only normalises its spans
        self._model_entities = {label[0] for model in (entity_model, joint_model)
                                for label in (getattr(model, "labels", None)
                                              or getattr(model, "span_labels", None) or [])
                                if isinstance(label, (tuple, list))}
        self.synonyms = {k.lower(): v for k, v in synonyms.items()} if steps.get("synonyms") else {}
        self._patterns = _compile_patterns(steps.get("regex"), regexes, lookups)
        self._queue: asyncio.Queue[_Request] | None = None
        self._worker: asyncio.Task[None] | None = None

    # batch API first; single-item helpers wrap it
    def parse_batch(self, texts: list[str], contexts: list[DialogueContext | None] | None = None,
                    reference_times: list[float | None] | None = None) -> list[ParseResult]:
        """`contexts`: what the bot just asked, one per text (nlu/context.py); only a classifier
        trained with `use_context` reads it. `reference_times`: the messages' times in seconds
        since the epoch, Duckling's "now" (None: now)."""
        if not texts:
            return []
        intents = None
        if self.intent_model is not None:
            if getattr(self.intent_model, "uses_context", False):
                intents = self.intent_model.predict_batch(texts, contexts=contexts)
            else:
                intents = self.intent_model.predict_batch(texts)
        spans = self.entity_model.extract_batch(texts) if self.entity_model is not None else None
        if self.joint_model is not None:
            if getattr(self.joint_model, "uses_context", False):
                intents, spans = self.joint_model.parse_batch(texts, contexts)
            else:
                intents, spans = self.joint_model.parse_batch(texts)
        dates = (self.duckling.extract_batch(texts, reference_times)
                 if self.duckling is not None else None)
        out = []
        for i, text in enumerate(texts):
            ranking: tuple[IntentScore, ...] = ()
            uncertainty: dict[str, float] = {}
            if intents is not None:
                ranking = tuple(intents[i].ranking)
                uncertainty = dict(intents[i].uncertainty)
            elif self.steps.get("single_intent"):
                ranking = (IntentScore(self.steps["single_intent"], 1.0),)
            entities = list(spans[i]) if spans is not None else []
            entities = self._add_pattern_entities(text, entities)
            if dates is not None:  # after the patterns: "SL-123456" is a booking id, not -123456
                found = dates[i]
                if self.duckling is not None and self.duckling.config.align_entities:
                    entities, found = align_spans(
                        text, entities, found, set(self.duckling.config.align_entities),
                        self.duckling.reread(text, reference_times[i] if reference_times
                                             else None))
                asked = _asked_entity(contexts[i] if contexts else None,
                                      self.duckling.config.requested_entities
                                      if self.duckling is not None else {})
                model_entities = self._model_entities
                if asked == "number":  # the form asked for a count: Duckling's one number is it
                    model_entities = _count_asked(entities, found, model_entities)
                elif asked:
                    entities, found = answer_span(text, entities, found, asked)
                entities = _with_duckling(entities, found, model_entities)
            entities = [self._synonym(e) for e in entities]
            intent, ranking = self._fallback(ranking)
            out.append(ParseResult(text, intent, ranking, tuple(entities), uncertainty))
        return out

    def parse(self, text: str, context: DialogueContext | None = None,
              reference_time: float | None = None) -> dict[str, Any]:
        return to_rasa(self.parse_batch([text], [context], [reference_time])[0])

    async def parse_async(self, text: str, context: DialogueContext | None = None,
                          reference_time: float | None = None) -> dict[str, Any]:
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._batch_worker(self._queue))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put((text, context, reference_time, future))
        return await future

    async def _batch_worker(self, queue: asyncio.Queue[_Request]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < MAX_BATCH:
                batch.append(queue.get_nowait())
            texts = [t for t, _, _, _ in batch]
            contexts = [c for _, c, _, _ in batch]
            times = [r for _, _, r, _ in batch]
            try:
                results = await loop.run_in_executor(None, self.parse_batch, texts, contexts,
                                                     times)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result(to_rasa(result))

    def _fallback(self, ranking: tuple[IntentScore, ...]) -> tuple[IntentScore | None,
                                                                  tuple[IntentScore, ...]]:
        if not ranking:
            return None, ranking
        config = self.steps.get("fallback")
        if not config:
            return ranking[0], ranking
        top = ranking[0].confidence
        second = ranking[1].confidence if len(ranking) > 1 else 0.0
        if top < config["threshold"] or top - second < config["ambiguity_threshold"]:
            fallback = IntentScore(NLU_FALLBACK, config["threshold"])
            return fallback, (fallback, *ranking)
        return ranking[0], ranking

    def _add_pattern_entities(self, text: str, entities: list[Entity]) -> list[Entity]:
        if not self._patterns:
            return entities
        taken = [(e.start, e.end) for e in entities]
        out = list(entities)
        for name, pattern in self._patterns:
            for match in pattern.finditer(text):
                start, end = match.span()
                if start == end or any(s < end and start < e for s, e in taken):
                    continue
                out.append(Entity(start, end, text[start:end], name, confidence=1.0,
                                  extractor="RegexEntityExtractor"))
                taken.append((start, end))
        return sorted(out, key=lambda e: e.start)

    def _synonym(self, entity: Entity) -> Entity:
        if not isinstance(entity.value, str):
            return entity
        mapped = self.synonyms.get(entity.value.lower())
        if mapped is None or mapped == entity.value:
            return entity
        return dataclasses.replace(entity, value=mapped,
                                   processors=(*entity.processors, "EntitySynonymMapper"))


_Request = tuple[str, "DialogueContext | None", "float | None", "asyncio.Future[dict[str, Any]]"]


def _asked_entity(context: DialogueContext | None, requested: dict[str, str]) -> str | None:
    """The entity of the slot the bot just asked for, when `requested` (the Duckling option
    `requested_entities`) names it: the active form's requested_slot, or the slot of a
    question action Rasa's way (utter_ask_<slot>, action_ask_<slot>)."""
    if context is None or not requested:
        return None
    if context.requested_slot in requested:
        return requested[context.requested_slot]
    for prefix in ("utter_ask_", "action_ask_"):
        if context.last_action and context.last_action.startswith(prefix):
            return requested.get(context.last_action[len(prefix):])
    return None


def _count_asked(entities: list[Entity], found: list[Entity],
                 model_entities: set[str] | frozenset[str]) -> set[str] | frozenset[str]:
    """The model's entity names, less "number" when the form has just asked for a `number`
    slot (`requested_entities: {guests: number}`) and Duckling read exactly one number that
    no other entity covers: "only one guest", "for 2" are the count even where the model
    tagged none. Two numbers ("2 adults and 1 child") stay the model's to tell apart."""
    numbers = [d for d in found if d.entity == "number"
               and not any(o is not d and o.entity != "number"
                           and o.start < d.end and d.start < o.end for o in [*entities, *found])]
    if len(numbers) != 1:
        return model_entities
    return frozenset(model_entities) - {"number"}


def _with_duckling(entities: list[Entity], found: list[Entity],
                   model_entities: set[str] | frozenset[str] = frozenset()) -> list[Entity]:
    """Duckling's entities added to the model's. A model entity of the same name over the same
    characters (a number, an email) gives way to Duckling's normalised one; a model entity of
    another name is kept ("date" with its role next to Duckling's "time", as in Rasa), except
    that a Duckling number inside it, or inside Duckling's own date, is dropped: "123456" in
    booking id "SL-123456" or the "12/05" of a date is not a count. A number the trained model
    knows as an entity is kept only over a span the model tagged: "the cheaper one" or "room
    12" is no guest count; the model decides what the number is, Duckling what it is worth.
    A model entity of another name inside a Duckling email is dropped: an address is one
    entity, never a city or a name inside it as well."""
    if not found:
        return entities

    def overlap(a: Entity, b: Entity) -> bool:
        return a.start < b.end and b.start < a.end

    def inside(a: Entity, b: Entity) -> bool:
        return b.start <= a.start and a.end <= b.end

    kept = [e for e in entities if not any(d.entity == e.entity and overlap(d, e) for d in found)
            and not any(d.entity == "email" and inside(e, d) for d in found)]
    added = [d for d in found
             if not (d.entity == "number"
                     and (any(e.entity != "number" and overlap(d, e)
                              for e in [*entities, *found])
                          or ("number" in model_entities
                              and not any(e.entity == "number" and overlap(d, e)
                                          for e in entities))))]
    return sorted([*kept, *added], key=lambda e: (e.start, e.end))


def to_rasa(result: ParseResult) -> dict[str, Any]:
    """Rasa's parse dict. Retrieval intents ('faq/ask_wifi') become intent 'faq' with
    `full_retrieval_intent_name` and a `response_selector` entry, as Rasa's ResponseSelector."""
    parse = result.to_dict()
    name = parse["intent"].get("name")
    if not name or "/" not in name:
        return parse
    base = name.split("/")[0]
    confidence = parse["intent"]["confidence"]
    parse["intent"] = {"name": base, "confidence": confidence, "full_retrieval_intent_name": name}
    merged: dict[str, float] = {}
    for item in parse["intent_ranking"]:
        key = item["name"].split("/")[0]
        merged[key] = merged.get(key, 0.0) + item["confidence"]
    parse["intent_ranking"] = [{"name": k, "confidence": v}
                               for k, v in sorted(merged.items(), key=lambda kv: -kv[1])]
    parse["response_selector"] = {
        "all_retrieval_intents": [base],
        base: {"response": {"intent_response_key": name, "confidence": confidence,
                            "utter_action": f"utter_{name}"},
               "ranking": [{"intent_response_key": name, "confidence": confidence}]},
    }
    return parse


def load_interpreter(directory: Path, pipeline: list[dict[str, Any]] | None = None,
                     language: str | None = None) -> NLUInterpreter:
    """The trained pipeline in `directory`. `pipeline` (config.yml's components) sets the
    untrained steps (DucklingEntityExtractor) when given; else the ones saved at training."""
    manifest_path = directory / "pipeline.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise NLUModelError(f"No NLU model at {directory} ({exc}). Run `xingkong train nlu`.") from exc
    steps = manifest["steps"]
    intent_model = None
    if steps.get("intent") and (directory / "intent").exists():
        from nlu.intent import IntentClassifier

        intent_model = IntentClassifier.load_from(directory / "intent")
    joint_model = None
    if steps.get("joint") is not None:
        from nlu.joint import JointIntentEntity

        joint_model = JointIntentEntity.load_from(directory / "joint")
    entity_model = None
    if steps.get("entity") == "LukeSpanExtractor":
        from nlu.luke_spans import LukeSpanExtractor

        entity_model = LukeSpanExtractor.load_from(directory / "entities")
    elif steps.get("entity") == "BioTagger":
        from nlu.bio_tagger import BioTagger

        entity_model = BioTagger.load_from(directory / "entities")
    duckling_params = steps.get("duckling")
    if pipeline is not None:
        duckling_params = next(({k: v for k, v in c.items() if k != "name"} for c in pipeline
                                if c.get("name") == "DucklingEntityExtractor"), None)
    duckling = None
    if duckling_params is not None:
        duckling = DucklingEntityExtractor(
            DucklingConfig.from_params(duckling_params, language or manifest.get("language", "en")))
    return NLUInterpreter(steps, intent_model, entity_model, manifest.get("synonyms", {}),
                          manifest.get("regexes", {}), manifest.get("lookups", {}), joint_model,
                          duckling)


def _compile_patterns(config: dict[str, Any] | None, regexes: dict[str, list[str]],
                      lookups: dict[str, list[str]]) -> list[tuple[str, re.Pattern[str]]]:
    if not config:
        return []
    flags = 0 if config.get("case_sensitive") else re.IGNORECASE
    out: list[tuple[str, re.Pattern[str]]] = []
    if config.get("use_regexes", True):
        for name, patterns in regexes.items():
            for pattern in patterns:
                try:
                    out.append((name, re.compile(pattern, flags)))
                except re.error:
                    logger.warning("nlu.regex.invalid name=%s", name)
    if config.get("use_lookup_tables", True):
        for name, values in lookups.items():
            words = sorted({v.strip() for v in values if v.strip()}, key=len, reverse=True)
            if words:
                alternation = "|".join(re.escape(w) for w in words)
                out.append((name, re.compile(rf"\b(?:{alternation})\b", flags)))
    return out
