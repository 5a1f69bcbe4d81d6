"""Read project YAML keeping line numbers, so every error can name file and line.

bot/project/config.py owns configuration; this module is only the parser they all share (domain,
training data, config), because each of them must point at the offending line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from bot.errors import YamlError

MAX_YAML_BYTES = 50 * 1024 * 1024


def read_yaml(path: Path) -> Any:
    """Parse a YAML 1.2 file (Rasa's dialect: `yes` stays a string). Keeps line info."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlError(f"Cannot read {path}: {exc.strerror}.") from exc
    if size > MAX_YAML_BYTES:
        raise YamlError(f"{path} is {size} bytes; the limit is {MAX_YAML_BYTES}. Split the file.")
    text = path.read_text(encoding="utf-8", errors="replace")
    return parse_yaml(text, str(path))


def parse_yaml(text: str, name: str = "<string>") -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(f"{name}{line}: {problem}. Fix the YAML syntax there.") from exc
    except YAMLError as exc:
        raise YamlError(f"{name}: invalid YAML ({exc}).") from exc


def line_of(node: Any, key: Any = None) -> int | None:
    """1-based line of `node` (or of `node[key]`), when the parser recorded it."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(node, list):
            return int(lc.item(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return int(lc.line) + 1


def where(path: Path | str, node: Any = None, key: Any = None) -> str:
    """'file:line' for messages."""
    line = line_of(node, key) if node is not None else None
    return f"{path}:{line}" if line is not None else str(path)


def plain(node: Any) -> Any:
    """Ruamel containers and scalars to plain Python (dict, list, str, int, float, bool)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
