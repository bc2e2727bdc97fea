"""genlab report: the table from run directories written by hand (exact values), its files,
and the HTML page in a real headless browser."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from genlab import GenlabError
from genlab.images import save_grid
from genlab.report import find_runs, table, write_report


def make_run(path: Path, overrides: list[str], rows: list[dict], max_steps: int = 30, log: str = "", grid_seed: int | None = 0) -> Path:
    """A run directory as genlab train leaves it: .hydra/, metrics.jsonl, samples/, checkpoints/."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(OmegaConf.to_yaml(overrides))
    cfg = {"model": {"_target_": "genlab.models.autoencoder.Autoencoder"}, "trainer": {"max_steps": max_steps, "max_epochs": None, "monitor": None, "objective": None}}
    (path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if log:
        (path / "train.log").write_text(log)
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
    make_run(root / "2", ["model=ae", "optim.lr=1e30"], [],
             log="[2026-01-01 00:00:00,000][genlab.sweep][ERROR] - genlab: error: the loss is nan at step 1 (this trial failed; the sweep goes on)\n",
             grid_seed=None)
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
    assert (tmp_path / "r" / "report.md").is_file()
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
