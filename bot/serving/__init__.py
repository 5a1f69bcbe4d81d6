"""Serving: the HTTP server and its input channels."""
