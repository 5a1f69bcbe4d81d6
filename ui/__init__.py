"""Xingkong's web UI: a Gradio chat with the assistant server and a per-turn inspector.

It talks to the server over Rasa's HTTP API only (ui.client.RestClient) and never imports the
engine. Importing this package imports no gradio; ``build_app`` does.
"""

from __future__ import annotations

from ui.app import build_app, main
from ui.client import AssistantClient, ClientError, RestClient, ServerStatus

__all__ = ["AssistantClient", "ClientError", "RestClient", "ServerStatus", "build_app", "main"]
