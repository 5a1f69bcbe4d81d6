"""The HTTP server: Rasa 3.x's HTTP API and the channels' webhooks, on FastAPI.

    GET  /                                      hello text                      public
    GET  /version                               version, minimum compatible     public
    *    /webhooks/<channel>/...                the input channels (rest, callback,  public
                                                socketio, telegram, slack)
    *    /socket.io/                            the socketio channel's server    public
    GET  /status                                model file and id               API
    GET  /domain                                JSON, or YAML (Accept: application/yaml)
    POST /model/parse                           {"text", "message_id"?} -> parse data
    GET  /conversations/{id}/tracker            ?include_events=ALL|AFTER_RESTART|APPLIED|NONE
    POST /conversations/{id}/messages           log a user message, no prediction -> tracker
    POST /conversations/{id}/trigger_intent     {"name", "entities"?} -> {"tracker", "messages"}
    POST /conversations/{id}/execute            {"name", "policy"?, "confidence"?} -> same
    POST /conversations/{id}/predict            {"scores", "policy", "confidence", "tracker"}
    POST /conversations/{id}/tracker/events     append one event or a list -> tracker
    PUT  /conversations/{id}/tracker/events     replace every event -> tracker

API routes exist only with ``enable_api``; with ``auth_token`` they need ``?token=...`` or
``Authorization: Bearer ...`` (missing: 401, wrong: 403). This module is the only place where
exceptions become status codes. Errors use Rasa's body ({"version", "status": "failure",
"message", "reason", "details", "help", "code"}) and never repeat request bodies; an
unexpected exception is logged with a request id and answers 500 with
{"error": "internal_error", "request_id"} (also in Rasa's shape). Requests are checked
before the dialogue manager is called, so a rejected request leaves the tracker unchanged.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib.metadata
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from http import HTTPStatus
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.serving.channels import ChannelServices, build_channels
from bot.serving.channels.base import (
    PayloadError,
    TextTooLong,
    check_sender_id,
    check_text,
    read_json,
    validate,
)
from bot.errors import ApiError, EventError, SignatureError, StaleWriteError, StoreError
from bot.state.events import UserUttered, events_from_list
from bot.manager import DialogueManager, TurnResult, UserMessage
from bot.state.tracker import EVENT_VERBOSITIES

logger = logging.getLogger(__name__)

MINIMUM_COMPATIBLE_VERSION = "3.0.0"
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_BODY_TIMEOUT_S = 10.0  # a client that stops sending halfway holds nothing longer
DEFAULT_RESPONSE_TIMEOUT_S = 120.0  # above lock_wait_timeout plus a slow action's timeout
STORE_RETRY_AFTER_S = 2  # a store outage or a busy conversation: seconds before retrying


def xingkong_version() -> str:
    try:
        return importlib.metadata.version("xingkong")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def error_body(status: int, reason: str, message: str,
               details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"version": xingkong_version(), "status": "failure", "message": message,
            "reason": reason, "details": dict(details or {}), "help": None, "code": status}


# request bodies (the HTTP edge) --------------------------------------------------------------
_Confidence = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ParseRequest(_Body):
    text: StrictStr
    message_id: StrictStr | None = None


class LogMessageRequest(_Body):
    text: StrictStr
    sender: StrictStr
    parse_data: dict[str, Any] | None = None
    message_id: StrictStr | None = None


class TriggerIntentRequest(_Body):
    name: StrictStr
    entities: Any = None  # a dict {entity: value} or a list of {"entity", "value"}


class ExecuteRequest(_Body):
    name: StrictStr
    policy: StrictStr | None = None
    confidence: _Confidence | None = None


# the app ---------------------------------------------------------------------------------------
def create_app(manager: DialogueManager, *, auth_token: str | None = None,
               enable_api: bool = True, credentials: Mapping[str, Any] | None = None,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               model_info: Mapping[str, Any] | None = None,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
               response_timeout_s: float = DEFAULT_RESPONSE_TIMEOUT_S,
               cors_origins: tuple[str, ...] | list[str] = (),
               channel_services: ChannelServices | None = None) -> FastAPI:
    """The assistant's HTTP app. ``credentials``: {channel: settings} as in credentials.yml
    (None or empty: the REST channel). ``model_info``: "model_file" and "model_id" for /status.
    ``body_timeout_s``: longest wait for each part of a request body (then 408);
    ``response_timeout_s``: longest a request may take (then 503).
    ``cors_origins``: origins browsers may call from (Rasa's --cors; "*" for any).
    ``channel_services``: the channels' outbound HTTP client and retry memory (default: a
    real client and an in-process memory).
    """
    if auth_token is not None and not auth_token:
        raise ValueError("auth_token must be a non-empty string or None.")
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive.")
    if not (body_timeout_s > 0 and response_timeout_s > 0):
        raise ValueError("body_timeout_s and response_timeout_s must be positive.")
    version = xingkong_version()
    app = FastAPI(title="Xingkong", version=version, docs_url=None, redoc_url=None,
                  openapi_url=None)
    _add_error_handlers(app)
    app.add_middleware(_RequestGuard, max_body_bytes=max_body_bytes,
                       body_timeout_s=body_timeout_s, response_timeout_s=response_timeout_s)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["*"], allow_headers=["*"])

    @app.get("/")
    async def hello() -> Response:
        return PlainTextResponse(f"Hello from Xingkong: {version}")

    @app.get("/version")
    async def get_version() -> Response:
        return JSONResponse({"version": version,
                             "minimum_compatible_version": MINIMUM_COMPATIBLE_VERSION})

    async def on_message(message: UserMessage) -> list[dict[str, Any]]:
        check_text(message.text, "message")
        result = await manager.handle_message(message)
        return result.messages

    for channel in build_channels(credentials, channel_services):
        app.include_router(channel.router(on_message), prefix=f"/webhooks/{channel.name}")
        logger.info("server.channel name=%s route=/webhooks/%s", channel.name, channel.name)
        mount = getattr(channel, "mount", None)
        if mount is not None:  # a channel with an ASGI app of its own (socket.io)
            path, asgi_app = mount(on_message)
            app.mount(path, asgi_app)
            logger.info("server.channel name=%s mount=%s", channel.name, path)

    if enable_api:
        app.include_router(_api_router(manager, auth_token, dict(model_info or {})))
    elif auth_token is not None:
        logger.warning("server.auth_token_unused reason=api_disabled")
    return app


def _api_router(manager: DialogueManager, auth_token: str | None,
                model_info: dict[str, Any]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(_token_checker(auth_token))])

    @router.get("/status")
    async def status() -> Response:
        return JSONResponse({"model_file": model_info.get("model_file"),
                             "model_id": model_info.get("model_id"),
                             "num_active_training_jobs": 0})

    @router.get("/domain")
    async def domain(request: Request) -> Response:
        wanted = _domain_format(request.headers.get("accept", ""))
        data = json.loads(json.dumps(manager.domain.to_dict()))  # plain types only
        if wanted == "yaml":
            text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
            return PlainTextResponse(text, media_type="application/yaml")
        return JSONResponse(data)

    @router.post("/model/parse")
    async def parse(request: Request) -> Response:
        body = validate(ParseRequest, await read_json(request))
        check_text(body.text, "text")
        result = {**await manager.parse(body.text), "text": body.text}
        if body.message_id is not None:
            result["message_id"] = body.message_id
        return JSONResponse(result)

    @router.get("/conversations/{conversation_id}/tracker")
    async def get_tracker(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        tracker = await manager.fetch_tracker(conversation_id)
        return JSONResponse(tracker.current_state(verbosity))

    @router.post("/conversations/{conversation_id}/messages")
    async def log_message(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        body = validate(LogMessageRequest, await read_json(request))
        if body.sender != "user":
            raise PayloadError("Only user messages can be logged: 'sender' must be \"user\".",
                               "sender")
        check_text(body.text, "text")
        if body.parse_data is not None:
            parse_data = body.parse_data
        else:
            parse_data = await manager.parse(body.text)
        event = _user_event(body.text, parse_data, body.message_id)
        tracker = await manager.log_message(conversation_id, event)
        return JSONResponse(tracker.current_state(verbosity))

    @router.post("/conversations/{conversation_id}/trigger_intent")
    async def trigger_intent(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        body = validate(TriggerIntentRequest, await read_json(request))
        _check_name(body.name)
        entities = _entities(body.entities)
        _check_in_domain(body.name, manager.domain.intent_names, "intent")
        result = await manager.trigger_intent(conversation_id, body.name, entities)
        return _turn_response(result, verbosity)

    @router.post("/conversations/{conversation_id}/execute")
    async def execute(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        body = validate(ExecuteRequest, await read_json(request))
        _check_name(body.name)
        _check_in_domain(body.name, manager.domain.action_names, "action")
        result = await manager.execute_action(conversation_id, body.name, body.policy,
                                              body.confidence)
        return _turn_response(result, verbosity)

    @router.post("/conversations/{conversation_id}/predict")
    async def predict(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        prediction, tracker = await manager.predict(conversation_id)
        return JSONResponse({**prediction, "tracker": tracker.current_state(verbosity)})

    @router.post("/conversations/{conversation_id}/tracker/events")
    async def append_events(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        data = await read_json(request)
        events = _parse_events(data if isinstance(data, list) else [data])
        tracker = await manager.update_tracker(conversation_id, events)
        return JSONResponse(tracker.current_state(verbosity))

    @router.put("/conversations/{conversation_id}/tracker/events")
    async def replace_events(conversation_id: str, request: Request) -> Response:
        verbosity = _conversation_request(conversation_id, request)
        data = await read_json(request)
        if not isinstance(data, list):
            raise PayloadError("The request body must be a JSON list of events.")
        events = _parse_events(data, allow_empty=True)
        tracker = await manager.replace_tracker(conversation_id, events)
        return JSONResponse(tracker.current_state(verbosity))

    return router


# auth --------------------------------------------------------------------------------------------
def _token_checker(auth_token: str | None) -> Callable[[Request], Awaitable[None]]:
    async def check_token(request: Request) -> None:
        if auth_token is None:
            return
        provided = request.query_params.get("token")
        if provided is None:
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                provided = value.strip()
        if provided is None:
            raise ApiError(401, "NotAuthenticated", "User is not authenticated.")
        if not hmac.compare_digest(provided.encode(), auth_token.encode()):
            raise ApiError(403, "NotAuthorized", "User has insufficient permissions.")

    return check_token


# request checks ------------------------------------------------------------------------------
def _conversation_request(conversation_id: str, request: Request) -> str:
    """Checks a /conversations/{id}/... request's id; returns its include_events verbosity."""
    check_sender_id(conversation_id, "conversation_id", "path")
    return _verbosity(request)


