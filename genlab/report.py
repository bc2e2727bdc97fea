"""`genlab report <run dirs, multirun dirs or globs>`: one table with a row per run (the
overrides that differ between the runs, the final and best value of every validation
metric, steps, wall time, images/s, the checkpoint; a run that kept a key's default shows
it), sorted by a metric, and apart from it the operational keys that differ (OPERATIONAL:
cadences, workers, device, trackers; never plotted) and the per-class values (class_accuracy,
ifid) of the runs' `genlab eval` records (checkpoints/*.eval.json); printed, and
written as report.csv, report.md and report.html (offline: the sample grids of the runs
side by side with their loss curves), with PNG plots next to them: every validation metric
against step for all runs, and for a sweep the sort metric against each swept parameter.
Everything is read from the run directories (metrics.jsonl, .hydra/, samples/, checkpoints/)."""

from __future__ import annotations

import argparse
import base64
import csv
import glob
import html
import io
import json
import logging
import math
import os
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from genlab import runstatus
from genlab.errors import GenlabError
from genlab.atomic import atomic_write, atomic_write_text
from genlab.metrics.registry import metric_direction, model_monitor, monitor, objective

log = logging.getLogger(__name__)
GRID = re.compile(r"^(?P<name>.+)_(?P<step>\d{7})\.png$")  # samples/<visual>_<step>.png, as the trainer writes them
# Keys that change how a run is carried out or watched, not what it learns (cadences of
# logging, samples, evaluation and checkpoints, the device and its speed-ups, loader workers,
# trackers, Hydra's own settings): listed apart from the hyperparameters and never plotted.
# trainer.max_steps and trainer.seed do change what is learned: they are hyperparameters.
OPERATIONAL = ("trainer.progress_bar", "trainer.log_every", "trainer.sample_every", "trainer.eval_every", "trainer.ckpt_every",
               "trainer.keep_last", "trainer.device", "trainer.compile", "trainer.channels_last", "trainer.threads",
               "trainer.inception.batch_size", "trainer.inception.runtime", "trainer.inception.download", "data.num_workers",
               "logger", "hydra", "resume")
_ABSENT = object()


def is_operational(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") or key.startswith(k + "/") for k in OPERATIONAL)


@dataclass
class Run:
    path: Path
    overrides: dict[str, str]                 # key -> value, from .hydra/overrides.yaml
    config: object                            # .hydra/config.yaml (DictConfig) or None
    hydra: object = None                      # .hydra/hydra.yaml (its groups' chosen options, Hydra's settings) or None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # scalar -> [(step, value)]
    steps: int = 0
    wall_s: float | None = None
    images_per_s: float | None = None
    status: str = ""
    checkpoint: Path | None = None
    label: str = ""
    monitor: tuple[str, str] | None = None    # (metric, mode) best.pt was kept by

    def setting(self, key: str) -> str | None:
        """The run's value of `key`: its override, else what its config holds (a group's chosen
        option for a group; None when the run has no such key or no config)."""
        if key in self.overrides:
            return self.overrides[key]
        from omegaconf import OmegaConf

        hydra = self.hydra.get("hydra") if self.hydra is not None else None
        choices = OmegaConf.select(hydra, "runtime.choices", default=None) if hydra is not None else None
        if choices is not None and key in choices:
            return _override_text(choices[key])
        root, path = (hydra, key.removeprefix("hydra.")) if key.startswith("hydra.") else (self.config, key)
        if root is None:
            return None
        try:
            value = OmegaConf.select(root, path, default=_ABSENT)
        except Exception:  # an interpolation that no longer resolves: its text
            value = OmegaConf.to_container(root, resolve=False)
            for part in path.split("."):
                value = value.get(part, _ABSENT) if isinstance(value, dict) else _ABSENT
        if value is _ABSENT or OmegaConf.is_dict(value) or isinstance(value, dict):
            return None  # a group's node without .hydra/hydra.yaml to name its option: nothing one cell can show
        return _override_text(value)

    def final(self, name: str) -> float | None:
        points = self.series.get(name)
        return points[-1][1] if points else None

    def best(self, name: str, mode: str) -> float | None:
        values = [v for _, v in self.series.get(name, []) if math.isfinite(v)]
        return (min(values) if mode == "min" else max(values)) if values else None

    def grids(self) -> dict[str, Path]:
        """The latest sample grid of each visual (samples/<name>_<step>.png)."""
        latest: dict[str, tuple[int, Path]] = {}
        for p in (self.path / "samples").glob("*.png"):
            m = GRID.match(p.name)
            if m and int(m["step"]) >= latest.get(m["name"], (-1, p))[0]:
                latest[m["name"]] = (int(m["step"]), p)
        return {name: p for name, (_, p) in sorted(latest.items())}


def _is_run(d: Path) -> bool:
    return (d / "metrics.jsonl").is_file() or (d / ".hydra" / "config.yaml").is_file()


def find_runs(patterns: list[str]) -> list[Run]:
    """Runs under the given run directories, multirun directories or glob patterns: every
    directory holding metrics.jsonl or .hydra/config.yaml (a run that failed before its first
    log line), once each."""
    dirs: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True)) or [pattern]
        found = False
        for m in map(Path, matches):
            if _is_run(m):
                dirs[m.resolve()] = None
                found = True
            elif m.is_dir():
                inside = {f.parent.parent if f.parent.name == ".hydra" else f.parent for f in [*m.rglob("metrics.jsonl"), *m.rglob(".hydra/config.yaml")]}
                for d in sorted(inside, key=lambda d: _natural(str(d))):
                    dirs[d.resolve()] = None
                    found = True
        if not found:
            raise GenlabError(f"no run directory (one holding metrics.jsonl or .hydra/config.yaml) at or under {pattern}")
    runs = [load_run(d) for d in dirs]
    base = Path(os.path.commonpath([r.path for r in runs]))
    for r in runs:
        r.label = str(r.path.relative_to(base)) if len(runs) > 1 else r.path.name
    return runs


