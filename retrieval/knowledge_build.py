"""Build the knowledge directory that `load_answerer` reads.

    report = build_knowledge(KnowledgeBuild(kb_dir=Path("data/kb")))
    answerer = load_answerer("models/knowledge")

Four steps, each its own function, each skipped when what it is built from did not change:

1. `build_index`: the passage index (documents re-embedded in place when they change);
2. `build_reader`: the extractive reader, trained on qa.json's answerable training split with
   each answer's sentence alone as the context (what it reads at answer time) plus generated
   questions (retrieval.question_gen), starting from a reader of `reader.pretrain_qa` when
   set (trained first, on that reading-comprehension data), or copied from `reader_from`, or
   reused; it learns "no answer" from generated negatives (a sentence of another document),
   so that qa.json's unanswerable questions stay unseen for calibration; a tenth of its
   questions are also read inside what guests write around one (retrieval.guest_talk: "we
   land at 11pm with two tired kids. is there parking?"), and so are a fifth of the
   reranker's pretraining questions;
3. `build_encoder`: the sentence encoder fine-tuned (retrieval.sentence_encoder) on the
   training split and generated questions, and the vectors of every KB sentence;
4. `calibrate`: sentence selection, re-ranking, answer confidence and its threshold
   (retrieval.answer_calibration) on the held-out split of qa.json (the reader's own
   holdout: same fraction and seed) plus all of qa.json's unanswerable questions (each as
   written and rephrased as a guest would, retrieval.question_gen.guest_rephrase), the
   questions of GUEST_QUESTIONS (guest_questions.json in the KB folder, when there is
   one: questions in guests' words written from the documents alone; no model trains on
   them), held-out generated questions (from sentences no model trained on) and generated
   unanswerable ones (absent facilities, off-topic, and names of the KB asked for what the
   KB does not say about them: retrieval.answer_types.missing_kind_questions).

The layout of `out_dir`: knowledge.json (settings, calibration, fingerprints), index/,
reader/, sentence_encoder/, sentences.npy, and reader_pretrained/ with `reader.pretrain_qa`,
encoder_pretrained/ with `encoder_pretrain_qa`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.answer_calibration import LabelledQuestion, fit_calibration
from retrieval.answer_types import missing_kind_questions
from retrieval.answerer import (ENCODER_DIR, INDEX_DIR, KNOWLEDGE_FILE, KNOWLEDGE_FORMAT,
                                READER_DIR, RERANKER_DIR, RUNTIMES, SENTENCE_VECTORS, Answerer,
                                AnswererConfig, KnowledgeSettings, read_settings,
                                load_answerer, load_reranker, sentence_ranker, sentences_hash)
from retrieval.embedder import DEFAULT_MODEL
from retrieval.errors import RetrievalConfigError, RetrievalError
from retrieval.guest_talk import TALK_FILE, talk_copies, talk_groups
from retrieval.pretrained_cache import fetch_pretrained, keep_pretrained
from retrieval.question_gen import (Generated, generate_answerable, generate_unanswerable,
                                    guest_rephrase, guest_voice, place_of)
from retrieval.qa_metrics import QAExample, load_qa
from retrieval.qa_sentences import rerank_groups, sentence_examples, sentence_triples
from retrieval.reader import DEFAULT_READER_BASE, Reader
from retrieval.reranker import Group, RerankerConfig, fit_reranker
from retrieval.sentence_encoder import SentenceEncoderConfig, Triple, fit_sentence_encoder
from retrieval.sentence_ranker import DEFAULT_SELECTION
from retrieval.sentences import SentenceTable, answer_sentences
from retrieval.types import Embedder, IndexConfig

logger = logging.getLogger(__name__)

READER_RECIPE = 2  # 2: sentence contexts; a new recipe retrains readers built by the old one
# a share of the reader's training questions (qa.json's training split and the generated ones)
# also read wrapped in what guests write around a question (retrieval.guest_talk)
READER_TALK_SHARE = 0.1
CALIBRATION_RECIPE = 9  # 3: place, answer-kind evidence and missing-kind negatives; 4: the
# question's word and place evidence (question_evidence); 5: the reader reads only the selected
# sentence (answer_calibration.RERANK_K); 6: the selection corrects typos (retrieval.spelling);
# 7: the selection reads place clashes (a hotel's streets and restaurants name it too), and a
# sentence that refers back is searched with the one before it (retrieval.sentences); 8: the
# threshold is chosen on a 0.01 grid; 9: the confidence reads the asked clauses' cover
# (question_evidence.cover_ask); a new recipe re-calibrates
# guest-rephrased copies of each held-out qa.json question in the calibration slice. Not in
# the encoder's training: there they cost 46 % more encoder steps and did not help (kb_test
# confidence AUC 0.858 with them, 0.873 without; best sentence 0.843 vs 0.839)
GUEST_COPIES = 1
# generated unanswerable questions that name a thing of the KB and ask what it does not say
# about it (answer_types.missing_kind_questions), in the calibration slice only
MISSING_KIND_QUESTIONS = 60
# `reader: {pretrain_qa: [files]}`: the reader first learns extractive QA from these
# SQuAD-format files (SQuAD 2.0's unanswerable questions included), for `pretrain_epochs`,
# into PRETRAINED_DIR, then the KB's questions from there (session 13: 6,078 questions of the
# public SQuAD 2.0 dev half, 2 epochs, 33 minutes on one CPU thread, lifted kb_blind's right
# answers at 85 % of the unanswerable declined from 0.53 to 0.61; data/qa_pretrain's 2,127
# blind-written questions, 10 minutes, to 0.59; session 14: cut to sentences, 85 s for the
# same gain, and the demo's three files, 7,156 questions, 270 s: 0.66). It is trained again
# only when its files or settings change, not each time the KB's reader is.
PRETRAINED_DIR = "reader_pretrained"
PRETRAINED_STAMP = "pretrain_fingerprint.txt"  # its data and settings: reused while they hold
PRETRAIN_KEYS = ("pretrain_qa", "pretrain_epochs", "pretrain_contexts")
PRETRAIN_EPOCHS = 2.0
# what the pretrained reader reads: "sentence", the sentence that holds the answer (for an
# unanswerable question the passage's sentence most like it; retrieval.qa_sentences), as the
# answerer hands it one sentence; "passage", the whole contexts (about five times the steps)
PRETRAIN_CONTEXTS = ("sentence", "passage")
PRETRAIN_SHARED = ("lr", "batch_size", "max_length", "doc_stride", "seed", "num_threads",
                   "precision", "device", "progress", "freeze_embeddings")
# `encoder_pretrain_qa`: the sentence encoder first learns to bring the questions of these
# SQuAD-format files next to their answer's sentence (retrieval.qa_sentences.sentence_triples,
# at most `encoder_pretrain_limit` of them, a seeded sample), into ENCODER_PRETRAINED_DIR,
# then the KB's questions from there; kept while its data and settings hold, like the reader's
ENCODER_PRETRAINED_DIR = "encoder_pretrained"
ENCODER_PRETRAIN = "encoder.pretrain_qa"  # as config.yml's knowledge section names it
# `reranker`: a cross-encoder (retrieval.reranker) reorders the selection's first sentences;
# it starts from the knowledge base's own reader (which learnt reading comprehension first)
# unless its base_model names another model; trained again when the reader or encoder is
RERANKER_FROM_READER = "reader"
RERANKER_RECIPE = 1
# `reranker_pretrain_qa`: it first learns to rank the sentences of these SQuAD-format files'
# contexts (retrieval.qa_sentences.rerank_groups: unanswerable questions too, at most
# `reranker_pretrain_limit`, a seeded sample), kept in RERANKER_PRETRAINED_DIR like the reader's
RERANKER_PRETRAINED_DIR = "reranker_pretrained"
# a share of its pretraining questions read wrapped in what guests write around a question
# (retrieval.guest_talk), in place of the bare question
RERANKER_TALK_SHARE = 0.2
RERANKER_PRETRAIN = "reranker.pretrain_qa"
# questions in guests' own words, answerable ones with their sentence, written from the KB
# documents alone (SQuAD format, inside the KB folder, optional): calibration only
GUEST_QUESTIONS = "guest_questions.json"


@dataclass(frozen=True, slots=True)
class KnowledgeBuild:
    """What to build. `reader` holds train_reader options (base_model, epochs, lr,
    extra_qa_paths, ...); `generated` caps the generated questions used for training the
    encoder and the reader (0: none); `held_generated` the generated answerable ones held out
    for calibration. `rebuild` re-embeds every document; `retrain` trains even when nothing
    changed; `reader_from` copies an already-trained reader instead of training one."""

    kb_dir: Path
    out_dir: Path = Path("models/knowledge")
    embedder: str = DEFAULT_MODEL
    qa_path: Path | None = None
    index: IndexConfig = IndexConfig()
    reader: Mapping[str, Any] = field(default_factory=dict)
    encoder: SentenceEncoderConfig = SentenceEncoderConfig()
    top_k: int = 5
    read_k: int | None = None
    generated: int = 600
    held_generated: int = 150
    paragraphs: bool = False
    rebuild: bool = False
    retrain: bool = False
    reader_from: Path | None = None
    encoder_pretrain_qa: tuple[str, ...] = ()
    encoder_pretrain_limit: int | None = None
    reranker: RerankerConfig | None = None
    reranker_pretrain_qa: tuple[str, ...] = ()
    reranker_pretrain_limit: int | None = None
    runtime: str = "auto"  # what runs the models at answer time (retrieval.answerer.RUNTIMES)
    follow: bool = True  # an answer may go on with the sentence after it (retrieval.follow)
    seed: int = 13

    def __post_init__(self) -> None:
        if self.top_k < 1 or (self.read_k is not None and self.read_k < 1):
            raise RetrievalConfigError(f"top_k and read_k must be >= 1 (got {self.top_k}, "
                                       f"{self.read_k})")
        if self.generated < 0 or self.held_generated < 0:
            raise RetrievalConfigError("generated and held_generated must be >= 0")
        if self.runtime not in RUNTIMES:
            raise RetrievalConfigError(f"runtime must be one of {RUNTIMES}, got "
                                       f"{self.runtime!r}")
        if self.reranker is not None and self.reranker.with_pretrained \
                and not self.reranker_pretrain_qa:
            raise RetrievalConfigError("reranker: with_pretrained needs pretrain_qa (the "
                                       "files a pretrained reranker learns first)")
        unknown = set(self.reader) - _reader_fields()
        if unknown:
            raise RetrievalConfigError(f"unknown reader option(s) {sorted(unknown)}; "
                                       f"known: {sorted(_reader_fields())}")

    @property
    def qa(self) -> Path:
        return self.qa_path if self.qa_path is not None else Path(self.kb_dir) / "qa.json"

    @property
    def guest(self) -> Path:
        return Path(self.kb_dir) / GUEST_QUESTIONS


@dataclass(frozen=True, slots=True)
class KnowledgeReport:
    """What `build_knowledge` did; `reused` names the steps skipped as up to date."""

    out_dir: str
    documents: int
    passages: int
    sentences: int
    index_kind: str
    reader: dict[str, Any]
    encoder: dict[str, Any]
    calibration: dict[str, Any]
    generated: dict[str, int]
    reused: tuple[str, ...]
    seconds: float
    reranker: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Data:
    """The questions of one build, split once: what trains, what calibrates."""

    train: list[QAExample]
    held: list[QAExample]
    table: SentenceTable
    gold: dict[str, list[int]]  # example id -> gold sentence ids
    generated_train: list[Generated]
    generated_held: list[Generated]
    guest: list[QAExample] = field(default_factory=list)  # GUEST_QUESTIONS, calibration only


def build_knowledge(build: KnowledgeBuild, *, embedder: Embedder | None = None
                    ) -> KnowledgeReport:
    """Build (or bring up to date) `build.out_dir`; `embedder` replaces the one named by
    `build.embedder` (tests)."""
    from retrieval.embedder import get_embedder

    started = time.perf_counter()
    root = Path(build.out_dir)
    embedder = embedder if embedder is not None else get_embedder(build.embedder)
    index = build_index(build, embedder)
    data = split_data(build, index)
    previous = _previous(root)
    reused: list[str] = []
    # a changed document retrains the encoder, not the reader (a span finder, trained mostly
    # on qa.json: the generated questions of the old sentences still teach it spans)
    reader_fp = _digest(READER_RECIPE, build.qa.read_bytes(), _where_free(build.reader),
                        str(build.reader_from), build.generated, build.seed, build.paragraphs,
                        *_talk(READER_TALK_SHARE))
    if (not build.retrain and previous is not None and previous.reader_fingerprint == reader_fp
            and (root / READER_DIR).is_dir()):
        reused.append("reader")
        reader_report = previous.report.get("reader", {})
    else:
        reader_report = build_reader(build, data)
    encoder_fp = _digest(build.qa.read_bytes(), build.generated, build.seed,
                         build.encoder.to_dict(), build.embedder, sentences_hash(data.table),
                         _file_digests(build.encoder_pretrain_qa, ENCODER_PRETRAIN),
                         build.encoder_pretrain_limit)
    encoder_fp_ok = (previous is not None and previous.encoder_fingerprint == encoder_fp
                     and (root / ENCODER_DIR).is_dir() and (root / SENTENCE_VECTORS).is_file())
    if not build.retrain and encoder_fp_ok:
        reused.append("encoder")
        encoder_report = previous.report.get("encoder", {}) if previous else {}
    else:
        encoder_report = build_encoder(build, data)
    settings = KnowledgeSettings(
        embedder=embedder.name, top_k=build.top_k, read_k=build.read_k,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        sentence_encoder=ENCODER_DIR, sentences_hash=sentences_hash(data.table),
        reader_fingerprint=reader_fp, encoder_fingerprint=encoder_fp, runtime=build.runtime,
        follow=build.follow)
    reranker_report: dict[str, Any] = {}
    if build.reranker is not None:
        reranker_fp = _digest(RERANKER_RECIPE, reader_fp, encoder_fp,
                              build.reranker.training_dict(),
                              _file_digests(build.reranker_pretrain_qa, RERANKER_PRETRAIN),
                              build.reranker_pretrain_limit, *_talk(RERANKER_TALK_SHARE))
        twin = RERANKER_PRETRAINED_DIR if build.reranker.with_pretrained else None
        settings = replace(settings, reranker=RERANKER_DIR, reranker_fingerprint=reranker_fp,
                           reranker_pretrained=twin)
        if (not build.retrain and previous is not None
                and previous.reranker_fingerprint == reranker_fp
                and (root / RERANKER_DIR / "config.json").is_file()):
            reused.append("reranker")
            reranker_report = previous.report.get("reranker", {})
        else:
            reranker_report = build_reranker(build, data, index, settings)
    else:
        shutil.rmtree(root / RERANKER_DIR, ignore_errors=True)
    recipe = {"recipe": CALIBRATION_RECIPE, "guest_questions": _digest(
        build.guest.read_bytes() if build.guest.is_file() else b"")}
    trained = {"reader", "encoder", *(("reranker",) if build.reranker is not None else ())}
    if (set(reused) == trained and previous is not None and previous.calibration
            and previous.reranker == settings.reranker
            and previous.reranker_pretrained == settings.reranker_pretrained
            and all(previous.calibration.get("report", {}).get(k) == v
                    for k, v in recipe.items())):
        reused.append("calibration")
        calibration = previous.calibration
    else:
        fitted = calibrate(build, data, index, settings)
        fitted.report.update(recipe)
        calibration = json.loads(json.dumps(fitted.to_dict()))
    counts = {"train_generated": len(data.generated_train),
              "held_generated": len(data.generated_held),
              "held_qa": len(data.held)}
    settings = replace(settings, calibration=calibration, report={
        "reader": reader_report, "encoder": encoder_report, "reranker": reranker_report,
        "generated": counts, "qa_path": str(build.qa)})
    _write_settings(root, settings)
    export_graphs(root, embedder)
    return KnowledgeReport(str(root), len(index.doc_slots), len(index), len(data.table),
                           index.kind, reader_report, encoder_report, calibration, counts,
                           tuple(reused), round(time.perf_counter() - started, 1),
                           reranker_report)


def export_graphs(root: Path, embedder: Embedder | None) -> dict[str, bool]:
    """The models' ONNX graphs (retrieval.onnx_pass), where answers will run in ONNX
    Runtime (runtime "auto" or "onnx"), so the first answer does not wait for
    them; graphs still up to date are kept. Per model, whether it has one."""
    answerer = load_answerer(root, embedder=embedder)
    if not answerer.onnx:
        return {}
    started = time.perf_counter()
    done = answerer.use_onnx()
    logger.info("retrieval.knowledge.graphs %s in %.1f s", done, time.perf_counter() - started)
    return done


def build_index(build: KnowledgeBuild, embedder: Embedder) -> Any:
    from retrieval.index import build_or_load

    return build_or_load(build.kb_dir, Path(build.out_dir) / INDEX_DIR, embedder, build.index,
                         rebuild=build.rebuild)


def split_data(build: KnowledgeBuild, index: Any) -> _Data:
    """qa.json split as the reader splits it; generated questions split by sentence."""
    from retrieval.kb_eval import doc_key
    from retrieval.passages import load_documents
    from retrieval.reader_training import TrainConfig, split_holdout

    reader_config = TrainConfig(**{k: v for k, v in build.reader.items() if k in
                                   _reader_fields() - {"extra_examples", *PRETRAIN_KEYS}})
    examples = load_qa(build.qa)
    if not examples:
        raise RetrievalConfigError(f"{build.qa} has no questions")
    train, held = split_holdout(examples, reader_config.holdout_fraction, reader_config.seed)
    table = SentenceTable.from_passages(index.passages)
    texts = {d.id: d.text for d in load_documents(build.kb_dir)}
    by_key = {doc_key(d): d for d in texts}
    guest = load_qa(build.guest) if build.guest.is_file() else []
    clash = sorted({e.id for e in guest} & {e.id for e in examples})
    if clash:
        raise RetrievalConfigError(f"{build.guest}: question ids {clash[:5]} are also in "
                                   f"{build.qa}. Fix: give the guest questions their own ids.")
    gold = {e.id: answer_sentences(table, texts, by_key.get(doc_key(e.title)), e.context,
                                   e.answers) for e in [*examples, *guest] if not e.is_impossible}
    lost = [e.id for e in guest if not e.is_impossible and not gold[e.id]]
    if lost:
        logger.warning("retrieval.knowledge.guest_not_found count=%d ids=%s", len(lost),
                       ",".join(lost[:10]))
    rng = random.Random(build.seed)
    held_sentences = set(rng.sample(range(len(table)), len(table) // 10))
    generated = generate_answerable(table.sentences, rng) if build.generated else []
    rng.shuffle(generated)
    train_gen = [g for g in generated if g.sentence not in held_sentences][:build.generated]
    held_gen = [g for g in generated if g.sentence in held_sentences][:build.held_generated]
    places = sorted({place_of(s) for s in table.sentences} - {""})
    if build.held_generated:
        held_gen += generate_unanswerable(" ".join(texts.values()), places, rng)
        held_gen += [Generated(q, None, None, None, f"missing_{kind}") for q, kind in
                     missing_kind_questions([p.text for p in index.passages.values()],
                                            random.Random(build.seed + 2),
                                            count=MISSING_KIND_QUESTIONS)]
    voice = random.Random(build.seed + 1)
    return _Data(train, held, table, gold,
                 [replace(g, question=guest_voice(g.question, voice)) for g in train_gen],
                 [replace(g, question=guest_voice(g.question, voice)) for g in held_gen],
                 [e for e in guest if e.is_impossible or gold[e.id]])


def build_reader(build: KnowledgeBuild, data: _Data) -> dict[str, Any]:
    """Train the reader (or copy `reader_from`); its training report without held-out ids."""
    from retrieval.reader_training import TRAINING_REPORT, train_reader

    target = Path(build.out_dir) / READER_DIR
    if build.reader_from is not None:
        if Path(build.reader_from).resolve() != target.resolve():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(build.reader_from, target)
        path = target / TRAINING_REPORT
        report = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return {"copied_from": str(build.reader_from),
                **{k: v for k, v in report.items() if k != "holdout"}}
    reader, pretrained = pretrained_reader(Path(build.out_dir), dict(build.reader))
    extra = [QAExample(f"gen-{n}", g.question, data.table.sentences[g.sentence].text,
                       ((g.answer, g.start),), data.table.sentences[g.sentence].doc_id)
             for n, g in enumerate(data.generated_train)
             if g.sentence is not None and g.answer is not None and g.start is not None]
    options = {"out_dir": target, "train_unanswerable": False, **reader}
    own = sentence_contexts(data)
    trained = {e.id for e in data.train}
    extra += talk_copies([e for e in own if e.id in trained] + extra,
                         random.Random(build.seed + 3), READER_TALK_SHARE)
    if build.paragraphs:  # the whole contexts as well, under other ids (never held out)
        extra += [replace(e, id=f"{e.id}#paragraph") for e in data.train if not e.is_impossible]
    report = train_reader(own, extra_examples=extra, **options).to_dict()
    held = {k: v for k, v in report.pop("holdout", {}).items() if k != "ids"}
    return {**report, "holdout": held, **({"pretrained": pretrained} if pretrained else {})}


def pretrained_reader(out_dir: Path, reader: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """`reader` (train_reader options) without the pretraining keys; with `pretrain_qa`, its
    base_model is the reader first trained on those files in out_dir/PRETRAINED_DIR, trained
    again only when the files or the settings it shares change (PRETRAINED_STAMP). Also what
    was done: {} without pretrain_qa, else its questions and seconds (0 when reused)."""
    from retrieval.reader_training import train_reader

    pretrain = [str(p) for p in reader.pop("pretrain_qa", ())]
    epochs = float(reader.pop("pretrain_epochs", PRETRAIN_EPOCHS))
    contexts = reader.pop("pretrain_contexts", PRETRAIN_CONTEXTS[0])
    if contexts not in PRETRAIN_CONTEXTS:
        raise RetrievalConfigError(f"reader.pretrain_contexts must be one of "
                                   f"{', '.join(PRETRAIN_CONTEXTS)}, got {contexts!r}")
    if not pretrain:
        return reader, {}
    first = out_dir / PRETRAINED_DIR
    base = reader.get("base_model", DEFAULT_READER_BASE)
    shared = {k: v for k, v in reader.items() if k in PRETRAIN_SHARED}
    stamp = _digest(_file_digests(pretrain), epochs, base, shared, contexts)

    def train() -> dict[str, Any]:
        logger.info("retrieval.knowledge.pretrain_reader paths=%s epochs=%s contexts=%s",
                    pretrain, epochs, contexts)
        examples = [e for path in pretrain for e in load_qa(path)]
        if contexts == "sentence":
            examples = sentence_examples(examples)
        report = train_reader(examples, out_dir=first, epochs=epochs, negatives_per_question=0,
                              base_model=base, **shared)
        return {"seconds": report.seconds, "questions": len(examples)}

    done = {"files": len(pretrain), "contexts": contexts, "epochs": epochs,
            **_unless_stamped(first, stamp, train)}
    return {**reader, "base_model": str(first)}, done


def sentence_contexts(data: _Data) -> list[QAExample]:
    """qa.json's answerable questions with their gold sentence alone as the context (what
    the reader reads at answer time; short, so training is fast), under their own ids so the
    reader holds out the same questions; unanswerable ones as they are."""
    out = []
    for e in [*data.train, *data.held]:
        sentence = data.table.sentences[data.gold[e.id][0]] if data.gold.get(e.id) else None
        answers = tuple((t, sentence.text.find(t)) for t, _ in e.answers
                        if sentence is not None and t in sentence.text)
        out.append(QAExample(e.id, e.question, sentence.text, answers[:1], e.title)
                   if sentence is not None and answers else e)
    return out


def build_encoder(build: KnowledgeBuild, data: _Data) -> dict[str, Any]:
    """Fine-tune the sentence encoder and save the vectors of every sentence."""
    from retrieval.embedder import SentenceTransformerEmbedder

    rng = random.Random(build.seed)
    triples: list[Triple] = []
    by_doc: dict[str, list[int]] = {}
    for s in data.table.sentences:
        by_doc.setdefault(s.doc_id, []).append(s.id)

    def triple(question: str, sid: int) -> Triple:
        sentence = data.table.sentences[sid]
        others = [i for i in by_doc[sentence.doc_id] if i != sid]
        negative = data.table.sentences[rng.choice(others)].search_text if others else None
        return question, sentence.search_text, negative

    for e in data.train:
        if data.gold.get(e.id):
            triples.append(triple(e.question, data.gold[e.id][0]))
    triples += [triple(g.question, g.sentence) for g in data.generated_train
                if g.sentence is not None]
    if not all(t[2] is not None for t in triples):
        triples = [(q, p, None) for q, p, _ in triples]
    out = Path(build.out_dir) / ENCODER_DIR
    config, pretrained = pretrained_encoder(build)
    report = fit_sentence_encoder(triples, out, config)
    encoder = SentenceTransformerEmbedder(str(out))
    vectors = encoder.encode([s.search_text for s in data.table.sentences])
    np.save(Path(build.out_dir) / SENTENCE_VECTORS, vectors)
    return {**report, **({"pretrained": pretrained} if pretrained else {})}


def pretrained_encoder(build: KnowledgeBuild) -> tuple[SentenceEncoderConfig, dict[str, Any]]:
    """build.encoder, starting from the encoder first trained on `encoder_pretrain_qa` (in
    out_dir/ENCODER_PRETRAINED_DIR, trained again only when its data or settings change);
    also what was done, as pretrained_reader says it."""
    files = [str(p) for p in build.encoder_pretrain_qa]
    if not files:
        return build.encoder, {}
    first = Path(build.out_dir) / ENCODER_PRETRAINED_DIR
    stamp = _digest(_file_digests(files, ENCODER_PRETRAIN), build.encoder_pretrain_limit,
                    build.seed, build.encoder.to_dict())
    done = _pretrain(first, files, ENCODER_PRETRAIN, stamp,
                     lambda examples: sentence_triples(examples, random.Random(build.seed)),
                     build.encoder_pretrain_limit, build.seed,
                     lambda rows, out: fit_sentence_encoder(rows, out, build.encoder),
                     least=2, need="answerable question(s) whose answer is in a sentence of a "
                                   "context of several; at least 2 are needed")
    return replace(build.encoder, base_model=str(first)), done


def _pretrain(first: Path, files: list[str], what: str, stamp: str,
              rows_of: Callable[[list[QAExample]], list[Any]], limit: int | None, seed: int,
              fit: Callable[[list[Any], Path], dict[str, Any]], *, least: int = 1,
              need: str) -> dict[str, Any]:
    """A model pretrained into `first` on the rows `rows_of` makes of the SQuAD-format
    `files` (at most `limit`, a seeded sample), unless its stamp still holds (what was done);
    fewer than `least` rows is an error that says what each row `need`s."""
    def train() -> dict[str, Any]:
        rows = rows_of([e for path in files for e in load_qa(path)])
        if len(rows) < least:
            raise RetrievalConfigError(f"{what}: {files} hold {len(rows)} {need}")
        if limit is not None and len(rows) > limit:
            rows = random.Random(seed).sample(rows, limit)
        logger.info("retrieval.knowledge.pretrain what=%s paths=%s rows=%d", what, files,
                    len(rows))
        shutil.rmtree(first, ignore_errors=True)
        report = fit(rows, first)
        return {"seconds": report["seconds"], "questions": len(rows),
                **({"steps": report["steps"]} if "steps" in report else {})}

    return {"files": len(files), **_unless_stamped(first, stamp, train)}


def _unless_stamped(folder: Path, stamp: str, train: Callable[[], dict[str, Any]]
                    ) -> dict[str, Any]:
    """train() into `folder`, unless the stamp beside it (PRETRAINED_STAMP) is `stamp` or
    the machine's cache holds that model (retrieval.pretrained_cache): a pretrained model
    kept while its data and settings hold. What was done."""
    marker = folder / PRETRAINED_STAMP
    if marker.is_file() and marker.read_text(encoding="utf-8") == stamp:
        logger.info("retrieval.knowledge.pretrained_reused dir=%s", folder)
        return {"reused": True, "seconds": 0.0}
    if fetch_pretrained(folder, stamp):
        marker.write_text(stamp, encoding="utf-8")
        return {"reused": True, "seconds": 0.0, "cached": True}
    done = train()
    marker.write_text(stamp, encoding="utf-8")
    keep_pretrained(folder, stamp)
    return {"reused": False, **done}


def build_reranker(build: KnowledgeBuild, data: _Data, index: Any,
                   settings: KnowledgeSettings) -> dict[str, Any]:
    """Fine-tune the reranker (retrieval.reranker) from the reader just trained, on the
    questions the encoder learnt, each with its answer sentence and the selection's best
    wrong candidates (what it will have to tell apart)."""
    assert build.reranker is not None
    root = Path(build.out_dir)
    ranker = sentence_ranker(root, index, settings)
    questions = [(e.question, data.gold[e.id]) for e in data.train if data.gold.get(e.id)]
    questions += [(g.question, [g.sentence]) for g in data.generated_train
                  if g.sentence is not None]
    texts = [q for q, _ in questions]
    chosen = ranker.candidates(texts, index.search(texts, top_k=build.top_k),
                               DEFAULT_SELECTION)  # as the answerer's selection does
    table = data.table.sentences
    groups: list[Group] = []
    for (question, gold), cands in zip(questions, chosen):
        wrong = [c.sentence for c in cands if c.sentence not in gold][:build.reranker.negatives]
        groups.append((question, table[gold[0]].search_text,
                       tuple(table[sid].search_text for sid in wrong)))
    config, pretrained = pretrained_reranker(build)
    if config.base_model == RERANKER_FROM_READER:
        config = replace(config, base_model=str(root / READER_DIR))
    report = fit_reranker(groups, root / RERANKER_DIR, config)
    return {**report, **({"pretrained": pretrained} if pretrained else {})}


def pretrained_reranker(build: KnowledgeBuild) -> tuple[RerankerConfig, dict[str, Any]]:
    """build.reranker, starting from the reranker first trained on `reranker_pretrain_qa`
    (in out_dir/RERANKER_PRETRAINED_DIR, from the reader's pretrained reader when it has one,
    trained again only when its data or settings change); also what was done."""
    config = build.reranker
    assert config is not None
    files = [str(p) for p in build.reranker_pretrain_qa]
    if not files:
        return config, {}
    root = Path(build.out_dir)
    first, reader_first = root / RERANKER_PRETRAINED_DIR, root / PRETRAINED_DIR
    base = config.base_model
    if base == RERANKER_FROM_READER:  # the reader's starting point: its pretrained one
        base = str(reader_first) if build.reader.get("pretrain_qa") else \
            str(build.reader.get("base_model", DEFAULT_READER_BASE))
    marker = reader_first / PRETRAINED_STAMP  # that reader changes: so does this start
    first_config = replace(config, base_model=base, epochs=config.pretrain_epochs,
                           with_pretrained=False)
    kept = {**first_config.training_dict(), "top_k": None,  # read at answer time only
            # the folder, not where it is: a moved models folder keeps its reranker
            "base_model": PRETRAINED_DIR if base == str(reader_first) else base}
    stamp = _digest(_file_digests(files, RERANKER_PRETRAIN), build.reranker_pretrain_limit,
                    build.seed, kept, *_talk(RERANKER_TALK_SHARE),
                    marker.read_text(encoding="utf-8")
                    if base == str(reader_first) and marker.is_file() else "")
    done = _pretrain(first, files, RERANKER_PRETRAIN, stamp,
                     lambda examples: talk_groups(rerank_groups(examples, config.negatives),
                                                  random.Random(build.seed + 4),
                                                  RERANKER_TALK_SHARE),
                     build.reranker_pretrain_limit, build.seed,
                     lambda rows, out: fit_reranker(rows, out, first_config),
                     need="question(s) with a sentence of its context to rank; at least 1 is "
                          "needed")
    return replace(config, base_model=str(first)), done


def calibrate(build: KnowledgeBuild, data: _Data, index: Any,
              settings: KnowledgeSettings) -> Any:
    """fit_calibration on the held-out questions with the models just built."""
    root = Path(build.out_dir)
    reader = Reader.from_dir(root / READER_DIR, device=build.reader.get("device", "cpu"))
    ranker = sentence_ranker(root, index, settings)
    reranker = load_reranker(root, settings)
    answerer = Answerer(index, None, reader, ranker=ranker, reranker=reranker,
                        config=AnswererConfig(top_k=build.top_k, read_k=build.read_k))
    return fit_calibration(answerer, held_out_questions(data),
                           cross_k=build.reranker.top_k if build.reranker else 0)


def held_out_questions(data: _Data) -> list[LabelledQuestion]:
    """The calibration slice: qa.json's held-out questions and all its unanswerable ones (no
    model trains on them: the reader learns "no answer" from generated negatives), held-out
    generated questions and the generated unanswerable ones, each with its gold sentences."""
    rng = random.Random(len(data.held))
    held = [LabelledQuestion(q, tuple(data.gold.get(e.id, ())), "qa" if n == 0 else "qa_guest")
            for e in [*data.held, *(e for e in data.train if e.is_impossible)]
            for n, q in enumerate(guest_copies(e.question, rng))]
    held += [LabelledQuestion(e.question, tuple(data.gold.get(e.id, ())), "guest")
             for e in data.guest]
    return held + [LabelledQuestion(g.question, (g.sentence,) if g.sentence is not None
                                    else (), "generated") for g in data.generated_held]


def guest_copies(question: str, rng: random.Random) -> list[str]:
    """`question` as written plus GUEST_COPIES guest rephrasings of it (question_gen):
    qa.json is written beside the text, guests are not."""
    return [question, *(guest_rephrase(question, rng) for _ in range(GUEST_COPIES))]


def _write_settings(root: Path, settings: KnowledgeSettings) -> None:
    root.mkdir(parents=True, exist_ok=True)
    data = {k: getattr(settings, k) for k in KnowledgeSettings.__dataclass_fields__}
    (root / KNOWLEDGE_FILE).write_text(json.dumps(data, indent=2, default=str) + "\n",
                                       encoding="utf-8")


def _previous(root: Path) -> KnowledgeSettings | None:
    try:
        settings = read_settings(root)
    except (RetrievalError, OSError, ValueError, TypeError) as exc:
        logger.debug("retrieval.knowledge.no_previous reason=%s", exc)
        return None
    return settings if settings.format_version == KNOWLEDGE_FORMAT else None


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True,
                                                                 default=str).encode())
    return h.hexdigest()[:16]


def _file_digests(paths: Any, what: str = "reader.pretrain_qa") -> list[str]:
    """The content digests of `paths` (`what` names them); a clear error for a missing one."""
    if isinstance(paths, (str, Path)):
        raise RetrievalConfigError(f"{what} must be a list of files, got {paths!r}")
    out = []
    for path in paths:
        try:
            out.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
        except OSError as exc:
            raise RetrievalConfigError(f"{what}: cannot read {path} ({exc})") from exc
    return out


def _where_free(reader: Mapping[str, Any]) -> dict[str, Any]:
    """The reader options with their files (`pretrain_qa`, `extra_qa_paths`) as the digests
    of their contents: a project moved elsewhere keeps its reader (its paths are absolute)."""
    return {k: _file_digests(v, f"reader.{k}") if k in ("pretrain_qa", "extra_qa_paths") else v
            for k, v in reader.items()}


def _talk(share: float) -> tuple[Any, ...]:
    """What a model learns from guest talk (its share and the lines) for its fingerprint;
    nothing when it learns none, so models built before it are kept."""
    return (share, TALK_FILE.read_bytes()) if share else ()


def _reader_fields() -> set[str]:
    from retrieval.reader_training import config_fields

    return set(config_fields()) | {"extra_examples", *PRETRAIN_KEYS}
