"""ruamel.yaml's old module functions, for custom actions written for Rasa 3.6.

Rasa 3.6 pins ruamel.yaml < 0.17.22, where `ruamel.yaml.safe_load(stream)` and friends still
work; from 0.18 they raise. rasa-sdk 3.21 itself needs ruamel.yaml >= 0.19.1, so pinning the old
version is not an option. `install()` puts equivalents built on the new API back in their place,
only where they were removed. The action executors call it right before importing a user's
actions package (in-process, and in `xingkong run actions`); Xingkong's own code never uses them.
"""

from __future__ import annotations

import io
import logging
from typing import Any

logger = logging.getLogger(__name__)

_MARK = "_xingkong_compat"


def _yaml(typ: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ=typ, pure=True) if typ == "safe" else YAML(typ=typ)


def safe_load(stream: Any, version: Any = None) -> Any:
    """The first document of `stream` (text, bytes or a file) with basic YAML tags only."""
    yaml = _yaml("safe")
    if version is not None:
        yaml.version = version
    return yaml.load(stream)


def safe_load_all(stream: Any, version: Any = None) -> Any:
    yaml = _yaml("safe")
    if version is not None:
        yaml.version = version
    return list(yaml.load_all(stream))


def round_trip_load(stream: Any, version: Any = None, preserve_quotes: Any = None) -> Any:
    yaml = _yaml("rt")
    if preserve_quotes is not None:
        yaml.preserve_quotes = preserve_quotes
    if version is not None:
        yaml.version = version
    return yaml.load(stream)


def _dumper(typ: str) -> Any:
    def dump(data: Any, stream: Any = None, **options: Any) -> str | None:
        yaml = _yaml(typ)
        for key in ("default_flow_style", "width", "allow_unicode", "explicit_start",
                    "explicit_end", "version"):
            if key in options:
                setattr(yaml, key, options[key])
        if "indent" in options:
            yaml.indent(mapping=options["indent"], sequence=options["indent"], offset=0)
        if stream is not None:
            yaml.dump(data, stream)
            return None
        out = io.StringIO()
        yaml.dump(data, out)
        return out.getvalue()
    return dump


# The old `load` without a Loader was unsafe and warned; a safe one serves every use in actions.
REPLACEMENTS = {
    "safe_load": safe_load,
    "load": safe_load,
    "safe_load_all": safe_load_all,
    "load_all": safe_load_all,
    "round_trip_load": round_trip_load,
    "safe_dump": _dumper("safe"),
    "dump": _dumper("safe"),
    "round_trip_dump": _dumper("rt"),
}


def install() -> list[str]:
    """Put back the removed functions; returns the names that were replaced."""
    import ruamel.yaml
    import ruamel.yaml.main

    if getattr(ruamel.yaml, _MARK, False):
        return []
    replaced = []
    for name, function in REPLACEMENTS.items():
        if _removed(getattr(ruamel.yaml, name, None)):
            setattr(ruamel.yaml, name, function)
            setattr(ruamel.yaml.main, name, function)
            replaced.append(name)
    setattr(ruamel.yaml, _MARK, True)
    if replaced:
        logger.debug("actions.ruamel_compat replaced=%s", ",".join(replaced))
    return replaced


def _removed(function: Any) -> bool:
    """True when calling the old function only raises its "has been removed" error."""
    if function is None:
        return True
    try:
        if "dump" in getattr(function, "__name__", ""):
            function({"a": 1})
        else:
            function("a: 1")
    except AttributeError as exc:
        return "removed" in str(exc)
    except Exception:  # noqa: BLE001 - anything else: it exists and works its own way
        return False
    return False
