"""Errors of the dialogue engine.

    BotError
     +-- ConfigError (ValueError)        a project file is malformed or inconsistent
     |    +-- YamlError                  YAML that does not parse, with file and line
     +-- EventError (ValueError)         an event dict that is not a Rasa event
     +-- TrackerError (ValueError)       a tracker given a non-event, or a dump it cannot rebuild
     +-- StoreError                      a tracker or lock store cannot be reached or used
     |    +-- StaleWriteError            a save refused: the conversation changed since it was
     |                                   read, or the writer's lock was taken over (fencing)
     +-- PayloadError (ValueError)       a request payload that cannot be used (HTTP 400)
     |    +-- TextTooLong                a message text over the length limit (HTTP 413)
     +-- ActionError                     a custom action failed (server down, timeout, crash)
     |    +-- ActionRejected             the action refused to run; the next policy chooses
     +-- TrainingError                   training data that cannot be trained on
     +-- SignatureError                  a webhook whose signature or secret does not check out
     |                                   (HTTP 401, no detail)
     +-- ApiError                        an HTTP API request refused with a status of its own
                                         (401, 403, 404, 406), answered in Rasa's error body
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class BotError(Exception):
    """Base class of the dialogue engine."""


class ConfigError(BotError, ValueError):
    """A project file is malformed or inconsistent. The message names file and key."""


class YamlError(ConfigError):
    """A YAML file that does not parse."""


class EventError(BotError, ValueError):
    """An event dict that is not a valid Rasa event."""


class TrackerError(BotError, ValueError):
    """A tracker was given something that is not an event, or a dump it cannot rebuild."""


class StoreError(BotError):
    """A tracker or lock store cannot be reached or used."""


class StaleWriteError(StoreError):
    """A tracker save refused because the conversation changed since the turn read it, or a
    newer lock grant (a higher fencing token) has written it: the turn must not be
    acknowledged."""


class PayloadError(BotError, ValueError):
    """A request payload that cannot be used. ``field`` names the offending field (None: the
    whole body), ``location`` where it is ("body", "query", "path"); the message never repeats
    the client's values."""

    def __init__(self, message: str, field: str | None = None, location: str = "body") -> None:
        super().__init__(message)
        self.field = field
        self.location = location


class TextTooLong(PayloadError):
    """A message text over the length limit."""


class ActionError(BotError):
    """A custom action failed: server down, timeout, bad response, exception."""


class ActionRejected(ActionError):
    """The action refused to run (Rasa's ActionExecutionRejection)."""


class TrainingError(BotError, ValueError):
    """Training data that cannot be trained on."""


class SignatureError(BotError):
    """A webhook request whose signature, secret token or timestamp is wrong or missing. The
    message is for the log only; the client gets 401 with no detail."""


class ApiError(BotError):
    """An HTTP API request refused with ``status``; bot/serving/server.py answers it with
    Rasa's error body (``reason``, ``message``, ``details``)."""

    def __init__(self, status: int, reason: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
