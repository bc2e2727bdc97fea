"""One writer per run directory: `genlab train` (a run, a resume, a sweep job) holds
<run dir>/.genlab.lock while it runs; readers (eval, sample, export, report) never look at it.

The lock is a file created with O_CREAT | O_EXCL (atomic on local file systems and on NFSv3
and later), holding the holder's pid, host, process start time and a nonce. No flock: it
is unreliable on network file systems. Whether a holder is alive:
- on the same host, its pid still runs with the start time it recorded (pid reuse caught);
- on another host, its heartbeat (the file's mtime, touched every HEARTBEAT_S seconds by a
  thread) is younger than STALE_AFTER_S (clocks within a minute of each other, as NTP keeps them);
- a Slurm requeue (same SLURM_JOB_ID, higher SLURM_RESTART_COUNT) finds its earlier run ended.
A dead holder's lock is taken over, with a warning saying so. The ranks of one torchrun job
(same TORCHELASTIC_RUN_ID, MASTER_ADDR and MASTER_PORT) share the lock: the first to arrive
creates it, the others join."""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from genlab.errors import GenlabError

LOCK_NAME = ".genlab.lock"
HEARTBEAT_S = 20.0
STALE_AFTER_S = 120.0
log = logging.getLogger(__name__)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _job_key() -> str | None:
    """What the ranks of one torchrun job share; None outside one."""
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return None
    return ":".join(os.environ.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"))


def unusable_dir(path: Path, e: OSError) -> GenlabError:
    reason = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
              errno.ENOTDIR: "a path component is a file", errno.EEXIST: "a file is in the way"}.get(e.errno, e.strerror or str(e))
    return GenlabError(f"cannot write the run directory {path}: {reason}; choose another with hydra.run.dir=<folder>")


class RunLock:
    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir).absolute()
        self.path = self.run_dir / LOCK_NAME
        self.nonce = uuid.uuid4().hex
        self.owner = False  # created the file (and removes it); a joining rank does not
        self._stop = threading.Event()

    def record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()), "nonce": self.nonce,
                "job": _job_key(), "slurm_job": os.environ.get("SLURM_JOB_ID"),
                "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT", 0)), "since": time.time()}

    def acquire(self) -> RunLock:
        """Hold the run directory (creating it), or raise one line naming the live holder."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise unusable_dir(self.run_dir, e) from None
        for _ in range(5):  # a takeover that loses a race tries again
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder, age = self._read()
                if holder is None:
                    continue  # removed meanwhile
                key = _job_key()
                if key is not None and holder.get("job") == key:
                    return self  # another rank of this torchrun job holds it
                dead = self._dead(holder, age)
                if not dead:
                    raise GenlabError(f"run directory {self.run_dir} is in use by genlab pid {holder.get('pid')} on host {holder.get('host')} "
                                      f"(lock {self.path}); wait for that run to end, or choose another hydra.run.dir")
                if self._take_over(holder):
                    log.warning("took over the stale lock of run directory %s: pid %s on host %s %s", self.run_dir,
                                holder.get("pid"), holder.get("host"), dead)
                continue
            except OSError as e:
                raise unusable_dir(self.run_dir, e) from None
            with os.fdopen(fd, "w") as f:
                json.dump(self.record(), f)
                f.flush()
                os.fsync(f.fileno())
            self.owner = True
            threading.Thread(target=self._beat, name="genlab-run-lock", daemon=True).start()
            atexit.register(self.release)
            return self
        raise GenlabError(f"run directory {self.run_dir}: could not take over its stale lock {self.path}; remove it if no genlab run uses the folder")

    def _read(self) -> tuple[dict | None, float]:
        for _ in range(40):  # a lock being written (created, not yet filled): its writer says who it is within moments
            try:
                text, mtime = self.path.read_text(), self.path.stat().st_mtime
            except FileNotFoundError:
                return None, 0.0
            try:
                return json.loads(text), time.time() - mtime
            except ValueError:
                if time.time() - mtime > 2:
                    break
                time.sleep(0.05)
        return {"pid": None, "host": None}, time.time() - mtime  # still unreadable: its writer is alive unless the file is old

    def _dead(self, holder: dict, age: float) -> str:
        """Why the holder is no longer running, or "" while it may be."""
        if holder.get("slurm_job") and holder["slurm_job"] == os.environ.get("SLURM_JOB_ID") \
                and int(os.environ.get("SLURM_RESTART_COUNT", 0)) > int(holder.get("slurm_restart") or 0):
            return "is an earlier run of this requeued Slurm job"
        if holder.get("host") == socket.gethostname() and holder.get("pid"):
            pid = int(holder["pid"])
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return "is no longer running"
            except PermissionError:
                pass  # alive, another user's
            if holder.get("start") is not None and _start_time(pid) not in (None, holder["start"]):
                return "is no longer running (its pid is now another process's)"
            return ""
        if age > STALE_AFTER_S:
            return f"has not renewed the lock for {age:.0f} s (heartbeat every {HEARTBEAT_S:.0f} s)"
        return ""

    def _take_over(self, holder: dict) -> bool:
        """Move the stale file aside; if what was moved is not the file judged stale (another
        process took over first), put it back."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}.{self.nonce[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = json.loads(aside.read_text())
        except ValueError:
            moved = {}
        if holder.get("nonce") is not None and moved.get("nonce") != holder.get("nonce"):
            try:
                os.link(aside, self.path)  # fails if a third process holds it by now
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        """Remove the lock if this process created it and still holds it."""
        self._stop.set()
        if not self.owner:
            return
        self.owner = False
        holder, _ = self._read()
        if holder is not None and holder.get("nonce") == self.nonce:
            self.path.unlink(missing_ok=True)


def _refuse(e: GenlabError) -> None:
    print(f"genlab: error: {e}", file=sys.stderr)  # Hydra would only warn about an exception in a callback
    sys.exit(2)


class RunLockCallback(Callback):
    """configs/train.yaml: hydra.callbacks.run_lock. A single run locks hydra.run.dir before
    Hydra creates it; a sweep job locks its directory when the job starts (Hydra has then
    made the directory and written its .hydra/, but training has written nothing)."""

    def __init__(self) -> None:
        self.locks: dict[str, RunLock] = {}

    def _hold(self, run_dir: str) -> None:
        if run_dir in self.locks:
            return
        try:
            self.locks[run_dir] = RunLock(run_dir).acquire()
        except GenlabError as e:
            _refuse(e)

    def _drop(self, run_dir: str) -> None:
        lock = self.locks.pop(run_dir, None)
        if lock is not None:
            lock.release()

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._hold(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        self._drop(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            probe = sweep_dir / f".genlab.probe.{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as e:
            _refuse(unusable_dir(sweep_dir, e))

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self._hold(str(config.hydra.runtime.output_dir))

    def on_job_end(self, config: DictConfig, **kwargs) -> None:
        self._drop(str(config.hydra.runtime.output_dir))
