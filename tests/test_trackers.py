"""logger=csv, logger=wandb (offline) and logger=mlflow (local file store) log the same
scalars, images and hparams as metrics.jsonl; each is read back from what it wrote."""

import csv
import json
import struct
import sys
from pathlib import Path

import pytest

from genlab import GenlabError, train

TINY = ["model=ae", "trainer.max_steps=4", "trainer.log_every=2", "trainer.eval_every=2", "trainer.sample_every=4",
        "trainer.ckpt_every=0", "trainer.progress_bar=false", "data.batch_size=16"]


def train_with(make_cfg, run_dir: Path, logger: list[str]) -> list[dict]:
    """Train a tiny autoencoder with the given logger overrides; its metrics.jsonl rows."""
    train.run(make_cfg("train", [*TINY, *logger], fast=False), run_dir=run_dir)
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def logged(rows: list[dict]) -> dict[tuple[int, str], float]:
    """(step, scalar) -> value of metrics.jsonl, the reference every sink must match."""
    return {(r["step"], k): v for r in rows for k, v in r.items() if k not in ("step", "wall_s")}


def test_csv_logger_writes_the_jsonl_scalars_and_hparams(make_cfg, tmp_path):
    rows = train_with(make_cfg, tmp_path, ["logger=csv"])
    with open(tmp_path / "metrics.csv") as f:
        table = list(csv.DictReader(f))
    from_csv = {(int(r["step"]), k): float(v) for r in table for k, v in r.items() if k != "step" and v != ""}
    assert from_csv == pytest.approx(logged(rows))
    assert {(2, "train/loss"), (4, "val/mse"), (4, "perf/images_per_s")} <= set(from_csv)
    with open(tmp_path / "hparams.csv") as f:
        hparams = {r["name"]: r["value"] for r in csv.DictReader(f)}
    assert hparams["model._target_"] == "genlab.models.autoencoder.Autoencoder"
    assert float(hparams["hparam/val/mse"]) == pytest.approx(logged(rows)[(4, "val/mse")])


def test_unknown_sink_and_missing_tracker_package_are_one_line_errors(make_cfg, tmp_path, monkeypatch):
    with pytest.raises(GenlabError, match="logger.sinks has 'neptune'; choose from tensorboard, csv, wandb, mlflow"):
        train_with(make_cfg, tmp_path / "a", ["logger.sinks=[neptune]"])
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now fails as if it were not installed
    with pytest.raises(GenlabError, match=r"logger=wandb needs the wandb package: pip install 'genlab\[wandb\]'"):
        train_with(make_cfg, tmp_path / "b", ["logger=wandb"])


def wandb_records(path: Path):
    """The protobuf records of a .wandb file: a 7-byte header, then LevelDB-log blocks of
    32 KiB whose chunks (4-byte CRC, 2-byte length, 1-byte type) hold the records."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunks, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room for a chunk header: the block is padded
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            break
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            yield record
            chunks = b""


def test_wandb_offline_logs_scalars_images_and_hparams(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="logger=wandb needs pip install 'genlab[wandb]'")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    rows = train_with(make_cfg, run_dir, ["logger=wandb", "logger.wandb.mode=offline"])
    import wandb

    wandb.teardown()  # the W&B service writes the file in the background: wait until it has flushed
    (run_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history, config, summary = {}, {}, {}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        items = {"history": lambda r: r.history.item, "config": lambda r: r.config.update, "summary": lambda r: r.summary.update,
                 "run": lambda r: r.run.config.update}.get(kind, lambda r: [])(record)
        values = {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}
        if kind == "history":
            history[values.pop("_step")] = values
        elif kind in ("config", "run"):  # the run's config at the start, hparams at the end
            config |= {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in values.items()}
        elif kind == "summary":
            summary |= values
    image = {k.split("/", 1)[1]: v for k, v in history[4].items() if k.startswith("reconstruction/")}  # the step-4 grid
    assert image["_type"] == "image-file" and (run_file.parent / "files" / image["path"]).is_file()
    from_wandb = {(step, k): float(v) for step, values in history.items() for k, v in values.items() if not k.startswith(("_", "reconstruction/"))}
    assert from_wandb == pytest.approx(logged(rows))
    assert config["model._target_"] == "genlab.models.autoencoder.Autoencoder" and config["trainer.max_steps"] == 4
    assert summary["hparam/val/mse"] == pytest.approx(logged(rows)[(4, "val/mse")])


def test_mlflow_file_store_logs_scalars_images_params_and_resumes_the_run(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="logger=mlflow needs pip install 'genlab[mlflow]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store behind this switch
    uri = (tmp_path / "mlruns").as_uri()
    run_dir = tmp_path / "run"
    rows = train_with(make_cfg, run_dir, ["logger=mlflow", f"logger.mlflow.tracking_uri={uri}"])
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    assert run.data.tags["genlab.run_dir"] == str(run_dir.resolve()) and run.info.status == "FINISHED"
    from_mlflow = {(m.step, key): m.value for key in ("train/loss", "val/mse", "lr/main") for m in client.get_metric_history(run.info.run_id, key)}
    assert from_mlflow == pytest.approx({k: v for k, v in logged(rows).items() if k[1] in ("train/loss", "val/mse", "lr/main")})
    assert run.data.params["model._target_"] == "genlab.models.autoencoder.Autoencoder"
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any(p.startswith("images/reconstruction+step+4+") and p.endswith(".png") for p in images), images

    # resumed for 2 more steps, the run goes on in the same MLflow run
    train.run(make_cfg("train", [*TINY, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}", f"resume={run_dir}"], fast=False),
              run_dir=run_dir, overrides=["trainer.max_steps=6"])
    (again,) = client.search_runs([run.info.experiment_id])
    assert again.info.run_id == run.info.run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/mse")] == [2, 4, 6]


def test_wandb_without_an_account_is_one_line_before_training(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="logger=wandb needs pip install 'genlab[wandb]'")
    for var in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HOME", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # no ~/.netrc, no stored key
        monkeypatch.setenv(var, str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: no network, whatever happens
    with pytest.raises(GenlabError, match=r"^logger=wandb cannot log in to W&B \(.*\): run `wandb login`.*logger\.wandb\.mode=offline"):
        train_with(make_cfg, tmp_path / "run", ["logger=wandb"])
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))


def test_mlflow_without_a_tracking_uri_writes_beside_outputs_and_says_where(make_cfg, tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow", reason="logger=mlflow needs pip install 'genlab[mlflow]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    run_dir = tmp_path / "outputs" / "2026-01-01" / "10-00-00"
    train_with(make_cfg, run_dir, ["logger=mlflow"])
    uri = f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    assert f"in {uri} (open it with: mlflow ui --backend-store-uri {uri})" in capsys.readouterr().out
    assert not list((tmp_path / "elsewhere").iterdir())  # nothing in the directory the command ran from
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("genlab").experiment_id])
    assert run.data.tags["genlab.run_dir"] == str(run_dir.resolve())
    assert (tmp_path / "outputs" / "mlruns").is_dir()
