"""Typed component parameters: each config.yml pipeline or policy entry becomes its own frozen
dataclass when config.yml is loaded, and a wrong one fails there, naming file, line and key.

Unknown keys (decided per component, as Rasa would treat the project):
  - our own model components (JointIntentEntity, IntentClassifier, LukeSpanExtractor,
    BioTagger) and DucklingEntityExtractor: an error with "did you mean", as before (no Rasa
    project writes other keys for them);
  - the Rasa components and policies we implement (FallbackClassifier, RegexEntityExtractor,
    RulePolicy, MemoizationPolicy, TEDPolicy): a warning with "did you mean", because Rasa
    accepts extra keys and a Rasa project must load unchanged;
  - components served by another one or skipped (tokenizers, featurizers, DIET's training
    options): kept as written and not read.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from bot.errors import ConfigError
from bot.project.ted_params import IGNORED_OPTIONS, TEDConfig, option_names
from bot.project.yaml_reader import plain, where
from nlu.components import MODEL_CONFIGS, RASA_PARAMS
from nlu.duckling import DucklingConfig
from nlu.errors import NLUError

logger = logging.getLogger(__name__)

# Rasa 3's limit on actions in a row before the bot listens; a policy-level key in Rasa.
DEFAULT_MAX_PREDICTIONS = 10


@dataclass(frozen=True, slots=True)
class MemoizationPolicyParams:
    """Rasa's MemoizationPolicy and AugmentedMemoizationPolicy."""

    max_history: int | None = 5  # the turns a memorised story must match; None: all of them
    priority: int = 3  # Rasa's: below rules (6), above TED (1)


@dataclass(frozen=True, slots=True)
class RulePolicyParams:
    """Rasa's RulePolicy, with its core fallback."""

    priority: int = 6  # Rasa's: rules win ties
    core_fallback_threshold: float = 0.3  # Rasa's default
    core_fallback_action_name: str = "action_default_fallback"  # Rasa's default
    enable_fallback_prediction: bool = True  # Rasa's default
    check_for_contradictions: bool = True  # Rasa's default


POLICY_PARAMS: dict[str, type] = {
    "MemoizationPolicy": MemoizationPolicyParams,
    "AugmentedMemoizationPolicy": MemoizationPolicyParams,
    "RulePolicy": RulePolicyParams,
}


# Components whose unknown keys are named in a warning (Rasa accepts extra keys).
WARNED = (*POLICY_PARAMS, "FallbackClassifier", "RegexEntityExtractor")


def component_params(name: str, entry: Any, path: Path | str, language: str = "en") -> Any:
    """The typed params of pipeline or policy entry `entry` (its config.yml mapping, `name`
    included) for component `name`; None for a component whose keys nothing here reads.
    `language` is the project's (Duckling's default locale)."""
    values = _values(name, entry)
    if name in MODEL_CONFIGS:
        return parse_params(MODEL_CONFIGS[name], entry, path, name, values, unknown="error")
    if name in RASA_PARAMS or name in POLICY_PARAMS:  # unknown keys: see unknown_keys
        cls = RASA_PARAMS[name] if name in RASA_PARAMS else POLICY_PARAMS[name]
        return parse_params(cls, entry, path, name, values, unknown="ignore")
    if name == "TEDPolicy":  # its own checks: Rasa's option shapes (batch_size pairs, ...)
        return TEDConfig.from_params(plain(values), where(path, entry),
                                     {key: where(path, entry, key) for key in values})
    if name == "DucklingEntityExtractor":  # its locale defaults to the project's language
        return parse_params(DucklingConfig, entry, path, name, values, unknown="error",
                            fixed={"language": language})
    return None


