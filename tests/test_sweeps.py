"""Sweeps: the objective a trial returns and the direction the sweeper follows, launcher and
sweeper configs, Optuna and joblib sweeps from the CLI, failed and interrupted trials, the
requeued job that continues its own run, and the report every sweep writes."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module

from genlab import GenlabError, checkpoint, train
from genlab.metrics.registry import metric_direction, objective
from genlab.sweep import SweepCallback

QUIET = ["trainer.progress_bar=false", "logger=jsonl", "data.batch_size=16", "trainer.sample_every=0", "trainer.ckpt_every=0"]
needs = {
    "optuna": pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None, reason="needs pip install 'genlab[sweep]'"),
    "joblib": pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None, reason="needs pip install 'genlab[sweep]'"),
    "submitit": pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None, reason="needs pip install 'genlab[slurm]'"),
}


def genlab(*args, cwd, env=None, check=True):
    proc = subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None})
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def final(run: Path, name: str) -> float:
    """The last logged value of `name` in a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r[name] for r in rows if name in r][-1]


def hydra_cfg(overrides: list[str]):
    """The composed config with its hydra node, as a sweep sees it."""
    with initialize_config_module(config_module="genlab.configs", version_base=None):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model=vae"], ("val/elbo", "max")),                                  # the model's monitor
        (["model=ae"], ("val/mse", "min")),
        (["model=gan", "trainer.eval_metrics=[fid]"], ("val/fid", "min")),     # no monitor of its own: FID
        (["experiment=gan_ring8"], ("val/modes_covered", "max")),             # 2-D mixture: mode coverage
        (["model=ae", "trainer.objective=val/psnr"], ("val/psnr", "max")),    # direction known from the name
        (["model=vae", "trainer.objective=val/kl"], ("val/kl", "min")),
        (["model=gan", "trainer.objective=val/d_real", "trainer.objective_mode=max"], ("val/d_real", "max")),
        (["model=gan"], None),                                                 # nothing to optimise
    ],
)
def test_objective_defaults_to_the_monitor_and_knows_its_direction(overrides, expected, make_cfg):
    assert objective(make_cfg("train", overrides)) == expected


def test_objective_without_a_known_direction_asks_for_one(make_cfg):
    with pytest.raises(GenlabError, match="trainer.objective=val/d_real: genlab does not know which way is better; set trainer.objective_mode=min or max"):
        objective(make_cfg("train", ["model=gan", "trainer.objective=val/d_real"]))


