"""TEDPolicy: a learned policy in the spirit of Rasa's TED (Transformer Embedding Dialogue).

It generalises where memoization cannot: a digression in a new place, slots in a new order.

Training data, as Rasa builds it: every story (with `or` and checkpoints expanded, form turns
collapsed as a live tracker collapses them) and every rule, plus `augmentation_factor` x 10
random pairs of stories glued end to start (Rasa's story augmentation). Each action becomes
one example: the states of the last `max_history` turns (the whole conversation when None)
and the action; duplicates are dropped. The featurisation is bot/policies/ted_features.py, the
network bot/policies/ted_model.py. Its vote competes in the ensemble with priority 1, below
memoization (3) and rules (6), as in Rasa: it decides where neither is sure.
"""

from __future__ import annotations

import base64
import io
import logging
import random
import time
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from bot.policies.base import PolicyPrediction
from bot.policies.memoization import applied
from bot.policies.states import State, Turn, event_turns, tracker_turns
from bot.policies.story_graph import Trajectory, rule_trajectories, story_trajectories
from bot.policies.ted_features import StateFeaturizer
from bot.policies.ted_model import TEDDims, TEDModel
from bot.project.domain import Domain
from bot.project.ted_params import TEDConfig
from bot.project.training_data import TrainingData
from bot.state.events import ACTION_LISTEN_NAME, ActionExecuted, ActionExecutionRejected, Event
from bot.state.tracker import DialogueStateTracker

logger = logging.getLogger(__name__)

_EMBEDDINGS_KEPT = 10_000  # states whose embedding a policy keeps (about 5 MB at size 128)