def _natural(s: str) -> list:
    """Sort key with numbers compared as numbers: multirun/.../2 before .../10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load_run(path: Path) -> Run:
    from omegaconf import OmegaConf

    hydra_dir = path / ".hydra"
    overrides = {}
    if (hydra_dir / "overrides.yaml").is_file():
        for item in OmegaConf.to_container(OmegaConf.load(hydra_dir / "overrides.yaml")) or []:
            key, _, value = str(item).partition("=")
            overrides[key.lstrip("+")] = value
    config = OmegaConf.load(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else None
    hydra = OmegaConf.load(hydra_dir / "hydra.yaml") if (hydra_dir / "hydra.yaml").is_file() else None
    run = Run(path=path, overrides=overrides, config=config, hydra=hydra)
    rows, bad = [], 0
    jsonl = path / "metrics.jsonl"
    for line in jsonl.read_text().splitlines() if jsonl.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            bad += 1  # a line cut short by a crash
    if bad:
        log.warning("%s: skipped %d unreadable line(s) of metrics.jsonl", path, bad)
    wall, segment, last = 0.0, 0.0, -1.0
    speeds = []
    for row in rows:
        step = int(row.get("step", 0))
        run.steps = max(run.steps, step)
        if "wall_s" in row:  # seconds since the process began logging; a resumed run starts again from 0
            if row["wall_s"] < last:
                wall += segment
            segment = last = float(row["wall_s"])
        for k, v in row.items():
            if k in ("step", "wall_s"):
                continue
            v = _number(v)
            if v is not None:
                run.series.setdefault(k, []).append((step, v))
                if k == "perf/images_per_s":
                    speeds.append(v)
    run.wall_s = wall + segment if last >= 0 else None
    run.images_per_s = statistics.median(speeds) if speeds else None
    run.status = _status(run)
    run.monitor = _monitor(config)
    ckpts = path / "checkpoints"
    run.checkpoint = next((p for p in (ckpts / "best.pt", ckpts / "last.pt") if p.is_file()), None)
    return run


def _override_text(value) -> str:
    """A config value as an override writes it: true, null, [a,b], 0.001."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=False)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, list):
        return "[" + ",".join(_override_text(v) for v in value) + "]"
    return str(value)


def _same(values: list[str | None]) -> bool:
    """One value, numbers compared as numbers (1e-3 is 0.001)."""
    canon = {(_number(v) if _number(v) is not None else v) for v in values}
    return len(canon) <= 1


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        return float(v)  # non-finite values are logged as the strings "nan", "inf"
    except ValueError:
        return None


