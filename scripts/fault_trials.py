"""Fault trials, run by hand (tests/test_faults.py has the fast cases): kill -9 at random
moments, SIGTERM, SIGINT, a double SIGINT, Ctrl-C during start-up, a full disk, corrupt
images, crafted checkpoints, bad config values and second writers into a live run
directory, each against the real `genlab` command.
Prints one table row per case: how many trials left a loadable last.pt, resumed, ended
bit-identical to an uninterrupted run, left temporary files behind, and failed with exactly
one line on stderr.

    python scripts/fault_trials.py                      # 20 kill -9 trials, 3 of each signal
    python scripts/fault_trials.py --kills 50 --steps 80 --model conv_vae
    python scripts/fault_trials.py --only shared_run_dir --shared 3   # the run-directory lock rows
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from genlab import checkpoint

QUIET = ["trainer.progress_bar=false", "logger=jsonl", "trainer.eval_every=0", "trainer.sample_every=0"]
COMPARED = ("step", "model", "ema", "optimizers", "schedulers", "data", "rng")


def genlab_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "genlab.cli", *args]


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def final_state(run: Path) -> dict:
    state, _ = checkpoint.load(run)
    return {k: state[k] for k in COMPARED}


def one_line(stderr: str) -> bool:
    lines = stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("genlab: ") and "Traceback" not in stderr


def temporaries(run: Path) -> list[Path]:
    return list((run / "checkpoints").glob(".*.tmp")) if (run / "checkpoints").is_dir() else []


class Table:
    COLUMNS = ("case", "trials", "loadable", "resumed", "bit-exact", "leftover files", "one-line error")

    def __init__(self):
        self.rows = []

    def add(self, case, trials, loadable="-", resumed="-", exact="-", leftover="-", one="-"):
        self.rows.append((case, trials, loadable, resumed, exact, leftover, one))
        print(" | ".join(str(c) for c in self.rows[-1]), flush=True)

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.COLUMNS) + " |", "|" + "---|" * len(self.COLUMNS)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)


class Trials:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.train_args = [f"model={args.model}", f"trainer.max_steps={args.steps}", f"trainer.ckpt_every={args.ckpt_every}",
                           "trainer.keep_last=2", *QUIET]
        self.reference = work / "reference"
        proc = subprocess.Popen(genlab_cmd("train", *self.train_args, f"hydra.run.dir={self.reference}"), stdout=subprocess.DEVNULL)
        first = self._first_checkpoint(self.reference, proc)
        if proc.wait() != 0:
            raise SystemExit("the reference run failed")
        # the training loop, from the first checkpoint to the last step's one: a signal after it finds
        # the work done and saved (the run then ends 0, or by SIGTERM's default during its last pictures)
        self.window = (self.reference / "checkpoints" / f"step_{args.steps:07d}.pt").stat().st_mtime - first
        self.expected = final_state(self.reference)
        print(f"reference: {args.model}, {args.steps} steps, checkpoint every {args.ckpt_every}; "
              f"{self.window:.1f} s from the first checkpoint to the last step's", flush=True)

    @staticmethod
    def _first_checkpoint(run: Path, proc: subprocess.Popen) -> float:
        deadline = time.time() + 600
        while not (run / "checkpoints" / "last.pt").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        return time.time()

    def interrupted_run(self, name: str, interrupt) -> tuple[Path, subprocess.CompletedProcess | None, subprocess.Popen]:
        """Start a run, wait for its first checkpoint, then call interrupt(proc) at a random moment."""
        run = self.work / name
        proc = subprocess.Popen(genlab_cmd("train", *self.train_args, f"hydra.run.dir={run}"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        self._first_checkpoint(run, proc)
        time.sleep(random.uniform(0, self.window * 0.9))
        if proc.poll() is None:
            interrupt(proc)
        _, err = proc.communicate(timeout=600)
        return run, err, proc

    def check(self, run: Path) -> tuple[bool, bool, bool, int]:
        """(loadable, resumed, bit-exact, temporaries left after the resume)."""
        try:
            checkpoint.load(run)
        except Exception:
            return False, False, False, len(temporaries(run))
        resumed = subprocess.run(genlab_cmd("train", f"resume={run}", *QUIET[:2]), capture_output=True, text=True)
        if resumed.returncode != 0:
            return True, False, False, len(temporaries(run))
        return True, True, same(final_state(run), self.expected), len(temporaries(run))

    def signal_case(self, table: Table, case: str, n: int, send, expected_code: int) -> None:
        counts, codes = [0, 0, 0, 0, 0], {}
        for i in range(n):
            run, err, proc = self.interrupted_run(f"{case}_{i}", send)
            loadable, resumed, exact, left = self.check(run)
            counts[0] += loadable
            counts[1] += resumed
            counts[2] += exact
            counts[3] += left
            # a stopped run logs its resume command and exits quietly; an aborted one says one line
            counts[4] += proc.returncode == expected_code and (not err.strip() or one_line(err))
            codes[proc.returncode] = codes.get(proc.returncode, 0) + 1
            if proc.returncode != expected_code:
                print(f"{case} trial {i}: exit {proc.returncode}, stderr: {err.strip()[-300:]!r}", flush=True)
        table.add(case, n, *counts[:4], f"{counts[4]}/{n} exit {expected_code} (exits: {codes})")


def crafted_checkpoints(trials: Trials, table: Table) -> None:
    real, _ = checkpoint.load(trials.reference)
    kinds = {
        "torch.load of a second pickle": lambda m: {"_target_": "torch.load", "f": str(evil(m)), "weights_only": False},
        "torch.os.system": lambda m: {"_target_": "torch.os.system", "_args_": [f"touch {m}"]},
        "genlab.<module>.os.system": lambda m: {"_target_": "genlab.checkpoint.os.system", "_args_": [f"touch {m}"]},
    }

    def evil(marker: Path) -> Path:
        class Payload:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        path = trials.work / "evil.pkl"
        path.write_bytes(pickle.dumps(Payload()))
        return path

    for kind, model in kinds.items():
        ran, ones, n = 0, 0, 0
        for verb in ("train", "eval", "sample"):
            marker = trials.work / "marker"
            marker.unlink(missing_ok=True)
            path = trials.work / "crafted.pt"
            torch.save({**real, "config": {**real["config"], "model": model(marker)}}, path)
            args = {"train": ["train", f"resume={path}"], "eval": ["eval", f"ckpt={path}"], "sample": ["sample", f"ckpt={path}"]}[verb]
            proc = subprocess.run(genlab_cmd(*args), capture_output=True, text=True, cwd=trials.work)
            n += 1
            ran += marker.exists()
            ones += proc.returncode == 2 and one_line(proc.stderr) and "not a genlab component" in proc.stderr
        table.add(f"crafted checkpoint: {kind} (train, eval, sample)", n, one=f"{ones}/{n}, code ran {ran}/{n}")


def bad_inputs(trials: Trials, table: Table) -> None:
    images = trials.work / "images"
    images.mkdir(exist_ok=True)
    for i in range(20):
        Image.new("RGB", (16, 16), (10 * i, 0, 0)).save(images / f"{i:02d}.png")
    (images / "09.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    folder = ["data=image_folder", f"data.dataset.root={images}", "data.image_size=16", "data.batch_size=4", "model=ae", "trainer.max_steps=2"]
    cases = {
        "corrupt image, num_workers=0": [*folder, "data.num_workers=0"],
        "corrupt image, num_workers=2": [*folder, "data.num_workers=2"],
        "trainer.max_steps=abc": ["trainer.max_steps=abc"],
        "optim.lr=-0.001": ["optim.lr=-0.001"],
        "data.batch_size=0": ["data.batch_size=0"],
        "data.image_size=abc": ["data.image_size=abc"],
        "trainer.ckpt_every=-5": ["trainer.ckpt_every=-5"],
        "trainer.max_step=3 (misspelled)": ["trainer.max_step=3"],
        "+trainer.max_step=3": ["+trainer.max_step=3"],
        "model=vae loss=hinge": ["model=vae", "loss=hinge"],
        "resume=<mistyped path>": ["resume=outputs/no-such-run"],
    }
    for case, args in cases.items():
        cwd = Path(tempfile.mkdtemp(dir=trials.work))
        proc = subprocess.run(genlab_cmd("train", *args, *QUIET[:2]), capture_output=True, text=True, cwd=cwd)
        created = [p for p in cwd.iterdir()]
        ok = proc.returncode == 2 and one_line(proc.stderr)
        note = "" if case.startswith("corrupt") or not created else f", created {len(created)} entries"
        table.add(case, 1, one=f"{int(ok)}/1 exit {proc.returncode}{note}: {proc.stderr.strip()[:90]}")


def start_up_sigint(trials: Trials, table: Table, n: int) -> None:
    """Ctrl-C at a random moment of the first seconds of `genlab train` (imports, config, data,
    the first steps): exit 130, no traceback, at most one line on stderr, never a hang."""
    ok, codes = 0, {}
    for _ in range(n):
        cwd = Path(tempfile.mkdtemp(dir=trials.work))
        proc = subprocess.Popen(genlab_cmd("train", *QUIET), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(random.uniform(0.2, 5.0))
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            code = "hang"
        codes[code] = codes.get(code, 0) + 1
        ok += code == 130 and (not err.strip() or one_line(err))
        if code != 130:
            print(f"start-up SIGINT: exit {code}, stderr: {err.strip()[-300:]!r}", flush=True)
    table.add("SIGINT at a random start-up moment", n, one=f"{ok}/{n} exit 130, at most one line (exits: {codes})")


def disk_full(trials: Trials, table: Table) -> None:
    size = (trials.reference / "checkpoints" / "last.pt").stat().st_size
    mount = trials.work / "small_disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size * 1.6)}", "tmpfs", str(mount)], capture_output=True).returncode:
        table.add("disk full (tmpfs)", 0, one="no mount rights here: see tests/test_faults.py for the patched-write case")
        return
    try:
        run = mount / "run"
        proc = subprocess.run(genlab_cmd("train", *trials.train_args, "trainer.keep_last=0", f"hydra.run.dir={run}"), capture_output=True, text=True)
        left = len(temporaries(run))
        copy = trials.work / "disk_full_copy"
        shutil.copytree(run, copy)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    loadable, resumed, exact, _ = trials.check(copy)
    ok = proc.returncode == 1 and one_line(proc.stderr) and "no space left on" in proc.stderr
    table.add("disk full (tmpfs, 1.6x a checkpoint)", 1, int(loadable), int(resumed), int(exact), left,
              f"{int(ok)}/1 exit {proc.returncode}: {proc.stderr.strip()[:110]}")


def shared_run_dir(trials: Trials, table: Table, n: int) -> None:
    """A second writer into a live run directory (a concurrent start, a resume during the run)
    stops in one line naming the holder and the first run ends as if alone; after kill -9 a
    resume takes the stale lock over and ends bit-identical to an uninterrupted run."""
    def live(name: str) -> tuple[Path, subprocess.Popen]:
        run = trials.work / name
        proc = subprocess.Popen(genlab_cmd("train", *trials.train_args, f"hydra.run.dir={run}"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        trials._first_checkpoint(run, proc)
        return run, proc

    for case, second in (("two concurrent starts into one run dir", lambda run: ["train", *trials.train_args, "trainer.seed=1", f"hydra.run.dir={run}"]),
                         ("resume during a live run", lambda run: ["train", f"resume={run}", *QUIET[:2]])):
        refused, first_ok, exact, left = 0, 0, 0, 0
        for i in range(n):
            run, proc = live(f"{case.split()[0]}_{i}")
            other = subprocess.run(genlab_cmd(*second(run)), capture_output=True, text=True, cwd=trials.work)
            named = f"is in use by genlab pid {proc.pid}" in other.stderr
            refused += other.returncode == 2 and one_line(other.stderr) and named
            if not (other.returncode == 2 and named):
                print(f"{case} trial {i}: second exit {other.returncode}, stderr: {other.stderr.strip()[-300:]!r}", flush=True)
            _, err = proc.communicate(timeout=600)
            first_ok += proc.returncode == 0
            exact += proc.returncode == 0 and same(final_state(run), trials.expected)
            left += len(temporaries(run)) + (run / ".genlab.lock").exists()
        table.add(case, n, "-", "-", f"{exact}/{n} first run", left, f"{refused}/{n} second refused (exit 2, names pid), first exit 0: {first_ok}/{n}")

    taken, loadable, resumed, exact, left = 0, 0, 0, 0, 0
    for i in range(n):
        run, proc = live(f"stale_{i}")
        time.sleep(random.uniform(0, trials.window * 0.9))
        proc.kill()
        proc.wait()
        stale = (run / ".genlab.lock").exists()
        again = subprocess.run(genlab_cmd("train", f"resume={run}", *QUIET[:2]), capture_output=True, text=True, cwd=trials.work)
        taken += stale and "took over the stale lock" in again.stdout + again.stderr
        if again.returncode != 0:
            print(f"kill -9 then resume trial {i}: exit {again.returncode}, stderr: {again.stderr.strip()[-300:]!r}", flush=True)
        loadable += again.returncode == 0
        resumed += again.returncode == 0
        exact += again.returncode == 0 and same(final_state(run), trials.expected)
        left += len(temporaries(run)) + (run / ".genlab.lock").exists()
    table.add("kill -9, then resume (stale lock)", n, loadable, resumed, exact, left, f"stale lock taken over with a warning: {taken}/{n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="kill -9 trials")
    parser.add_argument("--signals", type=int, default=3, help="trials of each signal case")
    parser.add_argument("--startups", type=int, default=20, help="Ctrl-C trials during start-up")
    parser.add_argument("--model", default="conv_vae")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--ckpt-every", type=int, default=5)
    parser.add_argument("--shared", type=int, default=3, help="trials of each shared-run-directory case")
    parser.add_argument("--only", choices=["shared_run_dir"], help="run only these rows (after the reference run)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    work = Path(tempfile.mkdtemp(prefix="genlab_faults_"))
    table = Table()
    try:
        trials = Trials(args, work)
        print(" | ".join(Table.COLUMNS), flush=True)
        if args.only == "shared_run_dir":
            shared_run_dir(trials, table, args.shared)
            return
        kill_counts = [0, 0, 0, 0]
        left_by_kill = 0
        for i in range(args.kills):
            run, _, _ = trials.interrupted_run(f"kill_{i}", lambda p: p.kill())
            left_by_kill += len(temporaries(run))
            for j, v in enumerate(trials.check(run)):
                kill_counts[j] += v
        table.add("kill -9 at a random moment", args.kills, *kill_counts[:3], f"{left_by_kill} after kill, {kill_counts[3]} after resume")

        def double_sigint(p):
            p.send_signal(signal.SIGINT)
            time.sleep(random.uniform(0, 0.3))
            p.send_signal(signal.SIGINT)

        trials.signal_case(table, "SIGTERM", args.signals, lambda p: p.send_signal(signal.SIGTERM), 143)
        trials.signal_case(table, "SIGINT", args.signals, lambda p: p.send_signal(signal.SIGINT), 130)
        trials.signal_case(table, "double SIGINT", args.signals, double_sigint, 130)
        start_up_sigint(trials, table, args.startups)
        disk_full(trials, table)
        crafted_checkpoints(trials, table)
        bad_inputs(trials, table)
        shared_run_dir(trials, table, args.shared)
    finally:
        print("\n" + table.markdown())
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