class TEDPolicy:
    name = "TEDPolicy"

    def __init__(self, config: TEDConfig | None = None, progress: bool = False) -> None:
        self.config = config if config is not None else TEDConfig()
        self.priority = self.config.priority
        self.progress = progress
        self.featurizer: StateFeaturizer | None = None
        self.model: TEDModel | None = None
        self.report: dict[str, Any] = {}
        self._embeddings: dict[State, torch.Tensor] = {}  # see _embedded

    # training -------------------------------------------------------------------------------
    def train(self, domain: Domain, data: TrainingData) -> list[str]:
        started = time.perf_counter()
        cfg = self.config
        featurizer = StateFeaturizer.from_domain(domain)
        self.featurizer = featurizer
        windows, labels = training_examples(domain, data, cfg, featurizer.actions)
        if not windows:
            logger.warning("policy.ted.skipped reason=no_stories_or_rules")
            self.model = None
            return []
        length = max(len(w) for w in windows)
        # One thread: the batches are small, and a team of threads waits for its slowest
        # member (30 epochs of the demo on a busy 2-core box: 10 s on 1 thread, 139 s on 2).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            loss, accuracy, model = self._train_model(featurizer, windows, labels, length)
        finally:
            torch.set_num_threads(threads)
        self.model = model
        self._embeddings = {}
        self.report = {"examples": len(labels), "epochs": cfg.epochs, "loss": round(loss, 4),
                       "train_accuracy": round(accuracy, 4),
                       "seconds": round(time.perf_counter() - started, 1)}
        logger.info("policy.ted.trained examples=%d epochs=%d loss=%.4f train_accuracy=%.3f "
                    "seconds=%.1f", len(labels), cfg.epochs, loss, accuracy,
                    self.report["seconds"])
        return []

    def _train_model(self, featurizer: StateFeaturizer, windows: list[list[State]],
                     labels: list[int], length: int) -> tuple[float, float, TEDModel]:
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.random_seed)
            model = TEDModel(self._dims(featurizer))
            x, lengths = self._tensors(featurizer, windows, length)
            y = torch.tensor(labels)
            generator = torch.Generator().manual_seed(cfg.random_seed)
            loss, accuracy = self._fit(model, x, lengths, y, generator)
        model.eval()
        return loss, accuracy, model

    def _fit(self, model: TEDModel, x: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator) -> tuple[float, float]:
        cfg = self.config
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate,
                                      weight_decay=cfg.regularization_constant)
        first, last = cfg.batch_size
        loss_value, accuracy = 0.0, 0.0
        bar = tqdm(range(cfg.epochs), desc="TEDPolicy", unit="epoch", disable=not self.progress)
        model.train()
        for epoch in bar:
            # Rasa's linearly increasing batch size
            size = first + (last - first) * epoch // max(cfg.epochs - 1, 1)
            order = balanced_order(y, size, generator) if cfg.batch_strategy == "balanced" \
                else torch.randperm(len(y), generator=generator)
            total, right, seen = 0.0, 0, 0
            for start in range(0, len(order), size):
                batch = order[start:start + size]
                scores = model(x[batch], lengths[batch])  # (B, A)
                loss = F.cross_entropy(scores, y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                right += int((scores.argmax(-1) == y[batch]).sum())
                seen += len(batch)
            loss_value, accuracy = total / seen, right / seen
            bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{accuracy:.3f}")
        return loss_value, accuracy

    # prediction -----------------------------------------------------------------------------
    def predict(self, tracker: DialogueStateTracker, domain: Domain) -> PolicyPrediction:
        if self.model is None or self.featurizer is None:
            return PolicyPrediction.abstain(self.name, self.priority, reason="not trained")
        turns, now = tracker_turns(domain, tracker)
        states = [t.state for t in turns] + [now]
        window = self._window(states)
        actions = self.featurizer.actions
        last = tracker.events[-1] if tracker.events else None
        # One tiny forward: more threads only wait (see train; p50 72 ms on 2 threads of a busy
        # 2-core box, 0.6 ms on 1). The manager predicts on its event loop, one at a time.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                h = torch.stack([self._embedded(self.model, self.featurizer, state)
                                 for state in window])  # (T, H)
                probs = torch.softmax(self.model.score_latest(h), dim=-1)  # (A,)
                if isinstance(last, ActionExecutionRejected) and last.name in actions:
                    probs[actions.index(last.name)] = 0.0  # it just refused: propose another
        finally:
            torch.set_num_threads(threads)
        ranking = self._rank(actions, probs)
        if not ranking:
            return PolicyPrediction.abstain(self.name, self.priority, reason="nothing left")
        action, confidence = ranking[0]
        return PolicyPrediction(action, confidence, self.name, self.priority, diagnostics={
            "ranking": [[a, round(c, 4)] for a, c in ranking[:5]]})

    def _rank(self, actions: tuple[str, ...], probs: torch.Tensor) -> list[tuple[str, float]]:
        k = self.config.ranking_length or len(probs)
        top = torch.topk(probs, min(k, len(probs)))
        kept = top.values
        if self.config.renormalize_confidences and float(kept.sum()) > 0:
            kept = kept / kept.sum()
        return [(actions[int(i)], float(p))
                for p, i in zip(kept, top.indices) if float(p) > 0]

    def _embedded(self, model: TEDModel, featurizer: StateFeaturizer,
                  state: State) -> torch.Tensor:
        """The state's transformer input (TEDModel.embed_state), kept per state: a live
        conversation meets the same few states again and again."""
        row = self._embeddings.get(state)
        if row is None:
            if len(self._embeddings) >= _EMBEDDINGS_KEPT:
                self._embeddings.clear()
            features = torch.tensor(featurizer.encode(state))  # (F,)
            row = self._embeddings[state] = model.embed_state(features)  # (H,)
        return row

    # shared ---------------------------------------------------------------------------------
    def _window(self, states: list[State]) -> list[State]:
        limit = self.config.max_history or self.config.max_positions * 4
        return states[-limit:]

    def _dims(self, featurizer: StateFeaturizer) -> TEDDims:
        cfg = self.config
        return TEDDims(
            attribute_sizes=tuple(featurizer.sizes.items()),
            dense_dimension=cfg.dense_dimension, n_actions=len(featurizer.actions),
            max_positions=cfg.max_history or cfg.max_positions,
            encoding_dimension=cfg.encoding_dimension, transformer_size=cfg.transformer_size,
            layers=cfg.number_of_transformer_layers, heads=cfg.number_of_attention_heads,
            embedding_dimension=cfg.embedding_dimension,
            drop_rate_dialogue=cfg.drop_rate_dialogue,
            drop_rate_attention=cfg.drop_rate_attention, drop_rate_label=cfg.drop_rate_label)

    @staticmethod
    def _tensors(featurizer: StateFeaturizer, windows: list[list[State]],
                 length: int) -> tuple[torch.Tensor, torch.Tensor]:
        width = featurizer.width
        cache: dict[State, list[float]] = {}
        rows = []
        for window in windows:
            for state in window:
                if state not in cache:
                    cache[state] = featurizer.encode(state)
            rows.append([[0.0] * width] * (length - len(window)) + [cache[s] for s in window])
        x = torch.tensor(rows, dtype=torch.float32)  # (N, T, F)
        return x, torch.tensor([len(w) for w in windows])

    # persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self.model is None or self.featurizer is None:
            return {"trained": False}
        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        return {"trained": True, "config": _plain(asdict(self.config)),
                "featurizer": self.featurizer.to_dict(), "report": self.report,
                "weights": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def load_dict(self, data: dict[str, Any]) -> None:
        if not data.get("trained"):
            self.model, self.featurizer = None, None
            return
        saved = data["config"]
        self.config = TEDConfig(**{k: tuple(tuple(p) for p in v) if k == "dense_dimension"
                                   else tuple(v) if k == "batch_size" else v
                                   for k, v in saved.items()})
        self.priority = self.config.priority
        featurizer = StateFeaturizer.from_dict(data["featurizer"])
        self.report = dict(data.get("report", {}))
        model = TEDModel(self._dims(featurizer))
        state = torch.load(io.BytesIO(base64.b64decode(data["weights"])), weights_only=True)
        model.load_state_dict(state)
        model.eval()
        self.model, self.featurizer = model, featurizer
        self._embeddings = {}


def training_examples(domain: Domain, data: TrainingData, config: TEDConfig,
                      actions: tuple[str, ...]) -> tuple[list[list[State]], list[int]]:
    """(state windows, action indices), without duplicates, in a fixed order."""
    stories = story_trajectories(data.stories)
    trackers: list[tuple[list[Event], int]] = [(applied(t.events), 0) for t in stories]
    # A rule's first action (or the listen before its first message) is where it starts
    # from, not something it predicts (as RulePolicy reads rules).
    trackers += [(applied(t.events), 1) for _, t in rule_trajectories(data.rules)]
    trackers += [(applied(events), 0) for events in _augmented(stories, config)]
    limit = config.max_history or config.max_positions * 4
    seen: set[tuple[tuple[State, ...], int]] = set()
    windows: list[list[State]] = []
    labels: list[int] = []
    unknown: set[str] = set()
    for events, skip in trackers:
        turns: list[Turn] = event_turns(domain, events)[0]
        states = [t.state for t in turns]
        for i, turn in enumerate(turns):
            if i < skip:
                continue
            if turn.action not in actions:
                unknown.add(turn.action)
                continue
            window = states[max(0, i + 1 - limit): i + 1]
            key = (tuple(window), actions.index(turn.action))
            if key not in seen:
                seen.add(key)
                windows.append(window)
                labels.append(key[1])
    if unknown:
        logger.warning("policy.ted.unknown_actions count=%d effect=not_learned first=%s",
                       len(unknown), sorted(unknown)[0][:60])
    return windows, labels


def balanced_order(y: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch's example order with rare actions drawn more often (Rasa's 'balanced'
    batches): in each round every action adds its share of a batch plus one example, cycling
    through its own shuffled examples, until every action has been seen in full. An action
    already seen in full takes part in every other round only."""
    groups = [torch.nonzero(y == label).flatten() for label in torch.unique(y)]
    groups = [g[torch.randperm(len(g), generator=generator)] for g in groups]
    total = len(y)
    position = [0] * len(groups)
    cycles = [0] * len(groups)
    resting = [False] * len(groups)
    chunks: list[torch.Tensor] = []
    while min(cycles) == 0:
        for i in torch.randperm(len(groups), generator=generator).tolist():
            if cycles[i] > 0 and not resting[i]:
                resting[i] = True
                continue
            resting[i] = False
            take = len(groups[i]) * batch_size // total + 1
            chunks.append(groups[i][position[i]:position[i] + take])
            position[i] += take
            if position[i] >= len(groups[i]):
                cycles[i] += 1
                position[i] = 0
            if min(cycles) > 0:
                break
    return torch.cat(chunks)


def _augmented(stories: list[Trajectory], config: TEDConfig) -> list[list[Event]]:
    """Rasa's augmentation: random stories glued end to start, so TED learns that what came
    before a story's start may be anything. Only stories that end waiting for the user."""
    ends = [t for t in stories if t.events and isinstance(t.events[-1], ActionExecuted)
            and t.events[-1].name == ACTION_LISTEN_NAME]
    if len(ends) < 2 or config.augmentation_factor == 0:
        return []
    rng = random.Random(config.random_seed)
    out = []
    for _ in range(config.augmentation_factor * 10):
        first, second = rng.choice(ends), rng.choice(ends)
        tail = list(second.events)
        if tail and isinstance(tail[0], ActionExecuted) and tail[0].name == ACTION_LISTEN_NAME:
            tail = tail[1:]  # the first story already ends listening
        out.append(list(first.events) + tail)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