def unknown_keys(name: str, entry: Any, path: Path | str) -> tuple[str, ...]:
    """One warning per key of `entry` that Rasa's component `name` accepts but nothing here
    reads (a typo, most often; for TEDPolicy also Rasa's options it does not use, with why):
    named at `train`, `data validate` and startup."""
    if name == "TEDPolicy":
        names = option_names()
    elif name in WARNED:
        cls = RASA_PARAMS[name] if name in RASA_PARAMS else POLICY_PARAMS[name]
        names = sorted(f.name for f in dataclasses.fields(cls))
    else:
        return ()
    notes = []
    for key in _values(name, entry):
        at = where(path, entry, key)
        if name == "TEDPolicy" and key in IGNORED_OPTIONS:
            notes.append(f"{name} ({at}): option '{key}' is not used here: "
                         f"{IGNORED_OPTIONS[key]}.")
        elif key not in names:
            notes.append(f"{name} ({at}): unknown key '{key}' is ignored."
                         f"{did_you_mean(str(key), names)} Its keys: {', '.join(names)}.")
    return tuple(notes)


def _values(name: str, entry: Any) -> dict[str, Any]:
    """The entry's params: without `name`, and for a policy without the manager's key."""
    passed = ("name", "max_number_of_predictions") if name.endswith("Policy") else ("name",)
    return {k: v for k, v in entry.items() if k not in passed}


def max_predictions(entry: Any, path: Path | str) -> int | None:
    """The policy entry's max_number_of_predictions (Rasa's key, read by the manager)."""
    value = plain(entry.get("max_number_of_predictions"))
    if value is not None and (type(value) is not int or value < 1):
        raise ConfigError(f"{where(path, entry, 'max_number_of_predictions')}: "
                          f"{entry.get('name')}.max_number_of_predictions must be an integer "
                          f">= 1, got {value!r}.")
    return value


def parse_params(cls: Any, node: Any, path: Path | str, component: str,
                 values: dict[str, Any], *, unknown: Literal["error", "ignore"],
                 fixed: dict[str, Any] | None = None) -> Any:
    """`cls(**values)` with each value checked against the field's type; `node` is the YAML
    mapping the values come from (for lines). `fixed`: fields set by the project, not keys."""
    hints = typing.get_type_hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls) if f.name not in (fixed or {}))
    if unknown == "error":
        check_keys(values, names, path, component, node)
    kwargs = dict(fixed or {})
    for key, raw in values.items():
        if key not in names:
            continue
        value = plain(raw)
        expected = _describe(hints[key])
        try:
            kwargs[key] = _convert(value, hints[key])
        except TypeError:
            raise ConfigError(f"{where(path, node, key)}: {component}.{key} must be {expected}, "
                              f"got {value!r}.") from None
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, NLUError) as exc:  # the dataclass's own range checks
        named = str(exc).startswith(component)
        raise ConfigError(f"{where(path, node)}: {'' if named else component + ': '}{exc}") \
            from exc


def check_keys(section: Any, valid: Sequence[str], path: Path | str, prefix: str,
               node: Any = None) -> None:
    """A ConfigError naming the first key of `section` not in `valid`, its line (in `node`,
    by default `section` itself) and the closest valid key."""
    for key in section:
        if key not in valid:
            at = where(path, section if node is None else node, key)
            raise ConfigError(f"Unknown key '{prefix}.{key}' in {at}."
                              f"{did_you_mean(str(key), valid)} Available: {', '.join(valid)}.")


def did_you_mean(name: str, valid: Sequence[str]) -> str:
    """" Did you mean 'x'?" for the closest of `valid`, or "" when none is close."""
    hint = difflib.get_close_matches(name, valid, n=1)
    return f" Did you mean '{hint[0]}'?" if hint else ""


def _convert(value: Any, hint: Any) -> Any:
    """`value` as type `hint`, or TypeError. Numbers are not read from text and booleans are
    not numbers: `epochs: ten` and `threshold: yes` are errors, not guesses."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg)
            except TypeError:
                continue
        raise TypeError(value)
    if origin is Literal:
        if value in args:
            return value
        raise TypeError(value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise TypeError(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        if len(args) != len(value):
            raise TypeError(value)
        return tuple(_convert(v, a) for v, a in zip(value, args))
    if origin in (dict, typing.Mapping) or hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    raise TypeError(value)


def _describe(hint: Any) -> str:
    """The expected type in words, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(args)} values"
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a text"}.get(hint, "a mapping" if origin in (dict, typing.Mapping) else
                               str(hint))