def _check_name(name: str) -> None:
    if not name.strip():
        raise PayloadError("'name' must not be empty.", "name")


def _check_in_domain(name: str, known: Collection[str], kind: str) -> None:
    """404 for an intent or action ``kind`` that the domain does not have."""
    if name not in known:
        raise ApiError(404, "NotFound", f"The {kind} named in 'name' does not exist in the "
                       "domain.", {"parameter": "name", "in": "body"})


def _turn_response(result: TurnResult, verbosity: str) -> Response:
    return JSONResponse({"tracker": result.tracker.current_state(verbosity),
                         "messages": result.messages})


def _verbosity(request: Request) -> str:
    value = request.query_params.get("include_events", "AFTER_RESTART").upper()
    if value not in EVENT_VERBOSITIES:
        raise PayloadError("Invalid parameter value for 'include_events'. Should be one of "
                           f"{', '.join(EVENT_VERBOSITIES)}.", "include_events", "query")
    return value


def _entities(raw: Any) -> dict[str, Any]:
    """trigger_intent's entities: {name: value}, or Rasa's list of {"entity", "value"}."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):
        entities: dict[str, Any] = {}
        for index, item in enumerate(raw):
            if not (isinstance(item, dict) and isinstance(item.get("entity"), str)
                    and "value" in item):
                raise PayloadError(f"Invalid 'entities.{index}': an entity needs a string "
                                   "'entity' and a 'value'.", f"entities.{index}")
            entities[item["entity"]] = item["value"]
        return entities
    raise PayloadError("Invalid 'entities': must be an object or a list of entities.",
                       "entities")


def _parse_events(items: list[Any], *, allow_empty: bool = False) -> list[Any]:
    if not items and not allow_empty:
        raise PayloadError("Couldn't extract a proper event from the request body.")
    try:
        return events_from_list(items)
    except EventError as exc:
        raise PayloadError(f"Invalid 'events': {exc}", "events") from None


def _user_event(text: str, parse_data: Mapping[str, Any], message_id: str | None) -> UserUttered:
    try:
        return UserUttered(text=text, parse_data=dict(parse_data),
                           message_id=message_id or uuid.uuid4().hex)
    except EventError as exc:
        raise PayloadError(f"Invalid 'parse_data': {exc}", "parse_data") from None


def _domain_format(accept: str) -> str:
    """"json" or "yaml" for an Accept header (missing or */*: JSON); 406 for anything else."""
    media = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for kind in media:
        if kind.endswith(("yaml", "yml")):
            return "yaml"
        if kind.endswith("json") or kind in ("", "*/*", "application/*"):
            return "json"
    raise ApiError(406, "NotAcceptable", "Invalid Accept header. Domain can be provided as json "
                   "(\"Accept: application/json\") or yml (\"Accept: application/yaml\").")


# errors --------------------------------------------------------------------------------------
def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        logger.info("server.error status=%d reason=%s route=%s", exc.status, exc.reason,
                    _route(request.scope))
        return JSONResponse(error_body(exc.status, exc.reason, exc.message, exc.details),
                            status_code=exc.status)

    async def payload_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PayloadError)
        status, reason = (413, "PayloadTooLarge") if isinstance(exc, TextTooLong) else \
            (400, "BadRequest")
        details = {"parameter": exc.field, "in": exc.location} if exc.field else {}
        logger.info("server.error status=%d reason=%s field=%s route=%s", status, reason,
                    exc.field, _route(request.scope))
        return JSONResponse(error_body(status, reason, str(exc), details), status_code=status)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        loc = [str(p) for p in errors[0].get("loc", ())] if errors else []
        field = ".".join(loc[1:]) or None
        message = f"Invalid '{field}': {errors[0].get('msg')}." if errors and field else \
            "The request is malformed."
        details = {"parameter": field, "in": loc[0]} if field else {}
        return JSONResponse(error_body(400, "BadRequest", message, details), status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        phrase = HTTPStatus(exc.status_code).phrase
        return JSONResponse(error_body(exc.status_code, phrase.replace(" ", ""), f"{phrase}."),
                            status_code=exc.status_code, headers=exc.headers)

    async def store_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreError)
        stale = isinstance(exc, StaleWriteError)
        # The message names the conversation: logged at debug only, like the raw path.
        logger.warning("server.store_unavailable kind=%s route=%s",
                       "stale_write" if stale else "store_error", _route(request.scope))
        logger.debug("server.store_unavailable.detail %s", exc)
        message = ("The conversation changed on another server while this message was "
                   "handled; it was not processed. Send it again." if stale else
                   "The conversation store is unavailable or the conversation is busy; the "
                   "message was not processed. Send it again shortly.")
        return JSONResponse(error_body(503, "ServiceUnavailable", message), status_code=503,
                            headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    app.add_exception_handler(StoreError, store_error)

    async def signature_error(request: Request, exc: Exception) -> Response:
        # no detail for the client: what failed (missing, old or wrong) stays in the log
        logger.warning("server.error status=401 reason=BadSignature route=%s detail=%s",
                       _route(request.scope), exc)
        return JSONResponse(error_body(401, "NotAuthenticated", "Not authenticated."),
                            status_code=401)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(SignatureError, signature_error)
    app.add_exception_handler(PayloadError, payload_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _route(scope: Scope) -> str:
    """The matched route's template (never the raw path, which holds conversation ids)."""
    route = scope.get("route")
    return getattr(route, "path", None) or "-"


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class _RequestGuard:
    """Outermost app layer: a request id per request (X-Request-ID), the body size limit
    (Content-Length and the bytes actually read: 413), and 500 for unexpected exceptions."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float,
                 response_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.response_timeout_s = response_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        declared = _content_length(scope)
        if declared == -1:
            await _send_json(scope, send_with_id, 400, error_body(
                400, "BadRequest", "Invalid Content-Length header.",
                {"parameter": "Content-Length", "in": "header"}))
            return
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large(scope, send_with_id)
            return
        received, complete = 0, False

        async def receive_limited() -> Message:
            nonlocal received, complete
            if complete:  # after the body: only the disconnect, with no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                raise _BodyTimeout from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            async with asyncio.timeout(self.response_timeout_s) as deadline:
                await self.app(scope, receive_limited, send_with_id)
        except _BodyTooLarge:
            if not started:
                await self._too_large(scope, send_with_id)
        except _BodyTimeout:
            logger.info("server.error status=408 reason=RequestTimeout limit_s=%g",
                        self.body_timeout_s)
            if not started:
                await _send_json(scope, send_with_id, 408, error_body(
                    408, "RequestTimeout", f"The request body did not arrive within "
                    f"{self.body_timeout_s:g} s."))
        except TimeoutError:
            if not deadline.expired():
                raise
            logger.warning("server.error status=503 reason=ResponseTimeout route=%s limit_s=%g",
                           _route(scope), self.response_timeout_s)
            if not started:
                await _send_json(scope, send_with_id, 503, error_body(
                    503, "ServiceUnavailable", "The request took longer than "
                    f"{self.response_timeout_s:g} s; it may or may not have been processed."),
                    headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
        except Exception:
            logger.exception("server.internal_error request_id=%s method=%s route=%s",
                             request_id, scope.get("method"), _route(scope))
            if not started:
                body = {**error_body(500, "InternalError", "An internal error occurred."),
                        "error": "internal_error", "request_id": request_id}
                await _send_json(scope, send_with_id, 500, body)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        logger.info("server.error status=413 reason=PayloadTooLarge limit=%d",
                    self.max_body_bytes)
        await _send_json(scope, send, 413, error_body(
            413, "PayloadTooLarge", f"The request body is larger than {self.max_body_bytes} "
            "bytes."))


def _content_length(scope: Scope) -> int | None:
    """The declared body size; None when not declared, -1 when malformed."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


async def _send_json(scope: Scope, send: Send, status: int, body: dict[str, Any],
                     headers: Mapping[str, str] | None = None) -> None:
    await JSONResponse(body, status_code=status, headers=headers)(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
