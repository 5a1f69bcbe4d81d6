"""Each package's public API: a sorted `__all__` whose names all exist.

Required: nlu, resolver, actions, bot.policies, and retrieval once it is a package. Any other
package __init__ (bot itself, bot.serving.channels, ...) is checked when it defines __all__.

"Sorted" accepts the two common conventions: plain `sorted()` order, or the isort style that
ruff's RUF022 writes (SCREAMING_CASE constants, then CamelCase classes, then the rest).
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "nlu", "retrieval", "resolver", "actions", "ui")
REQUIRED = ("nlu", "resolver", "actions", "bot.policies")
OPTIONAL_REQUIRED = ("retrieval",)  # required once the package exists


def _package_inits() -> list[str]:
    names = []
    for top in PACKAGES:
        for folder, dirs, files in os.walk(REPO / top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            if "__init__.py" in files:
                names.append(".".join(Path(folder).relative_to(REPO).parts))
    return names


def _init_path(package: str) -> Path:
    return REPO.joinpath(*package.split(".")) / "__init__.py"


def _static_all(package: str) -> list[str] | None:
    """__all__ as written in the package's __init__.py (None when it has none)."""
    tree = ast.parse(_init_path(package).read_text(encoding="utf-8"))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return list(ast.literal_eval(node.value))
    return None


def _checked_packages() -> list[str]:
    found = set(REQUIRED)
    found.update(p for p in OPTIONAL_REQUIRED if _init_path(p).exists())
    found.update(p for p in _package_inits() if _static_all(p) is not None)
    return sorted(found)


def _natural(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _isort_key(name: str) -> tuple[int, list[object]]:
    if name.isupper() and len(name) > 1:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    return group, _natural(name)


def is_sorted(names: list[str]) -> bool:
    return names == sorted(names) or names == sorted(names, key=_isort_key)


def test_sort_conventions() -> None:
    assert is_sorted(["Alpha", "Beta", "alpha"])
    assert is_sorted(["PACKAGED_MODELS", "ModelNotFoundError", "resolve_model"])
    assert not is_sorted(["beta", "alpha"])
    assert not is_sorted(["resolve_model", "ModelNotFoundError"])


def test_required_packages_exist() -> None:
    for package in REQUIRED:
        assert _init_path(package).is_file(), f"{package} is not a package"


@pytest.mark.parametrize("package", _checked_packages())
def test_all_is_sorted_unique_and_complete(package: str) -> None:
    declared = _static_all(package)
    assert declared is not None, f"{package}/__init__.py defines no __all__"
    assert declared, f"{package}.__all__ is empty"
    assert all(isinstance(n, str) for n in declared)
    assert len(declared) == len(set(declared)), f"{package}.__all__ has duplicates"
    assert is_sorted(declared), f"{package}.__all__ is not sorted: {declared}"
    module = importlib.import_module(package)
    assert list(module.__all__) == declared
    missing = [name for name in declared if not hasattr(module, name)]
    assert missing == [], f"{package}.__all__ names what it does not define: {missing}"