def test_mode_coverage_is_a_validation_metric_that_best_pt_follows(make_cfg, tmp_path):
    """experiment=gan_ring8 validates trainer.eval_metrics=[modes]: a generator that puts its
    samples on the 8 centres covers 8 modes with every sample of high quality."""
    from genlab.config import build

    cfg = make_cfg("train", ["experiment=gan_ring8"])
    trainer = train.build_trainer(cfg, build(cfg.model, "model"), tmp_path)
    from genlab.data.toy import mode_centers

    centers = mode_centers("ring8")
    trainer.eval_model.sample = lambda n, **cond: centers.repeat(n // 8 + 1, 1)[:n]
    trainer._validate()
    assert {k: trainer.evaluator.last[k] for k in ("val/modes_covered", "val/modes_total", "val/high_quality")} == {
        "val/modes_covered": 8, "val/modes_total": 8, "val/high_quality": 1.0}
    assert trainer.evaluator.best == {"name": "val/modes_covered", "value": 8, "step": 0} and (tmp_path / "checkpoints" / "best.pt").is_file()


def test_a_metric_that_does_not_apply_is_refused(make_cfg, tmp_path):
    with pytest.raises(GenlabError, match="trainer.eval_metrics has 'modes'; choose from fid, is, kid, pr, recon"):
        train.run(make_cfg("train", ["model=ae", "trainer.eval_metrics=[modes]"]), run_dir=tmp_path)


def test_metric_directions_by_name():
    assert [metric_direction(n) for n in ("val/fid_AtoB", "val/log_likelihood_iw1000", "val/bits_per_dim_iw10", "val/cycle_A", "val/ssim", "val/kid_std", "val/d_fake")] == [
        "min", "max", "min", "min", "max", None, None]


@needs["optuna"]
@pytest.mark.parametrize(("model", "direction"), [("model=vae", "maximize"), ("model=ae", "minimize")])
def test_optuna_direction_follows_the_objective(model, direction):
    cfg = hydra_cfg(["hydra/sweeper=optuna", model])
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    SweepCallback().on_multirun_start(config=cfg)
    assert cfg.hydra.sweeper.direction == direction


@needs["joblib"]
def test_joblib_launcher_composes():
    assert hydra_cfg(["hydra/launcher=joblib"]).hydra.launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


@needs["submitit"]
def test_slurm_launcher_asks_slurm_to_requeue_and_to_signal_before_the_time_limit(tmp_path):
    """hydra/launcher=slurm becomes an sbatch script with --requeue (a preempted job comes
    back and continues its run) and submitit's USR2 before the time limit."""
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import _make_sbatch_string

    launcher = hydra_cfg(["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    params = OmegaConf.to_container(launcher, resolve=True)
    script = _make_sbatch_string(
        command="python -m submitit.core._submit", folder=tmp_path, job_name="genlab", time=params["timeout_min"],
        gpus_per_node=params["gpus_per_node"], cpus_per_task=params["cpus_per_task"], mem=f"{params['mem_gb']}GB",
        signal_delay_s=params["signal_delay_s"], additional_parameters=params["additional_parameters"],
    )
    assert "#SBATCH --requeue" in script and "#SBATCH --signal=USR2@120" in script and "#SBATCH --time=240" in script


def test_missing_plugin_is_one_clear_error(tmp_path, monkeypatch):
    from genlab.sweep import check_plugins

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(GenlabError, match=r"hydra/sweeper=optuna needs its Hydra plugin: pip install 'genlab\[sweep\]'"):
        check_plugins(["model=ae", "hydra/sweeper=optuna"])


@needs["optuna"]
def test_optuna_sweep_of_three_trials_minimises_the_objective_and_survives_a_diverged_trial(tmp_path):
    """Three trials, the first of which diverges: the sweep goes on, Optuna's best value is the
    best final val/mse of the runs, the study is stored in SQLite, and report.md is written.
    (TPE's first trials are random draws: with seed 2 they are 1e30, 0.001, 0.003.)"""
    sweep = tmp_path / "sweep"
    genlab("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.sampler.seed=2", "hydra.sweeper.n_trials=3",
           "optim.lr=choice(0.001,0.003,1e30)", "model=ae", "trainer.max_steps=4", "trainer.eval_every=2",
           f"hydra.sweep.dir={sweep}", f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db", "hydra.sweeper.study_name=genlab",
           *QUIET, cwd=tmp_path)
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == 3
    finished = {yaml.safe_load((r / ".hydra" / "overrides.yaml").read_text())[0]: final(r, "val/mse") for r in runs if (r / "metrics.jsonl").is_file()}
    assert set(finished) == {"optim.lr=0.001", "optim.lr=0.003"}
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(min(finished.values()))
    import optuna

    study = optuna.load_study(study_name="genlab", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    report = (sweep / "report.md").read_text()
    assert "sorted by val/mse (lower is better)" in report and report.count("| done |") == 2 and "failed: the loss of phase 'main' is nan" in report


@pytest.mark.slow
@needs["optuna"]
def test_optuna_sweep_over_an_interval_maximises_the_elbo(tmp_path):
    sweep = tmp_path / "sweep"
    out = genlab("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=0",
                 "optim.lr=interval(1e-4,1e-2)", "model=vae", "trainer.max_steps=3", "trainer.eval_batches=2",
                 f"hydra.sweep.dir={sweep}", *QUIET, cwd=tmp_path)
    assert "Directions: ['maximize']" in out.stdout + out.stderr
    elbos = [final(r, "val/elbo") for r in sorted(sweep.glob("[0-9]*"))]
    assert len(elbos) == 3
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == pytest.approx(max(elbos))


@needs["joblib"]
def test_joblib_sweep_runs_two_jobs_in_parallel_each_on_its_share_of_the_cores_and_writes_the_report(tmp_path, monkeypatch):
    from genlab.device import cores, thread_share
    from genlab.report import find_runs, write_report

    sweep = tmp_path / "sweep"
    out = genlab("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "optim.lr=1e-3,3e-3", "model=ae",
                 "trainer.max_steps=4", f"hydra.sweep.dir={sweep}", *QUIET, cwd=tmp_path, env={"OMP_NUM_THREADS": None})
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in out.stdout + out.stderr
    share = thread_share(cores(), 2)  # 1 on a 2-core machine
    for job in ("0", "1"):
        assert checkpoint.load(sweep / job)[0]["step"] == 4
        # joblib's workers get OMP_NUM_THREADS=cores // n_jobs; genlab says so and matches the data workers
        assert f"threads={share} (OMP_NUM_THREADS), data workers=0: {cores()} cores, 2 concurrent jobs (hydra.launcher.n_jobs=2)" in (sweep / job / "train.log").read_text()
    # the report of the finished runs, as genlab report gives it from the same directory
    monkeypatch.chdir(tmp_path)
    again = write_report(find_runs([str(sweep)]), tmp_path / "again")
    for name in ("csv", "md"):
        assert (sweep / again[name].name).read_text() == again[name].read_text(), name
    assert (sweep / "report.md").read_text().count("| done |") == 2 and "<h1>genlab report</h1>" in (sweep / "report.html").read_text()
    plots = {p.name for p in again["plots"]}
    assert {p.name for p in sweep.glob("*.png")} == plots and {"val_mse.png", "sweep_optim.lr.png"} <= plots
    for plot in again["plots"]:
        assert (sweep / plot.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot.name


def start_sweep(sweep: Path, cwd: Path, env: dict) -> subprocess.Popen:
    """A one-job sweep that trains until stopped."""
    cmd = [sys.executable, "-m", "genlab.cli", "train", "-m", "model=ae", "trainer.max_steps=1000000", "trainer.log_every=1",
           f"hydra.sweep.dir={sweep}", *QUIET]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **env})


def stop_after_progress(proc: subprocess.Popen, jsonl: Path, rows_before: int) -> str:
    """SIGTERM once the job has logged a step beyond rows_before lines; its output."""
    deadline = time.time() + 240
    while time.time() < deadline and (not jsonl.is_file() or len(jsonl.read_text().splitlines()) <= rows_before):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    return out


def test_preempted_slurm_job_exits_143_and_its_requeued_run_continues_from_last_pt(tmp_path):
    """Under Slurm a stopped job exits 128 + SIGTERM so that Slurm requeues it; the requeued
    job (the same command, config and directory) finds its last.pt and continues. Outside
    Slurm the stopped trial is a failed trial, and the sweep ends normally with its report."""
    sweep, jsonl = tmp_path / "sweep", tmp_path / "sweep" / "0" / "metrics.jsonl"
    slurm = {"SLURM_JOB_ID": "4242"}
    proc = start_sweep(sweep, tmp_path, slurm)
    out = stop_after_progress(proc, jsonl, 0)
    assert proc.returncode == 143, out
    first = checkpoint.load(sweep / "0")[0]["step"]

    proc = start_sweep(sweep, tmp_path, slurm)  # Slurm's requeue runs the same job again
    out = stop_after_progress(proc, jsonl, len(jsonl.read_text().splitlines()))
    assert proc.returncode == 143, out
    assert f"(step {first}) from the same config: continuing it" in out and f"at step {first}" in out
    second = checkpoint.load(sweep / "0")[0]["step"]
    assert second > first

    proc = start_sweep(sweep, tmp_path, {})  # no Slurm: a stopped trial fails, the sweep does not
    out = stop_after_progress(proc, jsonl, len(jsonl.read_text().splitlines()))
    assert proc.returncode == 0, out
    assert "stopped by SIGTERM" in out and "this trial failed; the sweep goes on" in out
    assert "| failed: stopped by SIGTERM at step" in (sweep / "report.md").read_text()
