"""The knowledge answers (models/knowledge): the project's knowledge base folder, its build
by retrieval.build_knowledge, the index alone (`xingkong index`) and its evaluation
(`xingkong test kb`).
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, TrainingError
from bot.project.config import KnowledgeConfig
from bot.project.project import Project
from bot.training.model_dir import read_json

logger = logging.getLogger(__name__)

QA_FILE = "qa.json"  # the reader's training questions, inside the knowledge base folder


def knowledge_base(project: Project, *, required: bool = False) -> Path | None:
    """The project's knowledge base folder (config.yml knowledge.kb, default data/kb), or None
    when the default one does not exist. A folder that config.yml names must exist, and so
    must the default one when `required` (`xingkong train knowledge`)."""
    settings = project.config.knowledge
    path = project.paths.root / settings.kb_path
    if path.exists():
        return path
    if settings.kb is not None:
        raise ConfigError(f"Knowledge base folder {path} does not exist (knowledge.kb in "
                          f"{settings.at}). Create it, or fix the path.")
    if required:
        raise TrainingError(f"No knowledge base folder at {path}. Put the documents (.md, .txt, "
                            f".json) and a SQuAD-format {QA_FILE} there, or set knowledge.kb "
                            "in config.yml.")
    return None


def train_knowledge(project: Project, kb: Path, out: Path, *, retrain: bool = False) -> Any:
    """Build the knowledge directory `out` (index, reader, sentence encoder, calibration)
    with retrieval.build_knowledge: the index is updated in place and the models are retrained
    only when what they are built from changed (always with `retrain`). Returns its
    KnowledgeReport."""
    from retrieval.embedder import DEFAULT_MODEL
    from retrieval.knowledge_build import KnowledgeBuild, build_knowledge

    settings = project.config.knowledge
    qa = kb / QA_FILE
    if not qa.is_file():
        raise TrainingError(f"No {QA_FILE} in the knowledge base {kb}: the reader is trained on "
                            "its questions (SQuAD 2.0 format, the title of an article is the "
                            "path of its document without suffix).")
    options = reader_options(project)
    paragraphs = bool(options.pop("paragraphs", False))
    logger.info("train.knowledge.start kb=%s out=%s", kb, out)
    encoder, encoder_pretrain, encoder_limit = encoder_options(project)
    reranker, reranker_pretrain, reranker_limit = reranker_options(project)
    build = KnowledgeBuild(kb_dir=kb, out_dir=out, embedder=settings.embedder or DEFAULT_MODEL,
                           qa_path=qa, index=index_config(settings), reader=options,
                           encoder=encoder, top_k=settings.top_k, read_k=settings.read_k,
                           retrain=retrain, paragraphs=paragraphs,
                           encoder_pretrain_qa=tuple(encoder_pretrain),
                           encoder_pretrain_limit=encoder_limit, reranker=reranker,
                           reranker_pretrain_qa=tuple(reranker_pretrain),
                           reranker_pretrain_limit=reranker_limit, runtime=settings.runtime,
                           follow=settings.follow)
    return build_knowledge(build)


def encoder_options(project: Project) -> tuple[Any, list[str], int | None]:
    """config.yml knowledge.encoder as a SentenceEncoderConfig, plus what it learns first:
    `pretrain_qa` (paths relative to the project) and `pretrain_limit`."""
    from retrieval.sentence_encoder import SentenceEncoderConfig

    settings = project.config.knowledge
    options = dict(settings.encoder)
    pretrain = _in_project(project, options.pop("pretrain_qa", None) or ())
    limit = options.pop("pretrain_limit", None)
    try:
        return SentenceEncoderConfig(**options), pretrain, limit
    except TypeError as exc:
        valid = ", ".join([*SentenceEncoderConfig.__dataclass_fields__, "pretrain_qa",
                           "pretrain_limit"])
        raise ConfigError(f"Bad knowledge.encoder option in {settings.at}: {exc}. "
                          f"Available: {valid}.") from exc


def reranker_options(project: Project) -> tuple[Any, list[str], int | None]:
    """config.yml knowledge.reranker as a RerankerConfig (None when it is false), plus what
    it learns first: `pretrain_qa` (paths relative to the project) and `pretrain_limit`."""
    from retrieval.reranker import RerankerConfig

    settings = project.config.knowledge
    if settings.reranker is None:
        return None, [], None
    options = dict(settings.reranker)
    pretrain = _in_project(project, options.pop("pretrain_qa", None) or ())
    limit = options.pop("pretrain_limit", None)
    try:
        return RerankerConfig(**options), pretrain, limit
    except (TypeError, ValueError) as exc:  # an unknown option, or a bad value
        valid = ", ".join([*RerankerConfig.__dataclass_fields__, "pretrain_qa",
                           "pretrain_limit"])
        raise ConfigError(f"Bad knowledge.reranker option in {settings.at}: {exc}. "
                          f"Available: {valid}.") from exc


def _in_project(project: Project, paths: Any) -> list[str]:
    """Paths of config.yml, relative to the project, as absolute strings."""
    return [str(project.paths.root / p) for p in paths]


def reader_options(project: Project) -> dict[str, Any]:
    """config.yml knowledge.reader as train_reader options. Only what config.yml sets: the
    rest (epochs, lr, ...) keeps retrieval's defaults. `extra_qa` paths are relative to the
    project."""
    from retrieval.knowledge_build import PRETRAIN_KEYS
    from retrieval.reader_training import config_fields

    settings = project.config.knowledge
    valid = sorted({*config_fields(), "extra_qa", "paragraphs", *PRETRAIN_KEYS}
                   - {"extra_qa_paths"})
    for key in settings.reader:
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"Unknown reader option 'knowledge.reader.{key}' in "
                              f"{settings.at}.{did_you_mean} Available: {', '.join(valid)}.")
    options = dict(settings.reader)
    if "extra_qa" in options:
        options["extra_qa_paths"] = _in_project(project, options.pop("extra_qa"))
    if isinstance(options.get("pretrain_qa"), list):  # public QA the reader learns first
        options["pretrain_qa"] = _in_project(project, options["pretrain_qa"])
    return options


def index_config(settings: KnowledgeConfig) -> Any:
    """The retrieval IndexConfig of config.yml's knowledge section (retrieval's defaults for
    what it leaves out)."""
    from retrieval.types import IndexConfig

    return IndexConfig() if settings.hybrid is None else IndexConfig(hybrid=settings.hybrid)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What `build_index` did. `rebuilt` says why the index was built from scratch (None when
    it was updated in place or already up to date)."""

    path: Path
    kind: str
    hybrid: bool
    documents: int
    passages: int
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    rebuilt: str | None
    seconds: float


