"""A machine-wide cache of the knowledge build's pretrained models.

The reader's, the reranker's and the encoder's first training on reading-comprehension
data (`pretrain_qa`) depends on that data, the base model and the settings, never on a
project's documents. So a second project, a fresh clone or a new `models/` folder on the
same machine copies them from here instead of training them again (minutes each), as a
model hub's download is kept once per machine.

    fetch_pretrained(folder, stamp)   # True: `folder` now holds the model trained for `stamp`
    keep_pretrained(folder, stamp)    # after training: a copy for the next build

Where: $XINGKONG_CACHE, else $XDG_CACHE_HOME/xingkong, else ~/.cache/xingkong
(`XINGKONG_CACHE=off` turns it off). Each model is `pretrained/<folder name>-<stamp>`, written
whole under another name and then renamed, so a build that dies leaves nothing half
written; the KEEP most recently used of each folder name stay. A cache that cannot be read
or written is logged and skipped: the build trains as it would without one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

ENV = "XINGKONG_CACHE"
OFF = ("off", "0", "false", "no")
KEEP = 3  # entries of each folder name (about 90 MB each for a MiniLM)
STALE_S = 86400.0  # a half-written copy older than this is removed


def cache_dir() -> Path | None:
    """The cache's pretrained/ folder, or None when turned off."""
    chosen = os.environ.get(ENV)
    if chosen is not None:
        if chosen.strip().lower() in OFF or not chosen.strip():
            return None
        return Path(chosen).expanduser() / "pretrained"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home (a container's user without a passwd entry)
            logger.info("retrieval.pretrained_cache.off reason=no home folder")
            return None
    return Path(base).expanduser() / "xingkong" / "pretrained"


def entry(folder: Path, stamp: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / f"{folder.name}-{stamp}"


def fetch_pretrained(folder: Path, stamp: str) -> bool:
    """Copy the cached model for `stamp` into `folder` (replacing what is there); False
    when there is none or it cannot be copied."""
    source = entry(folder, stamp)
    if source is None or not source.is_dir():
        return False
    staging = folder.with_name(f"{folder.name}.from-cache")
    try:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
        os.utime(source)  # recently used: pruned last
    except OSError as exc:
        logger.warning("retrieval.pretrained_cache.fetch_failed entry=%s error=%s", source, exc)
        shutil.rmtree(staging, ignore_errors=True)
        return False
    logger.info("retrieval.pretrained_cache.fetched entry=%s", source)
    return True


def keep_pretrained(folder: Path, stamp: str) -> Path | None:
    """A copy of the model just trained into `folder`, for the next build; where it went."""
    target = entry(folder, stamp)
    if target is None or target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another build kept the same model first
            shutil.rmtree(staging, ignore_errors=True)
        prune(target.parent, folder.name)
    except OSError as exc:
        logger.warning("retrieval.pretrained_cache.keep_failed entry=%s error=%s", target, exc)
        return None
    logger.info("retrieval.pretrained_cache.kept entry=%s", target)
    return target


def prune(root: Path, name: str, keep_n: int = KEEP) -> None:
    """Remove all but the `keep_n` most recently used entries of folder name `name`."""
    entries = sorted((p for p in root.glob(f"{name}-*") if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
    stale = [p for p in root.glob(f".{name}-*")  # left by a build that died while keeping
             if time.time() - p.stat().st_mtime > STALE_S]
    for old in [*entries[keep_n:], *stale]:
        shutil.rmtree(old, ignore_errors=True)
