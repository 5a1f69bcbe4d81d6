"""`xingkong train`: train the parts of a project whose fingerprint changed into its
models/ folder (bot/training/model_dir.py draws the layout).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time

from bot.project.config import skipped_components
from bot.project.project import Project
from bot.training.background import record_fingerprints, start_knowledge_build
from bot.training.core import train_core
from bot.training.fingerprints import fingerprints, generation_fingerprint, knowledge_fingerprint
from bot.training.generation import refresh_generation, train_generation
from bot.training.knowledge import has_knowledge_model, knowledge_base, train_knowledge
from bot.training.model_dir import GENERATION_DIR, KNOWLEDGE_DIR, read_json
from bot.training.nlu import train_nlu, trains_nlu_models
from bot.training.parallel import nlu_threads, on_idle_cores, run_side_job
from bot.training.report import StageTime, TrainReport, clock

logger = logging.getLogger(__name__)


def train(project: Project, *, force: bool = False, progress: bool = True,
          nlu: bool = True, core: bool = True, knowledge: bool = True,
          generation: bool = True, budget_s: float | None = None,
          knowledge_behind: bool = False) -> TrainReport:
    """Train the parts asked for whose fingerprint changed (all of them with `force`). The
    knowledge part runs only when the project has a knowledge base folder, the generation
    part only when config.yml has a generation: section (`budget_s` overrides its budget and
    retrains it). With `knowledge_behind` the knowledge build runs in a background process
    that outlives this call (bot/training/background.py; `report.knowledge_behind`)."""
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
    old = read_json(out / "fingerprint.json")
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
                                       or not has_knowledge_model(target))
    nlu_models = train_nlu_now and trains_nlu_models(project)
    behind = None
    if train_kb_now and knowledge_behind:
        behind = start_knowledge_build(project.paths, force=force)
        report.knowledge_behind = True
        train_kb_now = False
    parallel = train_kb_now and (nlu_models or train_core_now) and (os.cpu_count() or 1) >= 2
    # Two jobs side by side, one core each: the knowledge build in a spawned process, and the
    # NLU here, then the small talk (a failure there waits for the knowledge build, so that
    # is kept). The policies train in that process after the knowledge, and the NLU takes
    # the cores the other job leaves free (nlu_threads).
    core_beside = parallel and nlu_models and train_core_now
    pool = multiprocessing.get_context("spawn").Pool(1) if parallel else None
    try:
        side_job = None if pool is None else pool.apply_async(
            run_side_job, (project.paths, kb, target, force, core_beside, progress, origin))
        if train_core_now and not core_beside:
            began = clock()
            report.warnings += train_core(project, out / "core", progress=progress)
            report.core_trained = True
            report.stages["core"] = StageTime.since(origin, began)
        if train_nlu_now:
            began = clock()
            # one core beside the other job until it is done (every core beside a niced
            # background build served 100 s sooner but finished the knowledge 220 s later:
            # the second thread cost the NLU 270 CPU s, session 20)
            beside = side_job.ready if side_job is not None else None if behind is None \
                else lambda: behind.poll() is not None
            report.nlu_report = train_nlu(
                project, out / "nlu", progress=progress,
                threads=None if beside is None else nlu_threads(beside))
            report.nlu_trained = bool(report.nlu_report)
            report.stages["nlu"] = StageTime.since(origin, began)
        failed: Exception | None = None
        try:  # small talk needs neither the knowledge nor the policies: here, beside them
            small_talk = out / GENERATION_DIR
            if settings is not None and "generation" in wanted and (
                    force or budget_s is not None or old.get("generation") != wanted["generation"]
                    or not (small_talk / "generation.json").is_file()):
                began = clock()
                report.generation_report = train_generation(
                    project, settings, small_talk, budget_s=budget_s, progress=progress)
                report.generation_trained = True
                report.stages["generation"] = StageTime.since(origin, began)
            elif settings is not None and "generation" in wanted:
                refresh_generation(settings, small_talk)
        except Exception as exc:  # noqa: BLE001 - raised below, once the knowledge is kept
            failed = exc
        if side_job is not None:
            side = side_job.get()
            report.knowledge_report = side.knowledge_report
            report.warnings += side.core_problems
            report.core_trained = report.core_trained or core_beside
            report.stages |= side.stages
            report.knowledge_trained = True
        elif train_kb_now and kb is not None:
            began = clock()
            with on_idle_cores():
                report.knowledge_report = train_knowledge(project, kb, target, retrain=force)
            report.stages["knowledge"] = StageTime.since(origin, began)
            report.knowledge_trained = True
        if failed is not None:
            raise failed
    finally:
        if pool is not None:
            pool.terminate()  # done by now, or the NLU failed: no reader left training
            pool.join()
    asked = {"core": core, "nlu": nlu, "knowledge": knowledge and not report.knowledge_behind,
             "generation": generation}
    record_fingerprints(out, {k: v for k, v in wanted.items() if asked[k]})
    report.seconds = time.perf_counter() - started
    report.stages = dict(sorted(report.stages.items(), key=lambda item: item[1].start_s))
    for name, stage in report.stages.items():
        logger.info("train.stage name=%s start_s=%.1f wall_s=%.1f cpu_s=%.1f", name,
                    stage.start_s, stage.wall_s, stage.cpu_s)
    return report
