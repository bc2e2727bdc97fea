"""One writer per run directory: a second train or resume into a live run stops before
writing, a killed holder's lock is taken over, torchrun ranks share it, readers never lock,
and a run directory that cannot be written is one line."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genlab import GenlabError
from genlab.runlock import LOCK_NAME, STALE_AFTER_S, RunLock

QUIET = ["trainer.progress_bar=false", "logger=jsonl"]
TINY = ["trainer.max_steps=2", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0", *QUIET]
HOLD = "import sys, time; from genlab.runlock import RunLock; RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)"


def genlab(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def one_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture
def holder(tmp_path):
    """A live process holding a run directory's lock, as a running genlab train does."""
    procs = []

    def start(run_dir: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, env=os.environ)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_second_lock_on_a_live_run_names_its_pid_and_host(tmp_path, holder):
    proc = holder(tmp_path / "run")
    with pytest.raises(GenlabError, match=rf"run directory {tmp_path / 'run'} is in use by genlab pid {proc.pid} on host {socket.gethostname()}"):
        RunLock(tmp_path / "run").acquire()


def test_a_lock_left_by_kill_9_is_taken_over_with_a_warning(tmp_path, holder, caplog):
    proc = holder(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # kill -9 leaves it behind
    with caplog.at_level(logging.WARNING, logger="genlab.runlock"):
        lock = RunLock(tmp_path / "run").acquire()
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"took over the stale lock of run directory {tmp_path / 'run'}: pid {proc.pid}" in caplog.text and "is no longer running" in caplog.text
    lock.release()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def _foreign_lock(run_dir: Path, age_s: float) -> None:
    run_dir.mkdir(parents=True)
    path = run_dir / LOCK_NAME
    path.write_text(json.dumps({"pid": 1234, "host": "another-node", "start": None, "nonce": "x" * 32, "job": None}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_holder_on_another_host_is_live_while_its_heartbeat_is_fresh(tmp_path):
    _foreign_lock(tmp_path / "run", age_s=5)
    with pytest.raises(GenlabError, match="in use by genlab pid 1234 on host another-node"):
        RunLock(tmp_path / "run").acquire()


def test_a_holder_on_another_host_whose_heartbeat_stopped_is_stale(tmp_path, caplog):
    _foreign_lock(tmp_path / "run", age_s=STALE_AFTER_S + 10)
    with caplog.at_level(logging.WARNING, logger="genlab.runlock"):
        RunLock(tmp_path / "run").acquire().release()
    assert "has not renewed the lock" in caplog.text


def test_the_ranks_of_one_torchrun_job_share_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job1")
    monkeypatch.setenv("MASTER_ADDR", "node0")
    monkeypatch.setenv("MASTER_PORT", "29500")
    first = RunLock(tmp_path / "run").acquire()
    second = RunLock(tmp_path / "run").acquire()  # another rank: joins
    assert first.owner and not second.owner
    second.release()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # only the creator removes it
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job2")
    lock = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    lock["pid"], lock["host"] = 1234, "another-node"  # held by another job's rank elsewhere
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(lock))
    with pytest.raises(GenlabError, match="in use by genlab pid 1234"):
        RunLock(tmp_path / "run").acquire()
    first.owner = False  # the file is no longer first's


def test_a_requeued_slurm_job_takes_over_its_earlier_run(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _foreign_lock(run, age_s=1)
    lock = json.loads((run / LOCK_NAME).read_text())
    (run / LOCK_NAME).write_text(json.dumps({**lock, "slurm_job": "77", "slurm_restart": 0}))
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    RunLock(run).acquire().release()


def test_a_second_train_into_a_live_run_directory_stops_before_writing(tmp_path, holder):
    run = tmp_path / "run"
    proc = holder(run)
    done = genlab("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done) == (f"genlab: error: run directory {run} is in use by genlab pid {proc.pid} on host {socket.gethostname()} "
                              f"(lock {run / LOCK_NAME}); wait for that run to end, or choose another hydra.run.dir")
    assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # no .hydra/, train.log or metrics


def test_a_resume_during_a_live_run_stops_and_readers_do_not_block(tmp_path, holder):
    run = tmp_path / "run"
    assert genlab("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    proc = holder(run)
    resumed = genlab("train", f"resume={run}", "trainer.max_steps=4", cwd=tmp_path)
    assert resumed.returncode == 2 and f"is in use by genlab pid {proc.pid}" in one_line(resumed)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != LOCK_NAME} == before
    sampled = genlab("sample", f"ckpt={run}", f"out={tmp_path / 'samples'}", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr


def test_a_train_after_kill_9_takes_the_lock_over_and_runs(tmp_path, holder):
    run = tmp_path / "run"
    proc = holder(run)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = genlab("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"took over the stale lock of run directory {run}: pid {proc.pid}" in done.stdout + done.stderr
    assert (run / "checkpoints" / "last.pt").exists() and not (run / LOCK_NAME).exists()


@pytest.mark.parametrize("where", ["proc", "file_in_the_way"])
def test_a_run_directory_that_cannot_be_created_is_one_line(where, tmp_path):
    if where == "proc":
        run = Path("/proc/forbidden")
    else:
        (tmp_path / "afile").write_text("")
        run = tmp_path / "afile" / "run"
    done = genlab("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done).startswith(f"genlab: error: cannot write the run directory {run}: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_run_directory_without_write_permission_is_one_line(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(GenlabError, match=rf"cannot write the run directory {tmp_path / 'ro'}: permission denied"):
        RunLock(tmp_path / "ro").acquire()
