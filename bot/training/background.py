"""The knowledge build in a background process that outlives `xingkong train`, so the
assistant serves (`make run`) once the NLU and the policies are trained, and answers from the
knowledge base once the build is done (actions/knowledge.py picks the new model up).

    build = start_knowledge_build(project.paths, force=False)   # a Popen, or None
    building(models / "knowledge")               # True while it runs (retrieval/building.py)

While it runs, `<knowledge dir>.building` (beside models/knowledge) holds its pid and start
time; the build's output goes to `<models>/knowledge_build.log`. When it is done it adds the
knowledge fingerprint to models/fingerprint.json, and removes the marker either way.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from bot.project.config import ProjectPaths
from bot.training.model_dir import KNOWLEDGE_DIR, read_json
from retrieval.building import building, mark_building, marker

logger = logging.getLogger(__name__)

LOG_FILE = "knowledge_build.log"
NICE = 10  # the build's priority: the server that starts while it runs answers first
STARTED: list[subprocess.Popen[bytes]] = []  # the builds this process started, still
# referenced after train() returns (a dropped Popen of a running child warns)


def start_knowledge_build(paths: ProjectPaths, *, force: bool = False
                          ) -> subprocess.Popen[bytes] | None:
    """Start the knowledge build of the project at `paths` in a child process (None when
    one is running already: its marker names a live process). The child shares this
    process's group, so Ctrl-C at the terminal stops it too."""
    target = paths.models / KNOWLEDGE_DIR
    if building(target):
        logger.info("train.knowledge.already_building marker=%s", marker(target))
        return None
    paths.models.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bot.training.background", json.dumps(_to_json(paths))]
    if force:
        command.append("--force")
    code = str(Path(__file__).resolve().parents[2])  # the child runs this code, not another
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (code, os.environ.get("PYTHONPATH")) if p)}
    with open(paths.models / LOG_FILE, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=paths.root, env=env)
    mark_building(target, process.pid)  # the child writes it too: no gap before it starts
    STARTED.append(process)
    return process


def _to_json(paths: ProjectPaths) -> dict[str, object]:
    return {"root": str(paths.root), "config": str(paths.config), "domain": str(paths.domain),
            "data": [str(p) for p in paths.data], "endpoints": str(paths.endpoints),
            "credentials": str(paths.credentials), "models": str(paths.models)}


def _from_json(data: dict[str, object]) -> ProjectPaths:
    data_paths = data["data"]
    assert isinstance(data_paths, list)
    return ProjectPaths(Path(str(data["root"])), Path(str(data["config"])),
                        Path(str(data["domain"])), tuple(Path(p) for p in data_paths),
                        Path(str(data["endpoints"])), Path(str(data["credentials"])),
                        Path(str(data["models"])))


def record_fingerprints(models: Path, trained: dict[str, str]) -> None:
    """Add `trained` to models/fingerprint.json as it is now (another process may have
    written it meanwhile), written whole then renamed."""
    path = models / "fingerprint.json"
    fresh = {**read_json(path), **trained}
    partial = path.with_name(f"fingerprint.json.{os.getpid()}.part")
    partial.write_text(json.dumps(fresh, indent=1))
    partial.replace(path)


def run_build(paths: ProjectPaths, force: bool) -> int:
    """The knowledge build of the project at `paths`, marked as running while it runs, its
    fingerprint recorded when done; the exit status (a failure is logged, not raised)."""
    from bot.project.project import Project
    from bot.training.fingerprints import knowledge_fingerprint
    from bot.training.knowledge import knowledge_base, train_knowledge

    target = paths.models / KNOWLEDGE_DIR
    mark_building(target, os.getpid())
    try:
        project = Project.load(paths)
        kb = knowledge_base(project, required=True)
        assert kb is not None
        started = time.perf_counter()
        built = train_knowledge(project, kb, target, retrain=force)
        record_fingerprints(paths.models, {"knowledge": knowledge_fingerprint(project, kb)})
        logger.info("Knowledge built in %.0fs -> %s", time.perf_counter() - started,
                    built.out_dir)
        return 0
    except Exception as exc:  # noqa: BLE001 - told in the log; the assistant keeps serving
        logger.exception("Knowledge build failed: %s: %s", type(exc).__name__, exc)
        return 1
    finally:
        marker(target).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """The child process: the build at a lower priority (NICE: the server that starts while
    it runs answers first), on one torch thread while the NLU trains on the other core, then
    on the cores left idle."""
    import torch

    from bot.training.parallel import on_idle_cores

    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s "
                        "%(message)s")
    if hasattr(os, "nice"):
        os.nice(NICE)
    torch.set_num_threads(1)
    with on_idle_cores():
        return run_build(_from_json(json.loads(args[0])), "--force" in args[1:])


if __name__ == "__main__":
    sys.exit(main())
