"""Conversation state: events, the tracker, slot mappings, intent payloads."""
