"""Train a project into a model directory, and load it back.

models/
  fingerprint.json   what each part was trained from (skip what has not changed)
  domain.json        the domain as trained
  core/policies.json the policy ensemble's learned tables
  nlu/               the NLU pipeline (when the config has Transformer components)
  knowledge/         the knowledge answers (when the project has a knowledge base, data/kb by
                     default): index/, reader/, knowledge.json, by retrieval's build_knowledge
  generation/        the small-talk generator (when config.yml has a generation: section):
                     generation.json, GPT-2 weights and tokenizer, by generation's training
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.project.config import (
    GenerationConfig,
    KnowledgeConfig,
    ProjectConfig,
    ProjectPaths,
    load_config,
    skipped_components,
)
from bot.project.domain import Domain, load_domain
from bot.errors import ConfigError, TrainingError
from bot.policies import PolicyEnsemble, build_policies
from bot.project.training_data import TrainingData, load_training_data

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KNOWLEDGE_DIR = "knowledge"  # models/knowledge: where actions/knowledge.py looks by default
GENERATION_DIR = "generation"  # models/generation: where actions/fallback.py looks by default
QA_FILE = "qa.json"  # the reader's training questions, inside the knowledge base folder


@dataclass(slots=True)
class Project:
    paths: ProjectPaths
    config: ProjectConfig
    domain: Domain
    data: TrainingData

    @classmethod
    def load(cls, paths: ProjectPaths) -> Project:
        config = load_config(paths.config)
        data = load_training_data(list(paths.data))
        domain = load_domain(paths.domain, extra_responses=data.responses)
        return cls(paths, config, domain, data)


@dataclass(frozen=True, slots=True)
class StageTime:
    """One training stage: when it started (seconds after train() began), its wall seconds
    and the CPU seconds of its process (user + sys, all threads), to find the critical path
    and what the stages cost on a busy machine."""

    start_s: float
    wall_s: float
    cpu_s: float

    @classmethod
    def since(cls, origin: float, began: tuple[float, float]) -> StageTime:
        """The stage that began at `began` (_clock()) of a train() that began at `origin`."""
        wall, cpu = _clock()
        return cls(round(began[0] - origin, 1), round(wall - began[0], 1),
                   round(cpu - began[1], 1))


def _clock() -> tuple[float, float]:
    """(monotonic wall clock, CPU seconds of this process): monotonic is one clock for the
    parent and its spawned jobs."""
    return time.monotonic(), time.process_time()


@dataclass(slots=True)
class TrainReport:
    core_trained: bool = False
    nlu_trained: bool = False
    knowledge_trained: bool = False
    generation_trained: bool = False
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    nlu_report: dict[str, Any] = field(default_factory=dict)
    knowledge_report: Any = None  # retrieval.KnowledgeReport when the knowledge was built
    generation_report: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, StageTime] = field(default_factory=dict)  # what ran, and when


def fingerprints(project: Project) -> dict[str, str]:
    def digest(*parts: Any) -> str:
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    data = project.data
    core = digest(FORMAT_VERSION, project.domain.to_dict(),
                  [[c.name, dict(c.written)] for c in project.config.policies],
                  [_story_repr(s) for s in data.stories], [_story_repr(r) for r in data.rules])
    # Duckling is not trained (its settings are read when the model loads); stories shape the
    # NLU only through an intent classifier with use_context (nlu/context.py)
    trained = [c for c in project.config.pipeline if c.name != "DucklingEntityExtractor"]
    uses_context = any(getattr(c.params, "use_context", False) for c in trained)
    nlu = digest(FORMAT_VERSION, [[c.name, dict(c.written)] for c in trained],
                 [[e.text, e.intent, [a.to_dict() for a in e.entities]] for e in data.examples],
                 data.synonyms, data.regexes, data.lookups, sorted(project.domain.intents),
                 *([[_story_repr(s) for s in [*data.stories, *data.rules]]] if uses_context else []))
    return {"core": core, "nlu": nlu}


def train(project: Project, *, force: bool = False, progress: bool = True,
          nlu: bool = True, core: bool = True, knowledge: bool = True,
          generation: bool = True, budget_s: float | None = None) -> TrainReport:
    """Train the parts asked for whose fingerprint changed (all of them with `force`). The
    knowledge part runs only when the project has a knowledge base folder, the generation
    part only when config.yml has a generation: section (`budget_s` overrides its budget and
    retrains it)."""
    started = time.perf_counter()
    origin = time.monotonic()
    out = project.paths.models
    out.mkdir(parents=True, exist_ok=True)
    wanted = fingerprints(project)
    kb = knowledge_base(project) if knowledge else None
    if kb is not None:
        wanted["knowledge"] = knowledge_fingerprint(project, kb)
    elif knowledge:
        logger.info("train.knowledge.skipped reason=no_knowledge_base path=%s",
                    project.paths.root / project.config.knowledge.kb_path)
    settings = project.config.generation
    if generation and settings is not None:
        wanted["generation"] = generation_fingerprint(project, settings, budget_s)
    elif generation:
        logger.info("train.generation.skipped reason=no_generation_section config=%s",
                    project.config.source)
    old = _read_json(out / "fingerprint.json")
    report = TrainReport()
    report.warnings += skipped_components(project.config, bool(project.data.lookups))
    for warning in report.warnings:
        logger.info("train.component_skipped %s", warning)  # the CLI prints report.warnings
    train_core_now = core and (force or old.get("core") != wanted["core"]
                               or not (out / "core").exists())
    train_nlu_now = nlu and (force or old.get("nlu") != wanted["nlu"]
                             or not (out / "nlu").exists())
    target = out / KNOWLEDGE_DIR
    train_kb_now = kb is not None and (force or old.get("knowledge") != wanted["knowledge"]
                                       or not _has_knowledge_model(target))
    nlu_models = train_nlu_now and _trains_nlu_models(project)
    parallel = train_kb_now and (nlu_models or train_core_now) and (os.cpu_count() or 1) >= 2
    # Two jobs side by side, one core each: the knowledge build in a spawned process, and the
    # NLU here. The NLU is the longest, so the policies train beside it, after the knowledge
    # (in that process), and the NLU takes the cores the other job leaves free (_nlu_threads).
    core_beside = parallel and nlu_models and train_core_now
    pool = multiprocessing.get_context("spawn").Pool(1) if parallel else None
    try:
        side_job = None if pool is None else pool.apply_async(
            _side_job, (project.paths, kb, target, force, core_beside, progress, origin))
        if train_core_now and not core_beside:
            began = _clock()
            report.warnings += train_core(project, out / "core", progress=progress)
            report.core_trained = True
            report.stages["core"] = StageTime.since(origin, began)
        if train_nlu_now:
            began = _clock()
            report.nlu_report = train_nlu(
                project, out / "nlu", progress=progress,
                threads=None if side_job is None else _nlu_threads(side_job.ready))
            report.nlu_trained = bool(report.nlu_report)
            report.stages["nlu"] = StageTime.since(origin, began)
        if side_job is not None:
            side = side_job.get()
            report.knowledge_report = side.knowledge_report
            report.warnings += side.core_problems
            report.core_trained = report.core_trained or core_beside
            report.stages |= side.stages
            report.knowledge_trained = True
        elif train_kb_now and kb is not None:
            began = _clock()
            report.knowledge_report = train_knowledge(project, kb, target, retrain=force)
            report.stages["knowledge"] = StageTime.since(origin, began)
            report.knowledge_trained = True
    finally:
        if pool is not None:
            pool.terminate()  # done by now, or the NLU failed: no reader left training
            pool.join()
    target = out / GENERATION_DIR
    if settings is not None and "generation" in wanted and (
            force or budget_s is not None or old.get("generation") != wanted["generation"]
            or not (target / "generation.json").is_file()):
        began = _clock()
        report.generation_report = train_generation(project, settings, target, budget_s=budget_s,
                                                    progress=progress)
        report.generation_trained = True
        report.stages["generation"] = StageTime.since(origin, began)
    elif settings is not None and "generation" in wanted:
        refresh_generation(settings, target)
    asked = {"core": core, "nlu": nlu, "knowledge": knowledge, "generation": generation}
    fresh = {**old, **{k: v for k, v in wanted.items() if asked[k]}}
    (out / "fingerprint.json").write_text(json.dumps(fresh, indent=1))
    report.seconds = time.perf_counter() - started
    report.stages = dict(sorted(report.stages.items(), key=lambda item: item[1].start_s))
    for name, stage in report.stages.items():
        logger.info("train.stage name=%s start_s=%.1f wall_s=%.1f cpu_s=%.1f", name,
                    stage.start_s, stage.wall_s, stage.cpu_s)
    return report


def train_core(project: Project, out: Path, progress: bool = False) -> list[str]:
    """Train the policies into `out` (and the domain beside it); the story conflicts found."""
    ensemble = PolicyEnsemble(build_policies(project.config.policies, progress=progress))
    problems = ensemble.train(project.domain, project.data)
    for problem in problems:
        logger.warning("train.core.conflict %s", problem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies.json").write_text(json.dumps(ensemble.to_dict()))
    (out.parent / "domain.json").write_text(json.dumps(project.domain.to_dict(), indent=1))
    return problems


def _trains_nlu_models(project: Project) -> bool:
    """Whether the NLU part fine-tunes a model (not only regexes, synonyms and thresholds)."""
    from nlu.training import plan

    steps = plan(project.config.pipeline_dicts())
    return bool(project.data.examples) and any(
        c is not None for c in (steps.joint, steps.intent, steps.entity))


def _threads_per_job(jobs: int) -> int:
    """Torch threads for one of `jobs` trainings running at once: the cores shared out (on 2
    cores one each; a job with 2 threads on 2 busy cores waits on its descheduled thread)."""
    return max(1, (os.cpu_count() or 1) // jobs)


def _nlu_threads(side_done: Callable[[], bool]) -> Callable[[], int]:
    """Torch threads for the NLU's next quarter epoch, asked before each: one core while the
    side job (`side_done()` False) trains, then the cores the machine leaves idle: all of them
    on a quiet machine, still one on a busy one, where a second thread would wait on its
    descheduled partner."""
    def threads() -> int:
        if not side_done():
            return _threads_per_job(2)
        cores = os.cpu_count() or 1
        return max(1, min(cores, int(_idle_cores() + 0.5)))

    return threads


def _idle_cores(window_s: float = 0.25) -> float:
    """How many cores sat idle over the next `window_s` seconds (Linux /proc/stat; the caller
    waits meanwhile, so its own core counts as idle); 0 where it cannot be read: one thread."""
    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            ticks = [int(v) for v in fh.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait; user ... steal

    try:
        idle_before, total_before = idle_and_total()
        time.sleep(window_s)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        return 0.0
    elapsed = total_after - total_before
    return (os.cpu_count() or 1) * (idle_after - idle_before) / elapsed if elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _SideResult:
    """What the spawned side job sends back: the knowledge build's report, the policies'
    story conflicts (when it trained them) and its stages."""

    knowledge_report: Any
    core_problems: list[str]
    stages: dict[str, StageTime]


def _side_job(paths: ProjectPaths, kb: Path, target: Path, retrain: bool, core: bool,
              progress: bool, origin: float) -> _SideResult:
    """The knowledge part, then the policies when `core`, in a child process (spawned: a
    fresh interpreter, one torch thread: the other core is the NLU's); `origin` is when
    train() began."""
    began = _clock()
    import torch

    torch.set_num_threads(_threads_per_job(2))
    project = Project.load(paths)
    built = train_knowledge(project, kb, target, retrain=retrain)
    stages = {"knowledge": StageTime.since(origin, began)}
    problems: list[str] = []
    if core:
        began = _clock()
        problems = train_core(project, paths.models / "core", progress=progress)
        stages["core"] = StageTime.since(origin, began)
    return _SideResult(built, problems, stages)


def train_nlu(project: Project, out: Path, progress: bool = True,
              threads: Callable[[], int] | None = None) -> dict[str, Any]:
    """Train the Transformer NLU pipeline; `threads()`, when given, says how many torch
    threads to train with, asked at each quarter epoch (None: torch's setting). {} when the
    project has nothing to train."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads())
    if not project.data.examples:
        logger.info("train.nlu.skipped reason=no_examples")
        return {}
    try:
        from nlu.context import add_topic_switches, mine_contexts
        from nlu.training import TrainingSet, train_pipeline
        from nlu.types import Entity, Example
    except ImportError as exc:  # the NLU dependencies are missing
        raise TrainingError(f"The NLU package cannot be imported ({exc}). "
                            "Reinstall with `make install`.") from exc
    data = project.data
    examples = [
        Example(e.text, e.intent, tuple(Entity(a.start, a.end, a.value, a.entity, a.role, a.group)
                                        for a in e.entities))
        for e in data.examples
    ]
    components = project.config.pipeline_dicts()
    # a rule's condition first: the form it runs in is part of the context
    conversations = [_step_dicts((*story.condition, *story.steps))
                     for story in [*data.stories, *data.rules]]
    rules = conversations[len(data.stories):]
    contexts = add_topic_switches(mine_contexts(conversations), rules)
    training_set = TrainingSet(examples, dict(data.synonyms), dict(data.regexes), dict(data.lookups),
                               contexts=contexts,
                               language=project.config.language)
    return train_pipeline(training_set, components, out, progress=progress, threads=threads)


def _step_dicts(steps: Any) -> list[dict[str, Any]]:
    """Story steps back in Rasa's YAML step shape, what nlu.context.mine_contexts reads."""
    out: list[dict[str, Any]] = []
    for step in steps:
        if step.kind == "user":
            out.append({"intent": step.intent})
        elif step.kind == "action":
            out.append({"action": step.name})
        elif step.kind == "active_loop":
            out.append({"active_loop": step.name})
        elif step.kind == "slot":
            out.append({"slot_was_set": dict(step.slots)})
        elif step.kind == "or":
            out.append({"or": [{"intent": alt.intent} for alt in step.alternatives]})
    return out


# ------------------------------------------------------------------ knowledge

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


def knowledge_fingerprint(project: Project, kb: Path) -> str:
    """What the knowledge model is built from: every file of the knowledge base (qa.json
    included), the extra QA files, the knowledge settings of config.yml and retrieval's own
    defaults and calibration recipe (so that a new Xingkong version with other defaults
    rebuilds; a new recipe only re-calibrates: the reader and encoder are reused)."""
    from dataclasses import asdict

    from retrieval.answerer import KNOWLEDGE_FORMAT
    from retrieval.knowledge_build import CALIBRATION_RECIPE
    from retrieval.reader_training import TrainConfig
    from retrieval.sentence_encoder import SentenceEncoderConfig
    from retrieval.types import IndexConfig

    settings = project.config.knowledge
    files = sorted(p for p in (kb.rglob("*") if kb.is_dir() else [kb]) if p.is_file() and not
                   any(part.startswith(".") for part in p.relative_to(kb).parts))
    contents = [[p.relative_to(kb).as_posix(), _file_digest(p)] for p in files]
    extra = [_file_digest(project.paths.root / p) for p in settings.reader.get("extra_qa", [])]
    knobs = [settings.kb_path, settings.embedder, settings.top_k, settings.read_k,
             settings.hybrid, dict(settings.reader), dict(settings.encoder)]
    defaults = [IndexConfig().to_dict(), asdict(TrainConfig()), SentenceEncoderConfig().to_dict(),
                KNOWLEDGE_FORMAT, CALIBRATION_RECIPE]
    blob = json.dumps([FORMAT_VERSION, contents, extra, knobs, defaults], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def train_knowledge(project: Project, kb: Path, out: Path, *, retrain: bool = False) -> Any:
    """Build the knowledge directory `out` (index, reader, sentence encoder, calibration)
    with retrieval.build_knowledge: the index is updated in place and the models are retrained
    only when what they are built from changed (always with `retrain`). Returns its
    KnowledgeReport."""
    from retrieval.embedder import DEFAULT_MODEL
    from retrieval.knowledge_build import KnowledgeBuild, build_knowledge
    from retrieval.sentence_encoder import SentenceEncoderConfig

    settings = project.config.knowledge
    qa = kb / QA_FILE
    if not qa.is_file():
        raise TrainingError(f"No {QA_FILE} in the knowledge base {kb}: the reader is trained on "
                            "its questions (SQuAD 2.0 format, the title of an article is the "
                            "path of its document without suffix).")
    options = reader_options(project)
    paragraphs = bool(options.pop("paragraphs", False))
    logger.info("train.knowledge.start kb=%s out=%s", kb, out)
    try:
        encoder = SentenceEncoderConfig(**settings.encoder)
    except TypeError as exc:
        valid = ", ".join(SentenceEncoderConfig.__dataclass_fields__)
        raise ConfigError(f"Bad knowledge.encoder option in {settings.at}: {exc}. "
                          f"Available: {valid}.") from exc
    build = KnowledgeBuild(kb_dir=kb, out_dir=out, embedder=settings.embedder or DEFAULT_MODEL,
                           qa_path=qa, index=index_config(settings), reader=options,
                           encoder=encoder, top_k=settings.top_k, read_k=settings.read_k,
                           retrain=retrain, paragraphs=paragraphs)
    return build_knowledge(build)


def reader_options(project: Project) -> dict[str, Any]:
    """config.yml knowledge.reader as train_reader options. Only what config.yml sets: the
    rest (epochs, lr, ...) keeps retrieval's defaults. `extra_qa` paths are relative to the
    project."""
    from retrieval.reader_training import config_fields

    settings = project.config.knowledge
    valid = sorted({*config_fields(), "extra_qa", "paragraphs"} - {"extra_qa_paths"})
    for key in settings.reader:
        if key not in valid:
            hint = difflib.get_close_matches(key, valid, n=1)
            did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigError(f"Unknown reader option 'knowledge.reader.{key}' in "
                              f"{settings.at}.{did_you_mean} Available: {', '.join(valid)}.")
    options = dict(settings.reader)
    if "extra_qa" in options:
        options["extra_qa_paths"] = [str(project.paths.root / p) for p in options.pop("extra_qa")]
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
        before = _read_json(path / DOCUMENTS)
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


def _has_knowledge_model(path: Path) -> bool:
    from retrieval.answerer import KNOWLEDGE_FILE

    return (path / KNOWLEDGE_FILE).is_file()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ConfigError(f"Cannot read {path} for the knowledge model: {exc.strerror}.") from exc
    return digest.hexdigest()


# ----------------------------------------------------------------- generation

def generation_options(settings: GenerationConfig, budget_s: float | None = None) -> Any:
    """(ModelConfig, TrainingConfig, SamplingConfig) of config.yml's generation section; a
    ConfigError names the section when an option is unknown or out of range."""
    from generation.config import (ModelConfig, SamplingConfig, TrainingConfig, check_keys,
                                   config_keys, from_mapping)
    from generation.errors import GenerationConfigError

    model_keys = set(config_keys(ModelConfig))
    train = dict(settings.train)
    budget = budget_s if budget_s is not None else settings.budget_s
    if budget is not None:
        train["budget_s"] = budget
    where = f"generation.train ({settings.at})"
    try:
        check_keys(train, config_keys(ModelConfig) + config_keys(TrainingConfig), where)
        model = from_mapping(ModelConfig, {k: v for k, v in train.items() if k in model_keys},
                             where)
        training = from_mapping(TrainingConfig, {k: v for k, v in train.items()
                                                 if k not in model_keys}, where)
        sampling = from_mapping(SamplingConfig, settings.sampling,
                                f"generation.sampling ({settings.at})")
    except GenerationConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return model, training, sampling


def generation_fingerprint(project: Project, settings: GenerationConfig,
                           budget_s: float | None = None) -> str:
    """What the generator is built from: its model and training settings (with generation's
    defaults filled in), the chitchat-dataset version and the assistant's own texts. Sampling
    settings are not in it: they change the manifest, not the model (refresh_generation)."""
    from dataclasses import asdict
    from importlib.metadata import PackageNotFoundError, version

    from generation.generator import FORMAT_VERSION as GENERATOR_FORMAT

    model, training, _ = generation_options(settings, budget_s)
    try:
        corpus_version = version("chitchat-dataset")
    except PackageNotFoundError:
        corpus_version = None
    pairs, vocabulary = assistant_texts(project)
    run = {k: v for k, v in asdict(training).items() if k not in ("budget_s", "max_steps")}
    blob = json.dumps([FORMAT_VERSION, GENERATOR_FORMAT, settings.model, asdict(model), run,
                       corpus_version, pairs, vocabulary], sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def assistant_texts(project: Project) -> tuple[list[list[str]], list[str]]:
    """The assistant's own texts for the generator: (user example, reply) pairs wherever an
    intent has a response of the same name (chitchat -> utter_chitchat), and, for the
    tokenizer's vocabulary only, every response text and knowledge base document."""
    responses = {name: [str(v["text"]) for v in variations if v.get("text")]
                 for name, variations in project.domain.responses.items()}
    pairs = []
    for i, example in enumerate(project.data.examples):
        replies = responses.get(f"utter_{example.intent}") or []
        if replies:
            pairs.append([example.text, replies[i % len(replies)]])
    vocabulary = [t for texts in responses.values() for t in texts]
    kb = project.paths.root / project.config.knowledge.kb_path
    if kb.is_dir():
        vocabulary += [p.read_text(encoding="utf-8", errors="replace")
                       for p in sorted(kb.rglob("*.md")) + sorted(kb.rglob("*.txt"))]
    return pairs, vocabulary


def refresh_generation(settings: GenerationConfig, out: Path) -> None:
    """Write config.yml's sampling settings into an up-to-date generator's manifest."""
    from generation.generator import read_manifest, write_manifest

    _, _, sampling = generation_options(settings)
    manifest = read_manifest(out)
    if manifest.get("sampling") != asdict_of(sampling):
        write_manifest(out, model=str(manifest.get("model") or "."), sampling=sampling,
                       report=manifest.get("report"), lowercase=bool(manifest.get("lowercase")))
        logger.info("train.generation.sampling_updated out=%s", out)


def asdict_of(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)


def train_generation(project: Project, settings: GenerationConfig, out: Path, *,
                     budget_s: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Build models/generation: the named pretrained model's manifest, or a GPT-2 trained
    from scratch on chitchat-dataset plus the assistant's own small talk."""
    from generation.corpus import chitchat_conversations, pair_conversations
    from generation.errors import GenerationError
    from generation.generator import write_manifest
    from generation.training import train_generator

    model, training, sampling = generation_options(settings, budget_s)
    if settings.model is not None:
        write_manifest(out, model=settings.model, sampling=sampling,
                       report={"pretrained": settings.model})
        logger.info("train.generation.pretrained model=%s", settings.model)
        return {"pretrained": settings.model, "out_dir": str(out)}
    pairs, vocabulary = assistant_texts(project)
    try:
        conversations = chitchat_conversations(training.max_conversations)
        report = train_generator(conversations, out, model=model, training=training,
                                 sampling=sampling, vocabulary_texts=vocabulary,
                                 own_pairs=pair_conversations(pairs, "assistant"),
                                 progress=progress)
    except GenerationError as exc:
        raise TrainingError(f"Training the generator failed: {exc}") from exc
    return report.to_dict()


def latest_model(path: Path) -> Path:
    """The trained model a command reads from `path` (Rasa's -m, default models/): the folder
    itself when it holds a model; otherwise, as Rasa takes the newest model of a directory,
    the most recently trained model folder inside it (`train --fixed-model-name NAME` writes
    models/NAME); `path` itself when there is none."""
    if not path.is_dir() or (path / "fingerprint.json").exists():
        return path
    trained = [p for p in path.iterdir()
               if (p / "fingerprint.json").is_file() and (p / "domain.json").is_file()]
    if not trained:
        return path
    return max(trained, key=lambda p: (p / "fingerprint.json").stat().st_mtime)


def load_policies(project: Project) -> PolicyEnsemble:
    path = project.paths.models / "core" / "policies.json"
    ensemble = PolicyEnsemble(build_policies(project.config.policies))
    if not path.exists():
        raise TrainingError(f"No trained model at {project.paths.models}. Run `xingkong train`.")
    ensemble.load_dict(json.loads(path.read_text()))
    return ensemble


def _story_repr(story: Any) -> Any:
    return [story.name, story.conversation_start, story.wait_for_user_input,
            [[s.kind, s.intent, s.text, list(s.entities), s.name, [list(p) for p in s.slots],
              [[a.kind, a.intent, a.text, list(a.entities)] for a in s.alternatives]]
             for s in (*story.condition, *story.steps)]]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
