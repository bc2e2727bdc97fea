"""genlab report: the table from run directories written by hand (exact values), its files,
and the HTML page in a real headless browser."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from genlab import GenlabError
from genlab.images import save_grid
from genlab.report import _fmt, find_runs, markdown_table, operational_table, per_class_table, table, text_table, write_report
from genlab.report import main as report_main
from test_domain_metrics import cache  # noqa: F401  (the fixture: a tiny digits classifier in a cache of its own)


def make_run(path: Path, overrides: list[str], rows: list[dict], max_steps: int = 30, grid_seed: int | None = 0) -> Path:
    """A run directory as genlab train leaves it: .hydra/, metrics.jsonl, samples/, checkpoints/."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    cfg = {"model": {"_target_": "genlab.models.autoencoder.Autoencoder"}, "trainer": {"max_steps": max_steps, "max_epochs": None, "monitor": None, "objective": None}}
    (path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if grid_seed is not None:
        torch.manual_seed(grid_seed)
        save_grid(torch.rand(16, 1, 8, 8) * 2 - 1, path / "samples" / "reconstruction_0000030.png")
        save_grid(torch.zeros(16, 1, 8, 8), path / "samples" / "reconstruction_0000010.png")
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "last.pt").write_bytes(b"")
    return path


@pytest.fixture
def sweep(tmp_path):
    """Three runs of a sweep over optim.lr: a resumed one, a plain one, a failed one."""
    root = tmp_path / "multirun" / "2026-01-01" / "00-00-00"
    make_run(root / "0", ["model=ae", "optim.lr=0.001"], [
        {"step": 10, "train/loss": 0.5, "perf/images_per_s": 100.0, "wall_s": 2.0},
        {"step": 10, "val/mse": 0.30, "val/psnr": 10.0, "val/d_real": 1.0, "wall_s": 2.5},
        {"step": 20, "train/loss": 0.4, "perf/images_per_s": 300.0, "wall_s": 4.0},  # stopped here, then resumed:
        {"step": 30, "train/loss": 0.3, "perf/images_per_s": 200.0, "wall_s": 1.5},  # wall_s starts again
        {"step": 30, "val/mse": 0.20, "val/psnr": 12.0, "val/d_real": 2.0, "wall_s": 3.0},
    ])
    make_run(root / "1", ["model=ae", "optim.lr=0.01"], [
        {"step": 10, "val/mse": 0.10, "val/psnr": 15.0, "wall_s": 1.0},
        {"step": 30, "val/mse": 0.15, "val/psnr": 14.0, "wall_s": 5.0},
    ], grid_seed=1)
    make_run(root / "2", ["model=ae", "optim.lr=1e30"], [], grid_seed=None)
    (root / "2" / "status.json").write_text(json.dumps({"state": "failed", "step": 1, "reason": "the loss is nan at step 1", "history": []}))
    return root


def test_table_has_a_row_per_run_with_final_and_best_values_sorted_by_the_objective(sweep):
    runs = find_runs([str(sweep)])
    columns, rows = table(runs, ("val/mse", "min"))
    # only the override that differs; d_real has no better direction, so no best column
    assert columns == ["run", "optim.lr", "status", "steps", "wall s", "img/s", "val/d_real final", "val/mse final", "val/mse best",
                       "val/psnr final", "val/psnr best", "checkpoint"]
    by_run = {row[0]: dict(zip(columns, row)) for row in rows}
    assert [row[0] for row in rows] == ["1", "0", "2"]  # final val/mse 0.15 < 0.20; the failed run last
    r0, r1, r2 = by_run["0"], by_run["1"], by_run["2"]
    assert (r0["val/mse final"], r0["val/mse best"], r0["val/psnr final"], r0["val/psnr best"]) == (0.20, 0.20, 12.0, 12.0)
    assert (r1["val/mse final"], r1["val/mse best"], r1["val/psnr best"]) == (0.15, 0.10, 15.0)
    assert r0["wall s"] == pytest.approx(4.0 + 3.0)  # two segments: 4 s, then 3 s after the resume
    assert r0["img/s"] == 200.0 and r1["img/s"] is None  # median of the logged throughputs
    assert (r0["steps"], r0["status"], r1["status"]) == (30, "done", "done")
    assert r2["status"] == "failed: the loss is nan at step 1" and r2["val/mse final"] is None
    assert r0["checkpoint"].endswith("0/checkpoints/last.pt")


