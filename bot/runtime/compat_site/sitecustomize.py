"""Loaded by Python at start-up in the action server that `xingkong run actions` starts (its
folder leads PYTHONPATH there, and only there): every process of that server, sanic's
workers included, gets the ruamel.yaml functions that Rasa 3.6-era actions call."""

from bot.runtime.action_compat import install

install()
