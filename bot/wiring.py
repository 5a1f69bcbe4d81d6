"""Wire a trained project into a running DialogueManager: NLU, stores, action executor,
and the services the channels share.

Stores come from endpoints.yml as in Rasa: ``tracker_store`` (in_memory, sql, redis) and
``lock_store`` (in_memory, redis). A store that cannot be reached stops startup with a
StoreError naming it. With a Redis lock store, the channels' memory of platform retries lives
in the same Redis, so a retry that reaches another server process is still recognised.

Several worker processes (``xingkong run --workers N``) each build their own app with
``app_from_environment``: uvicorn imports it in every worker, and the options come from the
``XINGKONG_RUN`` environment variable the CLI sets (JSON). ``check_shared_stores`` refuses
N > 1 unless every worker sees the same conversations and locks."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.project.project import Project
from bot.training.core import load_policies
from bot.project.config import Endpoints, env_value, load_endpoints, reveal, skipped_components
from bot.errors import ConfigError
from bot.runtime.executors import ActionExecutor, HttpExecutor, InProcessExecutor
from bot.runtime.fallback_chain import FallbackChain
from bot.storage.locks import InMemoryLockStore, LockStore
from bot.manager import DialogueManager, Parser
from bot.storage.stores import InMemoryTrackerStore, TrackerStore
from bot.serving.channels import ChannelServices, RedisSeenIds
from bot.serving.memory import release_freed_memory

logger = logging.getLogger(__name__)


RUN_OPTIONS_ENV = "XINGKONG_RUN"


@dataclass(slots=True)
class Runtime:
    project: Project
    manager: DialogueManager
    model_info: dict[str, Any]
    channel_services: ChannelServices = field(default_factory=ChannelServices)


def build_runtime(project: Project, endpoints_path: Path | None = None,
                  actions_package: str | None = "actions") -> Runtime:
    started = time.perf_counter()
    release_freed_memory()  # before the models load: a server's RSS stays near its start
    endpoints = load_endpoints(endpoints_path if endpoints_path is not None
                               else project.paths.endpoints)
    for note in skipped_components(project.config, bool(project.data.lookups)):
        logger.warning("runtime.component_skipped %s", note)
    policies = load_policies(project)
    parser = load_parser(project)
    store = make_tracker_store(endpoints, project)
    lock_store = make_lock_store(endpoints)
    executor = make_executor(endpoints, project, actions_package)
    manager = DialogueManager(project.domain, policies, parser=parser, store=store,
                              executor=executor,
                              max_predictions=project.config.max_number_of_predictions,
                              lock_store=lock_store, fallback=load_fallback(project))
    logger.info("runtime.ready seconds=%.2f nlu=%s executor=%s store=%s lock_store=%s",
                time.perf_counter() - started, parser is not None,
                type(executor).__name__ if executor else None, type(store).__name__,
                type(lock_store).__name__)
    info = {"model_file": str(project.paths.models), "model_id": project.config.assistant_id}
    return Runtime(project, manager, info, make_channel_services(lock_store))


def make_channel_services(lock_store: LockStore) -> ChannelServices:
    """The channels' outbound client, and their retry memory: in the lock store's Redis when
    it has one (shared by every server), else in this process."""
    if isinstance(lock_store, InMemoryLockStore):
        return ChannelServices()  # and the redis package is never imported
    from bot.storage.redis_store import RedisLockStore, seen_ids_client

    if not isinstance(lock_store, RedisLockStore):
        return ChannelServices()
    prefix = lock_store.prefix.removesuffix("lock:") + "seen:"
    return ChannelServices(seen=RedisSeenIds(seen_ids_client(lock_store), prefix))


def check_shared_stores(endpoints: Endpoints, workers: int, where: str) -> None:
    """ConfigError unless ``workers`` processes would share conversations and locks: a
    tracker store of type redis or sql (not an in-memory SQLite) and a redis lock store."""
    if workers <= 1:
        return
    tracker = endpoints.tracker_store
    tracker_kind = (tracker.type or "in_memory").lower() if tracker is not None else "in_memory"
    lock = endpoints.lock_store
    lock_kind = (lock.type or "in_memory").lower() if lock is not None else "in_memory"
    url = str(reveal(tracker.url) or "") if tracker is not None else ""
    memory_sql = tracker_kind == "sql" and tracker is not None and (
        url.rstrip("/") in ("sqlite:", "sqlite:/") or url.endswith(":memory:") or (
            not url and tracker.params.get("dialect", "sqlite") == "sqlite"
            and tracker.params.get("db") == ":memory:"))
    shared_tracker = tracker_kind in ("redis", "sql") and not memory_sql
    if shared_tracker and lock_kind == "redis":
        return
    raise ConfigError(
        f"--workers {workers} needs conversations and locks that every worker shares, but "
        f"{where} has tracker_store: {tracker_kind}{' (in-memory SQLite)' if memory_sql else ''}"
        f" and lock_store: {lock_kind}. Each worker would keep its own copy and answers would "
        "get lost. Add to endpoints.yml:\n"
        "  tracker_store: {type: redis, url: localhost, port: 6379}\n"
        "  lock_store: {type: redis, url: localhost, port: 6379}\n"
        "(tracker_store may also be sql, on a database every worker reaches), or run with "
        "--workers 1.")


def app_from_environment() -> Any:
    """The server app of one worker process, from the options the CLI put in XINGKONG_RUN
    (uvicorn's factory for ``--workers N``)."""
    from bot.project.config import ProjectPaths, load_credentials
    from bot.serving.server import create_app

    raw = env_value(RUN_OPTIONS_ENV)
    if raw is None:
        raise ConfigError(f"{RUN_OPTIONS_ENV} is not set: start workers with `xingkong run "
                          "--workers N`, which sets it.")
    options = json.loads(raw)
    project = Project.load(ProjectPaths.at(
        Path(options["project"]), domain=Path(options["domain"]), config=Path(options["config"]),
        data=tuple(Path(d) for d in options["data"]), models=Path(options["models"])))
    endpoints = Path(options["endpoints"]) if options.get("endpoints") else None
    runtime = build_runtime(project, endpoints)
    warm_up(runtime)
    credentials = load_credentials(Path(options["credentials"]) if options.get("credentials")
                                   else project.paths.credentials)
    return create_app(runtime.manager, auth_token=options.get("auth_token"),
                      enable_api=bool(options.get("enable_api")), credentials=credentials,
                      model_info=runtime.model_info, cors_origins=tuple(options.get("cors", ())),
                      channel_services=runtime.channel_services,
                      response_timeout_s=float(options.get("response_timeout", 120.0)))


def warm_up(runtime: Runtime) -> None:
    """A server's in-process actions load their models now, in the background
    (InProcessExecutor.warm_up); an action server loads its own."""
    warm = getattr(runtime.manager.executor, "warm_up", None)
    if callable(warm):
        warm()


def load_fallback(project: Project) -> FallbackChain | None:
    """config.yml's `fallback:` chain (bot/runtime/fallback_chain.py); None without one."""
    section = project.config.sections.get("fallback")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{project.config.source}: 'fallback' must be a mapping with keys "
                          "attempts, give_up, below, keep, declines.")
    chain = FallbackChain.from_config(section, f"{project.config.source}: fallback")
    return chain.with_task_words((e.text, e.intent) for e in project.data.examples if e.intent)


