"""The UI's only way to the assistant: Rasa's HTTP API, over httpx.

    RestClient(base_url, token, timeout_s)
        .send_message(sender_id, text)  POST /webhooks/rest/webhook        -> bot messages
        .tracker(sender_id)             GET  /conversations/{id}/tracker   -> tracker JSON
        .restart(sender_id)             POST /conversations/{id}/tracker/events {"event": "restart"}
                                        (falls back to the "/restart" message without the API)
        .server_status()                GET  /version and /status          -> ServerStatus

Every failure (server down, timeout, 401/403, an error status, a body that is not what Rasa
sends) becomes a ClientError whose message is written for a person reading the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0


class ClientError(Exception):
    """A failed call to the assistant server. ``kind``: "down", "timeout", "auth", "api_off",
    "http" or "bad_response"; ``status``: the HTTP status where there was one."""

    def __init__(self, message: str, kind: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What the UI knows about the server: reachable, its version, and whether the HTTP API
    (needed by the inspector) answers. ``detail`` is a readable reason when something is off."""

    url: str
    reachable: bool
    version: str | None = None
    api: bool = False
    detail: str = ""


class AssistantClient(Protocol):
    """What build_app needs from its injected client (RestClient, or a fake in tests)."""

    def send_message(self, sender_id: str, text: str) -> list[dict[str, Any]]: ...

    def tracker(self, sender_id: str) -> dict[str, Any]: ...

    def restart(self, sender_id: str) -> None: ...

    def server_status(self) -> ServerStatus: ...


class RestClient:
    """A synchronous client of one assistant server. ``transport`` is for tests
    (httpx.MockTransport); the token goes with API calls as ``?token=``, as Rasa expects."""

    def __init__(self, base_url: str = "http://127.0.0.1:5005", token: str | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"The server URL must start with http:// or https://: {base_url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive.")
        self.base_url = base_url.rstrip("/")
        self.token = token or None
        self.timeout_s = float(timeout_s)
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout_s,
                                  transport=transport, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    # the four calls ----------------------------------------------------------------------
    def send_message(self, sender_id: str, text: str) -> list[dict[str, Any]]:
        data = self._request("POST", "/webhooks/rest/webhook",
                             json={"sender": sender_id, "message": text}, api=False)
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise ClientError("The server answered the message with something that is not a "
                              "list of bot messages.", "bad_response")
        return data

    def tracker(self, sender_id: str) -> dict[str, Any]:
        data = self._request("GET", f"/conversations/{_quoted(sender_id)}/tracker",
                             params={"include_events": "AFTER_RESTART"}, api=True)
        if not isinstance(data, dict):
            raise ClientError("The server's tracker is not a JSON object.", "bad_response")
        return data

    def restart(self, sender_id: str) -> None:
        try:
            self._request("POST", f"/conversations/{_quoted(sender_id)}/tracker/events",
                          json={"event": "restart"}, api=True)
        except ClientError as exc:
            if exc.kind not in ("api_off", "auth"):
                raise
            logger.info("ui.client.restart_fallback reason=%s", exc.kind)
            self.send_message(sender_id, "/restart")

    def server_status(self) -> ServerStatus:
        try:
            info = self._request("GET", "/version", api=False)
        except ClientError as exc:
            return ServerStatus(self.base_url, reachable=False, detail=exc.message)
        version = info.get("version") if isinstance(info, dict) else None
        try:
            self._request("GET", "/status", api=True)
        except ClientError as exc:
            return ServerStatus(self.base_url, reachable=True, version=version, api=False,
                                detail=exc.message)
        return ServerStatus(self.base_url, reachable=True, version=version, api=True)

    # plumbing ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, api: bool, json: Any = None,
                 params: dict[str, str] | None = None) -> Any:
        query = dict(params or {})
        if api and self.token:
            query["token"] = self.token
        try:
            response = self._http.request(method, path, json=json, params=query or None)
        except httpx.TimeoutException:
            logger.warning("ui.client.timeout method=%s path=%s", method, _route(path))
            raise ClientError(f"The assistant server at {self.base_url} did not answer within "
                              f"{self.timeout_s:g} s. It may be busy (loading models) or stuck; "
                              "try again.", "timeout") from None
        except httpx.TransportError as exc:
            logger.warning("ui.client.unreachable error=%s", type(exc).__name__)
            raise ClientError(f"Cannot reach the assistant server at {self.base_url}. Is it "
                              "running? Start it with `xingkong run --enable-api`.",
                              "down") from None
        if response.status_code >= 400:
            raise self._status_error(response, api)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"The server answered {method} {_route(path)} with a body that "
                              "is not JSON.", "bad_response", response.status_code) from None

    def _status_error(self, response: httpx.Response, api: bool) -> ClientError:
        status = response.status_code
        reason = _server_message(response)
        logger.info("ui.client.http_error status=%d path=%s", status,
                    _route(response.request.url.path))
        if status == 401:
            return ClientError("The server's HTTP API needs an auth token (401 Not "
                               "Authenticated). Start the UI with --token.", "auth", status)
        if status == 403:
            return ClientError("The server rejected the auth token (403 Not Authorized). "
                               "Check the UI's --token.", "auth", status)
        if status == 404 and api:
            return ClientError("The server's HTTP API is off (404), so the inspector has "
                               "nothing to show. Start the server with --enable-api.",
                               "api_off", status)
        detail = f": {reason}" if reason else "."
        return ClientError(f"The server answered with an error ({status}){detail}", "http",
                           status)


def _quoted(sender_id: str) -> str:
    return quote(sender_id, safe="")


def _route(path: str) -> str:
    """A path for logs, without the conversation id."""
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "conversations":
        parts[2] = "{id}"
    return "/".join(parts)


def _server_message(response: httpx.Response) -> str:
    """The "message" of Rasa's error body, or the start of a plain-text body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"][:300]
    return ""
