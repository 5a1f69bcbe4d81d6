"""Whether a knowledge model folder is being built right now: a build running beside a
server (`xingkong train --knowledge-in-background`) keeps `<folder>.building`, with its
process id, while it writes the folder; readers keep the model they loaded before until
it is gone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def marker(knowledge_dir: str | Path) -> Path:
    """The file that says a build of `knowledge_dir` is running."""
    path = Path(knowledge_dir)
    return path.with_name(path.name + ".building")


def mark_building(knowledge_dir: str | Path, pid: int) -> None:
    marker(knowledge_dir).write_text(json.dumps({"pid": pid, "started": time.time()}),
                                     encoding="utf-8")


def building(knowledge_dir: str | Path) -> bool:
    """Whether a build of `knowledge_dir` is running (its marker names a live process; a
    marker left by a killed build does not count)."""
    try:
        pid = int(json.loads(marker(knowledge_dir).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return _alive(pid)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (an exited child its parent has not waited for does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    try:  # Linux: the state after the command's closing parenthesis; Z: exited, not reaped
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
