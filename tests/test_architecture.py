"""Dependency rules between the packages, checked statically with `ast` on every .py file.

    nlu/, retrieval/  -> nothing from bot, actions, ui (they are libraries the bot uses)
    generation/       -> nothing from bot, actions, ui, nlu (a library; it may use retrieval's
                         sentence embedder and the resolver)
    actions/          -> never bot (custom actions talk to the bot only through rasa_sdk)
    ui/               -> no bot internals (it talks to the server, not to the engine)
    bot/ layers       -> each imports only the layers below it (BOT_LAYERS, bottom first)
    every module      -> no import cycles (no two modules import each other, directly or not)
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
PACKAGES = ("bot", "nlu", "retrieval", "generation", "resolver", "actions", "ui")
NO_PRINT = ("bot", "nlu", "retrieval", "generation", "resolver", "actions")
MAX_LINES = 1000
# the engine's internals, which the UI must not reach into
BOT_INTERNALS = (
    "bot.manager", "bot.policies", "bot.state", "bot.storage", "bot.runtime",
    "bot.project.training_data", "bot.project.domain", "bot.project.yaml_reader",
    "bot.project.project", "bot.training", "bot.validate",
)
# bot/'s layers, bottom first: a module imports only from its own layer or the ones below.
# The README's picture of bot/ shows the same order.
BOT_LAYERS = (
    ("bot.errors",),
    ("bot.project",),
    ("bot.state",),
    ("bot.storage",),
    ("bot.policies",),
    ("bot.runtime",),
    ("bot.manager",),
    ("bot.serving",),
    ("bot.training",),
    ("bot.wiring", "bot.validate", "bot.nlu_eval", "bot.kb_through_nlu",
     "bot.story_eval", "bot.story_pass", "bot.story_report", "bot.story_runner",
     "bot.visualize", "bot.export", "bot.project_template", "bot.cli", "bot.__main__"),
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


def bot_layer(module: str) -> int | None:
    """Index in BOT_LAYERS of the layer `module` (or a name inside it) belongs to."""
    for index, layer in enumerate(BOT_LAYERS):
        if any(_within(module, prefix) for prefix in layer):
            return index
    return None


def layer_violations() -> list[str]:
    out = []
    for path in package_files("bot"):
        name = _module_name(path)
        if name == "bot":
            continue
        own = bot_layer(name)
        if own is None:
            out.append(f"{path.relative_to(REPO)} is in no layer of BOT_LAYERS")
            continue
        for module in sorted(imported_modules(path)):
            if _within(module, "bot") and module != "bot" and (bot_layer(module) or 0) > own:
                out.append(f"{path.relative_to(REPO)} imports {module}, a layer above it")
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the repository's modules it imports (a name inside a module counts as it)."""
    modules = {_module_name(path): path for path in _python_files(REPO)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_modules(path):
            parts = imported.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                targets.add(".".join(parts))
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


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


def test_cycle_finder_finds_pairs_and_rings() -> None:
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(import_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


# ---------------------------------------------------------------------- the rules


def test_there_is_code_to_check() -> None:
    assert package_files("bot") and package_files("nlu") and package_files("actions") \
        and package_files("generation")


@pytest.mark.parametrize("package", ["nlu", "retrieval"])
def test_libraries_do_not_import_the_bot_actions_or_ui(package: str) -> None:
    assert violations(package, ("bot", "actions", "ui")) == []


def test_generation_is_a_leaf_library() -> None:
    assert violations("generation", ("bot", "actions", "ui", "nlu")) == []


def test_retrieval_and_nlu_do_not_import_generation() -> None:
    assert violations("retrieval", ("generation",)) == violations("nlu", ("generation",)) == []


def test_actions_never_import_the_bot() -> None:
    assert violations("actions", ("bot",)) == []


def test_ui_does_not_import_bot_internals() -> None:
    assert violations("ui", BOT_INTERNALS) == []


def test_bot_layers_import_only_layers_below() -> None:
    assert layer_violations() == []


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph()) == [], "move the shared piece down a layer"


def test_resolver_stands_alone() -> None:
    assert violations("resolver", ("bot", "nlu", "retrieval", "generation", "actions",
                                   "ui")) == []


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
