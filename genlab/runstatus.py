"""<run dir>/status.json: what genlab train last did in a run directory, written by the
training process (rank 0) and read by `genlab report`, so that no tool has to parse train.log.

    {"state": "running" | "done" | "stopped" | "failed",
     "step": 1200, "total_steps": 3000,
     "reason": "the loss of phase 'd' is nan at step 1200; ...",   (failed: the one-line error)
     "signal": "SIGTERM",                                          (stopped: the signal)
     "updated": "2026-12-03T12:40:00+00:00", "pid": 4242, "host": "node1",
     "history": [{"event": "started", "step": 0, "time": ...},
                 {"event": "resumed", "step": 1200, "from": ".../last.pt", "time": ...}]}

"running" with no live genlab process behind it is a run killed without a chance to say so
(kill -9, a lost node): the report shows where its metrics stop."""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path

from genlab.atomic import atomic_write_text

FILE = "status.json"
STATES = ("running", "done", "stopped", "failed")


def read(run_dir: str | os.PathLike) -> dict | None:
    """The run's status, or None where there is none (a run from before status.json, or one
    made by hand) or it cannot be read."""
    try:
        status = json.loads((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) and status.get("state") in STATES else None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write(run_dir: Path, status: dict) -> None:
    status |= {"updated": _now(), "pid": os.getpid(), "host": socket.gethostname()}
    atomic_write_text(run_dir / FILE, json.dumps(status, indent=1) + "\n")


def started(run_dir: str | os.PathLike, step: int, total_steps: int, resumed_from: str | os.PathLike | None = None) -> None:
    """A training process began in run_dir, fresh (step 0) or from a checkpoint; the history
    of an earlier status in the same directory (a resume into it, a requeued job) is kept."""
    run_dir = Path(run_dir)
    history = (read(run_dir) or {}).get("history", [])
    event = {"event": "resumed" if resumed_from else "started", "step": int(step), "time": _now()}
    if resumed_from:
        event["from"] = str(resumed_from)
    _write(run_dir, {"state": "running", "step": int(step), "total_steps": int(total_steps), "reason": None, "signal": None,
                     "history": [*history, event]})


def ended(run_dir: str | os.PathLike, state: str, step: int | None = None, reason: str | None = None, signal: str | None = None) -> None:
    """The process's last word: done, stopped by a signal, or failed with its one-line reason.
    Where training never began (a config refused before the first step) the status is new."""
    assert state in STATES[1:], state
    run_dir = Path(run_dir)
    status = read(run_dir) or {"step": 0, "total_steps": None, "history": []}
    if step is not None:
        status["step"] = int(step)
    _write(run_dir, status | {"state": state, "reason": reason, "signal": signal})