def load_parser(project: Project) -> Parser | None:
    nlu_dir = project.paths.models / "nlu"
    if not (nlu_dir / "pipeline.json").exists():
        logger.warning("runtime.nlu.missing path=%s effect=only_/intent_payloads_understood", nlu_dir)
        return None
    from nlu.interpreter import load_interpreter

    pipeline = project.config.pipeline_dicts()
    interpreter = load_interpreter(nlu_dir, pipeline, project.config.language)

    async def parse(text: str, context: Any = None) -> dict[str, Any]:
        return await interpreter.parse_async(text, context)

    return parse


def make_tracker_store(endpoints: Endpoints, project: Project) -> TrackerStore:
    spec = endpoints.tracker_store
    defaults = project.domain.slot_defaults()
    if spec is None or (spec.type or "").lower() in ("", "in_memory", "inmemory"):
        return InMemoryTrackerStore(defaults)
    kind = (spec.type or "").lower()
    if kind == "sql":
        url = spec.url or _sql_url(spec.params)
        from bot.storage.sql_store import SQLTrackerStore  # SQLAlchemy only when configured

        return SQLTrackerStore(url, slot_defaults=defaults)
    if kind == "redis":
        from bot.storage.redis_store import tracker_store_from_endpoint

        return tracker_store_from_endpoint(spec, slot_defaults=defaults)
    raise ConfigError(f"endpoints.yml tracker_store: unknown type '{spec.type}'. "
                      "Valid: in_memory, sql, redis.")


def make_lock_store(endpoints: Endpoints) -> LockStore:
    spec = endpoints.lock_store
    kind = (spec.type or "").lower() if spec is not None else ""
    if spec is None or kind in ("", "in_memory", "inmemory"):
        return InMemoryLockStore()
    if kind == "redis":
        from bot.storage.redis_store import lock_store_from_endpoint

        return lock_store_from_endpoint(spec)
    raise ConfigError(f"endpoints.yml lock_store: unknown type '{spec.type}'. "
                      "Valid: in_memory, redis.")


def make_executor(endpoints: Endpoints, project: Project,
                  actions_package: str | None) -> ActionExecutor | None:
    spec = endpoints.action_endpoint
    if spec is not None and spec.url:
        timeout = float(spec.params.get("timeout", 10))
        token = reveal(spec.token) if spec.token is not None else None
        return HttpExecutor(spec.url, timeout_s=timeout, token=token)
    if not project.domain.custom_actions:
        return None
    if actions_package is None:
        return None
    package_dir = project.paths.root / actions_package.replace(".", "/")
    if not package_dir.exists() and not (package_dir.with_suffix(".py")).exists():
        logger.warning("runtime.actions.missing package=%s", actions_package)
        return None
    import sys

    root = str(project.paths.root)
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)  # the project's package wins over an installed one of that name
    top = actions_package.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None and not str(getattr(loaded, "__file__", "") or "").startswith(root):
        # another project's package of the same name (the demo's `actions` is installed)
        for name in [m for m in sys.modules if m == top or m.startswith(f"{top}.")]:
            del sys.modules[name]
    return InProcessExecutor(actions_package)


def _sql_url(params: Any) -> str:
    dialect = params.get("dialect", "sqlite")
    db = params.get("db", "rasa.db")
    if dialect == "sqlite":
        return f"sqlite:///{db}"
    user = params.get("username", "")
    password = reveal(params.get("password", ""))
    host = params.get("host", "localhost")
    port = params.get("port")
    auth = f"{user}:{password}@" if user else ""
    return f"{dialect}://{auth}{host}{':' + str(port) if port else ''}/{db}"
