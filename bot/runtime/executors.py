"""Custom action executors behind one interface: in-process (rasa_sdk) and HTTP (action server).

Both take a Rasa action-server call ({next_action, sender_id, tracker, domain, version}) and
return {"events": [...], "responses": [...]}; a refusal raises ActionRejected, anything else
that goes wrong raises ActionError naming the action.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
from typing import Any, Protocol

from bot.errors import ActionError, ActionRejected, ConfigError

logger = logging.getLogger(__name__)

PROTOCOL_VERSION = "3.6.0"  # the Rasa version we speak for (rasa_sdk checks compatibility)


class ActionExecutor(Protocol):
    def names(self) -> set[str] | None:
        """Actions this executor knows, or None when it cannot tell (a remote server)."""
        ...

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]: ...

    async def close(self) -> None: ...


class InProcessExecutor:
    """Runs rasa_sdk actions of a Python package in this process (the embedded default)."""

    def __init__(self, package: str = "actions", timeout_s: float = 30.0) -> None:
        from rasa_sdk.executor import ActionExecutor as SdkExecutor

        self.package = package
        self.timeout_s = timeout_s
        self._executor = SdkExecutor()
        imported = import_actions(package)
        try:
            self._executor.register_package(package)
        except (ImportError, SystemExit) as exc:  # rasa_sdk exits on what import_actions let by
            raise ConfigError(f"Cannot register the actions of package '{package}' with rasa_sdk "
                              f"({type(exc).__name__}: {exc}).") from exc
        self._keep_own_actions(imported)

    def warm_up(self) -> threading.Thread | None:
        """Call the package's own `warm_up()`, when it defines one, in a background thread:
        it loads the models its actions use, so the first guest does not wait for them (the
        demo's knowledge answerer takes about 6 s). None when the package has none."""
        hook = getattr(sys.modules.get(self.package), "warm_up", None)
        if not callable(hook):
            return None

        def warm() -> None:
            try:
                hook()
            except Exception as exc:  # noqa: BLE001 - the actions load lazily all the same
                logger.warning("actions.warm_up.failed package=%s error=%s: %s", self.package,
                               type(exc).__name__, exc)

        thread = threading.Thread(target=warm, name=f"{self.package}-warm-up", daemon=True)
        thread.start()
        return thread

    def _keep_own_actions(self, imported: set[str]) -> None:
        """rasa_sdk registers every Action subclass of the process. As on an action server,
        where only the package is loaded, the actions kept are those of the package and of
        the modules importing it brought in (`imported`); other projects' actions loaded in
        this process, and stale copies of reloaded modules, are left out."""
        import inspect
        import sys

        from rasa_sdk import Action
        from rasa_sdk.utils import all_subclasses

        prefix = f"{self.package}."
        mine, brought_in = [], []
        for action in all_subclasses(Action):
            module = action.__module__
            own = module == self.package or module.startswith(prefix)
            if inspect.isabstract(action) or not (own or module in imported):
                continue
            live = sys.modules.get(module)
            if live is not None and getattr(live, action.__name__, action) is not action:
                continue  # a class of a module that has been reloaded since
            (mine if own else brought_in).append(action)
        self._executor.actions.clear()
        for action in [*brought_in, *mine]:  # the package's own win over same-named ones
            self._executor.register_action(action)

    def names(self) -> set[str] | None:
        return set(self._executor.actions)

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException

        name = action_call.get("next_action")
        try:
            result = await asyncio.wait_for(self._executor.run(action_call), self.timeout_s)
        except ActionExecutionRejection as exc:
            raise ActionRejected(f"Action '{name}' rejected execution: {exc.message}") from exc
        except ActionNotFoundException as exc:
            raise ActionError(f"Action '{name}' is not in package '{self.package}'.") from exc
        except asyncio.TimeoutError as exc:
            raise ActionError(f"Action '{name}' timed out after {self.timeout_s}s.") from exc
        except Exception as exc:  # noqa: BLE001 - an action's own bug must not kill the turn
            raise ActionError(f"Action '{name}' raised {type(exc).__name__}.") from exc
        if result is None:
            return {"events": [], "responses": []}
        return {"events": list(result.events), "responses": list(result.responses)}

    async def close(self) -> None:
        return None


def import_actions(package: str) -> set[str]:
    """Import the actions package and every module in it, as rasa_sdk will, so that a failure
    is reported with its own error and place instead of rasa_sdk's bare exit. Rasa 3.6-era
    ruamel.yaml calls are made to work first (bot.runtime.action_compat). Returns the
    modules this import brought in."""
    import pkgutil
    import traceback

    from bot.runtime.action_compat import install

    install()
    import sys

    before = set(sys.modules)
    name = package
    try:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{package}."):
            name = info.name
            importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - any failure of user code at import time
        if isinstance(exc, KeyboardInterrupt):
            raise
        frames = traceback.extract_tb(exc.__traceback__)
        own = [f for f in frames if "importlib" not in f.filename]
        place = f" at {own[-1].filename}:{own[-1].lineno}" if own else ""
        detail = f"{type(exc).__name__}: {exc}"
        hint = ("install the missing package into this environment" if
                isinstance(exc, ModuleNotFoundError) and exc.name != package.split(".")[0]
                else f"check that '{package}' sits next to domain.yml" if
                isinstance(exc, ModuleNotFoundError) else "fix the error in the module")
        raise ConfigError(f"Cannot import the actions package '{package}' (module '{name}'"
                          f"{place}): {detail}. To fix: {hint}.") from exc
    return set(sys.modules) - before


class HttpExecutor:
    """POSTs to a rasa-sdk (or compatible) action server's /webhook."""

    def __init__(self, url: str, timeout_s: float = 10.0, token: str | None = None) -> None:
        import httpx

        self.url = url
        self.timeout_s = timeout_s
        params = {"token": token} if token else None
        self._client = httpx.AsyncClient(timeout=timeout_s, params=params)

    def names(self) -> set[str] | None:
        return None

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        import httpx

        name = action_call.get("next_action")
        try:
            response = await self._client.post(self.url, json=action_call)
        except httpx.TimeoutException as exc:
            raise ActionError(f"Action '{name}': the action server at {self.url} did not answer "
                              f"within {self.timeout_s}s.") from exc
        except httpx.HTTPError as exc:
            raise ActionError(f"Action '{name}': cannot reach the action server at {self.url} "
                              f"({type(exc).__name__}). Is it running (xingkong run actions)?") from exc
        if response.status_code == 400:
            body = _json(response)
            if body.get("action_name"):
                raise ActionRejected(f"Action '{name}' rejected execution: {body.get('error')}")
        if response.status_code == 404:
            raise ActionError(f"Action '{name}' is not known to the action server at {self.url}.")
        if response.status_code != 200:
            raise ActionError(f"Action '{name}': the action server answered HTTP "
                              f"{response.status_code}.")
        body = _json(response)
        events, responses = body.get("events") or [], body.get("responses") or []
        if not isinstance(events, list) or not isinstance(responses, list):
            raise ActionError(f"Action '{name}': the action server's reply has no event list.")
        return {"events": events, "responses": responses}

    async def close(self) -> None:
        await self._client.aclose()


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