def _status(run: Run) -> str:
    """The run's status.json (genlab/runstatus.py) in words: done, stopped at step N of M,
    failed: <its one-line error>; with how often it was resumed. A run without one (made
    before status.json, or by hand) is done where its metrics reach its max_steps, else "at
    step N"; so is a "running" one whose process was killed without a word."""
    total = None
    if run.config is not None:
        try:
            total = None if run.config.trainer.get("max_epochs") else int(run.config.trainer.max_steps)
        except Exception:  # a config from disk that no longer resolves
            total = None
    status = runstatus.read(run.path) or {}
    total = status.get("total_steps") or total
    where = f"step {max(run.steps, status.get('step') or 0)}" + (f" of {total}" if total else "")
    state = status.get("state")
    if state == "failed":
        text = f"failed: {status.get('reason')}"
    elif state == "stopped":
        text = f"stopped at {where}"
    elif state == "done" or (state is None and total is not None and run.steps >= total):
        text = "done"
    else:
        text = f"at {where}"
    resumes = sum(1 for event in status.get("history", []) if event.get("event") == "resumed")
    return text + (f" (resumed {resumes}x)" if resumes else "")


def _monitor(config) -> tuple[str, str] | None:
    if config is None:
        return None
    try:
        return monitor(config.trainer, model_monitor(config.get("model")))
    except Exception:  # a config from disk that no longer resolves
        return None


def direction(runs: list[Run], name: str) -> str | None:
    """Which way `name` is better: what the metric that logs it declares (genlab/metrics/
    registry.py), else what the runs' own monitor says of it (a classifier's val/accuracy)."""
    known = metric_direction(name)
    return known or next((r.monitor[1] for r in runs if r.monitor and r.monitor[0] == name), None)


def sort_metric(runs: list[Run], sort: str | None = None, mode: str | None = None) -> tuple[str, str] | None:
    """(metric, mode) to sort by: the given one, else the runs' objective (trainer.objective
    or the metric best.pt is kept by), else the first validation metric with a direction."""
    if sort:
        mode = mode or direction(runs, sort)
        if mode is None:
            raise GenlabError(f"--sort {sort}: genlab does not know which way is better; add --mode min or --mode max")
        return sort, mode
    for run in runs:
        if run.config is not None:
            try:
                goal = objective(run.config)
            except Exception:  # a config from disk that no longer resolves: use the other rules
                goal = None
            if goal and any(goal[0] in r.series for r in runs):
                return goal
    for name in val_metrics(runs):
        if direction(runs, name):
            return name, direction(runs, name)
    return None


def val_metrics(runs: list[Run]) -> list[str]:
    return sorted({k for r in runs for k in r.series if k.startswith("val/")})


def differing(runs: list[Run], operational: bool = False) -> tuple[list[str], dict[str, str]]:
    """(overridden keys whose values differ between the runs, those the same in all), a run
    that did not override a key counting with its config's value; the hyperparameters, or
    with operational=True the operational keys (OPERATIONAL)."""
    keys = sorted({k for r in runs for k in r.overrides if is_operational(k) == operational}, key=_natural)
    diff = [k for k in keys if not _same([r.setting(k) for r in runs])]
    common = {k: runs[0].setting(k) for k in keys if k not in diff}
    return diff, common


def _ranked(runs: list[Run], sort: tuple[str, str] | None) -> list[Run]:
    """Best first by the sort metric's final value; runs without it last."""
    if not sort:
        return runs
    name, mode = sort
    sign = -1 if mode == "max" else 1
    return sorted(runs, key=lambda r: (r.final(name) is None or not math.isfinite(r.final(name)), sign * (r.final(name) or 0)))


def table(runs: list[Run], sort: tuple[str, str] | None) -> tuple[list[str], list[list]]:
    """(column names, rows of values), rows sorted by the sort metric's final value (best
    first; runs without it last)."""
    diff, _ = differing(runs)
    metrics = val_metrics(runs)
    directions = {m: direction(runs, m) for m in metrics}
    runs = _ranked(runs, sort)
    columns = ["run", *diff, "status", "steps", "wall s", "img/s"]
    for m in metrics:
        columns += [f"{m} final"] + ([f"{m} best"] if directions[m] else [])
    columns.append("checkpoint")
    rows = []
    for r in runs:
        row = [r.label, *(r.setting(k) for k in diff), r.status, r.steps, r.wall_s, r.images_per_s]
        for m in metrics:
            row.append(r.final(m))
            if directions[m]:
                row.append(r.best(m, directions[m]))
        row.append(_shown_path(r.checkpoint) if r.checkpoint else "")
        rows.append(row)
    return columns, rows


