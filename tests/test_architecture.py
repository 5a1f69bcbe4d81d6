"""Dependency rules between the packages, checked statically with `ast` on every .py file.

    nlu/, retrieval/  -> nothing from bot, actions, ui (they are libraries the bot uses)
    actions/          -> never bot (custom actions talk to the bot only through rasa_sdk)
    ui/               -> no bot internals (it talks to the server, not to the engine)
    library modules   -> no print() (logging, or click.echo in the CLI)
    every module      -> at most 1000 lines
"""

from __future__ import annotations

import ast
import os
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "nlu", "retrieval", "resolver", "actions", "ui")
NO_PRINT = ("bot", "nlu", "retrieval", "resolver", "actions")
MAX_LINES = 1000
# the engine's internals, which the UI must not reach into
BOT_INTERNALS = (
    "bot.manager", "bot.policies", "bot.tracker", "bot.stores", "bot.events", "bot.executors",
    "bot.forms", "bot.slot_mapping", "bot.runtime_actions", "bot.responses", "bot.training_data",
    "bot.domain", "bot.intent_payload", "bot.yaml_reader", "bot.assistant", "bot.validate",
    "bot.locks", "bot.redis_store",
)
SKIP_DIRS = {".venv", "venv", ".git", "node_modules", "build", "dist", "__pycache__", "models"}


def _skipped(name: str) -> bool:
    return name in SKIP_DIRS or name.startswith(".") or name.endswith(".egg-info")


def _python_files(root: Path) -> list[Path]:
    """.py files under `root`, not descending into virtualenvs, caches or build output."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


def package_files(package: str) -> list[Path]:
    root = REPO / package
    return _python_files(root) if root.is_dir() else []


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), including imports inside functions,
    TYPE_CHECKING blocks and importlib.import_module("...") calls with a literal name."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                found.add(first.value)
    return found


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for path in package_files(package):
        for module in sorted(imported_modules(path)):
            if any(_within(module, f) for f in forbidden):
                out.append(f"{path.relative_to(REPO)} imports {module}")
    return out


# ------------------------------------------------------------------- the checker itself


def test_import_collector_sees_every_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    pkg = tmp_path / "nlu" / "sub"
    pkg.mkdir(parents=True)
    source = pkg / "mod.py"
    source.write_text(
        "import bot.manager\n"
        "from bot import policies\n"
        "from . import sibling\n"
        "from .. import errors\n"
        "def f():\n"
        "    from actions.forms import X\n"
        "    import importlib\n"
        "    return importlib.import_module('ui.app')\n",
        encoding="utf-8",
    )
    found = imported_modules(source)
    assert {"bot.manager", "bot", "bot.policies", "nlu.sub", "nlu.sub.sibling", "nlu",
            "nlu.errors", "actions.forms", "ui.app"} <= found


# ---------------------------------------------------------------------- the rules


def test_there_is_code_to_check() -> None:
    assert package_files("bot") and package_files("nlu") and package_files("actions")


@pytest.mark.parametrize("package", ["nlu", "retrieval"])
def test_libraries_do_not_import_the_bot_actions_or_ui(package: str) -> None:
    assert violations(package, ("bot", "actions", "ui")) == []


def test_actions_never_import_the_bot() -> None:
    assert violations("actions", ("bot",)) == []


def test_ui_does_not_import_bot_internals() -> None:
    assert violations("ui", BOT_INTERNALS) == []


def test_resolver_stands_alone() -> None:
    assert violations("resolver", ("bot", "nlu", "retrieval", "actions", "ui")) == []


def _print_calls(path: Path) -> list[int]:
    return [node.lineno for node in ast.walk(_tree(path))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "print"]


@pytest.mark.parametrize("package", NO_PRINT)
def test_no_print_in_library_code(package: str) -> None:
    found = [f"{path.relative_to(REPO)}:{line}"
             for path in package_files(package) for line in _print_calls(path)]
    assert found == [], "use logging (or click.echo in bot/cli.py), not print()"


def test_print_detector_works(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("x = 1\nprint(x)\nlogger.info('print(x)')\n", encoding="utf-8")
    assert _print_calls(sample) == [2]


def test_no_module_is_over_1000_lines() -> None:
    too_long = []
    for path in _python_files(REPO):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert too_long == []


def test_every_module_parses() -> None:
    for package in PACKAGES:
        for path in package_files(package):
            assert isinstance(_tree(path), ast.Module)