def test_default_sort_is_the_runs_monitor(sweep):
    """An autoencoder keeps best.pt by val/mse (min): the report sorts by it unasked."""
    paths = write_report(find_runs([str(sweep / "*")]), sweep)
    text = paths["md"].read_text()
    assert "sorted by val/mse (lower is better)" in text and "common overrides: model=ae" in text
    assert text.index("| 1 | 0.01 |") < text.index("| 0 | 0.001 |") < text.index("| 2 | 1e30 |")


def test_report_files_csv_markdown_html_and_plots(sweep):
    paths = write_report(find_runs([str(sweep)]), sweep)
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["1", "0", "2"] and float(rows[1]["val/mse best"]) == 0.2
    names = {p.name for p in paths["plots"]}
    assert names == {"val_mse.png", "val_psnr.png", "val_d_real.png", "sweep_optim.lr.png"}
    for p in paths["plots"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    # offline: every picture inline, nothing fetched
    assert "http://" not in page and "https://" not in page and 'src="data:image/png;base64,' in page
    # 4 plots + per run with metrics a loss curve (run 0) + the latest grid of runs 0 and 1
    assert page.count("data:image/png;base64,") == 4 + 1 + 2
    assert "reconstruction_0000030.png" in page and "reconstruction_0000010.png" not in page
    assert page.index("<h3>1</h3>") < page.index("<h3>0</h3>") < page.index("<h3>2</h3>")
    assert "failed: the loss is nan at step 1" in page


def test_cli_prints_the_table_and_errors_in_one_line(sweep, tmp_path):
    out = subprocess.run([sys.executable, "-m", "genlab.cli", "report", str(sweep / "*"), "--sort", "val/psnr", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "sorted by val/psnr (higher is better)" in lines[0]
    assert [line.split()[0] for line in lines[3:6]] == ["1", "0", "2"]
    md = (tmp_path / "r" / "report.md").read_text()  # --out: the files go there, sorted as printed
    assert "sorted by val/psnr (higher is better)" in md and md.index("| 1 | 0.01 |") < md.index("| 0 | 0.001 |") < md.index("| 2 | 1e30 |")
    bad = subprocess.run([sys.executable, "-m", "genlab.cli", "report", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("genlab: error: no run directory") and len(bad.stderr.strip().splitlines()) == 1


def test_sort_by_a_metric_of_unknown_direction_asks_for_it(sweep):
    from genlab.report import sort_metric

    runs = find_runs([str(sweep)])
    with pytest.raises(GenlabError, match="add --mode min or --mode max"):
        sort_metric(runs, "val/d_real")
    assert sort_metric(runs, "val/d_real", "max") == ("val/d_real", "max")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install -y chromium) for a headless screenshot")
def test_page_renders_in_a_headless_browser(sweep, tmp_path):
    from PIL import Image

    paths = write_report(find_runs([str(sweep)]), sweep)
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600", f"--screenshot={shot}",
                    paths["html"].as_uri()], capture_output=True, timeout=120)
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600)
    # the page drew something: dark text and plot lines on the white background, in both halves
    top, bottom = image.crop((0, 0, 1200, 800)), image.crop((0, 800, 1200, 1600))
    for half in (top, bottom):
        histogram = half.histogram()
        assert sum(histogram[:128]) > 2000, "nothing dark drawn"


@pytest.fixture(scope="module")
def runs_by_hand(tmp_path_factory):
    """Three runs of genlab train made by hand, each overriding other keys: progress bar,
    loader workers, checkpoint cadence (operational), max_steps and seed (hyperparameters)."""
    root = tmp_path_factory.mktemp("by_hand")
    base = ["model=vae", "data=digits", "logger=jsonl", "trainer.log_every=1", "trainer.eval_every=2", "trainer.eval_batches=1", "trainer.sample_every=0"]
    extra = {"a": ["trainer.max_steps=3", "trainer.progress_bar=false"],
             "b": ["trainer.max_steps=4", "data.num_workers=1", "trainer.seed=1"],
             "c": ["trainer.max_steps=3", "trainer.ckpt_every=2", "trainer.seed=2", "trainer.progress_bar=false"]}
    procs = {name: subprocess.Popen([sys.executable, "-m", "genlab.cli", "train", *base, *args, f"hydra.run.dir={root / name}"], cwd=root,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
             for name, args in extra.items()}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    return root


def test_runs_made_by_hand_list_operational_keys_apart_with_each_runs_defaults(runs_by_hand, capsys):
    runs = find_runs([str(runs_by_hand)])
    columns, rows = table(runs, ("val/elbo", "max"))
    # hyperparameters: a run that kept the default shows it, read from its .hydra/config.yaml
    assert columns[:3] == ["run", "trainer.max_steps", "trainer.seed"]
    assert {row[0]: tuple(row[1:3]) for row in rows} == {"a": ("3", "0"), "b": ("4", "1"), "c": ("3", "2")}
    op_columns, op_rows = operational_table(runs, ("val/elbo", "max"))
    assert op_columns == ["run", "data.num_workers", "trainer.ckpt_every", "trainer.progress_bar"]
    assert [row[0] for row in op_rows] == [row[0] for row in rows]  # the same order as the main table
    assert {row[0]: tuple(row[1:]) for row in op_rows} == {"a": ("0", "500", "false"), "b": ("1", "500", "true"), "c": ("0", "2", "false")}
    assert not set(op_columns[1:]) & set(columns)

    paths = write_report(runs, runs_by_hand, ("val/elbo", "max"))
    names = {p.name for p in paths["plots"]}
    assert "sweep_trainer.max_steps.png" in names and "sweep_trainer.seed.png" in names
    assert not any(k in name for name in names for k in ("progress_bar", "num_workers", "ckpt_every"))
    with open(paths["operational_csv"]) as f:
        assert list(csv.DictReader(f)) == [dict(zip(op_columns, row)) for row in op_rows]
    with open(paths["csv"]) as f:
        assert "trainer.progress_bar" not in next(csv.reader(f))
    md = paths["md"].read_text()
    assert "## Operational settings (not hyperparameters: no plots)" in md and "| a | 0 | 500 | false |" in md
    assert "by trainer.progress_bar" not in md and "by data.num_workers" not in md
    page = paths["html"].read_text()
    assert "<h2>Operational settings (not hyperparameters: no plots)</h2>" in page and "<th>trainer.ckpt_every</th>" in page
    assert report_main([str(runs_by_hand), "--sort", "val/elbo"]) == 0
    head, operational = capsys.readouterr().out.split("Operational settings (not hyperparameters: no plots):\n")
    assert "trainer.progress_bar" not in head and operational.splitlines()[0].split() == op_columns


def test_a_key_one_run_set_to_the_others_default_is_no_difference_and_groups_show_their_option(tmp_path):
    rows = [{"step": 30, "val/mse": 0.1}]
    make_run(tmp_path / "a", ["optim.lr=1e-3", "model=ae"], rows, grid_seed=None)
    make_run(tmp_path / "b", ["trainer.max_steps=30"], rows, grid_seed=None)
    for name in "ab":  # what Hydra writes: the composed config and the groups' chosen options
        config = OmegaConf.load(tmp_path / name / ".hydra" / "config.yaml")
        config.optim = {"lr": 0.001}
        (tmp_path / name / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
        choices = {"model": "ae" if name == "a" else "vae", "logger": "tensorboard"}
        (tmp_path / name / ".hydra" / "hydra.yaml").write_text(OmegaConf.to_yaml({"hydra": {"runtime": {"choices": choices}}}))
    runs = find_runs([str(tmp_path)])
    columns, table_rows = table(runs, ("val/mse", "min"))
    assert columns[:2] == ["run", "model"] and {row[0]: row[1] for row in table_rows} == {"a": "ae", "b": "vae"}
    # 1e-3 is b's 0.001 and b's 30 steps are a's: the same values, so no columns of their own
    assert "optim.lr" not in columns and "trainer.max_steps" not in columns


def test_status_json_says_done_stopped_or_failed_and_keeps_the_resume_history(tmp_path, make_cfg):
    """genlab train writes status.json; the report's status column is read from it, not from
    train.log's wording."""
    from genlab import RunError, runstatus, train

    quick = ["model=ae", "trainer.eval_every=0", "trainer.sample_every=0", "trainer.ckpt_every=0"]
    run_dir = tmp_path / "resumed"
    train.run(make_cfg("train", [*quick, "trainer.max_steps=2"]), run_dir=run_dir)
    assert runstatus.read(run_dir) | {"updated": None, "history": None} == {
        "state": "done", "step": 2, "total_steps": 2, "reason": None, "signal": None, "updated": None, "pid": os.getpid(),
        "host": runstatus.socket.gethostname(), "history": None}
    train.run(make_cfg("train", [f"resume={run_dir}", "trainer.max_steps=3"]), run_dir=run_dir, overrides=["trainer.max_steps=3"])
    status = runstatus.read(run_dir)
    assert (status["state"], status["step"], status["total_steps"]) == ("done", 3, 3)
    assert [(e["event"], e["step"]) for e in status["history"]] == [("started", 0), ("resumed", 2)]
    assert status["history"][1]["from"] == str(run_dir / "checkpoints" / "last.pt")

    failed = tmp_path / "failed"
    with pytest.raises(RunError) as error:
        train.run(make_cfg("train", [*quick, "trainer.max_steps=3", "optim.lr=1e12"]), run_dir=failed)
    assert runstatus.read(failed)["state"] == "failed" and runstatus.read(failed)["reason"] == str(error.value)
    by_name = {r.path.name: r.status for r in find_runs([str(tmp_path)])}
    assert by_name == {"resumed": "done (resumed 1x)", "failed": f"failed: {error.value}"}


@pytest.fixture(scope="module")
def evaluated_cgans(cache, tmp_path_factory):
    """Two 2-step conditional GANs on the digits (seeds 0 and 1), each evaluated by genlab eval
    with class_accuracy and ifid on the tiny test classifier."""
    from hydra import compose, initialize_config_module

    from genlab import evaluate, train
    from genlab.metrics import domain

    root = tmp_path_factory.mktemp("cgans")
    small = ["experiment=cgan_digits", "model.generator.base_channels=8", "model.discriminator.base_channels=8", "trainer.max_steps=2",
             "trainer.sample_every=0", "trainer.ckpt_every=0", "data.batch_size=8", "logger=jsonl", "trainer.progress_bar=false"]
    with pytest.MonkeyPatch.context() as mp, initialize_config_module(config_module="genlab.configs", version_base=None):
        mp.setenv("GENLAB_CACHE", str(cache))
        domain._domain_net.cache_clear()
        for seed in (0, 1):
            train.run(compose(config_name="train", overrides=[*small, f"trainer.seed={seed}"]), run_dir=root / f"seed{seed}")
            evaluate.run(compose(config_name="eval", overrides=[f"ckpt={root / f'seed{seed}'}", "metrics=[class_accuracy,ifid]", "features=digits",
                                                                 "class_samples=12", "device=cpu"]))
        domain._domain_net.cache_clear()
    return root


def test_per_class_values_of_the_runs_eval_records_get_a_table_in_every_output(evaluated_cgans, capsys):
    records = {name: json.loads((evaluated_cgans / name / "checkpoints" / "last.eval.json").read_text())["per_class"] for name in ("seed0", "seed1")}
    assert all(set(r) == {"class_accuracy", "ifid"} and len(r["ifid"]) == len(r["class_accuracy"]) == 10 for r in records.values())
    assert records["seed0"] != records["seed1"]  # the seeds train different generators
    runs = find_runs([str(evaluated_cgans)])
    columns, rows = per_class_table(runs, None)
    metric_columns = [(m, name) for m in ("class_accuracy", "ifid") for name in ("seed0", "seed1")]
    assert columns == ["class", *(f"{m} {name}" for m, name in metric_columns)]
    assert rows == [[k, *(records[name][m][k] for m, name in metric_columns)] for k in range(10)]  # the JSON's floats, exactly

    assert report_main([str(evaluated_cgans)]) == 0
    out = capsys.readouterr().out
    printed = out.split("Per class (genlab eval records):\n", 1)[1].split("\n\nwrote ", 1)[0]
    assert printed == text_table(columns, rows) and printed.splitlines()[0].split() == ["class", *(c for m, name in metric_columns for c in (m, name))]
    with open(evaluated_cgans / "report_per_class.csv") as f:
        assert [[float(v) for v in row] for row in list(csv.reader(f))[1:]] == rows  # every digit the JSON has
    assert "report_per_class.csv" in out.splitlines()[-1]
    md = (evaluated_cgans / "report.md").read_text()
    assert "## Per class (genlab eval records)\n\n" + markdown_table(columns, rows) in md
    page = (evaluated_cgans / "report.html").read_text()
    assert "<h2>Per class (genlab eval records)</h2><table><tr><th>class</th><th>class_accuracy seed0</th>" in page
    for m, name in metric_columns:
        assert all(f"<td>{_fmt(v)}</td>" in page for v in records[name][m])


def test_runs_without_per_class_values_get_no_per_class_table(sweep):
    assert per_class_table(find_runs([str(sweep)]), None) == (["class"], [])
    paths = write_report(find_runs([str(sweep)]), sweep)
    assert "per_class_csv" not in paths and "Per class" not in paths["md"].read_text() and "Per class" not in paths["html"].read_text()