def operational_table(runs: list[Run], sort: tuple[str, str] | None) -> tuple[list[str], list[list]]:
    """The operational keys that differ between the runs, a row per run in table()'s order
    (no columns but "run" when none differ)."""
    keys = differing(runs, operational=True)[0]
    return ["run", *keys], [[r.label, *(r.setting(k) for k in keys)] for r in _ranked(runs, sort)]


def eval_tables(run: Run) -> dict[str, dict[str, list[float]]]:
    """{record: {metric: [value per class]}} of the run's `genlab eval` records that hold
    per-class tables (checkpoints/<checkpoint>.eval.json, its "per_class": class_accuracy,
    ifid); record is the checkpoint's name (last, best, step_0001000)."""
    tables = {}
    for p in sorted((run.path / "checkpoints").glob("*.eval.json"), key=lambda p: _natural(p.name)):
        try:
            record = json.loads(p.read_text())
        except (OSError, ValueError):  # cut short or not JSON: the other records still count
            log.warning("%s: unreadable, skipped", p)
            continue
        if isinstance(record, dict) and record.get("per_class"):
            tables[p.name.removesuffix(".eval.json")] = record["per_class"]
    return tables


def per_class_table(runs: list[Run], sort: tuple[str, str] | None) -> tuple[list[str], list[list]]:
    """The per-class values of the runs' eval records, a row per class and a column per metric
    and run (runs in table()'s order; "<run>/<record>" for a run with several records); no
    columns but "class" when no run has any."""
    found = []  # (column label, {metric: [value per class]}) per record
    for r in _ranked(runs, sort):
        tables = eval_tables(r)
        found += [(r.label if len(tables) == 1 else f"{r.label}/{name}", values) for name, values in tables.items()]
    metrics = sorted({m for _, values in found for m in values})
    cells = [(f"{m} {label}", values[m]) for m in metrics for label, values in found if m in values]
    n = max((len(v) for _, v in cells), default=0)
    return ["class", *(c for c, _ in cells)], [[k, *(v[k] if k < len(v) else None for _, v in cells)] for k in range(n)]


def extra_tables(runs: list[Run], sort: tuple[str, str] | None) -> list[tuple[str, str, list[str], list[list]]]:
    """The tables after the main one, those with something to show, each (key, title, columns,
    rows): the operational keys that differ, the per-class values of the runs' eval records.
    Printed, sections of the .md and .html, and <stem>_<key>.csv."""
    tables = [("operational", OPERATIONAL_TITLE, *operational_table(runs, sort)), ("per_class", PER_CLASS_TITLE, *per_class_table(runs, sort))]
    return [t for t in tables if len(t[2]) > 1]


