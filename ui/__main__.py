"""`python -m ui --server http://127.0.0.1:5005 --token T --port 7860`: the web UI."""

from __future__ import annotations

from ui.app import main

main()
