"""Errors of the dialogue engine.

    BotError
     +-- ConfigError (ValueError)        a project file is malformed or inconsistent
     |    +-- YamlError                  YAML that does not parse, with file and line
     +-- EventError (ValueError)         an event dict that is not a Rasa event
     +-- StoreError                      a tracker or lock store cannot be reached or used
     +-- ActionError                     a custom action failed (server down, timeout, crash)
     |    +-- ActionRejected             the action refused to run; the next policy chooses
     +-- TrainingError                   training data that cannot be trained on
     +-- SignatureError                  a webhook whose signature or secret does not check out
                                         (HTTP 401, no detail)
"""

from __future__ import annotations


class BotError(Exception):
    """Base class of the dialogue engine."""


class ConfigError(BotError, ValueError):
    """A project file is malformed or inconsistent. The message names file and key."""


class YamlError(ConfigError):
    """A YAML file that does not parse."""


class EventError(BotError, ValueError):
    """An event dict that is not a valid Rasa event."""


class StoreError(BotError):
    """A tracker or lock store cannot be reached or used."""


class ActionError(BotError):
    """A custom action failed: server down, timeout, bad response, exception."""


class ActionRejected(ActionError):
    """The action refused to run (Rasa's ActionExecutionRejection)."""


class TrainingError(BotError, ValueError):
    """Training data that cannot be trained on."""


class SignatureError(BotError):
    """A webhook request whose signature, secret token or timestamp is wrong or missing. The
    message is for the log only; the client gets 401 with no detail."""