def _shown_path(p: Path) -> str:
    """Relative to the current directory when inside it, else absolute."""
    rel = os.path.relpath(p)
    return str(p) if rel.startswith("..") else rel


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def text_table(columns: list[str], rows: list[list], width: int = 60) -> str:
    """Aligned columns for the terminal; cells longer than `width` are cut (the files keep them)."""
    cut = lambda s: s if len(s) <= width else s[: width - 3] + "..."  # noqa: E731
    cells = [columns, *([cut(_fmt(v)) for v in row] for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(columns: list[str], rows: list[list]) -> str:
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(_fmt(v)) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def csv_text(columns: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue()


# -- plots ------------------------------------------------------------------------------------
def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _legend(run: Run, keys: list[str]) -> str:
    text = " ".join(f"{k}={run.setting(k)}" for k in keys)
    return f"{run.label}: {text}"[:60] if text else run.label


def metric_plot(runs: list[Run], name: str) -> bytes:
    """`name` against step, one line per run."""
    fig, ax = _figure()
    keys = differing(runs)[0]
    for r in runs:
        points = r.series.get(name)
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=_legend(r, keys))
    ax.set(xlabel="step", ylabel=name, title=f"{name} by step")
    ax.grid(alpha=0.3)
    if len(runs) <= 20:
        ax.legend(fontsize=7)
    return _png(fig)


def parameter_plot(runs: list[Run], key: str, metric: str) -> bytes:
    """The final value of `metric` against one swept parameter: numbers on a (log) axis,
    anything else as categories."""
    points = [(_fmt(r.setting(key)), r.final(metric)) for r in runs if r.final(metric) is not None]
    numeric = all(_number(x) is not None for x, _ in points)
    fig, ax = _figure(5.0, 3.6)
    if numeric:
        xs = [float(x) for x, _ in points]
        ax.scatter(xs, [y for _, y in points])
        if min(xs) > 0 and max(xs) / min(xs) >= 100:
            ax.set_xscale("log")
    else:
        categories = sorted({x for x, _ in points}, key=_natural)
        ax.scatter([categories.index(x) for x, _ in points], [y for _, y in points])
        ax.set_xticks(range(len(categories)), categories, rotation=30 if len(categories) > 4 else 0)
    ax.set(xlabel=key, ylabel=f"{metric} (final)", title=f"{metric} by {key}")
    ax.grid(alpha=0.3)
    return _png(fig)


def loss_plot(run: Run) -> bytes | None:
    """The run's training losses against step."""
    names = [k for k in run.series if k.startswith("train/") and k.endswith("loss")]
    if not names:
        return None
    fig, ax = _figure(4.0, 2.8)
    for k in names:
        ax.plot(*zip(*run.series[k]), label=k.removeprefix("train/"), linewidth=1)
    ax.set(xlabel="step", title="training losses")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


# -- the report --------------------------------------------------------------------------------
def write_report(runs: list[Run], out: Path, sort: tuple[str, str] | None = None, stem: str = "report") -> dict:
    """Write <stem>.csv, .md, .html and the PNG plots into `out`, sorted by `sort`
    ((metric, mode); None: sort_metric's default); returns their paths."""
    if not runs:
        raise GenlabError("no runs to report")
    sort = sort or sort_metric(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = table(runs, sort)
    order = {r.label: r for r in runs}
    ranked = [order[row[0]] for row in rows]
    diff, common = differing(runs)
    extra = extra_tables(runs, sort)

    plots: dict[str, Path] = {}
    for name in val_metrics(runs):
        if len({v for r in runs for _, v in r.series.get(name, [])}) <= 1:
            continue  # a constant (val/modes_total) has nothing to show
        plots[f"{name} by step"] = out / f"{_slug(name)}.png"
        atomic_write(plots[f"{name} by step"], lambda f, n=name: f.write(metric_plot(runs, n)))
    if sort and len(runs) > 1:
        for key in diff:  # hyperparameters only: an operational key changes nothing a plot could show
            plots[f"{sort[0]} by {key}"] = out / f"sweep_{_slug(key)}.png"
            atomic_write(plots[f"{sort[0]} by {key}"], lambda f, k=key: f.write(parameter_plot(runs, k, sort[0])))

    paths = {"csv": out / f"{stem}.csv", "md": out / f"{stem}.md", "html": out / f"{stem}.html"}
    atomic_write_text(paths["csv"], csv_text(columns, rows))
    for key, _, extra_columns, extra_rows in extra:
        paths[f"{key}_csv"] = out / f"{stem}_{key}.csv"
        atomic_write_text(paths[f"{key}_csv"], csv_text(extra_columns, extra_rows))
    summary = _summary(runs, sort, common)
    md = ["# genlab report\n", summary + "\n", markdown_table(columns, rows) + "\n"]
    for _, title, extra_columns, extra_rows in extra:
        md += [f"## {title}\n", markdown_table(extra_columns, extra_rows) + "\n"]
    md += [f"![{title}]({p.name})\n" for title, p in plots.items()]
    md.append(f"Sample grids and loss curves of every run: [{paths['html'].name}]({paths['html'].name})\n")
    atomic_write_text(paths["md"], "\n".join(md))
    atomic_write_text(paths["html"], _html(ranked, columns, rows, plots, summary, extra))
    return paths | {"plots": list(plots.values())}


OPERATIONAL_TITLE = "Operational settings (not hyperparameters: no plots)"
PER_CLASS_TITLE = "Per class (genlab eval records)"


def _summary(runs: list[Run], sort, common: dict[str, str]) -> str:
    parts = [f"{len(runs)} run{'s' * (len(runs) != 1)}"]
    parts.append(f"sorted by {sort[0]} ({'higher' if sort[1] == 'max' else 'lower'} is better)" if sort else "unsorted (no metric to sort by)")
    if common:
        parts.append("common overrides: " + " ".join(f"{k}={v}" for k, v in common.items()))
    common_op = differing(runs, operational=True)[1]
    if common_op:
        parts.append("common operational settings: " + " ".join(f"{k}={v}" for k, v in common_op.items()))
    return "; ".join(parts)


def _img(data: bytes, alt: str, css: str = "") -> str:
    return f'<img class="{css}" alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; } td.wrap { white-space: normal; min-width: 80px; max-width: 320px; text-align: left; } td:first-child, th:first-child { text-align: left; }
.plots img { max-width: 560px; margin: 4px; border: 1px solid #ddd; }
.runs { display: flex; gap: 16px; overflow-x: auto; align-items: flex-start; padding-bottom: 8px; }
.run { flex: 0 0 auto; border: 1px solid #ddd; border-radius: 6px; padding: 8px; max-width: 420px; }
.run h3 { margin: 0 0 4px; } .run p { margin: 0 0 6px; color: #555; font-size: 12px; }
.run figure { margin: 6px 0; } .run figcaption { font-size: 12px; color: #555; }
.run img { width: 400px; image-rendering: pixelated; } .run img.curve { image-rendering: auto; }
"""


def _html_table(columns: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    wrap = {columns.index("status")} if "status" in columns else set()  # failure reasons are long: let them wrap
    body = "".join("<tr>" + "".join(f"<td{' class=wrap' * (i in wrap)}>{html.escape(_fmt(v))}</td>" for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(ranked: list[Run], columns: list[str], rows: list[list], plots: dict[str, Path], summary: str, extra=()) -> str:
    diff, _ = differing(ranked)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>genlab report</title><style>{CSS}</style></head><body>",
             f"<h1>genlab report</h1><p>{html.escape(summary)}</p>", _html_table(columns, rows)]
    for _, title, extra_columns, extra_rows in extra:
        parts.append(f"<h2>{html.escape(title)}</h2>" + _html_table(extra_columns, extra_rows))
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>" + "".join(_img(p.read_bytes(), t) for t, p in plots.items()) + "</div>")
    parts.append("<h2>Runs</h2><div class='runs'>")
    for r in ranked:
        settings = " ".join(f"{k}={r.setting(k)}" for k in diff) or str(r.path)
        card = [f"<div class='run'><h3>{html.escape(r.label)}</h3>", f"<p>{html.escape(settings)}<br>{html.escape(r.status)}</p>"]
        curves = loss_plot(r)
        if curves:
            card.append(f"<figure>{_img(curves, 'training losses', 'curve')}</figure>")
        for name, p in r.grids().items():
            card.append(f"<figure>{_img(p.read_bytes(), name)}<figcaption>{html.escape(p.name)}</figcaption></figure>")
        parts.append("".join(card) + "</div>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="genlab report", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", help="run directories, multirun directories or glob patterns")
    ap.add_argument("--sort", help="metric to sort by (default: the runs' trainer.objective, else their monitor)")
    ap.add_argument("--mode", choices=("min", "max"), help="which way is better for --sort (default: known from its name)")
    ap.add_argument("--out", help="folder for report.{csv,md,html} and the plots (default: the folder the runs share)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="genlab report: %(message)s")
    try:
        runs = find_runs(args.paths)
        sort = sort_metric(runs, args.sort, args.mode)
        out = Path(args.out) if args.out else Path(os.path.commonpath([r.path for r in runs]))
        paths = write_report(runs, out, sort)
    except GenlabError as e:
        print(f"genlab: error: {e}", file=sys.stderr)
        return 2
    print(_summary(runs, sort, differing(runs)[1]))
    print(text_table(*table(runs, sort)))
    for _, title, extra_columns, extra_rows in extra_tables(runs, sort):
        print(f"\n{title}:\n{text_table(extra_columns, extra_rows)}")
    csvs = ", ".join(p.name for k, p in paths.items() if k.endswith("csv"))
    print(f"\nwrote {paths['md']}, {csvs}, {paths['html'].name} and {len(paths['plots'])} plot(s)")
    return 0
