"""The `xingkong` command: train, run, shell, run actions, data validate.

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


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("httpx", "urllib3", "sanic", "asyncio", "filelock", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _project(root: str) -> Any:
    from bot.assistant import Project
    from bot.config import ProjectPaths

    return Project.load(ProjectPaths.at(Path(root)))


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            from nlu.errors import NLUError
            from resolver import ModelNotFoundError

            if isinstance(exc, (NLUError, ModelNotFoundError)):
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
@click.argument("part", required=False, type=click.Choice(["core", "nlu"]))
def train(root: str, force: bool, part: str | None) -> None:
    """Train NLU and dialogue policies; parts whose data did not change are skipped."""
    from bot.assistant import train as train_project

    project = _project(root)
    click.echo(f"Training {project.paths.root} -> {project.paths.models}")
    report = train_project(project, force=force, progress=sys.stderr.isatty(),
                           core=part in (None, "core"), nlu=part in (None, "nlu"))
    for warning in report.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    if not report.core_trained and not report.nlu_trained:
        click.echo("Nothing changed since the last training: model is up to date.")
    else:
        parts = [p for p, done in (("core", report.core_trained), ("nlu", report.nlu_trained)) if done]
        click.echo(f"Trained {', '.join(parts)} in {report.seconds:.1f}s.")


@main.group(invoke_without_command=True)
@click.option("--project", "root", default=".", show_default=True)
@click.option("--port", default=5005, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--enable-api", is_flag=True, help="Serve the HTTP API besides the channels.")
@click.option("--auth-token", default=None, help="Token the HTTP API requires (?token=...).")
@click.option("--endpoints", default=None, help="endpoints.yml path.")
@click.option("--credentials", default=None, help="credentials.yml path.")
@click.option("--ui-port", default=None, type=int,
              help="Also start the Gradio UI on this port (needs --enable-api).")
@click.pass_context
def run(ctx: click.Context, root: str, port: int, host: str, enable_api: bool,
        auth_token: str | None, endpoints: str | None, credentials: str | None,
        ui_port: int | None) -> None:
    """Serve the assistant over HTTP (`xingkong run actions` serves the custom actions)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bot.config import load_credentials
    from bot.runtime import build_runtime
    from bot.server import create_app

    project = _project(root)
    runtime = build_runtime(project, Path(endpoints) if endpoints else None)
    creds = load_credentials(Path(credentials) if credentials else project.paths.credentials)
    app = create_app(runtime.manager, auth_token=auth_token, enable_api=enable_api,
                     credentials=creds, model_info=runtime.model_info)
    click.echo(f"Assistant server: http://{host}:{port}  (REST: POST /webhooks/rest/webhook)")
    ui = _start_ui(host, port, ui_port, auth_token, enable_api) if ui_port else None
    try:
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
    os.execve(sys.executable, [sys.executable, "-m", "rasa_sdk", "--actions", package,
                               "--port", str(port)], env)


@main.command()
@click.option("--project", "root", default=".", show_default=True)
@click.option("--sender", default="shell", show_default=True)
def shell(root: str, sender: str) -> None:
    """Chat with the assistant in the terminal (Ctrl-D or /stop to quit)."""
    from bot.manager import UserMessage
    from bot.runtime import build_runtime

    runtime = build_runtime(_project(root))

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

    asyncio.run(loop())


@main.group()
def test() -> None:
    """Evaluate trained models on held-out data."""


@test.command("nlu")
@click.option("--project", "root", default=".", show_default=True)
@click.option("--nlu", "nlu_path", default="tests/nlu_test.yml", show_default=True,
              help="Held-out NLU examples (Rasa YAML or JSON).")
@click.option("--out", default="results", show_default=True, help="Report folder.")
@click.option("--cross-validation", is_flag=True, help="Train and test on N folds of data/.")
@click.option("--folds", default=5, show_default=True, type=int)
def test_nlu(root: str, nlu_path: str, out: str, cross_validation: bool, folds: int) -> None:
    """Intent accuracy, macro-F1, ECE, entity P/R/F1; Rasa's report files in --out."""
    from bot.nlu_eval import cross_validate, evaluate_saved

    project = _project(root)
    if cross_validation:
        summary = cross_validate(project, folds, Path(out))
    else:
        summary = evaluate_saved(project, Path(root) / nlu_path, Path(out))
    click.echo(json.dumps(summary, indent=1))


@main.group()
def data() -> None:
    """Check training data."""


@data.command("validate")
@click.option("--project", "root", default=".", show_default=True)
@click.option("--max-history", default=5, show_default=True, type=int)
@click.option("--fail-on-warnings", is_flag=True)
def data_validate(root: str, max_history: int, fail_on_warnings: bool) -> None:
    """Check domain, NLU data, stories and rules together; exit 1 on errors."""
    from bot.config import ProjectPaths
    from bot.validate import validate_project

    findings = validate_project(ProjectPaths.at(Path(root)), max_history=max_history)
    for finding in findings:
        click.echo(str(finding), err=finding.level == "error")
    errors = sum(1 for f in findings if f.level == "error")
    warnings = len(findings) - errors
    click.echo(f"{errors} error(s), {warnings} warning(s).")
    if errors or (fail_on_warnings and warnings):
        sys.exit(1)