def build_index(kb: Path, out: Path, settings: KnowledgeConfig, *,
                rebuild: bool = False) -> IndexReport:
    """Build or update the index of the knowledge base `kb` in `out`/index (no reader
    training): only new or changed documents are embedded, unless the embedder, the split
    settings or the index kind changed, or `rebuild`."""
    from retrieval.answerer import INDEX_DIR
    from retrieval.embedder import DEFAULT_MODEL, get_embedder
    from retrieval.index import DOCUMENTS, MANIFEST, build_or_load
    from retrieval.types import Manifest

    if not kb.exists():
        raise ConfigError(f"Knowledge base folder {kb} does not exist. Pass --kb, set "
                          "knowledge.kb in config.yml, or put the documents there.")
    started = time.perf_counter()
    path = out / INDEX_DIR
    embedder = get_embedder(settings.embedder if settings.embedder is not None
                            else DEFAULT_MODEL)
    config = index_config(settings)
    before: dict[str, str] = {}
    reason: str | None = "--rebuild" if rebuild else "no index yet"
    if not rebuild and (path / MANIFEST).exists():
        before = read_json(path / DOCUMENTS)
        try:
            reason = Manifest.read(path).stale_reason(embedder, config, path)
        except ValueError as exc:  # another format, or an unreadable manifest
            reason = str(exc)
    index = build_or_load(kb, path, embedder, config, rebuild=rebuild)
    after = dict(index.doc_hashes)
    return IndexReport(
        path=path, kind=index.kind, hybrid=index.bm25 is not None, documents=len(after),
        passages=len(index),
        added=tuple(sorted(d for d in after if d not in before)),
        changed=tuple(sorted(d for d in after if d in before and before[d] != after[d])),
        removed=tuple(sorted(d for d in before if d not in after)),
        unchanged=sum(1 for d in after if before.get(d) == after[d]),
        rebuilt=reason, seconds=time.perf_counter() - started)


def evaluate_knowledge(model_dir: Path, test_path: Path, out_path: Path | None = None, *,
                       limit: int | None = None, answerer: Any = None,
                       reliability_png: Path | None = None) -> dict[str, Any]:
    """retrieval.evaluate_kb of the knowledge model in `model_dir` (or an `answerer` already
    loaded from it) on the SQuAD-format test set `test_path` (its first `limit` questions);
    the report is also written to `out_path`, the reliability diagram to `reliability_png`."""
    from retrieval.answerer import KNOWLEDGE_FILE, load_answerer
    from retrieval.errors import CorpusError
    from retrieval.kb_eval import evaluate_kb
    from retrieval.qa_metrics import load_qa

    if not (model_dir / KNOWLEDGE_FILE).is_file():
        raise TrainingError(f"No knowledge model at {model_dir} ({KNOWLEDGE_FILE} missing). "
                            "Run `xingkong train knowledge` first.")
    if not test_path.is_file():
        raise ConfigError(f"KB test set {test_path} does not exist. Pass --kb-test with a "
                          "SQuAD 2.0 JSON file (or a QA JSONL file).")
    try:
        examples = load_qa(test_path, limit=limit)
    except (CorpusError, KeyError, TypeError, AttributeError) as exc:
        detail = str(exc) if isinstance(exc, CorpusError) else f"{test_path}: {exc!r}"
        raise ConfigError(f"Malformed KB test set: {detail}. Expected SQuAD 2.0 JSON: "
                          '{"data": [{"title": ..., "paragraphs": [{"context": ..., '
                          '"qas": [...]}]}]}.') from exc
    if not examples:
        raise ConfigError(f"KB test set {test_path} has no questions.")
    report = evaluate_kb(answerer or load_answerer(model_dir), examples,
                         reliability_png=reliability_png)
    report["test_path"] = str(test_path)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                            encoding="utf-8")
    return report


def has_knowledge_model(path: Path) -> bool:
    from retrieval.answerer import KNOWLEDGE_FILE

    return (path / KNOWLEDGE_FILE).is_file()
